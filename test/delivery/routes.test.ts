import { afterEach, expect, it } from 'vitest';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import swagger from '@fastify/swagger';
import { Webhook } from 'standardwebhooks';
import { installErrorHandling } from '../../src/http/errors.js';
import { ErrorSchema } from '../../src/dialects/native/schemas.js';
import { endpointRoutes } from '../../src/dialects/native/endpoints.js';
import { eventRoutes } from '../../src/dialects/native/events.js';
import { emitEvent, syncSenderEndpoints } from '../../src/pipeline/events.js';
import type { NewEvent } from '../../src/pipeline/events.js';
import { UrlGuard } from '../../src/net/url-guard.js';
import { describeEachEngine } from '../support/db.js';
import { startHarness, startReceiver, waitFor } from './support.js';
import type { Harness, Receiver } from './support.js';

interface Json {
  [key: string]: unknown;
}

describeEachEngine('endpoint and event routes', (engine) => {
  let h: Harness | undefined;
  let app: FastifyInstance | undefined;
  const receivers: Receiver[] = [];
  afterEach(async () => {
    await app?.close();
    app = undefined;
    await h?.close();
    h = undefined;
    for (const r of receivers.splice(0)) await r.close();
  });

  async function receiver(respond?: Receiver['respond']): Promise<Receiver> {
    const r = await startReceiver(respond);
    receivers.push(r);
    return r;
  }

  /** The plugins on a bare Fastify, behind a test hook that sets the account from a header. */
  async function setup(opts: { urlGuard?: UrlGuard; disableAfterMs?: number } = {}): Promise<{ harness: Harness; api: FastifyInstance }> {
    const harness = await startHarness(engine, opts.disableAfterMs !== undefined ? { disableAfterMs: opts.disableAfterMs } : {});
    const deps = { store: harness.store, queue: harness.queue, secrets: harness.secrets, urlGuard: opts.urlGuard ?? harness.urlGuard, now: Date.now };
    const api = Fastify().withTypeProvider<TypeBoxTypeProvider>();
    installErrorHandling(api);
    api.addSchema(ErrorSchema);
    await api.register(swagger, { openapi: { openapi: '3.1.0', info: { title: 'test', version: '0' } } });
    await api.register(
      async (v1) => {
        v1.addHook('onRequest', async (req) => {
          const id = String(req.headers['x-test-account'] ?? harness.accountId);
          req.account = { id, parent_id: null, name: 'test', status: 'active', key_account_id: id, key_id: 'key_test' };
        });
        await v1.register(endpointRoutes(deps));
        await v1.register(eventRoutes(deps));
      },
      { prefix: '/v1' },
    );
    await api.ready();
    h = harness;
    app = api;
    return { harness, api };
  }

  async function call(api: FastifyInstance, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, body?: unknown, account?: string) {
    const res = await api.inject({ method, url, ...(body !== undefined ? { payload: body as Json } : {}), headers: account ? { 'x-test-account': account } : {} });
    return { status: res.statusCode, body: (res.body ? JSON.parse(res.body) : null) as Json };
  }

  function emit(harness: Harness, event: Omit<NewEvent, 'account_id'>): Promise<string> {
    return harness.queue.transaction((trx) => emitEvent(trx, harness.queue, { account_id: harness.accountId, ...event }));
  }

  it('create an endpoint with a secret shown once, list it with a cursor, and read it', async () => {
    const { api } = await setup();
    const r = await receiver();
    const created = await call(api, 'POST', '/v1/endpoints', { url: `${r.url}/a`, events: ['message.received', 'postback'], description: 'CRM', fallback_url: `${r.url}/b` });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ url: `${r.url}/a`, events: ['message.received', 'postback'], fallback_url: `${r.url}/b`, method: 'POST', format: 'native', enabled: true, role: 'account', uses_account_secret: false, description: 'CRM' });
    expect(created.body.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const second = await call(api, 'POST', '/v1/endpoints', { url: `${r.url}/c` });
    expect(second.body.events).toBeNull();

    const got = await call(api, 'GET', `/v1/endpoints/${String(created.body.id)}`);
    expect(got.status).toBe(200);
    expect(got.body.secret).toBeUndefined();
    expect(got.body.id).toBe(created.body.id);

    const page1 = await call(api, 'GET', '/v1/endpoints?limit=1');
    expect((page1.body.data as Json[]).map((e) => e.id)).toEqual([created.body.id]);
    expect(page1.body.next_cursor).toBe(created.body.id);
    const page2 = await call(api, 'GET', `/v1/endpoints?limit=1&after=${String(page1.body.next_cursor)}`);
    expect((page2.body.data as Json[]).map((e) => e.id)).toEqual([second.body.id]);
    expect(page2.body.next_cursor).toBeNull();
    expect((page2.body.data as Json[])[0]!.secret).toBeUndefined();
  });

  it('refuse URLs the guard refuses, and bad bodies, with stable codes', async () => {
    const { api } = await setup({ urlGuard: new UrlGuard({ allowPrivate: false }) });
    const loopback = await call(api, 'POST', '/v1/endpoints', { url: 'http://127.0.0.1:9/hook' });
    expect(loopback.status).toBe(422);
    expect(loopback.body.error).toMatchObject({ code: 'URL_NOT_ALLOWED', details: { field: 'body.url' } });
    const metadata = await call(api, 'POST', '/v1/endpoints', { url: 'https://93.184.216.34/hook', fallback_url: 'http://169.254.169.254/' });
    expect(metadata.status).toBe(422);
    expect(metadata.body.error).toMatchObject({ code: 'URL_NOT_ALLOWED', details: { field: 'body.fallback_url' } });

    for (const body of [{}, { url: 'https://93.184.216.34/', events: ['nope'] }, { url: 'https://93.184.216.34/', method: 'PUT' }, { url: 'https://93.184.216.34/', format: 'smoke-signals' }]) {
      const res = await call(api, 'POST', '/v1/endpoints', body);
      expect(res.status).toBe(400);
      expect((res.body.error as Json).code).toBe('VALIDATION_FAILED');
    }
    const bad = await api.inject({ method: 'POST', url: '/v1/endpoints', payload: '{not json', headers: { 'content-type': 'application/json' } });
    expect(bad.statusCode).toBe(400);
    expect(await h!.store.db.selectFrom('endpoints').select('id').execute()).toHaveLength(0);
  });

  it("answer 404 for another account's endpoints and events, on every route", async () => {
    const { harness, api } = await setup();
    const r = await receiver();
    const other = await harness.account('Other');
    const mine = await call(api, 'POST', '/v1/endpoints', { url: r.url });
    const eventId = await emit(harness, { type: 'message.received', conversation_id: 'cnv_1', data: { secret: 'mine' } });
    await waitFor('the delivery', () => r.accepted().length === 1);
    const id = String(mine.body.id);
    const since = new Date(Date.now() - 60_000).toISOString();
    const attempts = [
      await call(api, 'GET', `/v1/endpoints/${id}`, undefined, other),
      await call(api, 'PATCH', `/v1/endpoints/${id}`, { description: 'x' }, other),
      await call(api, 'DELETE', `/v1/endpoints/${id}`, undefined, other),
      await call(api, 'POST', `/v1/endpoints/${id}/rotate-secret`, undefined, other),
      await call(api, 'POST', `/v1/endpoints/${id}/enable`, undefined, other),
      await call(api, 'POST', `/v1/endpoints/${id}/replay`, { since }, other),
      await call(api, 'GET', `/v1/events/${eventId}`, undefined, other),
      await call(api, 'POST', `/v1/events/${eventId}/redeliver`, undefined, other),
    ];
    for (const res of attempts) {
      expect(res.status).toBe(404);
      expect((res.body.error as Json).code).toBe('NOT_FOUND');
    }
    expect((await call(api, 'GET', '/v1/endpoints', undefined, other)).body.data).toEqual([]);
    expect((await call(api, 'GET', '/v1/events', undefined, other)).body.data).toEqual([]);
    // Naming another account's endpoint when redelivering one's own event is a 404 too.
    const theirs = await call(api, 'POST', '/v1/endpoints', { url: r.url }, other);
    const cross = await call(api, 'POST', `/v1/events/${eventId}/redeliver?endpoint_id=${String(theirs.body.id)}`);
    expect(cross.status).toBe(404);
    expect(r.requests).toHaveLength(1);
  });

  it('change, delete and enable an endpoint', async () => {
    const { harness, api } = await setup();
    const r = await receiver();
    const created = await call(api, 'POST', '/v1/endpoints', { url: `${r.url}/old` });
    const id = String(created.body.id);
    await call(api, 'PATCH', `/v1/endpoints/${id}`, { description: 'CRM', fallback_url: `${r.url}/fb` });
    const patched = await call(api, 'PATCH', `/v1/endpoints/${id}`, { url: `${r.url}/new`, events: ['postback'], method: 'GET', description: null, fallback_url: null });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ url: `${r.url}/new`, events: ['postback'], method: 'GET', description: null, fallback_url: null });

    await harness.store.db.updateTable('endpoints').set({ enabled: 0, disabled_at: Date.now(), disabled_reason: 'test', failing_since: Date.now() - 1000 }).where('id', '=', id).execute();
    expect((await call(api, 'GET', `/v1/endpoints/${id}`)).body).toMatchObject({ enabled: false, disabled_reason: 'test' });
    const enabled = await call(api, 'POST', `/v1/endpoints/${id}/enable`);
    expect(enabled.body).toMatchObject({ enabled: true, disabled_at: null, disabled_reason: null, failing_since: null });

    const deleted = await call(api, 'DELETE', `/v1/endpoints/${id}`);
    expect(deleted.status).toBe(204);
    expect((await call(api, 'GET', `/v1/endpoints/${id}`)).status).toBe(404);
    expect((await call(api, 'GET', '/v1/endpoints')).body.data).toEqual([]);
    await emit(harness, { type: 'postback', data: {} });
    expect(await harness.store.db.selectFrom('deliveries').select('id').execute()).toHaveLength(0);
  });

  it('rotate a secret: the new one signs, and the old one keeps signing during the grace period', async () => {
    const { harness, api } = await setup();
    const r = await receiver();
    const created = await call(api, 'POST', '/v1/endpoints', { url: r.url });
    const rotated = await call(api, 'POST', `/v1/endpoints/${String(created.body.id)}/rotate-secret`);
    expect(rotated.status).toBe(200);
    expect(rotated.body.secret).toMatch(/^whsec_/);
    expect(rotated.body.secret).not.toBe(created.body.secret);
    expect(Date.parse(String(rotated.body.previous_secret_valid_until))).toBeGreaterThan(Date.now() + 23 * 3_600_000);
    await emit(harness, { type: 'message.received', data: { n: 1 } });
    await waitFor('the delivery', () => r.accepted().length === 1);
    const req = r.requests[0]!;
    expect(String(req.headers['webhook-signature']).split(' ')).toHaveLength(2);
    for (const secret of [rotated.body.secret, created.body.secret]) {
      expect(() => new Webhook(String(secret)).verify(req.body, req.headers as Record<string, string>)).not.toThrow();
    }
  });

  it('list events by type and time, and show one with its deliveries and every attempt', async () => {
    const { harness, api } = await setup();
    let calls = 0;
    const r = await receiver(() => (++calls === 1 ? 503 : 200));
    const ep = await call(api, 'POST', '/v1/endpoints', { url: r.url });
    const before = new Date(Date.now() - 1000).toISOString();
    const first = await emit(harness, { type: 'message.received', sender_id: 'snd_1', conversation_id: 'cnv_1', message_id: 'msg_1', data: { text: 'hello' } });
    const second = await emit(harness, { type: 'postback', sender_id: 'snd_1', conversation_id: 'cnv_1', data: { payload: 'P' } });
    await waitFor('both delivered', () => r.accepted().length === 2);

    const all = await call(api, 'GET', `/v1/events?since=${encodeURIComponent(before)}`);
    expect((all.body.data as Json[]).map((e) => e.id)).toEqual([first, second]);
    const postbacks = await call(api, 'GET', '/v1/events?type=postback');
    expect((postbacks.body.data as Json[]).map((e) => e.id)).toEqual([second]);
    const future = await call(api, 'GET', `/v1/events?since=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`);
    expect(future.body.data).toEqual([]);
    expect((await call(api, 'GET', '/v1/events?type=bogus')).status).toBe(400);
    expect((await call(api, 'GET', '/v1/events?since=yesterday')).status).toBe(400);

    await waitFor('the first delivery recorded', async () => {
      const res = await call(api, 'GET', `/v1/events/${first}`);
      return ((res.body.deliveries as Json[])[0]?.status ?? '') === 'delivered';
    });
    const shown = await call(api, 'GET', `/v1/events/${first}`);
    expect(shown.body).toMatchObject({ id: first, type: 'message.received', sender_id: 'snd_1', conversation_id: 'cnv_1', message_id: 'msg_1', data: { text: 'hello' } });
    const deliveries = shown.body.deliveries as Json[];
    expect(deliveries).toHaveLength(1);
    expect(deliveries[0]).toMatchObject({ endpoint_id: ep.body.id, status: 'delivered', attempts: 2, last_status_code: 200, url: null, next_attempt_at: null });
    const log = deliveries[0]!.attempt_log as Json[];
    expect(log.map((a) => [a.target, a.status_code])).toEqual([
      ['primary', 503],
      ['primary', 200],
    ]);
    expect(log[0]).toMatchObject({ error: 'HTTP 503', response_excerpt: 'refused with 503' });
  });

  it('redeliver an event: the receiver gets it again with the same webhook-id', async () => {
    const { harness, api } = await setup();
    const r = await receiver();
    const ep = await call(api, 'POST', '/v1/endpoints', { url: r.url });
    const eventId = await emit(harness, { type: 'message.received', conversation_id: 'cnv_1', data: { n: 1 } });
    await waitFor('the first delivery', () => r.accepted().length === 1);
    const again = await call(api, 'POST', `/v1/events/${eventId}/redeliver`);
    expect(again.status).toBe(202);
    expect(again.body.delivery_ids as string[]).toHaveLength(1);
    await waitFor('the redelivery', () => r.accepted().length === 2);
    const named = await call(api, 'POST', `/v1/events/${eventId}/redeliver?endpoint_id=${String(ep.body.id)}`);
    expect(named.status).toBe(202);
    await waitFor('the named redelivery', () => r.accepted().length === 3);
    expect(r.requests.map((q) => q.headers['webhook-id'])).toEqual([eventId, eventId, eventId]);
    const shown = await call(api, 'GET', `/v1/events/${eventId}`);
    expect(shown.body.deliveries as Json[]).toHaveLength(3);
    // A disabled endpoint must be enabled before it is named.
    await harness.store.db.updateTable('endpoints').set({ enabled: 0 }).where('id', '=', String(ep.body.id)).execute();
    const refused = await call(api, 'POST', `/v1/events/${eventId}/redeliver?endpoint_id=${String(ep.body.id)}`);
    expect(refused.status).toBe(409);
    expect((refused.body.error as Json).code).toBe('CONFLICT');
  });

  it('replay the events an endpoint missed while it was disabled, in order', async () => {
    const { harness, api } = await setup();
    const r = await receiver();
    const ep = await call(api, 'POST', '/v1/endpoints', { url: r.url, events: ['message.received'] });
    const id = String(ep.body.id);
    const since = new Date(Date.now() - 1000).toISOString();
    const delivered = await emit(harness, { type: 'message.received', conversation_id: 'cnv_1', data: { n: 0 } });
    await waitFor('the first delivery', () => r.accepted().length === 1);
    await waitFor('it to be recorded', async () => (await harness.store.db.selectFrom('deliveries').select('status').where('event_id', '=', delivered).executeTakeFirstOrThrow()).status === 'delivered');
    await harness.store.db.updateTable('endpoints').set({ enabled: 0 }).where('id', '=', id).execute();
    const missed = [];
    for (let n = 1; n <= 3; n += 1) missed.push(await emit(harness, { type: 'message.received', conversation_id: 'cnv_1', data: { n } }));
    await emit(harness, { type: 'postback', conversation_id: 'cnv_1', data: {} });

    const whileDisabled = await call(api, 'POST', `/v1/endpoints/${id}/replay`, { since });
    expect(whileDisabled.status).toBe(409);
    await call(api, 'POST', `/v1/endpoints/${id}/enable`);
    const onlyFailed = await call(api, 'POST', `/v1/endpoints/${id}/replay`, { since, only_failed: true });
    expect(onlyFailed.status).toBe(202);
    expect(onlyFailed.body).toEqual({ replayed: 3, next_after: null });
    await waitFor('the missed events', () => r.accepted().length === 4);
    expect(r.requests.map((q) => q.headers['webhook-id'])).toEqual([delivered, ...missed]);

    const everything = await call(api, 'POST', `/v1/endpoints/${id}/replay`, { since });
    expect(everything.body).toEqual({ replayed: 4, next_after: null });
    await waitFor('the full replay', () => r.accepted().length === 8);
    expect(r.requests.slice(4).map((q) => q.headers['webhook-id'])).toEqual([delivered, ...missed]);
    const empty = await call(api, 'POST', `/v1/endpoints/${id}/replay`, { since: new Date(Date.now() + 60_000).toISOString() });
    expect(empty.status).toBe(400);
  });

  it("sign sender callbacks and per-message callbacks with the account's signing secret", async () => {
    const { harness, api } = await setup();
    const inbound = await receiver();
    const status = await receiver();
    const callback = await receiver();
    const sender = {
      id: 'snd_cb',
      account_id: harness.accountId,
      health: 'active',
      inbound_url: `${inbound.url}/in`,
      inbound_method: 'POST',
      fallback_url: null,
      fallback_method: 'POST',
      status_url: `${status.url}/st`,
      status_method: 'POST',
      format: 'native',
    };
    await harness.queue.transaction((trx) => syncSenderEndpoints(trx, harness.secrets, sender));
    const listed = await call(api, 'GET', '/v1/endpoints?sender_id=snd_cb');
    expect((listed.body.data as Json[]).map((e) => [e.role, e.url, e.uses_account_secret])).toEqual([
      ['inbound', `${inbound.url}/in`, true],
      ['status', `${status.url}/st`, true],
    ]);
    const patch = await call(api, 'PATCH', `/v1/endpoints/${String((listed.body.data as Json[])[0]!.id)}`, { description: 'x' });
    expect(patch.status).toBe(409);
    const signing = await call(api, 'GET', '/v1/endpoints/signing-secret');
    expect(signing.body.secret).toMatch(/^whsec_/);
    const secret = String(signing.body.secret);

    const received = await emit(harness, { type: 'message.received', sender_id: 'snd_cb', conversation_id: 'cnv_1', data: { text: 'hi' } });
    const statusEvent = await emit(harness, { type: 'message.status', sender_id: 'snd_cb', conversation_id: 'cnv_1', data: { status: 'sent' }, callback_url: `${callback.url}/cb?m=1` });
    // Another sender's events do not reach this sender's URLs.
    await emit(harness, { type: 'message.received', sender_id: 'snd_other', conversation_id: 'cnv_2', data: {} });
    await waitFor('inbound, status and callback deliveries', () => inbound.accepted().length === 1 && status.accepted().length === 1 && callback.accepted().length === 1);
    for (const [r, id] of [[inbound, received], [status, statusEvent], [callback, statusEvent]] as const) {
      const req = r.requests[0]!;
      expect(req.headers['webhook-id']).toBe(id);
      expect(() => new Webhook(secret).verify(req.body, req.headers as Record<string, string>)).not.toThrow();
    }
    expect(callback.requests[0]!.url).toBe('/cb?m=1');

    // Clearing the inbound URL removes its endpoint; the status endpoint stays.
    await harness.queue.transaction((trx) => syncSenderEndpoints(trx, harness.secrets, { ...sender, inbound_url: null }));
    const after = await call(api, 'GET', '/v1/endpoints?sender_id=snd_cb');
    expect((after.body.data as Json[]).map((e) => e.role)).toEqual(['status']);
    // Disconnecting removes both.
    await harness.queue.transaction((trx) => syncSenderEndpoints(trx, harness.secrets, { ...sender, health: 'disconnected' }));
    expect((await call(api, 'GET', '/v1/endpoints?sender_id=snd_cb')).body.data).toEqual([]);

    const rotated = await call(api, 'POST', '/v1/endpoints/signing-secret/rotate');
    expect(rotated.body.secret).not.toBe(secret);
    expect((await call(api, 'GET', '/v1/endpoints/signing-secret')).body.secret).toBe(rotated.body.secret);
  });

  it('describe every route in the OpenAPI document', async () => {
    const { api } = await setup();
    const doc = api.swagger() as { paths: Record<string, Record<string, unknown>> };
    expect(Object.keys(doc.paths).sort()).toEqual(
      [
        '/v1/endpoints',
        '/v1/endpoints/signing-secret',
        '/v1/endpoints/signing-secret/rotate',
        '/v1/endpoints/{id}',
        '/v1/endpoints/{id}/enable',
        '/v1/endpoints/{id}/replay',
        '/v1/endpoints/{id}/rotate-secret',
        '/v1/events',
        '/v1/events/{id}',
        '/v1/events/{id}/redeliver',
      ].sort(),
    );
    expect(Object.keys(doc.paths['/v1/endpoints/{id}']!).sort()).toEqual(['delete', 'get', 'patch']);
  });
});
