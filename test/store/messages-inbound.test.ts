import { afterEach, expect, it } from 'vitest';
import { newId } from '../../src/domain/ids.js';
import { ensureConversation } from '../../src/store/conversations.js';
import { findMessageByMid, getMessage, insertMessageOnce, listOutboundByMids, listOutboundUpToWatermark, messageExistsByMid } from '../../src/store/messages.js';
import type { MessageRow } from '../../src/store/schema.js';
import { describeEachEngine, openTestStore } from '../support/db.js';
import type { TestStore } from '../support/db.js';
import { seedContact } from '../support/rows.js';

const NOW = 1_768_478_400_000;

describeEachEngine('messages repository (inbound side)', (engine) => {
  let store: TestStore | undefined;
  afterEach(async () => {
    await store?.dispose();
    store = undefined;
  });

  async function setup(s: TestStore) {
    const { account_id, sender_id: senderId, contact } = await seedContact(s.db, NOW);
    const account = { id: account_id };
    const { conversation } = await ensureConversation(s.db, { account_id: account.id, sender_id: senderId, contact_id: contact.id }, { at: NOW, reopen: true }, NOW);
    const row = (over: Partial<MessageRow>): MessageRow => ({
      id: newId('msg'), account_id: account.id, sender_id: senderId, contact_id: contact.id, conversation_id: conversation.id, direction: 'inbound',
      mid: null, kind: 'text', content: '{}', raw: null, status: 'received', error_code: null, error_message: null, meta_error_code: null,
      meta_error_subcode: null, origin: 'external', client_ref: null, metadata: null, messaging_type: null, tag: null, status_callback: null,
      meta_timestamp: null, created_at: NOW, updated_at: NOW, sent_at: null, delivered_at: null, read_at: null, status_log: null, ...over,
    });
    return { accountId: account.id, senderId, contactId: contact.id, row };
  }

  it('insert a mid once and report the retry as not inserted', async () => {
    store = await openTestStore(engine);
    const { accountId, senderId, row } = await setup(store);
    const first = row({ mid: 'm_1' });
    expect(await insertMessageOnce(store.db, first)).toBe(true);
    expect(await insertMessageOnce(store.db, row({ mid: 'm_1' }))).toBe(false);
    // Messages without a mid are never deduplicated.
    expect(await insertMessageOnce(store.db, row({}))).toBe(true);
    expect(await insertMessageOnce(store.db, row({}))).toBe(true);
    expect(await messageExistsByMid(store.db, senderId, 'm_1')).toBe(true);
    expect((await findMessageByMid(store.db, senderId, 'm_1'))?.id).toBe(first.id);
    expect(await getMessage(store.db, 'acc_other', first.id)).toBeUndefined();
    expect(await getMessage(store.db, accountId, first.id)).toBeDefined();
  });

  it('list the outbound messages a watermark covers, in the statuses given, oldest first', async () => {
    store = await openTestStore(engine);
    const { senderId, contactId, row } = await setup(store);
    const a = row({ direction: 'outbound', status: 'sent', mid: 'a', sent_at: NOW + 2 });
    const b = row({ direction: 'outbound', status: 'sent', mid: 'b', sent_at: NOW + 1 });
    const c = row({ direction: 'outbound', status: 'read', mid: 'c', sent_at: NOW + 1 });
    const d = row({ direction: 'outbound', status: 'sent', mid: 'd', sent_at: NOW + 9 });
    const e = row({ direction: 'inbound', status: 'received', mid: 'e', sent_at: NOW });
    for (const m of [a, b, c, d, e]) await insertMessageOnce(store.db, m);
    const covered = await listOutboundUpToWatermark(store.db, contactId, senderId, NOW + 5, ['sending', 'sent']);
    expect(covered.map((m) => m.mid)).toEqual(['b', 'a']);
    const named = await listOutboundByMids(store.db, senderId, ['d', 'c', 'e'], ['sent']);
    expect(named.map((m) => m.mid)).toEqual(['d']);
    expect(await listOutboundByMids(store.db, senderId, [], ['sent'])).toEqual([]);
  });
});
