/**
 * What an operator and a business rely on around the messaging itself: named API keys shown once,
 * stored hashed and revocable; health and readiness; a failed Page subscription told to the user;
 * a sender's inbound callback by GET, signed with the account's signing secret.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import { call, eventually, startStack } from '../support/stack.js';
import type { Stack } from '../support/stack.js';
import { startLocalServer } from '../pipeline/inbound/support.js';
import type { LocalServer } from '../pipeline/inbound/support.js';

describe('operations', () => {
  let s: Stack;
  let receiver: LocalServer;
  const got: { url: string; headers: Record<string, string | string[] | undefined> }[] = [];
  beforeAll(async () => {
    s = await startStack();
    receiver = await startLocalServer((req, res) => {
      got.push({ url: req.url ?? '', headers: req.headers });
      res.writeHead(204).end();
    });
  });
  afterAll(async () => {
    await receiver?.close();
    await s?.close();
  });

  it('shows a named key once, keeps only its hash, and stops it when revoked', async () => {
    const created = await s.api<{ id: string; name: string; key: string }>('POST', '/v1/keys', { name: 'billing system' });
    expect(created.status).toBe(201);
    expect(created.body.name).toBe('billing system');
    const key = created.body.key;
    expect(key).toMatch(/^sk_/);
    const listed = await s.api<{ data: Record<string, unknown>[] }>('GET', '/v1/keys');
    expect(JSON.stringify(listed.body)).not.toContain(key);
    const row = await s.store.db.selectFrom('api_keys').selectAll().where('id', '=', created.body.id).executeTakeFirstOrThrow();
    expect(Object.values(row).map(String)).not.toContain(key);
    expect(Object.values(row).map(String)).toContain(createHash('sha256').update(key).digest('hex'));

    expect((await s.api('GET', '/v1/senders', undefined, key)).status).toBe(200);
    expect((await s.api('DELETE', `/v1/keys/${created.body.id}`)).status).toBe(204);
    const refused = await s.api<{ error: { code: string } }>('GET', '/v1/senders', undefined, key);
    expect(refused.status).toBe(401);
    expect(refused.body.error.code).toBe('UNAUTHENTICATED');
  });

  it('answers health and readiness', async () => {
    const health = await call<{ status: string; version: string }>('GET', `${s.url}/healthz`);
    expect(health.status).toBe(200);
    expect(health.body.status).toBe('ok');
    const ready = await call<{ status: string; database: string }>('GET', `${s.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({ status: 'ready', database: 'sqlite' });
  });

  it('tells the user when the Page cannot be subscribed, and connects nothing', async () => {
    const page = (await s.emu<{ id: string; access_token: string }>('POST', '/_emulator/pages', { app_id: s.app.id, name: 'Unsubscribable' })).body;
    const fault = await s.emu('POST', '/_emulator/faults', { page: page.id, path: '/subscribed_apps', kind: 'graph_error', code: 200, message: '(#200) Permissions error', count: 1 });
    expect(fault.status).toBeLessThan(300);
    const res = await s.api<{ error: { code: string; message: string } }>('POST', '/v1/senders', { access_token: page.access_token, page_id: page.id });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(600);
    expect(res.body.error.code).toBe('META_PERMISSION_MISSING');
    expect(await s.store.db.selectFrom('senders').select('id').where('meta_id', '=', page.id).execute()).toEqual([]);
  });

  it("delivers a sender's inbound events by GET, signed over the query string with the account's signing secret", async () => {
    const { page, sender } = await s.connectPage({ name: 'GET callbacks' });
    const patched = await s.api('PATCH', `/v1/senders/${sender.id}`, { inbound_url: `${receiver.url}/inbound?shop=7`, inbound_method: 'GET' });
    expect(patched.status).toBe(200);
    const user = (await s.emu<{ id: string }>('POST', '/_emulator/users', { first_name: 'Quinn' })).body;
    await s.emu('POST', `/_emulator/pages/${page.id}/inbound`, { user: user.id, text: 'by GET please' });
    const request = await eventually(() => got.find((g) => g.url.includes('message.received')), 15_000, 'the GET callback');
    const url = new URL(request.url, receiver.url);
    expect(url.pathname).toBe('/inbound');
    expect(url.searchParams.get('shop')).toBe('7');
    expect(url.searchParams.get('type')).toBe('message.received');
    expect(JSON.parse(url.searchParams.get('data') ?? '{}')).toMatchObject({ message: { content: { text: 'by GET please' } } });
    const secret = (await s.api<{ secret: string }>('GET', '/v1/endpoints/signing-secret')).body.secret;
    const headers = Object.fromEntries(Object.entries(request.headers).filter(([k]) => k.startsWith('webhook-'))) as Record<string, string>;
    // The signed content is the query string as sent (not JSON: verified without parsing it).
    const sent = request.url.split('?')[1] ?? '';
    expect(() => new Webhook(secret).verify(sent, headers, { jsonParse: false })).not.toThrow();
    const other = (await s.api<{ secret: string }>('POST', '/v1/endpoints', { url: `${receiver.url}/other` })).body;
    expect(() => new Webhook(other.secret).verify(sent, headers, { jsonParse: false })).toThrow();
  });
});
