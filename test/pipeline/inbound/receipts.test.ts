import { afterEach, expect, it } from 'vitest';
import { statusHistory } from '../../../src/pipeline/message-status.js';
import { describeEachEngine } from '../../support/db.js';
import { fixture, insertOutbound, openHarness, pageEnvelope, seedContact } from './support.js';
import type { Harness } from './support.js';

const PAGE = '1691462197845448';
const PSID = '1134343043305865';
const T0 = 1_768_478_400_000;

function delivery(watermark: number, mids?: string[], timestamp = T0 + 100_000): object {
  return { sender: { id: PSID }, recipient: { id: PAGE }, timestamp, delivery: { watermark, ...(mids ? { mids } : {}) } };
}

function read(watermark: number, timestamp = T0 + 200_000): object {
  return { sender: { id: PSID }, recipient: { id: PAGE }, timestamp, read: { watermark } };
}

describeEachEngine('inbound receipts', (engine) => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  async function statuses(): Promise<Record<string, string>> {
    const rows = await h!.store.db.selectFrom('messages').select(['id', 'status']).where('direction', '=', 'outbound').execute();
    return Object.fromEntries(rows.map((r) => [r.id, r.status]));
  }

  it('move only the messages sent at or before the watermark to delivered, oldest first', async () => {
    h = await openHarness(engine, { metaId: PAGE });
    const { contactId, conversationId } = await seedContact(h, PAGE, PSID, T0);
    const early = await insertOutbound(h, { id: 'msg_a', contactId, conversationId, status: 'sent', mid: 'm_a', sentAt: T0 + 1000, statusCallback: 'https://app.test/status' });
    const middle = await insertOutbound(h, { id: 'msg_b', contactId, conversationId, status: 'sent', mid: 'm_b', sentAt: T0 + 2000 });
    const late = await insertOutbound(h, { id: 'msg_c', contactId, conversationId, status: 'sent', mid: 'm_c', sentAt: T0 + 3000 });

    const result = await h.ingest(pageEnvelope(PAGE, [delivery(T0 + 2000)]));
    expect(result.outcomes).toEqual(['updated']);
    expect(await statuses()).toEqual({ [early.id]: 'delivered', [middle.id]: 'delivered', [late.id]: 'sent' });

    const events = await h.events('message.status');
    expect(events.map((e) => [e.message_id, e.data['status'], e.data['previous_status']])).toEqual([
      [early.id, 'delivered', 'sent'],
      [middle.id, 'delivered', 'sent'],
    ]);
    const stored = await h.store.db.selectFrom('messages').select('status_log').where('id', '=', early.id).executeTakeFirstOrThrow();
    const history = statusHistory(stored);
    expect(history.map((r) => r.status)).toEqual(['delivered']);
    expect(history[0]!.detail).toMatchObject({ source: 'delivery', watermark: T0 + 2000 });
    // The per-message status callback gets a delivery of its own.
    const callbacks = await h.store.db.selectFrom('deliveries').select(['url', 'event_id']).where('url', 'is not', null).execute();
    expect(callbacks).toEqual([{ url: 'https://app.test/status', event_id: events[0]!.id }]);
  });

  it('never move a message backwards: a late delivery after a read changes nothing', async () => {
    h = await openHarness(engine, { metaId: PAGE });
    const { contactId, conversationId } = await seedContact(h, PAGE, PSID, T0);
    const m = await insertOutbound(h, { contactId, conversationId, status: 'sent', mid: 'm_1', sentAt: T0 + 1000 });
    await h.ingest(pageEnvelope(PAGE, [read(T0 + 5000)]));
    expect(await statuses()).toEqual({ [m.id]: 'read' });
    const before = (await h.events('message.status')).length;
    const late = await h.ingest(pageEnvelope(PAGE, [delivery(T0 + 5000, ['m_1'])]));
    expect(late.outcomes).toEqual(['ignored']);
    expect(await statuses()).toEqual({ [m.id]: 'read' });
    expect((await h.events('message.status')).length).toBe(before);
  });

  it('record the delivery before the read when the read comes first, so subscribers see both', async () => {
    h = await openHarness(engine, { metaId: PAGE });
    const { contactId, conversationId } = await seedContact(h, PAGE, PSID, T0);
    const m = await insertOutbound(h, { contactId, conversationId, status: 'sent', mid: 'm_1', sentAt: T0 + 1000 });
    await h.ingest(pageEnvelope(PAGE, [read(T0 + 1000)]));
    const events = await h.events('message.status');
    expect(events.map((e) => e.data['status'])).toEqual(['delivered', 'read']);
    const row = await h.store.db.selectFrom('messages').selectAll().where('id', '=', m.id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ status: 'read', read_at: T0 + 200_000, delivered_at: T0 + 200_000 });
  });

  it('move a message named in mids even without a watermark covering it', async () => {
    h = await openHarness(engine, { metaId: PAGE });
    const { contactId, conversationId } = await seedContact(h, PAGE, PSID, T0);
    const named = await insertOutbound(h, { contactId, conversationId, status: 'sent', mid: 'm_named', sentAt: T0 + 9000 });
    const other = await insertOutbound(h, { contactId, conversationId, status: 'sent', mid: 'm_other', sentAt: T0 + 9500 });
    await h.ingest(pageEnvelope(PAGE, [delivery(T0 + 1, ['m_named'])]));
    expect(await statuses()).toEqual({ [named.id]: 'delivered', [other.id]: 'sent' });
  });

  it('apply the Messenger delivery and read fixtures', async () => {
    h = await openHarness(engine, { metaId: PAGE });
    const { contactId, conversationId } = await seedContact(h, PAGE, PSID, 1472028000000);
    const m = await insertOutbound(h, { contactId, conversationId, status: 'sent', mid: 'mid.1472028395154:917e24ea99bc7d8f11', sentAt: 1472028395154 });
    await h.ingest(fixture('06_page_delivery.json'));
    expect(await statuses()).toEqual({ [m.id]: 'delivered' });
    // The read fixture's watermark is older than the message: it is not read yet.
    await h.ingest(fixture('07_page_read.json'));
    expect(await statuses()).toEqual({ [m.id]: 'delivered' });
  });

  it('read an Instagram message and every earlier one from read.mid', async () => {
    h = await openHarness(engine, { metaId: '17841400000000000', channel: 'instagram' });
    const page = '17841400000000000';
    const { contactId, conversationId } = await seedContact(h, page, PSID, T0);
    const first = await insertOutbound(h, { contactId, conversationId, status: 'delivered', mid: 'aWdf_1', sentAt: T0 + 1000 });
    const seen = await insertOutbound(h, { contactId, conversationId, status: 'sent', mid: 'aWdf_2', sentAt: T0 + 2000 });
    const later = await insertOutbound(h, { contactId, conversationId, status: 'sent', mid: 'aWdf_3', sentAt: T0 + 3000 });
    await h.ingest(pageEnvelope(page, [{ sender: { id: PSID }, recipient: { id: page }, timestamp: T0 + 4000, read: { mid: 'aWdf_2' } }], 'instagram'));
    expect(await statuses()).toEqual({ [first.id]: 'read', [seen.id]: 'read', [later.id]: 'sent' });
  });

  it('leave other contacts and other senders alone', async () => {
    h = await openHarness(engine, { metaId: PAGE });
    const mine = await seedContact(h, PAGE, PSID, T0);
    const theirs = await seedContact(h, PAGE, '999', T0);
    const a = await insertOutbound(h, { contactId: mine.contactId, conversationId: mine.conversationId, status: 'sent', mid: 'm_a', sentAt: T0 + 1000 });
    const b = await insertOutbound(h, { contactId: theirs.contactId, conversationId: theirs.conversationId, status: 'sent', mid: 'm_b', sentAt: T0 + 1000 });
    await h.ingest(pageEnvelope(PAGE, [delivery(T0 + 5000)]));
    expect(await statuses()).toEqual({ [a.id]: 'delivered', [b.id]: 'sent' });
  });
});
