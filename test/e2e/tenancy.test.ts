/**
 * Subaccounts cannot read each other's data through any route: every route of the OpenAPI document
 * that takes an id is called by a sibling with the other's ids, and every list is checked for leaks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startStack } from '../support/stack.js';
import type { Stack } from '../support/stack.js';

const SECRET_TEXT = 'my order number is 7741-secret';

describe('tenancy across subaccounts', () => {
  let s: Stack;
  let a: { id: string; key: string };
  let b: { id: string; key: string };
  const ids: string[] = [];

  beforeAll(async () => {
    s = await startStack();
    // The stack's own account is the parent; A and B are its subaccounts.
    const ca = await s.api<{ account: { id: string }; api_key: { key: string } }>('POST', '/v1/accounts', { name: 'Brand A' });
    const cb = await s.api<{ account: { id: string }; api_key: { key: string } }>('POST', '/v1/accounts', { name: 'Brand B' });
    expect(ca.status).toBe(201);
    a = { id: ca.body.account.id, key: ca.body.api_key.key };
    b = { id: cb.body.account.id, key: cb.body.api_key.key };

    const { page, sender } = await s.connectPage({ key: a.key, name: 'A Page' });
    ids.push(sender.id);
    const endpoint = await s.api<{ id: string }>('POST', '/v1/endpoints', { url: 'http://127.0.0.1:9/never' }, a.key);
    expect(endpoint.status).toBe(201);
    ids.push(endpoint.body.id);
    const user = await s.emu<{ id: string }>('POST', '/_emulator/users', { first_name: 'Casey' });
    await s.emu('POST', `/_emulator/pages/${page.id}/inbound`, { user: user.body.id, text: SECRET_TEXT });
    const msg = await eventually(async () => {
      const r = await s.api<{ data: { id: string; contact_id: string; conversation_id: string }[] }>('GET', '/v1/messages', undefined, a.key);
      return r.body.data?.[0];
    }, 15_000, 'the inbound message');
    ids.push(msg.id, msg.contact_id, msg.conversation_id);
    const events = await s.api<{ data: { id: string }[] }>('GET', '/v1/events', undefined, a.key);
    expect(events.body.data.length).toBeGreaterThan(0);
    ids.push(...events.body.data.map((e) => e.id));
    const key = await s.api<{ id: string }>('POST', '/v1/keys', { name: 'second' }, a.key);
    ids.push(key.body.id);
    ids.push(a.id);
  });
  afterAll(async () => {
    await s?.close();
  });

  it('give a sibling 404 (or another refusal, never data) on every route that takes an id', async () => {
    const doc = await s.api<{ paths: Record<string, Record<string, unknown>> }>('GET', '/v1/openapi.json');
    const templated = Object.entries(doc.body.paths).filter(([path]) => path.includes('{'));
    expect(templated.length).toBeGreaterThan(10);
    let calls = 0;
    for (const [path, methods] of templated) {
      for (const method of Object.keys(methods)) {
        if (path.includes('/connect/')) continue;
        for (const id of ids) {
          const url = path.replace(/\{[^}]+\}/g, id);
          const res = await s.api(method.toUpperCase(), url, method === 'get' || method === 'delete' ? undefined : {}, b.key);
          calls++;
          const text = JSON.stringify(res.body);
          expect(res.status, `${method.toUpperCase()} ${url}`).toBeGreaterThanOrEqual(400);
          expect(res.status, `${method.toUpperCase()} ${url}`).toBeLessThan(500);
          expect(text).not.toContain(SECRET_TEXT);
          // A subaccount asking for account routes is refused outright (403); everything else does not exist for it.
          if (method === 'get') expect([403, 404], `GET ${url}`).toContain(res.status);
        }
      }
    }
    expect(calls).toBeGreaterThan(50);
  });

  it('show a sibling none of the other brand in any list', async () => {
    const doc = await s.api<{ paths: Record<string, Record<string, unknown>> }>('GET', '/v1/openapi.json');
    const lists = Object.entries(doc.body.paths).filter(([path, m]) => !path.includes('{') && 'get' in m);
    expect(lists.length).toBeGreaterThan(4);
    for (const [path] of lists) {
      const res = await s.api('GET', path, undefined, b.key);
      const text = JSON.stringify(res.body);
      expect(res.status, path).toBeLessThan(500);
      for (const id of ids) expect(text, `GET ${path} leaks ${id}`).not.toContain(id);
      expect(text).not.toContain(SECRET_TEXT);
    }
  });

  it('let the parent act for its subaccount, and no one else', async () => {
    const asParent = await s.api<{ data: unknown[] }>('GET', '/v1/senders', undefined, s.account.key);
    expect(asParent.body.data).toHaveLength(0);
    const res = await fetch(`${s.url}/v1/senders`, { headers: { authorization: `Bearer ${s.account.key}`, 'switchboard-account': a.id } });
    expect(res.status).toBe(200);
    expect(JSON.stringify(await res.json())).toContain(ids[0]);
    const sibling = await fetch(`${s.url}/v1/senders`, { headers: { authorization: `Bearer ${b.key}`, 'switchboard-account': a.id } });
    expect(sibling.status).toBe(403);
    const upward = await fetch(`${s.url}/v1/account`, { headers: { authorization: `Bearer ${a.key}`, 'switchboard-account': s.account.id } });
    expect(upward.status).toBe(403);
    const childList = await s.api('GET', '/v1/accounts', undefined, a.key);
    expect(childList.status).toBe(403);
  });

  it('stop a suspended subaccount and bring it back', async () => {
    const suspended = await s.api('PATCH', `/v1/accounts/${b.id}`, { status: 'suspended' });
    expect(suspended.status).toBe(200);
    const refused = await s.api<{ error: { code: string } }>('GET', '/v1/senders', undefined, b.key);
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe('ACCOUNT_SUSPENDED');
    await s.api('PATCH', `/v1/accounts/${b.id}`, { status: 'active' });
    expect((await s.api('GET', '/v1/senders', undefined, b.key)).status).toBe(200);
  });

  it('disconnect the senders of a closed subaccount, so its Page is free for another account', async () => {
    const created = await s.api<{ account: { id: string }; api_key: { key: string } }>('POST', '/v1/accounts', { name: 'Brand C' });
    const c = { id: created.body.account.id, key: created.body.api_key.key };
    const { page, sender } = await s.connectPage({ key: c.key, name: 'C Page' });
    const taken = await s.api<{ error: { code: string } }>('POST', '/v1/senders', { access_token: page.access_token, page_id: page.id });
    expect(taken.status).toBe(409);

    const closed = await s.api<{ status: string }>('DELETE', `/v1/accounts/${c.id}`);
    expect(closed.status).toBe(200);
    expect(closed.body.status).toBe('closed');
    const row = await s.store.db.selectFrom('senders').select(['health', 'health_reason']).where('id', '=', sender.id).executeTakeFirstOrThrow();
    expect(row).toEqual({ health: 'disconnected', health_reason: 'the account was closed' });
    const atMeta = await s.emu<{ subscribed_apps: unknown[] }>('GET', `/_emulator/pages/${page.id}`);
    expect(atMeta.body.subscribed_apps).toEqual([]);

    const reconnected = await s.api<{ id: string; account_id: string }>('POST', '/v1/senders', { access_token: page.access_token, page_id: page.id });
    expect(reconnected.status).toBe(201);
    expect(reconnected.body.id).not.toBe(sender.id);
  });
});
