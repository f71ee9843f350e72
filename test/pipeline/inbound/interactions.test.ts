import { afterEach, expect, it } from 'vitest';
import { closeConversation } from '../../../src/store/conversations.js';
import { describeEachEngine } from '../../support/db.js';
import { fixture, openHarness, pageEnvelope, textItem } from './support.js';
import type { Harness } from './support.js';

const PAGE = '1691462197845448';
const PSID = '1134343043305865';
const T0 = 1_768_478_400_000;
const DAY = 24 * 60 * 60 * 1000;

function from(psid: string | null, timestamp: number, body: Record<string, unknown>): object {
  return { ...(psid === null ? {} : { sender: { id: psid } }), recipient: { id: PAGE }, timestamp, ...body };
}

describeEachEngine('inbound interactions', (engine) => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('store a postback from an m.me link with its referral and emit a postback event', async () => {
    h = await openHarness(engine, { metaId: '0' });
    const result = await h.ingest(fixture('08_page_postback_with_referral.json'));
    expect(result.outcomes).toEqual(['stored']);
    const [message] = await h.messages();
    expect(message).toMatchObject({ kind: 'postback', mid: 'm_1457764197618:41d102a3e1ae206a38', direction: 'inbound' });
    const [event] = await h.events('postback');
    expect(event!.data).toMatchObject({
      postback: { title: 'title', payload: 'USER_DEFINED_PAYLOAD', referral: { ref: 'USER_DEFINED_REFERRAL_PARAM', source: 'SHORTLINK', type: 'OPEN_THREAD' } },
      message: { id: message!.id },
      contact: { psid: '0' },
    });
    const contact = await h.store.db.selectFrom('contacts').selectAll().executeTakeFirstOrThrow();
    expect(contact.last_inbound_at).toBe(2222222);
    expect(JSON.parse(contact.refs)).toEqual([{ ref: 'USER_DEFINED_REFERRAL_PARAM', source: 'SHORTLINK', type: 'OPEN_THREAD', at: 2222222 }]);
    expect(contact.ad_window_until).toBeNull();
    expect((await h.ingest(fixture('08_page_postback_with_referral.json'))).outcomes).toEqual(['duplicate']);
  });

  it('open the ad window for a new thread started from a click-to-Messenger ad postback', async () => {
    h = await openHarness(engine, { metaId: PAGE });
    await h.ingest(pageEnvelope(PAGE, [from(PSID, T0, { postback: { title: 'Get Started', payload: 'GET_STARTED', referral: { source: 'ADS', type: 'OPEN_THREAD', ad_id: '6045246247433' } } })]));
    const contact = await h.store.db.selectFrom('contacts').selectAll().executeTakeFirstOrThrow();
    expect(contact.ad_window_until).toBe(T0 + 7 * DAY);
  });

  it('store a reaction, link it to the message reacted to and restart the window without reopening the conversation', async () => {
    h = await openHarness(engine, { metaId: PAGE });
    await h.ingest(pageEnvelope(PAGE, [textItem(PAGE, PSID, 'm_target', 'nice shoes?', T0)]));
    const conversation = await h.store.db.selectFrom('conversations').selectAll().executeTakeFirstOrThrow();
    await closeConversation(h.store.db, h.account.id, conversation.id, T0 + 10);
    const reaction = from(PSID, T0 + 60_000, { reaction: { reaction: 'love', emoji: '❤', action: 'react', mid: 'm_target' } });
    const result = await h.ingest(pageEnvelope(PAGE, [reaction]));
    expect(result.outcomes).toEqual(['stored']);
    const target = (await h.messages()).find((m) => m.mid === 'm_target')!;
    const [event] = await h.events('reaction');
    expect(event!.data).toMatchObject({ reaction: { reaction: 'love', emoji: '❤', action: 'react', mid: 'm_target' }, target_message_id: target.id });
    // Reactions have no mid of their own: the gateway derives one, and shows none.
    expect((event!.data['message'] as { mid: unknown }).mid).toBeNull();
    const contact = await h.store.db.selectFrom('contacts').selectAll().executeTakeFirstOrThrow();
    expect(contact.last_inbound_at).toBe(T0 + 60_000);
    const after = await h.store.db.selectFrom('conversations').selectAll().executeTakeFirstOrThrow();
    expect(after.status).toBe('closed');
    // Meta's retry of the same reaction is dropped; an unreact is a new item.
    expect((await h.ingest(pageEnvelope(PAGE, [reaction]))).outcomes).toEqual(['duplicate']);
    const unreact = from(PSID, T0 + 70_000, { reaction: { action: 'unreact', mid: 'm_target' } });
    expect((await h.ingest(pageEnvelope(PAGE, [unreact]))).outcomes).toEqual(['stored']);
    expect((await h.events('reaction')).length).toBe(2);
  });

  it('keep a checkbox opt-in known only by user_ref, then join it to the PSID when the person answers', async () => {
    h = await openHarness(engine, { metaId: PAGE });
    await h.ingest(pageEnvelope(PAGE, [from(null, T0, { optin: { ref: 'checkout', user_ref: 'UREF-1' } })]));
    let contacts = await h.store.db.selectFrom('contacts').selectAll().execute();
    expect(contacts).toHaveLength(1);
    expect(contacts[0]).toMatchObject({ psid: null, user_ref: 'UREF-1', user_ref_at: T0, last_inbound_at: T0 });
    const [optin] = await h.events('optin');
    expect(optin!.data).toMatchObject({ optin: { ref: 'checkout', user_ref: 'UREF-1' }, contact: { psid: null, user_ref: 'UREF-1' } });
    // No profile can be fetched for a user_ref.
    expect(await h.store.db.selectFrom('jobs').select('id').where('kind', '=', 'profile.fetch').execute()).toEqual([]);

    const answer = { ...textItem(PAGE, PSID, 'm_answer', 'yes please', T0 + 1000), prior_message: { source: 'checkbox_plugin', identifier: 'UREF-1' } };
    await h.ingest(pageEnvelope(PAGE, [answer]));
    contacts = await h.store.db.selectFrom('contacts').selectAll().execute();
    expect(contacts).toHaveLength(1);
    expect(contacts[0]).toMatchObject({ psid: PSID, user_ref: 'UREF-1', last_inbound_at: T0 + 1000 });
  });

  it('record a Send to Messenger opt-in with its ref on the PSID contact', async () => {
    h = await openHarness(engine, { metaId: PAGE });
    await h.ingest(pageEnvelope(PAGE, [from(PSID, T0, { optin: { ref: 'newsletter' } })]));
    const contact = await h.store.db.selectFrom('contacts').selectAll().executeTakeFirstOrThrow();
    expect(contact).toMatchObject({ psid: PSID, last_inbound_at: T0, user_ref_at: null });
    expect(JSON.parse(contact.refs)).toEqual([{ ref: 'newsletter', source: 'OPTIN', type: 'send_to_messenger', at: T0 }]);
    expect((await h.messages())[0]?.kind).toBe('optin');
  });

  it('store a referral on an existing thread and restart the window', async () => {
    h = await openHarness(engine, { metaId: PAGE });
    await h.ingest(pageEnvelope(PAGE, [textItem(PAGE, PSID, 'm_1', 'hi', T0)]));
    await h.ingest(pageEnvelope(PAGE, [from(PSID, T0 + 5000, { referral: { ref: 'summer', source: 'SHORTLINK', type: 'OPEN_THREAD' } })]));
    const [event] = await h.events('referral');
    expect(event!.data).toMatchObject({ referral: { ref: 'summer', source: 'SHORTLINK' } });
    const contact = await h.store.db.selectFrom('contacts').selectAll().executeTakeFirstOrThrow();
    expect(contact.last_inbound_at).toBe(T0 + 5000);
    expect(contact.ad_window_until).toBeNull();
  });

  it('apply an edit to the original message, keep the first text in its raw and store the edit itself', async () => {
    h = await openHarness(engine, { metaId: PAGE });
    await h.ingest(pageEnvelope(PAGE, [textItem(PAGE, PSID, 'm_orig', 'helo', T0)]));
    await h.ingest(pageEnvelope(PAGE, [from(PSID, T0 + 1000, { message_edit: { mid: 'm_orig', text: 'hello', num_edit: 1 } })]));
    // An older edit arriving late does not overwrite the newer text.
    await h.ingest(pageEnvelope(PAGE, [from(PSID, T0 + 2000, { message_edit: { mid: 'm_orig', text: 'hello!!', num_edit: 2 } })]));
    await h.ingest(pageEnvelope(PAGE, [from(PSID, T0 + 500, { message_edit: { mid: 'm_orig', text: 'hell', num_edit: 0 } })]));
    const messages = await h.messages();
    const original = messages.find((m) => m.mid === 'm_orig')!;
    expect(JSON.parse(original.content)).toEqual({ text: 'hello!!', edit: { mid: 'm_orig', text: 'hello!!', num_edit: 2 } });
    expect(JSON.parse(original.raw!)).toMatchObject({ message: { text: 'helo' } });
    expect(messages.filter((m) => m.kind === 'edit')).toHaveLength(3);
    const edits = (await h.events('message.received')).filter((e) => e.data['edited_message_id'] !== undefined);
    expect(edits.map((e) => e.data['edited_message_id'])).toEqual([original.id, original.id, original.id]);
    // Edits are not interactions: the window still runs from the original message.
    const contact = await h.store.db.selectFrom('contacts').selectAll().executeTakeFirstOrThrow();
    expect(contact.last_inbound_at).toBe(T0);
  });

  it('store an unknown item from a person raw and forward it as a raw event', async () => {
    h = await openHarness(engine, { metaId: PAGE });
    const item = from(PSID, T0, { game_play: { game_id: '42', score: 99 } });
    const result = await h.ingest(pageEnvelope(PAGE, [item]));
    expect(result.outcomes).toEqual(['stored']);
    const [message] = await h.messages();
    expect(message).toMatchObject({ kind: 'raw' });
    expect(JSON.parse(message!.raw!)).toEqual(item);
    const [event] = await h.events('raw');
    expect(event!.data).toEqual({ object: 'page', entry_id: PAGE, source: 'messaging', sender_id: PSID, item });
    expect(event!.message_id).toBe(message!.id);
    expect((await h.ingest(pageEnvelope(PAGE, [item]))).outcomes).toEqual(['duplicate']);
  });

  it('forward changes, handovers and policy notices as raw events', async () => {
    h = await openHarness(engine, { metaId: PAGE });
    const change = { field: 'feed', value: { from: { id: PSID }, item: 'comment', verb: 'add', message: 'nice' } };
    const handover = from(PSID, T0, { pass_thread_control: { new_owner_app_id: '123', metadata: 'to human' } });
    const policy = { recipient: { id: PAGE }, timestamp: T0, 'policy-enforcement': { action: 'block', reason: 'spam' } };
    const result = await h.ingest({ object: 'page', entry: [{ id: PAGE, time: T0, changes: [change], messaging: [handover], standby: [policy] }] });
    expect(result.failed).toEqual([]);
    expect(result.outcomes).toEqual(['forwarded', 'forwarded', 'forwarded']);
    const events = await h.events('raw');
    expect(events.map((e) => e.data['source']).sort()).toEqual(['changes', 'messaging', 'standby']);
    expect(events.find((e) => e.data['source'] === 'changes')!.data['item']).toEqual(change);
    // Meta delivers the same batch twice more: nothing is forwarded again.
    for (let retry = 0; retry < 2; retry++) {
      const again = await h.ingest({ object: 'page', entry: [{ id: PAGE, time: T0, changes: [change], messaging: [handover], standby: [policy] }] });
      expect(again.outcomes).toEqual(['duplicate', 'duplicate', 'duplicate']);
    }
    expect(await h.events('raw')).toHaveLength(3);
    // The same kind of item with other content is another item.
    const another = { ...change, value: { ...change.value, message: 'very nice' } };
    expect((await h.ingest({ object: 'page', entry: [{ id: PAGE, time: T0, changes: [another] }] })).outcomes).toEqual(['forwarded']);
  });

  it('mark an Instagram message unsent and forward the unsend once, however often Meta sends it', async () => {
    h = await openHarness(engine, { metaId: PAGE, channel: 'instagram' });
    const sent = await h.ingest(pageEnvelope(PAGE, [textItem(PAGE, PSID, 'm_ig_1', 'oops, wrong chat', T0)], 'instagram'));
    expect(sent.outcomes).toEqual(['stored']);
    const unsend = from(PSID, T0 + 1_000, { message: { mid: 'm_ig_1', is_deleted: true } });
    expect((await h.ingest(pageEnvelope(PAGE, [unsend], 'instagram'))).outcomes).toEqual(['updated']);
    expect((await h.ingest(pageEnvelope(PAGE, [unsend], 'instagram'))).outcomes).toEqual(['duplicate']);
    const [message] = await h.messages();
    expect(JSON.parse(message!.content)).toMatchObject({ text: 'oops, wrong chat', is_deleted: true });
    expect(await h.events('raw')).toHaveLength(1);
  });
});
