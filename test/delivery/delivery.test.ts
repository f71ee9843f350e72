import { afterEach, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import { emitEvent } from '../../src/pipeline/events.js';
import type { NewEvent } from '../../src/pipeline/events.js';
import { createEndpoint } from '../../src/delivery/endpoints.js';
import { describeEachEngine } from '../support/db.js';
import { refusedUrl, startHarness, startReceiver, waitFor } from './support.js';
import type { Harness, Receiver } from './support.js';

describeEachEngine('event delivery', (engine) => {
  let h: Harness | undefined;
  const receivers: Receiver[] = [];
  afterEach(async () => {
    await h?.close();
    h = undefined;
    for (const r of receivers.splice(0)) await r.close();
  });

  async function receiver(respond?: Receiver['respond']): Promise<Receiver> {
    const r = await startReceiver(respond);
    receivers.push(r);
    return r;
  }

  function emit(harness: Harness, event: Omit<NewEvent, 'account_id'> & { account_id?: string }): Promise<string> {
    return harness.queue.transaction((trx) => emitEvent(trx, harness.queue, { account_id: harness.accountId, ...event }));
  }

  async function attemptsOf(harness: Harness, eventId: string) {
    return harness.store.db
      .selectFrom('delivery_attempts')
      .innerJoin('deliveries', 'deliveries.id', 'delivery_attempts.delivery_id')
      .select(['delivery_attempts.url', 'delivery_attempts.target', 'delivery_attempts.status_code', 'delivery_attempts.error', 'delivery_attempts.response_excerpt', 'delivery_attempts.latency_ms'])
      .where('deliveries.event_id', '=', eventId)
      .orderBy('delivery_attempts.id')
      .execute();
  }

  async function deliveryOf(harness: Harness, eventId: string) {
    return harness.store.db.selectFrom('deliveries').selectAll().where('event_id', '=', eventId).executeTakeFirstOrThrow();
  }

  it('delivers the native envelope signed per Standard Webhooks, with the event id as webhook-id', async () => {
    h = await startHarness(engine);
    const r = await receiver();
    const { endpoint, secret } = await createEndpoint(h.store.db, h.secrets, h.accountId, { url: `${r.url}/hooks` }, Date.now());
    expect(secret).toMatch(/^whsec_/);
    const eventId = await emit(h, { type: 'message.received', sender_id: 'snd_1', conversation_id: 'cnv_1', data: { message: { id: 'msg_1', text: 'hi' } } });

    await waitFor('the delivery', () => r.accepted().length === 1);
    const req = r.requests[0]!;
    expect(req.method).toBe('POST');
    expect(req.url).toBe('/hooks');
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.headers['webhook-id']).toBe(eventId);
    const verified = new Webhook(secret).verify(req.body, req.headers as Record<string, string>) as Record<string, unknown>;
    expect(verified).toMatchObject({ id: eventId, type: 'message.received', account_id: h.accountId, data: { message: { id: 'msg_1', text: 'hi' } } });
    expect(new Date(verified.created_at as string).toISOString()).toBe(verified.created_at);
    // Another secret does not verify: the signature is real.
    expect(() => new Webhook('whsec_' + Buffer.alloc(32, 1).toString('base64')).verify(req.body, req.headers as Record<string, string>)).toThrow();

    await waitFor('the delivery to be recorded', async () => (await deliveryOf(h!, eventId)).status === 'delivered');
    const delivery = await deliveryOf(h, eventId);
    expect(delivery).toMatchObject({ endpoint_id: endpoint.id, attempts: 1, last_status_code: 200, last_error: null });
    const attempts = await attemptsOf(h, eventId);
    expect(attempts).toHaveLength(1);
    expect(attempts[0]).toMatchObject({ target: 'primary', status_code: 200, response_excerpt: 'ok', error: null });
  });

  it('delivers only the event types an endpoint asked for', async () => {
    h = await startHarness(engine);
    const all = await receiver();
    const some = await receiver();
    await createEndpoint(h.store.db, h.secrets, h.accountId, { url: all.url }, Date.now());
    await createEndpoint(h.store.db, h.secrets, h.accountId, { url: some.url, events: ['postback'] }, Date.now());
    const received = await emit(h, { type: 'message.received', conversation_id: 'cnv_1', data: {} });
    const postback = await emit(h, { type: 'postback', conversation_id: 'cnv_1', data: {} });
    // The fan-out decides at emit time: one delivery for the message, two for the postback.
    const count = async (eventId: string) => (await h!.store.db.selectFrom('deliveries').select('id').where('event_id', '=', eventId).execute()).length;
    expect(await count(received)).toBe(1);
    expect(await count(postback)).toBe(2);
    await waitFor('both events at the catch-all endpoint', () => all.accepted().length === 2);
    await waitFor('the postback at the filtered endpoint', () => some.accepted().length === 1);
    expect(some.requests.map((q) => q.headers['webhook-id'])).toEqual([postback]);
    expect(all.requests.map((q) => q.headers['webhook-id'])).toEqual([received, postback]);
  });

  it('retries a refused delivery, and the attempt log shows the 500 then the 200', async () => {
    h = await startHarness(engine);
    let calls = 0;
    const r = await receiver(() => (++calls === 1 ? 500 : 200));
    const { secret } = await createEndpoint(h.store.db, h.secrets, h.accountId, { url: r.url }, Date.now());
    const eventId = await emit(h, { type: 'message.received', conversation_id: 'cnv_1', data: { n: 1 } });

    await waitFor('the retry to succeed', async () => (await deliveryOf(h!, eventId)).status === 'delivered');
    expect(r.requests.map((q) => q.status)).toEqual([500, 200]);
    // Both tries carry the same webhook-id, so the receiver can dedupe.
    expect(new Set(r.requests.map((q) => q.headers['webhook-id']))).toEqual(new Set([eventId]));
    expect(() => new Webhook(secret).verify(r.requests[1]!.body, r.requests[1]!.headers as Record<string, string>)).not.toThrow();
    const attempts = await attemptsOf(h, eventId);
    expect(attempts.map((a) => [a.target, a.status_code])).toEqual([
      ['primary', 500],
      ['primary', 200],
    ]);
    expect(attempts[0]).toMatchObject({ error: 'HTTP 500', response_excerpt: 'refused with 500' });
    expect(attempts.every((a) => typeof a.latency_ms === 'number' && a.latency_ms >= 0)).toBe(true);
    expect(await deliveryOf(h, eventId)).toMatchObject({ attempts: 2, last_status_code: 200, last_error: null });
  });

  it('uses the fallback URL in the same attempt when the primary refuses the connection', async () => {
    h = await startHarness(engine);
    const primary = await refusedUrl();
    const fallback = await receiver();
    const { secret } = await createEndpoint(h.store.db, h.secrets, h.accountId, { url: `${primary}/down`, fallback_url: `${fallback.url}/backup` }, Date.now());
    const eventId = await emit(h, { type: 'message.received', conversation_id: 'cnv_1', data: { n: 1 } });

    await waitFor('the fallback to take the event', async () => (await deliveryOf(h!, eventId)).status === 'delivered');
    expect(fallback.requests).toHaveLength(1);
    expect(fallback.requests[0]!.url).toBe('/backup');
    expect(() => new Webhook(secret).verify(fallback.requests[0]!.body, fallback.requests[0]!.headers as Record<string, string>)).not.toThrow();
    const attempts = await attemptsOf(h, eventId);
    expect(attempts.map((a) => a.target)).toEqual(['primary', 'fallback']);
    expect(attempts[0]!.status_code).toBeNull();
    expect(attempts[0]!.error).toMatch(/ECONNREFUSED/);
    expect(attempts[1]).toMatchObject({ status_code: 200, url: `${fallback.url}/backup` });
    // One attempt: primary and fallback together.
    expect((await deliveryOf(h, eventId)).attempts).toBe(1);
  });

  it("keeps each conversation's order while the endpoint is down, and delivers everything once it is back", async () => {
    h = await startHarness(engine);
    let up = false;
    const r = await receiver(() => (up ? 200 : 503));
    await createEndpoint(h.store.db, h.secrets, h.accountId, { url: r.url }, Date.now());
    const emitted: Record<string, string[]> = { cnv_a: [], cnv_b: [] };
    for (let i = 0; i < 5; i += 1) {
      for (const conversation of ['cnv_a', 'cnv_b']) {
        emitted[conversation]!.push(await emit(h, { type: 'message.received', sender_id: 'snd_1', conversation_id: conversation, data: { conversation, i } }));
      }
    }
    // Both conversations' first events are refused (and retried) before the endpoint comes back.
    await waitFor('refusals while down', () => r.requests.filter((q) => q.status === 503).length >= 4);
    up = true;
    await waitFor('every event delivered', () => r.accepted().length === 10);

    const conversationOf = (q: { body: string }) => (JSON.parse(q.body) as { data: { conversation: string } }).data.conversation;
    for (const conversation of ['cnv_a', 'cnv_b']) {
      const accepted = r.accepted().filter((q) => conversationOf(q) === conversation).map((q) => q.headers['webhook-id']);
      expect(accepted).toEqual(emitted[conversation]);
      // While an event was failing nothing later in its conversation was even tried.
      const tried = r.requests.filter((q) => conversationOf(q) === conversation).map((q) => emitted[conversation]!.indexOf(String(q.headers['webhook-id'])));
      expect(tried).toEqual([...tried].sort((a, b) => a - b));
    }
    expect(r.requests.filter((q) => q.status === 503).length).toBeGreaterThanOrEqual(4);
  });

  it('disables an endpoint that keeps failing past the limit, and says so with an endpoint.disabled event', async () => {
    // A limit of one millisecond: the second failure of a run is past it.
    h = await startHarness(engine, { disableAfterMs: 1 });
    const broken = await receiver(() => 500);
    const watcher = await receiver();
    const { endpoint } = await createEndpoint(h.store.db, h.secrets, h.accountId, { url: broken.url, events: ['message.received'] }, Date.now());
    const { secret: watcherSecret } = await createEndpoint(h.store.db, h.secrets, h.accountId, { url: watcher.url, events: ['endpoint.disabled'] }, Date.now());
    const first = await emit(h, { type: 'message.received', conversation_id: 'cnv_1', data: { n: 1 } });
    const second = await emit(h, { type: 'message.received', conversation_id: 'cnv_1', data: { n: 2 } });

    await waitFor('the endpoint.disabled event', () => watcher.accepted().length === 1);
    const notice = new Webhook(watcherSecret).verify(watcher.requests[0]!.body, watcher.requests[0]!.headers as Record<string, string>) as {
      type: string;
      data: { endpoint_id: string; url: string; reason: string; failing_since: string };
    };
    expect(notice.type).toBe('endpoint.disabled');
    expect(notice.data).toMatchObject({ endpoint_id: endpoint.id, url: broken.url });
    expect(notice.data.reason).toMatch(/every delivery failed/);
    await waitFor('the queued event to end', async () => (await deliveryOf(h!, second)).status === 'dead');

    const row = await h.store.db.selectFrom('endpoints').selectAll().where('id', '=', endpoint.id).executeTakeFirstOrThrow();
    expect(row.enabled).toBe(0);
    expect(row.disabled_reason).toMatch(/every delivery failed/);
    expect(row.failing_since).not.toBeNull();
    // The failing event ends dead, and the one queued behind it ends without another request.
    expect(await deliveryOf(h, first)).toMatchObject({ status: 'dead', attempts: 2 });
    expect(await deliveryOf(h, second)).toMatchObject({ status: 'dead', attempts: 0, last_error: 'the endpoint is disabled' });
    expect(broken.requests).toHaveLength(2);
    const stored = await h.store.db.selectFrom('events').selectAll().where('type', '=', 'endpoint.disabled').execute();
    expect(stored).toHaveLength(1);
    // A disabled endpoint gets no new deliveries.
    const third = await emit(h, { type: 'message.received', conversation_id: 'cnv_1', data: { n: 3 } });
    expect(await h.store.db.selectFrom('deliveries').select('id').where('event_id', '=', third).execute()).toHaveLength(0);
    expect(broken.requests).toHaveLength(2);
  });

  it('gives up after the last try of the schedule and marks the delivery dead', async () => {
    h = await startHarness(engine, { schedule: { delaysMs: [10], jitter: 0, maxAttempts: 3 } });
    const r = await receiver(() => 502);
    await createEndpoint(h.store.db, h.secrets, h.accountId, { url: r.url }, Date.now());
    const first = await emit(h, { type: 'message.received', conversation_id: 'cnv_1', data: { n: 1 } });
    await waitFor('the delivery to die', async () => (await deliveryOf(h!, first)).status === 'dead');
    expect(await deliveryOf(h, first)).toMatchObject({ attempts: 3, last_status_code: 502, next_attempt_at: null });
    expect(r.requests).toHaveLength(3);
    // The conversation moves on: the next event is tried after the dead one.
    r.respond = () => 200;
    const next = await emit(h, { type: 'message.received', conversation_id: 'cnv_1', data: { n: 2 } });
    await waitFor('the next event', async () => (await deliveryOf(h!, next)).status === 'delivered');
  });

  it('records the next attempt time of a failed delivery from the schedule', async () => {
    h = await startHarness(engine, { schedule: { delaysMs: [3_600_000], jitter: 0, maxAttempts: 5 } });
    const r = await receiver(() => 500);
    await createEndpoint(h.store.db, h.secrets, h.accountId, { url: r.url }, Date.now());
    const before = Date.now();
    const eventId = await emit(h, { type: 'message.received', data: {} });
    const jobOf = () => h!.store.db.selectFrom('jobs').selectAll().where('kind', '=', 'deliver').executeTakeFirstOrThrow();
    await waitFor('the first failure to be rescheduled', async () => (await deliveryOf(h!, eventId)).status === 'failed' && (await jobOf()).state === 'pending');
    const d = await deliveryOf(h, eventId);
    expect(d.next_attempt_at).toBeGreaterThanOrEqual(before + 3_600_000);
    expect((await jobOf()).run_at).toBe(d.next_attempt_at);
    expect(r.requests).toHaveLength(1);
  });

  it('sends GET endpoints the envelope as query parameters signed over the query string', async () => {
    h = await startHarness(engine);
    const r = await receiver();
    const { secret } = await createEndpoint(h.store.db, h.secrets, h.accountId, { url: `${r.url}/get?token=abc`, method: 'GET' }, Date.now());
    const eventId = await emit(h, { type: 'postback', conversation_id: 'cnv_1', data: { postback: { payload: 'A&B=C' } } });
    await waitFor('the GET', () => r.accepted().length === 1);
    const req = r.requests[0]!;
    expect(req.method).toBe('GET');
    const url = new URL(req.url, r.url);
    expect(url.pathname).toBe('/get');
    expect(url.searchParams.get('token')).toBe('abc');
    expect(url.searchParams.get('id')).toBe(eventId);
    expect(url.searchParams.get('type')).toBe('postback');
    expect(url.searchParams.get('account_id')).toBe(h.accountId);
    expect(JSON.parse(url.searchParams.get('data')!)).toEqual({ postback: { payload: 'A&B=C' } });
    const rawQuery = req.url.slice(req.url.indexOf('?') + 1);
    expect(() => new Webhook(secret).verify(rawQuery, req.headers as Record<string, string>, { jsonParse: false })).not.toThrow();
  });
});
