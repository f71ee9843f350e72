import { request as httpRequest } from 'node:http';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { installErrorHandling } from '../../../src/http/errors.js';
import { JobRunner } from '../../../src/jobs/runner.js';
import { signBody } from '../../../src/meta/signature.js';
import { inboundJobHandlers } from '../../../src/pipeline/inbound.js';
import { MetaIngress, ingressServerFactory, registerIngress } from '../../../src/pipeline/ingress.js';
import { describeEachEngine } from '../../support/db.js';
import { fixture, openHarness, pageEnvelope, textItem } from './support.js';
import type { Harness } from './support.js';

const APP_SECRET = 'app-secret-for-ingress';
const VERIFY_TOKEN = 'verify-me';
const PAGE = '1691462197845448';
const PSID = '1134343043305865';

interface Answer {
  statusCode: number;
  body: string;
  json(): unknown;
}

interface Call {
  method: 'GET' | 'POST';
  url: string;
  payload?: string | Record<string, unknown>;
  headers?: Record<string, string>;
}

/**
 * Each test runs twice: through `app.inject()` (Fastify's route) and over a real socket, where the
 * server's request listener takes ordinary webhook POSTs before Fastify (`ingressServerFactory`).
 */
const TRANSPORTS = ['inject', 'socket'] as const;
type Transport = (typeof TRANSPORTS)[number];

describeEachEngine('Meta ingress', (engine) => {
  describe.each(TRANSPORTS)('over %s', (transport: Transport) => {
    let h: Harness | undefined;
    let app: FastifyInstance | undefined;
    let base = '';
    // Requests that reached Fastify (its onRequest hook), by method.
    let reachedFastify: Record<string, number> = {};
    afterEach(async () => {
      await app?.close();
      await h?.close();
      app = undefined;
      h = undefined;
    });

    async function start(): Promise<{ h: Harness; app: FastifyInstance }> {
      h = await openHarness(engine, { metaId: PAGE });
      const ingress = new MetaIngress({ ctx: h.ctx, appSecret: APP_SECRET, verifyToken: VERIFY_TOKEN });
      app = Fastify({ serverFactory: ingressServerFactory(ingress) });
      installErrorHandling(app);
      reachedFastify = {};
      app.addHook('onRequest', async (req) => {
        reachedFastify[req.method] = (reachedFastify[req.method] ?? 0) + 1;
      });
      await registerIngress(app, ingress);
      // The rest of the app keeps its JSON parsing.
      app.post('/echo-json', async (req) => ({ got: req.body }));
      if (transport === 'socket') base = await app.listen({ port: 0, host: '127.0.0.1' });
      else await app.ready();
      return { h, app };
    }

    async function call(a: FastifyInstance, c: Call): Promise<Answer> {
      if (transport === 'inject') return a.inject({ method: c.method, url: c.url, payload: c.payload, headers: c.headers });
      const json = typeof c.payload === 'object' ? JSON.stringify(c.payload) : undefined;
      const res = await request(base + c.url, {
        method: c.method,
        body: json ?? (c.payload as string | undefined),
        headers: { ...(json === undefined ? {} : { 'content-type': 'application/json' }), ...c.headers },
      });
      const body = await res.body.text();
      return { statusCode: res.statusCode, body, json: () => JSON.parse(body) as unknown };
    }

    function post(a: FastifyInstance, body: string, signature?: string | null, headers: Record<string, string> = {}) {
      const sig = signature === undefined ? signBody(body, APP_SECRET) : signature;
      return call(a, {
        method: 'POST',
        url: '/webhooks/meta',
        payload: body,
        headers: { 'content-type': 'application/json', ...(sig === null ? {} : { 'x-hub-signature-256': sig }), ...headers },
      });
    }

    async function counts(s: Harness): Promise<{ batches: number; jobs: number }> {
      const batches = await s.store.db.selectFrom('inbound_batches').select(sql<number>`count(*)`.as('n')).executeTakeFirstOrThrow();
      const jobs = await s.store.db.selectFrom('jobs').select(sql<number>`count(*)`.as('n')).where('kind', '=', 'inbound.batch').executeTakeFirstOrThrow();
      return { batches: Number(batches.n), jobs: Number(jobs.n) };
    }

    it('answer the verification handshake with the challenge only for the right token', async () => {
      const { app: a } = await start();
      const good = await call(a, { method: 'GET', url: '/webhooks/meta?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444' });
      expect(good.statusCode).toBe(200);
      expect(good.body).toBe('1158201444');
      const wrong = await call(a, { method: 'GET', url: '/webhooks/meta?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1158201444' });
      expect(wrong.statusCode).toBe(403);
      expect(wrong.json()).toMatchObject({ error: { code: 'WEBHOOK_VERIFY_TOKEN_MISMATCH' } });
      const mode = await call(a, { method: 'GET', url: '/webhooks/meta?hub.mode=unsubscribe&hub.verify_token=verify-me&hub.challenge=1' });
      expect(mode.statusCode).toBe(403);
      const none = await call(a, { method: 'GET', url: '/webhooks/meta' });
      expect(none.statusCode).toBe(403);
    });

    it('store a signed batch with its job and answer 200', async () => {
      const { h: s, app: a } = await start();
      const body = fixture('01_page_text_message.json');
      const res = await post(a, body);
      expect(res.statusCode).toBe(200);
      expect(res.body).toBe('EVENT_RECEIVED');
      const batch = await s.store.db.selectFrom('inbound_batches').selectAll().executeTakeFirstOrThrow();
      expect(batch.body).toBe(body);
      expect(batch.processed_at).toBeNull();
      const job = await s.store.db.selectFrom('jobs').selectAll().where('kind', '=', 'inbound.batch').executeTakeFirstOrThrow();
      expect(JSON.parse(job.payload)).toEqual({ batch_ids: [batch.id] });
    });

    it('refuse a forged, a missing and a sha1-only signature and store nothing', async () => {
      const { h: s, app: a } = await start();
      const body = fixture('01_page_text_message.json');
      const forged = await post(a, body, signBody(body, 'another-secret'));
      expect(forged.statusCode).toBe(401);
      expect(forged.json()).toMatchObject({ error: { code: 'WEBHOOK_SIGNATURE_INVALID' } });
      expect((await post(a, body, null)).statusCode).toBe(401);
      expect((await post(a, body, 'sha256=abc')).statusCode).toBe(401);
      expect((await post(a, body, null, { 'x-hub-signature': signBody(body, 'another-secret', 'sha1') })).statusCode).toBe(401);
      // A body changed after signing (re-serialised) no longer matches.
      expect((await post(a, JSON.stringify(JSON.parse(body)), signBody(body, APP_SECRET))).statusCode).toBe(401);
      expect(await counts(s)).toEqual({ batches: 0, jobs: 0 });
      // The older sha1 header is not enough on its own, even when right.
      expect((await post(a, body, null, { 'x-hub-signature': signBody(body, APP_SECRET, 'sha1') })).statusCode).toBe(401);
      expect(await counts(s)).toEqual({ batches: 0, jobs: 0 });
    });

    it('check the signature on the exact bytes, escapes and all, and keep them as received', async () => {
      const { h: s, app: a } = await start();
      const body = '{"object":"page","entry":[{"id":"1691462197845448","time":1,"messaging":[{"sender":{"id":"1134343043305865"},"recipient":{"id":"1691462197845448"},"timestamp":1768478400000,"message":{"mid":"m_esc","text":"caf\\u00e9 \\/ ok"}}]}]}';
      const res = await post(a, body);
      expect(res.statusCode).toBe(200);
      const batch = await s.store.db.selectFrom('inbound_batches').selectAll().executeTakeFirstOrThrow();
      expect(batch.body).toBe(body);
    });

    it('acknowledge and keep a malformed body and a body without a content type', async () => {
      const { h: s, app: a } = await start();
      expect((await post(a, '{"object":"page","entry":[')).statusCode).toBe(200);
      const noType = '{"object":"page","entry":[]}';
      const res = await call(a, { method: 'POST', url: '/webhooks/meta', payload: noType, headers: { 'x-hub-signature-256': signBody(noType, APP_SECRET) } });
      expect(res.statusCode).toBe(200);
      expect(await counts(s)).toEqual({ batches: 2, jobs: 2 });
    });

    it('store every one of many concurrent requests exactly once, each named by one job', async () => {
      const { h: s, app: a } = await start();
      const bodies = Array.from({ length: 60 }, (_, i) => JSON.stringify(pageEnvelope(PAGE, [textItem(PAGE, PSID, `m_${i}`, `n${i}`, 1_768_478_400_000 + i)])));
      const replies = await Promise.all(bodies.map((b) => post(a, b)));
      expect(replies.map((r) => r.statusCode)).toEqual(bodies.map(() => 200));
      const batches = await s.store.db.selectFrom('inbound_batches').select(['id', 'body']).execute();
      expect(batches.map((b) => b.body).sort()).toEqual([...bodies].sort());
      const jobs = await s.store.db.selectFrom('jobs').select('payload').where('kind', '=', 'inbound.batch').execute();
      const named = jobs.flatMap((j) => (JSON.parse(j.payload) as { batch_ids: number[] }).batch_ids);
      expect(named.sort((x, y) => x - y)).toEqual(batches.map((b) => b.id).sort((x, y) => x - y));
      // Requests that arrived together share a job.
      expect(jobs.length).toBeLessThan(bodies.length);
    });

    it('answer 500 when the write fails, so Meta retries, and 200 once it works again', async () => {
      const { h: s, app: a } = await start();
      if (s.store.engine === 'sqlite') {
        await sql.raw("create trigger refuse_batches before insert on inbound_batches begin select raise(abort, 'disk full'); end").execute(s.store.db);
      } else {
        await sql.raw("create function refuse_batches() returns trigger language plpgsql as $$ begin raise exception 'disk full'; end $$").execute(s.store.db);
        await sql.raw('create trigger refuse_batches before insert on inbound_batches for each row execute function refuse_batches()').execute(s.store.db);
      }
      const body = fixture('01_page_text_message.json');
      const failed = await post(a, body);
      expect(failed.statusCode).toBe(500);
      expect(failed.json()).toMatchObject({ error: { code: 'INTERNAL' } });
      expect(await counts(s)).toEqual({ batches: 0, jobs: 0 });
      await sql.raw(s.store.engine === 'sqlite' ? 'drop trigger refuse_batches' : 'drop trigger refuse_batches on inbound_batches').execute(s.store.db);
      expect((await post(a, body)).statusCode).toBe(200);
      expect(await counts(s)).toEqual({ batches: 1, jobs: 1 });
    });

    it('carry a signed POST through the job runner to a stored message', async () => {
      const { h: s, app: a } = await start();
      const runner = new JobRunner({ store: s.store, queue: s.ctx.queue, handlers: inboundJobHandlers(s.ctx), concurrency: 4, pollIntervalMs: 50 });
      await runner.start();
      try {
        const body = JSON.stringify(pageEnvelope(PAGE, [textItem(PAGE, PSID, 'm_e2e', 'through the runner', 1_768_478_400_000)]));
        expect((await post(a, body)).statusCode).toBe(200);
        await runner.drain();
        const message = await s.store.db.selectFrom('messages').selectAll().where('mid', '=', 'm_e2e').executeTakeFirst();
        expect(message).toMatchObject({ kind: 'text', direction: 'inbound' });
        const batch = await s.store.db.selectFrom('inbound_batches').selectAll().executeTakeFirstOrThrow();
        expect(batch).toMatchObject({ error: null, processed_at: expect.any(Number) });
      } finally {
        await runner.stop();
      }
    });

    it('leave the connection as durable as it was for every other transaction', async () => {
      const { h: s, app: a } = await start();
      const before = s.store.sqlite?.pragma('synchronous', { simple: true });
      expect((await post(a, fixture('01_page_text_message.json'))).statusCode).toBe(200);
      expect(s.store.sqlite?.pragma('synchronous', { simple: true })).toBe(before);
    });

    /** A raw HTTP/1.1 request: the body sent in the given pieces, chunked when no length is declared. */
    function rawPost(pieces: string[], headers: Record<string, string | number>, cut = false): Promise<Answer | 'cut'> {
      const url = new URL(base);
      return new Promise((resolve, reject) => {
        const req = httpRequest({ host: url.hostname, port: url.port, method: 'POST', path: '/webhooks/meta', headers }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d));
          res.on('end', () => resolve({ statusCode: res.statusCode ?? 0, body, json: () => JSON.parse(body) as unknown }));
        });
        req.on('error', (err) => (cut ? resolve('cut') : reject(err)));
        for (const piece of pieces) req.write(piece);
        if (cut) setTimeout(() => req.destroy(), 50);
        else req.end();
      });
    }

    it('take ordinary deliveries before Fastify over a socket and leave chunked ones to its route', async () => {
      const { h: s, app: a } = await start();
      const body = fixture('01_page_text_message.json');
      expect((await post(a, body)).statusCode).toBe(200);
      expect(reachedFastify['POST'] ?? 0).toBe(transport === 'socket' ? 0 : 1);
      if (transport === 'inject') return;
      const queried = await call(a, { method: 'POST', url: '/webhooks/meta?from=meta', payload: body, headers: { 'x-hub-signature-256': signBody(body, APP_SECRET) } });
      expect(queried.statusCode).toBe(200);
      expect(reachedFastify['POST'] ?? 0).toBe(0);
      // No declared length: Fastify's route reads the chunks, checks and stores them the same way.
      const half = Math.floor(body.length / 2);
      const chunked = await rawPost([body.slice(0, half), body.slice(half)], { 'content-type': 'application/json', 'x-hub-signature-256': signBody(body, APP_SECRET) });
      expect(chunked).toMatchObject({ statusCode: 200, body: 'EVENT_RECEIVED' });
      expect(reachedFastify['POST']).toBe(1);
      const forged = await rawPost([body], { 'content-type': 'application/json', 'x-hub-signature-256': signBody(body, 'another-secret') });
      expect(forged).toMatchObject({ statusCode: 401 });
      const stored = await s.store.db.selectFrom('inbound_batches').select('body').execute();
      expect(stored.map((b) => b.body)).toEqual([body, body, body]);
    });

    it('refuse a body over 16 MiB with 413 and store nothing', async () => {
      const { h: s, app: a } = await start();
      const limit = 16 * 1024 * 1024;
      const res =
        transport === 'inject'
          ? await post(a, 'x'.repeat(limit + 1), 'sha256=00')
          : await rawPost(['{"object":"page"'], { 'content-type': 'application/json', 'content-length': limit + 1, 'x-hub-signature-256': 'sha256=00' });
      expect(res).not.toBe('cut');
      expect((res as Answer).statusCode).toBe(413);
      expect((res as Answer).json()).toMatchObject({ error: { code: 'PAYLOAD_TOO_LARGE' } });
      expect(await counts(s)).toEqual({ batches: 0, jobs: 0 });
    });

    it.skipIf(transport === 'inject')('store nothing of a delivery cut off mid-body, and go on serving', async () => {
      const { h: s, app: a } = await start();
      const body = fixture('01_page_text_message.json');
      const sig = signBody(body, APP_SECRET);
      expect(await rawPost([body.slice(0, 20)], { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-hub-signature-256': sig }, true)).toBe('cut');
      expect((await post(a, body)).statusCode).toBe(200);
      expect(await counts(s)).toEqual({ batches: 1, jobs: 1 });
    });

    it('leave JSON parsing to the rest of the app', async () => {
      const { app: a } = await start();
      const res = await call(a, { method: 'POST', url: '/echo-json', payload: { a: 1 } });
      expect(res.json()).toEqual({ got: { a: 1 } });
    });
  });
});
