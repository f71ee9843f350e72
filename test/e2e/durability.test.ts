/**
 * The durability barrier, end to end over real sockets (SQLite; PostgreSQL's commits are on disk
 * when they return). A SQLite commit is answered inside the process at once and flushed before
 * anything that depends on it leaves: an API answer, a Send API call, an event delivery, the
 * ingress acknowledgement. Each test holds the WAL's flushes (`test/support/flushes.ts`) and shows
 * that the thing does not leave while its flush waits, and does once the flush is let through.
 */
import { createHmac } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startReceiver } from '../support/stack.js';
import { settlesWithin, watchFlushes } from '../support/flushes.js';
import type { FlushWatch } from '../support/flushes.js';
import { http, pageTexts, startWorld, waitFor } from '../pipeline/outbound/support.js';
import type { Customer, World } from '../pipeline/outbound/support.js';

/** Which of the named promises settles first. */
function first(racers: Record<string, Promise<unknown>>): Promise<string> {
  return Promise.race(Object.entries(racers).map(([name, p]) => p.then(() => name, () => name)));
}

// Long enough for a request that did not wait to have arrived on this machine many times over.
const HELD_MS = 150;

describe('nothing leaves the gateway before what it follows from is on disk', () => {
  let world: World;
  let customer: Customer;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let flushes: FlushWatch;

  beforeAll(async () => {
    world = await startWorld('sqlite');
    receiver = await startReceiver();
    customer = await world.customer('hello');
  });
  afterAll(async () => {
    await world?.close();
    await receiver?.close();
  });
  beforeEach(async () => {
    flushes = await watchFlushes();
  });
  afterEach(async () => {
    await flushes.stop();
  });

  it('a Send API call waits for the flush of the message it sends', async () => {
    flushes.hold();
    const accepted = world.api<{ id: string }>('POST', '/messages', { sender_id: world.senderId, to: { psid: customer.psid }, text: 'Held at the barrier.' });
    // The API answer is itself behind a barrier: let it through.
    expect(await first({ flush: flushes.waiting(), answer: accepted })).toBe('flush');
    flushes.release();
    expect((await accepted).status).toBe(202);
    // The send job claims the message and moves it to `sending` (commits), then waits for the flush.
    const arrived = waitFor(async () => pageTexts(await world.thread(customer.psid)).includes('Held at the barrier.'), 'the reply in the thread');
    expect(await first({ flush: flushes.waiting(), arrived })).toBe('flush');
    expect(await settlesWithin(arrived, HELD_MS)).toBe(false);
    flushes.release();
    await flushes.stop();
    await arrived;
    // The emulator's echo, delivery and read come back before the next test holds flushes again.
    await world.waitForStatus((await accepted).body.id, 'read');
  });

  it('an API answer waits for the flush of what the request wrote', async () => {
    flushes.hold();
    const created = world.api<{ id: string }>('POST', '/endpoints', { url: `${receiver.url}/events` });
    expect(await first({ flush: flushes.waiting(), answer: created })).toBe('flush');
    expect(await settlesWithin(created, HELD_MS)).toBe(false);
    flushes.release();
    const res = await created;
    flushes.note('answered');
    expect(res.status).toBe(201);
    expect(flushes.log.indexOf('flushed')).toBeLessThan(flushes.log.indexOf('answered'));
  });

  it('the ingress acknowledgement waits for the flush of the webhook it stores', async () => {
    const body = JSON.stringify({ object: 'page', entry: [{ id: world.pageId, time: Date.now(), messaging: [] }] });
    const signature = `sha256=${createHmac('sha256', world.appSecret).update(body).digest('hex')}`;
    flushes.hold();
    const acked = http('POST', `${world.url}/webhooks/meta`, { body, headers: { 'content-type': 'application/json', 'x-hub-signature-256': signature } });
    expect(await first({ flush: flushes.waiting(), answer: acked })).toBe('flush');
    expect(await settlesWithin(acked, HELD_MS)).toBe(false);
    flushes.release();
    expect((await acked).status).toBe(200);
  });

  it('an event delivery waits for the flush of the message it tells of', async () => {
    flushes.hold();
    // The emulator delivers the customer's message to the gateway; its acknowledgement waits first.
    const wrote = world.control('POST', `/_emulator/pages/${world.pageId}/inbound`, { user: customer.userId, text: 'Tell the business.' });
    await flushes.waiting();
    flushes.release();
    expect((await wrote).status).toBe(200);
    // Stored by the inbound pipeline (reads flush nothing); the deliveries come next.
    await waitFor(
      async () => (await world.store.db.selectFrom('messages').select('id').where('contact_id', '=', customer.contactId).where('direction', '=', 'inbound').where('content', 'like', '%Tell the business.%').executeTakeFirst()) !== undefined,
      'the inbound message',
    );
    const delivered = waitFor(() => receiver.received.some((r) => r.body.includes('Tell the business.')), 'the event at the endpoint');
    expect(await first({ flush: flushes.waiting(), delivered })).toBe('flush');
    expect(await settlesWithin(delivered, HELD_MS)).toBe(false);
    flushes.release();
    await flushes.stop();
    await delivered;
  });
});

describe('after a failed flush', () => {
  let world: World | undefined;
  let flushes: FlushWatch;

  beforeAll(async () => {
    world = await startWorld('sqlite');
    flushes = await watchFlushes();
  });
  afterAll(async () => {
    await flushes?.stop();
    // The store's close says the flush failed; the world is gone either way.
    await world?.close().catch(() => undefined);
  });

  it('the gateway answers 503 STORAGE_FAILED, is not ready, and sends nothing', async () => {
    const w = world as World;
    const customer = await w.customer('hello');
    flushes.fail();
    const created = await w.api<{ error: { code: string; message: string } }>('POST', '/endpoints', { url: 'http://127.0.0.1:9/events' });
    expect(created.status).toBe(503);
    expect(created.body.error.code).toBe('STORAGE_FAILED');
    // The disk answers again; what the failed flush held may be gone, so nothing is trusted until a restart.
    await flushes.stop();
    const ready = await http<{ status: string; reason: string }>('GET', `${w.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.body.status).toBe('unavailable');
    const send = await w.api<{ error: { code: string } }>('POST', '/messages', { sender_id: w.senderId, to: { psid: customer.psid }, text: 'Never leaves.' });
    expect(send.status).toBe(503);
    expect(send.body.error.code).toBe('STORAGE_FAILED');
    // Meta is told to deliver the webhook again later.
    const body = JSON.stringify({ object: 'page', entry: [{ id: w.pageId, time: Date.now(), messaging: [] }] });
    const signature = `sha256=${createHmac('sha256', w.appSecret).update(body).digest('hex')}`;
    const webhook = await http<{ error: { code: string } }>('POST', `${w.url}/webhooks/meta`, { body, headers: { 'content-type': 'application/json', 'x-hub-signature-256': signature } });
    expect(webhook.status).toBe(503);
    expect(webhook.body.error.code).toBe('STORAGE_FAILED');
    // The send job was committed with the message; it may run, but its Send API call waits for a flush that fails.
    await new Promise((r) => setTimeout(r, 300));
    expect(pageTexts(await w.thread(customer.psid))).not.toContain('Never leaves.');
  });
});
