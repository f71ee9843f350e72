/** The shared status lifecycle: forward only, failed is final unless proven sent, every move an event in order. */
import { afterEach, expect, it } from 'vitest';
import { JobQueue } from '../../../src/jobs/queue.js';
import { advanceStatus, applyOutboundEcho, canMove, initialStatusLog, recordInitialStatuses, statusHistory } from '../../../src/pipeline/message-status.js';
import { serializeSendState } from '../../../src/pipeline/outbound-state.js';
import { describeEachEngine } from '../../support/db.js';
import type { TestStore } from '../../support/db.js';
import { openOutboundStore } from './support.js';
import { insertOutboundRow, seedRows } from './rows.js';

const NOW = Date.UTC(2026, 5, 1, 12);

describeEachEngine('message status', (engine) => {
  let store: TestStore | undefined;
  afterEach(async () => {
    await store?.dispose();
    store = undefined;
  });

  async function setup() {
    store = await openOutboundStore(engine);
    const queue = new JobQueue(store, { now: () => NOW });
    const rows = await seedRows(store.db, NOW);
    return { db: store.db, queue, rows };
  }

  async function statusEvents(messageId: string) {
    const events = await store!.db.selectFrom('events').select('payload').where('type', '=', 'message.status').where('message_id', '=', messageId).orderBy('id').execute();
    return events.map((e) => JSON.parse(e.payload) as { status: string; previous_status: string | null; error: { code: string } | null });
  }

  it('moves only forward and records each move once', async () => {
    const { db, queue, rows } = await setup();
    const message = await insertOutboundRow(db, rows, NOW, { status_log: initialStatusLog(['accepted', 'queued'], { at: NOW }) });
    await recordInitialStatuses(db, queue, message, ['accepted', 'queued'], { at: NOW });
    const sending = await advanceStatus(db, queue, message, 'sending', { at: NOW + 1 });
    expect(sending?.status).toBe('sending');
    const delivered = await advanceStatus(db, queue, sending!, 'delivered', { at: NOW + 5 });
    expect(delivered?.sent_at).toBe(NOW + 5);
    // A stale copy asking to go back, or to the same place, changes nothing.
    expect(await advanceStatus(db, queue, sending!, 'sent', { at: NOW + 6 })).toBeNull();
    expect(await advanceStatus(db, queue, message, 'delivered', { at: NOW + 7 })).toBeNull();
    expect(await advanceStatus(db, queue, message, 'failed', { at: NOW + 8, error: { code: 'META_TEMPORARY', message: 'x' } })).toBeNull();
    const read = await advanceStatus(db, queue, message, 'read', { at: NOW + 9 });
    expect(read?.status).toBe('read');

    const stored = await db.selectFrom('messages').select('status_log').where('id', '=', message.id).executeTakeFirstOrThrow();
    expect(statusHistory(stored).map((h) => h.status)).toEqual(['accepted', 'queued', 'sending', 'delivered', 'read']);
    const events = await statusEvents(message.id);
    expect(events.map((e) => [e.previous_status, e.status])).toEqual([
      [null, 'accepted'],
      ['accepted', 'queued'],
      ['queued', 'sending'],
      ['sending', 'delivered'],
      ['delivered', 'read'],
    ]);
  });

  it('keeps failed final, except when an echo or receipt proves the message went out', async () => {
    const { db, queue, rows } = await setup();
    const message = await insertOutboundRow(db, rows, NOW, { status: 'sending' });
    const failed = await advanceStatus(db, queue, message, 'failed', { at: NOW, error: { code: 'UPSTREAM_TIMEOUT', message: 'no answer', meta_code: null } });
    expect(failed?.error_code).toBe('UPSTREAM_TIMEOUT');
    expect(canMove('failed', 'sending')).toBe(false);
    expect(canMove('failed', 'queued')).toBe(false);
    expect(await advanceStatus(db, queue, failed!, 'sending', { at: NOW + 1 })).toBeNull();
    const proven = await advanceStatus(db, queue, failed!, 'delivered', { at: NOW + 2 });
    expect(proven?.status).toBe('delivered');
    expect(proven?.error_code).toBeNull();
    const stored = await db.selectFrom('messages').selectAll().where('id', '=', message.id).executeTakeFirstOrThrow();
    expect(stored.error_code).toBeNull();
    expect(stored.status).toBe('delivered');
    const events = await statusEvents(message.id);
    expect(events.map((e) => e.status)).toEqual(['failed', 'delivered']);
    expect(events[0]?.error?.code).toBe('UPSTREAM_TIMEOUT');
    expect(events[1]?.error).toBeNull();
  });

  it("sends every status of a message to its own status callback, in the message's order", async () => {
    const { db, queue, rows } = await setup();
    const message = await insertOutboundRow(db, rows, NOW, { status_callback: 'https://example.com/status' });
    await recordInitialStatuses(db, queue, message, ['accepted', 'queued'], { at: NOW });
    await advanceStatus(db, queue, message, 'sending', { at: NOW + 1 });
    const deliveries = await db
      .selectFrom('deliveries')
      .innerJoin('events', 'events.id', 'deliveries.event_id')
      .select(['events.payload', 'deliveries.id'])
      .where('events.message_id', '=', message.id)
      .orderBy('events.id')
      .execute();
    expect(deliveries.map((d) => (JSON.parse(d.payload) as { status: string }).status)).toEqual(['accepted', 'queued', 'sending']);
    const jobs = await db.selectFrom('jobs').select(['key', 'payload']).where('kind', '=', 'deliver').orderBy('id').execute();
    expect(jobs).toHaveLength(3);
    // One FIFO key for the callback of this conversation: the three arrive in order.
    expect(new Set(jobs.map((j) => j.key)).size).toBe(1);
  });

  it('counts a multi-part message as sent only once the echo of every part came', async () => {
    const { db, queue, rows } = await setup();
    const parts = [0, 1, 2].map((i) => ({ message: { text: `part ${i}` }, kind: 'text' as const }));
    const message = await insertOutboundRow(db, rows, NOW, { status: 'sending', raw: serializeSendState({ parts }) });
    const fresh = async () => db.selectFrom('messages').selectAll().where('id', '=', message.id).executeTakeFirstOrThrow();
    expect(await applyOutboundEcho(db, queue, await fresh(), { mid: 'm_b', part: 1, at: NOW + 2, now: NOW + 2 })).toBeNull();
    expect(await applyOutboundEcho(db, queue, await fresh(), { mid: 'm_a', part: 0, at: NOW + 1, now: NOW + 3 })).toBeNull();
    expect((await fresh()).status).toBe('sending');
    const sent = await applyOutboundEcho(db, queue, await fresh(), { mid: 'm_c', part: 2, at: NOW + 4, now: NOW + 4 });
    expect(sent?.status).toBe('sent');
    const row = await fresh();
    expect(row.mid).toBe('m_a');
    expect(row.sent_at).toBe(NOW + 4);
    // A repeated echo changes nothing.
    expect(await applyOutboundEcho(db, queue, row, { mid: 'm_c', part: 2, at: NOW + 4, now: NOW + 5 })).toBeNull();
  });
});
