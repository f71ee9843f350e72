import { afterEach, expect, it } from 'vitest';
import { statusHistory } from '../../../src/pipeline/message-status.js';
import { describeEachEngine } from '../../support/db.js';
import { fixture, insertOutbound, openHarness, pageEnvelope, seedContact } from './support.js';
import type { Harness } from './support.js';

const PAGE = '1691462197845448';
const PSID = '1134343043305865';
const T0 = 1_768_478_400_000;

function echo(mid: string, opts: { metadata?: string; appId?: string | number; text?: string; timestamp?: number } = {}): object {
  const message: Record<string, unknown> = { is_echo: true, mid, text: opts.text ?? 'reply' };
  if (opts.appId !== undefined) message['app_id'] = opts.appId;
  if (opts.metadata !== undefined) message['metadata'] = opts.metadata;
  return { sender: { id: PAGE }, recipient: { id: PSID }, timestamp: opts.timestamp ?? T0 + 5000, message };
}

describeEachEngine('inbound echoes', (engine) => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('match an echo to the outbound message with its mid and mark it sent if it was still sending', async () => {
    h = await openHarness(engine, { metaId: PAGE });
    const { contactId, conversationId } = await seedContact(h, PAGE, PSID, T0);
    const m = await insertOutbound(h, { contactId, conversationId, status: 'sending', mid: 'm_out_1' });
    const result = await h.ingest(pageEnvelope(PAGE, [echo('m_out_1', { appId: '111' })]));
    expect(result.outcomes).toEqual(['updated']);
    const row = await h.store.db.selectFrom('messages').selectAll().where('id', '=', m.id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ status: 'sent', meta_timestamp: T0 + 5000, sent_at: T0 + 5000, mid: 'm_out_1' });
    const statuses = await h.events('message.status');
    expect(statuses.map((e) => [e.message_id, e.data['status'], e.data['previous_status']])).toEqual([[m.id, 'sent', 'sending']]);
    expect(await h.events('message.echo')).toEqual([]);
    expect(await h.store.db.selectFrom('messages').select('id').where('direction', '=', 'outbound').execute()).toHaveLength(1);
  });

  it('match an echo by the gateway id in its metadata when the send answer never arrived', async () => {
    h = await openHarness(engine, { metaId: PAGE });
    const { contactId, conversationId } = await seedContact(h, PAGE, PSID, T0);
    const m = await insertOutbound(h, { contactId, conversationId, status: 'sending', mid: null });
    const metadata = JSON.stringify({ sb: m.id, m: 'order-42' });
    await h.ingest(pageEnvelope(PAGE, [echo('m_learnt', { appId: '111', metadata })]));
    const row = await h.store.db.selectFrom('messages').selectAll().where('id', '=', m.id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ status: 'sent', mid: 'm_learnt' });
    expect(await h.events('message.echo')).toEqual([]);
    // The same echo again (Meta's retry) changes nothing and emits nothing.
    const before = (await h.events()).length;
    await h.ingest(pageEnvelope(PAGE, [echo('m_learnt', { appId: '111', metadata })]));
    expect((await h.events()).length).toBe(before);
  });

  it('move a multi-part message to sent only when every part has echoed', async () => {
    h = await openHarness(engine, { metaId: PAGE });
    const { contactId, conversationId } = await seedContact(h, PAGE, PSID, T0);
    const raw = JSON.stringify({ parts: [{ message: { text: 'a' }, kind: 'text' }, { message: { attachment: {} }, kind: 'media' }] });
    const m = await insertOutbound(h, { contactId, conversationId, status: 'sending', raw });
    await h.ingest(pageEnvelope(PAGE, [echo('m_part_1', { metadata: JSON.stringify({ sb: m.id, p: 1 }) })]));
    let row = await h.store.db.selectFrom('messages').selectAll().where('id', '=', m.id).executeTakeFirstOrThrow();
    expect(row.status).toBe('sending');
    await h.ingest(pageEnvelope(PAGE, [echo('m_part_0', { metadata: JSON.stringify({ sb: m.id, p: 0 }) })]));
    row = await h.store.db.selectFrom('messages').selectAll().where('id', '=', m.id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ status: 'sent', mid: 'm_part_0' });
    expect(await h.events('message.echo')).toEqual([]);
  });

  it('store an echo of a message sent outside Switchboard as an external outbound message', async () => {
    h = await openHarness(engine, { metaId: PAGE });
    await seedContact(h, PAGE, PSID, 1472026000000);
    const result = await h.ingest(fixture('05_page_echo.json'));
    expect(result.outcomes).toEqual(['stored']);
    const row = await h.store.db.selectFrom('messages').selectAll().where('direction', '=', 'outbound').executeTakeFirstOrThrow();
    expect(row).toMatchObject({ origin: 'external', status: 'sent', mid: 'mid.1472026868734:832ecbdfc1ffc30139', sent_at: 1472026868763, kind: 'text' });
    expect(JSON.parse(row.content)).toEqual({ text: 'hello' });
    const [event] = await h.events('message.echo');
    expect(event!.data).toMatchObject({ external: true, app_id: '950864918368986', message: { id: row.id, direction: 'outbound', origin: 'external' } });
    expect(statusHistory(row).map((e) => ({ status: e.status, detail: e.detail }))).toEqual([{ status: 'sent', detail: { source: 'echo', app_id: '950864918368986' } }]);

    // A page-inbox reply does not restart the window: only the person's own messages do.
    const contact = await h.store.db.selectFrom('contacts').selectAll().executeTakeFirstOrThrow();
    expect(contact.last_inbound_at).toBe(1472026000000);

    // Meta's retry of the same echo is dropped.
    const again = await h.ingest(fixture('05_page_echo.json'));
    expect(again.outcomes).toEqual(['duplicate']);
    expect((await h.events('message.echo')).length).toBe(1);
  });

  it('treat metadata naming another sender\'s message as an external echo', async () => {
    h = await openHarness(engine, { metaId: PAGE });
    const other = await h.addSender({ metaId: '555000' });
    const { contactId, conversationId } = await seedContact(h, PAGE, PSID, T0);
    const foreign = await insertOutbound(h, { contactId, conversationId, status: 'sending' });
    await h.store.db.updateTable('messages').set({ sender_id: other.id }).where('id', '=', foreign.id).execute();
    await h.ingest(pageEnvelope(PAGE, [echo('m_x', { metadata: JSON.stringify({ sb: foreign.id }) })]));
    const stillSending = await h.store.db.selectFrom('messages').selectAll().where('id', '=', foreign.id).executeTakeFirstOrThrow();
    expect(stillSending.status).toBe('sending');
    expect((await h.events('message.echo')).length).toBe(1);
  });
});
