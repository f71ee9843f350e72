import { afterEach, expect, it } from 'vitest';
import { closeConversation, ensureConversation, getConversation, listConversations } from '../../src/store/conversations.js';
import { describeEachEngine, openTestStore } from '../support/db.js';
import type { TestStore } from '../support/db.js';
import { seedContact } from '../support/rows.js';

const NOW = 1_768_478_400_000;

describeEachEngine('conversations repository', (engine) => {
  let store: TestStore | undefined;
  afterEach(async () => {
    await store?.dispose();
    store = undefined;
  });

  async function target(s: TestStore) {
    const { account_id, sender_id, contact } = await seedContact(s.db, NOW);
    return { account_id, sender_id, contact_id: contact.id };
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
