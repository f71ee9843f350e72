import { afterEach, expect, it } from 'vitest';
import { newId } from '../../src/domain/ids.js';
import { createAccount } from '../../src/store/accounts.js';
import { ensureContact } from '../../src/store/contacts.js';
import { closeConversation, ensureConversation, getConversation, listConversations } from '../../src/store/conversations.js';
import { insertSender } from '../../src/store/senders.js';
import { describeEachEngine, openTestStore } from '../support/db.js';
import type { TestStore } from '../support/db.js';

const NOW = 1_768_478_400_000;

describeEachEngine('conversations repository', (engine) => {
  let store: TestStore | undefined;
  afterEach(async () => {
    await store?.dispose();
    store = undefined;
  });

  async function target(s: TestStore) {
    const account = await createAccount(s.db, { name: 'A' }, NOW);
    const senderId = newId('snd');
    await insertSender(s.db, {
      id: senderId, account_id: account.id, channel: 'messenger', meta_id: '42', page_id: '42', name: null, username: null, token_enc: 'x',
      health: 'active', health_reason: null, health_changed_at: NOW, inbound_url: null, inbound_method: 'POST', fallback_url: null, fallback_method: 'POST',
      status_url: null, status_method: 'POST', format: 'native', human_agent: 0, settings: '{}', last_checked_at: null, created_at: NOW, updated_at: NOW,
    });
    const { contact } = await ensureContact(s.db, { account_id: account.id, sender_id: senderId, channel: 'messenger', psid: '1' }, NOW);
    return { account_id: account.id, sender_id: senderId, contact_id: contact.id };
  }

  it('create one conversation, reuse it, and reopen it only when asked', async () => {
    store = await openTestStore(engine);
    const t = await target(store);
    const first = await ensureConversation(store.db, t, { at: NOW, reopen: true }, NOW);
    expect(first.outcome).toBe('created');
    const again = await ensureConversation(store.db, t, { at: NOW + 5, reopen: true }, NOW);
    expect(again).toMatchObject({ outcome: 'existing', conversation: { id: first.conversation.id, last_message_at: NOW + 5 } });

    await closeConversation(store.db, t.account_id, first.conversation.id, NOW + 6);
    const echoed = await ensureConversation(store.db, t, { at: NOW + 7, reopen: false }, NOW);
    expect(echoed).toMatchObject({ outcome: 'existing', conversation: { status: 'closed' } });
    const reopened = await ensureConversation(store.db, t, { at: NOW + 8, reopen: true }, NOW);
    expect(reopened).toMatchObject({ outcome: 'reopened', conversation: { id: first.conversation.id, status: 'open', closed_at: null } });
    expect(await getConversation(store.db, t.account_id, first.conversation.id)).toMatchObject({ status: 'open', last_message_at: NOW + 8 });
    expect(await listConversations(store.db, t.account_id, { limit: 10 })).toHaveLength(1);
  });

  it('never move last_message_at back for a late item', async () => {
    store = await openTestStore(engine);
    const t = await target(store);
    const { conversation } = await ensureConversation(store.db, t, { at: NOW + 100, reopen: true }, NOW);
    await ensureConversation(store.db, t, { at: NOW + 50, reopen: true }, NOW);
    expect((await getConversation(store.db, t.account_id, conversation.id))?.last_message_at).toBe(NOW + 100);
    expect(await getConversation(store.db, 'acc_other', conversation.id)).toBeUndefined();
  });
});
