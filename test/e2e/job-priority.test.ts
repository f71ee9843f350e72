/**
 * A backlog of sends does not hold back what customers write, nor another business's replies or
 * events, end to end over real sockets on SQLite and PostgreSQL. A business queues more replies
 * than the job runner can send at once (every Send API call slowed down); a customer then writes,
 * and that message is processed, and reaches the business, while most of the earlier sends are
 * still waiting. Another business (an account of its own) then replies, and its reply goes out
 * with the next free slot, not after the first business's backlog. And while the first business
 * replays its events to a slow endpoint, another business's new event reaches its own endpoint
 * with the next free delivery slot.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachEngine } from '../support/db.js';
import { startWorld, waitFor } from '../pipeline/outbound/support.js';
import type { Customer, World } from '../pipeline/outbound/support.js';

const CUSTOMERS = 20;
const MESSAGES_EACH = 8;
const SEND_LATENCY_MS = 250;

describeEachEngine('job priority', (engine) => {
  let world: World;
  beforeAll(async () => {
    world = await startWorld(engine);
  });
  afterAll(async () => {
    await world?.close();
  });

  /**
   * The first business's backlog: MESSAGES_EACH replies to each customer, a round at a time (each
   * conversation's replies in order), the customers of a round at once, so the backlog is queued
   * well before the Send API works through it.
   */
  async function queueReplies(customers: Customer[], text: string): Promise<string[]> {
    const ids: string[] = [];
    for (let round = 0; round < MESSAGES_EACH; round += 1) {
      const answers = await Promise.all(
        customers.map((c) => world.api<{ id: string }>('POST', '/messages', { sender_id: world.senderId, to: { psid: c.psid }, text: `${text} ${round}` })),
      );
      for (const res of answers) {
        expect(res.status).toBe(202);
        ids.push(res.body.id);
      }
    }
    return ids;
  }

  /** How many of these messages have left. */
  async function countSent(ids: string[]): Promise<number> {
    const sent = await world.store.db
      .selectFrom('messages')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('id', 'in', ids)
      .where('sent_at', 'is not', null)
      .executeTakeFirstOrThrow();
    return Number(sent.n);
  }

  it('processes a customer message ahead of a backlog of sends queued before it', async () => {
    const customers: Customer[] = [];
    for (let i = 0; i < CUSTOMERS; i += 1) customers.push(await world.customer(`hello ${i}`));

    // Every Send API call takes a while: with 16 jobs at a time, the sends below take about
    // CUSTOMERS * MESSAGES_EACH / 16 * SEND_LATENCY_MS = 2.5 s to go out.
    const slow = await world.control('POST', '/_emulator/faults', { page: world.pageId, path: '/messages', kind: 'latency', ms: SEND_LATENCY_MS, count: 10_000 });
    expect(slow.status).toBeLessThan(300);
    const ids = await queueReplies(customers, 'update');
    const total = ids.length;

    const asking = customers[0] as Customer;
    // Sends leave while the backlog is being queued (more of them on a busy machine): only those
    // still waiting when the customer writes are the backlog the message must not wait for.
    const sentBefore = await countSent(ids);
    const waiting = total - sentBefore;
    const wrote = await world.control('POST', `/_emulator/pages/${world.pageId}/inbound`, { user: asking.userId, text: 'is anyone there?' });
    expect(wrote.status).toBe(200);
    // When the customer's message is stored, count the replies queued before it that have left.
    const sentThen = await waitFor(
      async () => {
        const inbound = await world.store.db
          .selectFrom('messages')
          .select('id')
          .where('contact_id', '=', asking.contactId)
          .where('direction', '=', 'inbound')
          .where('content', 'like', '%is anyone there?%')
          .executeTakeFirst();
        if (!inbound) return undefined;
        return { sent: await countSent(ids) };
      },
      'the customer message to be stored',
      30_000,
    );
    // Processed first in line, it waits only for a free job slot: at most the sends in flight then
    // and the ones started while it was parsed, not the queue (FIFO had all of them go first).
    expect(sentThen.sent - sentBefore).toBeLessThan(waiting / 2);

    // The backlog still goes out in full.
    await world.control('DELETE', '/_emulator/faults');
    for (const id of ids) await world.waitForSent(id, 60_000);
  });

  it("sends another account's reply with the next free slot while one account's backlog is waiting", async () => {
    const other = await world.newAccount('Second business');
    const page = await world.connectPage('Second business Page', false, other.id);
    const theirs = await world.customer('hello second business', { pageId: page.pageId, senderId: page.senderId });
    const customers: Customer[] = [];
    for (let i = 0; i < CUSTOMERS; i += 1) customers.push(await world.customer(`hello again ${i}`));

    // Both Pages equally slow: what decides who goes first is the claim, not the Send API.
    for (const pageId of [world.pageId, page.pageId]) {
      const slow = await world.control('POST', '/_emulator/faults', { page: pageId, path: '/messages', kind: 'latency', ms: SEND_LATENCY_MS, count: 10_000 });
      expect(slow.status).toBeLessThan(300);
    }
    const backlog = await queueReplies(customers, 'campaign');
    // As above: the sends that left while the backlog was queued are not the backlog it overtakes.
    const sentBefore = await countSent(backlog);
    const reply = await other.api<{ id: string }>('POST', '/messages', { sender_id: page.senderId, to: { psid: theirs.psid }, text: 'thanks for writing' });
    expect(reply.status).toBe(202);

    await world.waitForSent(reply.body.id, 30_000, other.api);
    // Oldest first it went after all of them; in turns, after those in flight when it was queued
    // and about one more round of the slots.
    expect((await countSent(backlog)) - sentBefore).toBeLessThan((backlog.length - sentBefore) / 2);

    await world.control('DELETE', '/_emulator/faults');
    for (const id of backlog) await world.waitForSent(id, 60_000);
  }, 120_000);

  it("delivers another account's event with the next free slot while one account's replay is waiting", async () => {
    // The first business's endpoint answers each event after a while; the other's at once.
    const slow = await countingEndpoint(200);
    const fast = await countingEndpoint(0);
    try {
      const mine = await world.api<{ id: string }>('POST', '/endpoints', { url: `${slow.url}/events` });
      expect(mine.status).toBe(201);
      const other = await world.newAccount('Third business');
      const page = await world.connectPage('Third business Page', false, other.id);
      const theirs = await other.api<{ id: string }>('POST', '/endpoints', { url: `${fast.url}/events` });
      expect(theirs.status).toBe(201);

      // Every event of the tests above, again: far more than the delivery slots, one conversation
      // at a time each.
      const replay = await world.api<{ replayed: number }>('POST', `/endpoints/${mine.body.id}/replay`, { since: new Date(0).toISOString() });
      expect(replay.status).toBe(202);
      expect(replay.body.replayed).toBeGreaterThan(500);
      await world.customer('hello third business', { pageId: page.pageId, senderId: page.senderId });
      await waitFor(() => fast.received() > 0 || undefined, "the other business's event", 30_000);
      // Oldest first it waited for the whole replay; in turns, for the deliveries in flight and
      // about one more round of the slots.
      expect(slow.received()).toBeLessThan(replay.body.replayed / 4);

      slow.delayMs = 0;
      await waitFor(() => slow.received() >= replay.body.replayed || undefined, 'the replay to arrive', 60_000);
    } finally {
      await slow.close();
      await fast.close();
    }
  }, 120_000);
});

/** An endpoint on 127.0.0.1 that answers 200 after `delayMs` and counts what it received. */
async function countingEndpoint(delayMs: number): Promise<{ url: string; delayMs: number; received(): number; close(): Promise<void> }> {
  let received = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      setTimeout(() => {
        received += 1;
        res.end('ok');
      }, endpoint.delayMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const endpoint = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    delayMs,
    received: () => received,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return endpoint;
}
