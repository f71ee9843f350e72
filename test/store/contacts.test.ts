import { afterEach, expect, it } from 'vitest';
import { newId } from '../../src/domain/ids.js';
import { createAccount } from '../../src/store/accounts.js';
import { ensureContact, findContactByUserRef, getContact, parseRefs, setContactOptedOut, touchContactInbound, updateContactProfile } from '../../src/store/contacts.js';
import { insertSender } from '../../src/store/senders.js';
import { describeEachEngine, openTestStore } from '../support/db.js';
import type { TestStore } from '../support/db.js';

const NOW = 1_768_478_400_000;

async function seed(store: TestStore): Promise<{ accountId: string; senderId: string }> {
  const account = await createAccount(store.db, { name: 'A' }, NOW);
  const senderId = newId('snd');
  await insertSender(store.db, {
    id: senderId, account_id: account.id, channel: 'messenger', meta_id: '42', page_id: '42', name: null, username: null, token_enc: 'x',
    health: 'active', health_reason: null, health_changed_at: NOW, inbound_url: null, inbound_method: 'POST', fallback_url: null, fallback_method: 'POST',
    status_url: null, status_method: 'POST', format: 'native', human_agent: 0, settings: '{}', last_checked_at: null, created_at: NOW, updated_at: NOW,
  });
  return { accountId: account.id, senderId };
}

describeEachEngine('contacts repository', (engine) => {
  let store: TestStore | undefined;
  afterEach(async () => {
    await store?.dispose();
    store = undefined;
  });

  it('create a contact once per PSID, even when two writers race', async () => {
    store = await openTestStore(engine);
    const { accountId, senderId } = await seed(store);
    const key = { account_id: accountId, sender_id: senderId, channel: 'messenger', psid: '1001' };
    const results = await Promise.all([ensureContact(store.db, key, NOW), ensureContact(store.db, key, NOW), ensureContact(store.db, key, NOW)]);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.contact.id)).size).toBe(1);
    expect(await store.db.selectFrom('contacts').select('id').execute()).toHaveLength(1);
  });

  it('keep a checkbox contact by user_ref and read it back scoped to its account', async () => {
    store = await openTestStore(engine);
    const { accountId, senderId } = await seed(store);
    const { contact } = await ensureContact(store.db, { account_id: accountId, sender_id: senderId, channel: 'messenger', user_ref: 'U1' }, NOW);
    expect(contact).toMatchObject({ psid: null, user_ref: 'U1', profile_status: 'pending', refs: '[]' });
    expect((await findContactByUserRef(store.db, senderId, 'U1'))?.id).toBe(contact.id);
    expect(await getContact(store.db, accountId, contact.id)).toBeDefined();
    expect(await getContact(store.db, 'acc_other', contact.id)).toBeUndefined();
  });

  it('move the window and the ad window forward only and add each ref once', async () => {
    store = await openTestStore(engine);
    const { accountId, senderId } = await seed(store);
    let { contact } = await ensureContact(store.db, { account_id: accountId, sender_id: senderId, channel: 'messenger', psid: '7' }, NOW);
    contact = await touchContactInbound(store.db, contact, { interaction_at: NOW + 10, ref: { ref: 'r', source: 'SHORTLINK' }, ad_window_until: NOW + 100 }, NOW);
    contact = await touchContactInbound(store.db, contact, { interaction_at: NOW + 5, ad_window_until: NOW + 50 }, NOW);
    contact = await touchContactInbound(store.db, contact, { interaction_at: NOW + 10, ref: { ref: 'r', source: 'SHORTLINK' } }, NOW);
    const row = await getContact(store.db, accountId, contact.id);
    expect(row).toMatchObject({ last_inbound_at: NOW + 10, ad_window_until: NOW + 100 });
    expect(parseRefs(row!.refs)).toEqual([{ ref: 'r', source: 'SHORTLINK', at: NOW + 10 }]);
  });

  it('keep only the newest fifty refs', async () => {
    store = await openTestStore(engine);
    const { accountId, senderId } = await seed(store);
    let { contact } = await ensureContact(store.db, { account_id: accountId, sender_id: senderId, channel: 'messenger', psid: '8' }, NOW);
    for (let i = 0; i < 55; i += 1) contact = await touchContactInbound(store.db, contact, { interaction_at: NOW + i, ref: { ref: `r${i}` } }, NOW);
    const refs = parseRefs((await getContact(store.db, accountId, contact.id))!.refs);
    expect(refs).toHaveLength(50);
    expect(refs[0]!.ref).toBe('r5');
    expect(refs[49]!.ref).toBe('r54');
  });

  it('store a profile and an opt-out', async () => {
    store = await openTestStore(engine);
    const { accountId, senderId } = await seed(store);
    const { contact } = await ensureContact(store.db, { account_id: accountId, sender_id: senderId, channel: 'messenger', psid: '9' }, NOW);
    await updateContactProfile(store.db, contact.id, { profile_status: 'fetched', profile_fetched_at: NOW, first_name: 'A', name: 'A' }, NOW);
    await setContactOptedOut(store.db, contact.id, NOW, NOW);
    expect(await getContact(store.db, accountId, contact.id)).toMatchObject({ profile_status: 'fetched', first_name: 'A', opted_out_at: NOW });
    await setContactOptedOut(store.db, contact.id, null, NOW);
    expect((await getContact(store.db, accountId, contact.id))?.opted_out_at).toBeNull();
  });
});
