/**
 * Sending when things go wrong, end to end over real sockets on SQLite and PostgreSQL: a
 * conversation's messages arrive in order while Meta answers 5xx and rate limits; a send whose
 * answer is lost is settled by its echo and never sent twice; a dropped request is sent again
 * once no echo came; a window that closes while messages wait fails them and the queue moves on;
 * the same Idempotency-Key sends once.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { statusHistory } from '../../src/pipeline/message-status.js';
import { describeEachEngine } from '../support/db.js';
import { pageTexts, startWorld, waitFor } from '../pipeline/outbound/support.js';
import type { World } from '../pipeline/outbound/support.js';

interface ErrorBody {
  error: { code: string; message: string; details: Record<string, unknown> };
}

interface Accepted {
  id: string;
  status: string;
}

describeEachEngine('sending through failures', (engine) => {
  let world: World;
  beforeAll(async () => {
    world = await startWorld(engine);
  });
  afterAll(async () => {
    await world?.close();
  });

  async function post(psid: string, text: string, headers?: Record<string, string>) {
    return world.api<Accepted & Partial<ErrorBody>>('POST', '/messages', { sender_id: world.senderId, to: { psid }, text }, headers);
  }

  async function fault(body: Record<string, unknown>) {
    const res = await world.control('POST', '/_emulator/faults', { page: world.pageId, path: '/messages', ...body });
    expect(res.status).toBeLessThan(300);
  }

  it('delivers 20 messages to one customer in order while Meta answers some with 5xx and rate limits', async () => {
    const customer = await world.customer('send me everything');
    await fault({ kind: 'http_500', count: 2 });
    await fault({ kind: 'rate_limit', count: 2, ms: 1 });
    const ids: string[] = [];
    for (let i = 1; i <= 10; i += 1) {
      const res = await post(customer.psid, `message ${i}`);
      expect(res.status).toBe(202);
      ids.push(res.body.id);
    }
    await waitFor(async () => pageTexts(await world.thread(customer.psid)).length >= 5, 'the first messages to arrive');
    await fault({ kind: 'http_500', status: 503, count: 1 });
    await fault({ kind: 'rate_limit', count: 1, ms: 1 });
    for (let i = 11; i <= 20; i += 1) {
      const res = await post(customer.psid, `message ${i}`);
      expect(res.status).toBe(202);
      ids.push(res.body.id);
    }
    for (const id of ids) await world.waitForSent(id, 30_000);

    const expected = Array.from({ length: 20 }, (_, i) => `message ${i + 1}`);
    expect(pageTexts(await world.thread(customer.psid))).toEqual(expected);
    // Every fault fired: the failures really happened and were ridden out.
    const faults = await world.control<{ data: unknown[] }>('GET', '/_emulator/faults');
    expect(faults.body.data).toEqual([]);
    const rows = await world.store.db.selectFrom('messages').select('status_log').where('id', 'in', ids).execute();
    expect(rows).toHaveLength(ids.length);
    expect(rows.flatMap((r) => statusHistory(r).map((s) => s.status))).not.toContain('failed');
  });

  it('settles a send whose answer was lost through its echo: the customer gets it once', async () => {
    const customer = await world.customer('one copy please');
    await fault({ kind: 'accept_then_drop', count: 1 });
    const res = await post(customer.psid, 'exactly once');
    expect(res.status).toBe(202);
    const sent = await world.waitForStatus(res.body.id, 'read', 30_000);
    const copies = pageTexts(await world.thread(customer.psid)).filter((t) => t === 'exactly once');
    expect(copies).toHaveLength(1);
    const history = sent.status_history;
    expect(history.map((h) => h.status)).toEqual(['accepted', 'queued', 'sending', 'sent', 'delivered', 'read']);
    expect((history[3]?.detail as { source?: string } | null)?.source).toBe('echo');
    expect(sent['mid']).toMatch(/^m_/);
  });

  it('sends again when a dropped request left no echo, once', async () => {
    const customer = await world.customer('dropped?');
    await fault({ kind: 'drop', count: 1 });
    const res = await post(customer.psid, 'after a drop');
    await world.waitForSent(res.body.id, 30_000);
    expect(pageTexts(await world.thread(customer.psid)).filter((t) => t === 'after a drop')).toHaveLength(1);
    const raw = await world.store.db.selectFrom('messages').select('raw').where('id', '=', res.body.id).executeTakeFirstOrThrow();
    expect((JSON.parse(raw.raw ?? '{}') as { lost?: number }).lost).toBe(1);
  });

  it('fails a message Meta refuses for good, and the next one in the conversation still goes', async () => {
    const customer = await world.customer('bad then good');
    await fault({ kind: 'graph_error', count: 1, code: 100, message: '(#100) Invalid parameter' });
    const bad = await post(customer.psid, 'refused by Meta');
    const good = await post(customer.psid, 'the next one');
    const failed = await world.waitForStatus(bad.body.id, 'failed');
    expect(failed['error']).toMatchObject({ code: 'META_INVALID_PARAMETER', meta_code: 100 });
    await world.waitForSent(good.body.id);
    expect(pageTexts(await world.thread(customer.psid))).toEqual(['the next one']);
  });

  it('pauses a sender Meta blocked for a policy violation (368): later sends are refused until it is resumed', async () => {
    // A Page of its own: the pause must not hold up the other tests' sender.
    const other = await world.connectPage('Policy blocked Page');
    const customer = await world.customer('hello blocked page', { pageId: other.pageId, senderId: other.senderId });
    const send = (text: string) => world.api<Accepted & Partial<ErrorBody>>('POST', '/messages', { sender_id: other.senderId, to: { psid: customer.psid }, text });
    const blocked = await world.control('POST', '/_emulator/faults', { page: other.pageId, path: '/messages', kind: 'graph_error', code: 368, message: 'Temporarily blocked for policies violations', count: 1 });
    expect(blocked.status).toBeLessThan(300);

    const first = await send('this one meets the block');
    expect(first.status).toBe(202);
    const failed = await world.waitForStatus(first.body.id, 'failed', 30_000);
    expect((failed['error'] as { code: string }).code).toBe('META_POLICY_BLOCK');
    const sender = await world.api<{ health: string; settings: Record<string, unknown> }>('GET', `/senders/${other.senderId}`);
    expect(sender.body.health).toBe('degraded');
    expect(sender.body.settings).toMatchObject({ paused: true, paused_reason: expect.stringContaining('policy') });

    const refused = await send('refused while paused');
    expect(refused.status).toBe(422);
    expect(refused.body.error?.code).toBe('SENDER_PAUSED');

    const resumed = await world.api<{ settings: Record<string, unknown> }>('PATCH', `/senders/${other.senderId}`, { settings: { paused: false } });
    expect(resumed.status).toBe(200);
    expect(resumed.body.settings['paused']).toBe(false);
    expect(resumed.body.settings).not.toHaveProperty('paused_reason');
    const again = await send('sent after resuming');
    expect(again.status).toBe(202);
    await world.waitForSent(again.body.id, 30_000);
    expect(pageTexts(await world.thread(customer.psid, other.pageId))).toEqual(['sent after resuming']);
  });

  it('sends once for the same Idempotency-Key and refuses the key with another body', async () => {
    const customer = await world.customer('idempotent');
    const key = `key-${customer.psid}`;
    const first = await post(customer.psid, 'only once', { 'idempotency-key': key });
    const again = await post(customer.psid, 'only once', { 'idempotency-key': key });
    expect(first.status).toBe(202);
    expect(again.status).toBe(202);
    expect(again.body.id).toBe(first.body.id);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(first.headers.get('idempotent-replayed')).toBeNull();

    const other = await post(customer.psid, 'a different body', { 'idempotency-key': key });
    expect(other.status).toBe(409);
    expect(other.body.error?.code).toBe('IDEMPOTENCY_KEY_REUSED');

    await world.waitForSent(first.body.id);
    // Concurrent duplicates: one message, every answer the same.
    const racing = await Promise.all(Array.from({ length: 6 }, () => post(customer.psid, 'raced', { 'idempotency-key': `${key}-race` })));
    expect(racing.map((r) => r.status)).toEqual(Array(6).fill(202));
    expect(new Set(racing.map((r) => r.body.id)).size).toBe(1);
    await world.waitForSent(racing[0]?.body.id ?? '');

    const texts = pageTexts(await world.thread(customer.psid));
    expect(texts.filter((t) => t === 'only once')).toHaveLength(1);
    expect(texts.filter((t) => t === 'raced')).toHaveLength(1);
    const rows = await world.store.db.selectFrom('messages').select('id').where('contact_id', '=', customer.contactId).where('direction', '=', 'outbound').execute();
    expect(rows).toHaveLength(2);
  });

  it('fails messages still waiting when the window closes, and the conversation moves on', async () => {
    const customer = await world.customer('slow day');
    // The first send waits at Meta long enough for the clock to move past the window.
    await fault({ kind: 'latency', count: 1, ms: 1_500 });
    const first = await post(customer.psid, 'slow');
    const second = await post(customer.psid, 'queued behind it');
    await waitFor(async () => (await world.message(first.body.id)).status === 'sending', 'the first send to start');
    await world.advance(25 * 60 * 60 * 1000);
    const failedFirst = await world.waitForStatus(first.body.id, 'failed');
    // Meta itself refused the one in flight; the gateway refused the one still queued.
    expect(failedFirst['error']).toMatchObject({ code: 'WINDOW_CLOSED', meta_code: 10, meta_subcode: 2018278 });
    const failedSecond = await world.waitForStatus(second.body.id, 'failed');
    expect(failedSecond['error']).toMatchObject({ code: 'WINDOW_CLOSED' });
    expect((failedSecond['error'] as { meta_code?: number | null }).meta_code ?? null).toBeNull();
    expect(failedSecond.status_history.map((h) => h.status)).toEqual(['accepted', 'queued', 'failed']);

    await world.write(customer, 'back again');
    const third = await post(customer.psid, 'now it works');
    await world.waitForSent(third.body.id);
    expect(pageTexts(await world.thread(customer.psid))).toEqual(['now it works']);
  });
});

describeEachEngine('a send that times out after Meta accepted it', (engine) => {
  let world: World;
  beforeAll(async () => {
    // The gateway gives up on Meta's answer after 400 ms; Meta takes 1.2 s, then sends.
    world = await startWorld(engine, { metaTimeoutMs: 400, send: { reconcileWaitMs: 8_000 } });
  });
  afterAll(async () => {
    await world?.close();
  });

  it('waits for the echo of the timed-out send instead of sending again: the customer gets it once', async () => {
    const customer = await world.customer('slow Meta');
    const slow = await world.control('POST', '/_emulator/faults', { page: world.pageId, path: '/messages', kind: 'latency', ms: 1_200, count: 1 });
    expect(slow.status).toBeLessThan(300);
    const res = await world.api<Accepted>('POST', '/messages', { sender_id: world.senderId, to: { psid: customer.psid }, text: 'worth the wait' });
    expect(res.status).toBe(202);
    const sent = await world.waitForSent(res.body.id, 30_000);
    const history = sent.status_history.map((h) => h.status);
    expect(history.slice(0, 4)).toEqual(['accepted', 'queued', 'sending', 'sent']);
    // The timeout really happened: the message waited for its echo with the gateway's code for it.
    const raw = await world.store.db.selectFrom('messages').select('raw').where('id', '=', res.body.id).executeTakeFirstOrThrow();
    expect(JSON.parse(raw.raw ?? '{}')).toMatchObject({ lost: 1 });
    // A moment more for any second copy to show up in the thread; none does.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(pageTexts(await world.thread(customer.psid)).filter((t) => t === 'worth the wait')).toHaveLength(1);
  });
});
