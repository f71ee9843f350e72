/**
 * Bad input gets a 4xx in the documented error shape with a stable code, never a 500 or a hang:
 * bodies nested too deeply, malformed multipart uploads, requests Node's HTTP parser or Fastify's
 * router refuse before any route runs, and a walk of every operation in the OpenAPI document with
 * odd ids, queries and bodies.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack } from '../support/stack.js';
import type { Stack } from '../support/stack.js';

interface ErrorBody {
  error: { code: string; message: string; details: Record<string, unknown> };
}

/** Sends raw bytes on one connection and returns the status line and body of the answer. */
function rawRequest(url: string, text: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0);
      resolve({ status, body: data.slice(data.indexOf('\r\n\r\n') + 4) });
    });
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer within 10 s')));
    socket.end(text);
  });
}

describe('bad input', () => {
  let s: Stack;
  let senderId: string;
  beforeAll(async () => {
    s = await startStack();
    senderId = (await s.connectPage({ name: 'Bad input' })).sender.id;
  });
  afterAll(async () => {
    await s?.close();
  });

  const deep = (levels: number) => '['.repeat(levels) + ']'.repeat(levels);

  it('refuses a body nested deeper than 64 levels with 400 on every JSON route, before it is walked', async () => {
    const auth = { authorization: `Bearer ${s.account.key}`, 'content-type': 'application/json' };
    const cases: [string, string, string, Record<string, string>?][] = [
      ['POST', '/v1/messages', `{"sender_id":"${senderId}","to":{"psid":"1"},"message":{"x":${deep(100_000)}}}`],
      ['POST', '/v1/messages', `{"sender_id":"${senderId}","to":{"psid":"1"},"message":{"x":${deep(100_000)}}}`, { 'idempotency-key': 'deep-1' }],
      ['PATCH', `/v1/senders/${senderId}`, `{"settings":{"x":${deep(65)}}}`],
    ];
    for (const [method, path, body, extra] of cases) {
      const res = await fetch(`${s.url}${path}`, { method, headers: { ...auth, ...extra }, body });
      const json = (await res.json()) as ErrorBody;
      expect(res.status, `${method} ${path}`).toBe(400);
      expect(json.error.code).toBe('VALIDATION_FAILED');
      expect(json.error.message).toContain('64 levels');
    }
    // Brackets inside strings do not count, and 64 levels are fine.
    const fine = await fetch(`${s.url}/v1/senders/${senderId}`, { method: 'PATCH', headers: auth, body: `{"settings":{"note":"${'['.repeat(200)}","x":${deep(60)}}}` });
    expect(fine.status).toBe(200);
  });

  it('answers malformed multipart uploads with 400, and a form with many fields without hanging', async () => {
    const auth = { authorization: `Bearer ${s.account.key}` };
    const noBoundary = await fetch(`${s.url}/v1/media`, { method: 'POST', headers: { ...auth, 'content-type': 'multipart/form-data' }, body: 'x' });
    expect(noBoundary.status).toBe(400);
    expect(((await noBoundary.json()) as ErrorBody).error.code).toBe('VALIDATION_FAILED');

    const form = new FormData();
    for (let i = 0; i < 12; i++) form.append(`field${i}`, 'v');
    form.append('file', new Blob([new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])], { type: 'image/png' }), 'a.png');
    const many = await fetch(`${s.url}/v1/media`, { method: 'POST', headers: auth, body: form, signal: AbortSignal.timeout(10_000) });
    expect(many.status).toBe(400);
    const body = (await many.json()) as ErrorBody;
    expect(body.error.code).toBe('VALIDATION_FAILED');
    expect(body.error.message).toMatch(/fields/);
  });

  it('answers requests refused before any route in the documented shape: a broken escape, invalid HTTP, headers too large', async () => {
    const host = new URL(s.url).host;
    const escape = await rawRequest(s.url, `GET /v1/messages/%E0%A4%A HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    expect(escape.status).toBe(400);
    expect((JSON.parse(escape.body) as ErrorBody).error.code).toBe('VALIDATION_FAILED');

    const length = await rawRequest(s.url, `POST /v1/messages HTTP/1.1\r\nHost: ${host}\r\nContent-Length: abc\r\n\r\n{}`);
    expect(length.status).toBe(400);
    expect(JSON.parse(length.body) as ErrorBody).toMatchObject({ error: { code: 'VALIDATION_FAILED', details: { field: 'request' } } });

    const chunked = await rawRequest(s.url, `POST /v1/messages HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`);
    expect(chunked.status).toBe(400);
    expect((JSON.parse(chunked.body) as ErrorBody).error.code).toBe('VALIDATION_FAILED');

    const big = await rawRequest(s.url, `GET /healthz HTTP/1.1\r\nHost: ${host}\r\nX-Filler: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(big.status).toBe(431);
    expect((JSON.parse(big.body) as ErrorBody).error.code).toBe('HEADERS_TOO_LARGE');
  });

  it('answers a known path with the wrong method with 405 and Allow, an unknown path with 404, and an unknown query parameter with 400', async () => {
    const auth = { authorization: `Bearer ${s.account.key}` };
    const wrong = await fetch(`${s.url}/v1/messages`, { method: 'DELETE', headers: auth });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('GET, POST');
    expect(((await wrong.json()) as ErrorBody).error.code).toBe('METHOD_NOT_ALLOWED');
    const byId = await fetch(`${s.url}/v1/senders/${senderId}`, { method: 'PUT', headers: auth });
    expect(byId.status).toBe(405);
    expect(byId.headers.get('allow')).toBe('DELETE, GET, PATCH');
    const nowhere = await fetch(`${s.url}/v1/nowhere`, { headers: auth });
    expect(nowhere.status).toBe(404);
    expect(((await nowhere.json()) as ErrorBody).error.code).toBe('NOT_FOUND');
    for (const path of ['/v1/events?sender=snd_x', '/v1/senders?limt=5', '/v1/endpoints?sender=x', '/v1/accounts?page=2', '/v1/messages?foo=1']) {
      const res = await fetch(`${s.url}${path}`, { headers: auth });
      expect(res.status, path).toBe(400);
      const body = (await res.json()) as ErrorBody;
      expect(body.error.code).toBe('VALIDATION_FAILED');
      expect(String(body.error.details['field'])).toMatch(/^querystring\./);
    }
  });

  it('answers every operation in the OpenAPI document with a 4xx in the error shape, never a 5xx, whatever ids, queries and bodies it gets', async () => {
    // Deterministic inputs, walked over the document so a new route is covered as soon as it exists.
    const doc = await s.api<{ paths: Record<string, Record<string, { parameters?: { in: string; name: string }[]; requestBody?: { content?: Record<string, { schema?: { properties?: Record<string, unknown> } }> } }>> }>('GET', '/v1/openapi.json');
    const key = s.account.key;
    const problems: string[] = [];
    let requests = 0;
    const send = async (method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<void> => {
      requests += 1;
      const res = await fetch(`${s.url}${path}`, { method, headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers }, body });
      const text = await res.text();
      const what = `${method} ${path.slice(0, 80)} ${body?.slice(0, 60) ?? ''} -> ${res.status}`;
      if (res.status >= 500) problems.push(`${what}: ${text.slice(0, 200)}`);
      else if (res.status >= 400) {
        let parsed: Partial<ErrorBody> = {};
        try {
          parsed = JSON.parse(text) as ErrorBody;
        } catch {
          problems.push(`${what}: not JSON`);
        }
        if (typeof parsed.error?.code !== 'string' || typeof parsed.error.message !== 'string') problems.push(`${what}: not the error shape: ${text.slice(0, 120)}`);
      }
    };
    const oddIds = ['x', '%00', '..%2F..%2Fsecret.key', 'a'.repeat(3000), '%F0%9F%98%80', "'%20or%201=1--", '-1'];
    const oddQueries = ['', '-1', '99999999999999999999', '%00', 'a'.repeat(2000), '[]'];
    const oddValues: unknown[] = [null, true, -1, 1e308, 'x'.repeat(70_000), '', [], [1, 'a'], {}, { a: { b: [null] } }, '\u0000', '😀'.repeat(500)];
    const oddBodies = ['{', 'null', '[]', '"x"', '1', '{"a":', '\u0000', '{"__proto__":{"polluted":1}}', '{"constructor":{"prototype":{"polluted":1}}}'];
    for (const [template, operations] of Object.entries(doc.body.paths)) {
      const route = template.startsWith('/v1') ? template : `/v1${template}`;
      for (const [lower, op] of Object.entries(operations)) {
        const method = lower.toUpperCase();
        const withBody = method !== 'GET' && method !== 'DELETE';
        if (route.includes('{')) for (const id of oddIds) await send(method, route.replace(/\{[^}]+\}/g, id), withBody ? '{}' : undefined);
        // Our own sender where a route takes one (its validation and lookups run), a missing id elsewhere; never deleted.
        if (method === 'DELETE') continue;
        const path = route.replace(/\{[^}]+\}/g, (p) => (route.startsWith('/v1/senders/') && p === '{id}' ? senderId : 'missing_1'));
        const query = (op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name);
        for (const q of oddQueries) {
          if (query.length > 0) await send(method, `${path}?${query.map((name) => `${name}=${q}`).join('&')}`, withBody ? '{}' : undefined);
        }
        if (!withBody) continue;
        for (const raw of oddBodies) await send(method, path, raw);
        await send(method, path, 'a=b', { 'content-type': 'application/x-www-form-urlencoded' });
        await send(method, path, '{}', { 'content-type': 'application/json; charset=latin1' });
        const props = Object.keys(op.requestBody?.content?.['application/json']?.schema?.properties ?? {});
        for (const prop of props) for (const value of oddValues) await send(method, path, JSON.stringify({ [prop]: value }));
      }
    }
    // The message body's shapes that pass the schema and are refused later, by policy, content or URL checks.
    const to = { psid: '1' };
    const messages: unknown[] = [
      { sender_id: senderId, to, attachments: [{ type: 'image', url: 'http://10.0.0.1/x.png' }] },
      { sender_id: senderId, to, attachments: [{ type: 'file', url: 'not a url' }] },
      { sender_id: senderId, to, attachments: [{ type: 'image', media_id: 'med_missing' }] },
      { sender_id: senderId, to, text: 'q', quick_replies: [{ content_type: 'text', title: 'a'.repeat(100), payload: 'x' }] },
      { sender_id: senderId, to, template: { template_type: 'generic', elements: [] } },
      { sender_id: senderId, to, template: { template_type: 'button', text: 'x', buttons: [{ type: 'web_url', url: 'javascript:alert(1)', title: 'x' }] } },
      { sender_id: senderId, to, template: { template_type: 'receipt' } },
      { sender_id: senderId, to, message: { text: 'raw' }, text: 'both' },
      { sender_id: senderId, to: { contact_id: 'ct_missing' }, text: 'x' },
      { sender_id: senderId, to: { user_ref: 'missing' }, text: 'x' },
      { sender_id: senderId, to: { psid: '1', contact_id: 'ct_missing' }, text: 'x' },
      { sender_id: senderId, to, text: 'x', messaging_type: 'MESSAGE_TAG', tag: 'NOT_A_TAG' },
      { sender_id: senderId, to, text: 'x', reply_to: 'm_missing' },
      { sender_id: senderId, to, text: 'x', status_callback: 'http://169.254.169.254/latest' },
      { sender_id: senderId, to, text: 'x', status_callback: 'ftp://example.com/x' },
      { sender_id: senderId, to, text: 'x'.repeat(2001) },
      { sender_id: senderId, to, text: 'x', client_ref: 'y'.repeat(5000) },
    ];
    for (const m of messages) await send('POST', '/v1/messages', JSON.stringify(m));
    for (const idem of ['x'.repeat(1000), '\t', 'é']) await send('POST', '/v1/messages', JSON.stringify({ sender_id: senderId, to, text: 'x' }), { 'idempotency-key': idem });
    expect(problems).toEqual([]);
    // The walk covered the document: every operation, with hundreds of inputs in all.
    expect(requests).toBeGreaterThan(1000);
  });

  it('takes JSON bodies as sent (no coercion), while query strings still become numbers and booleans', async () => {
    const auth = { authorization: `Bearer ${s.account.key}`, 'content-type': 'application/json' };
    const listText = await fetch(`${s.url}/v1/messages`, { method: 'POST', headers: auth, body: JSON.stringify({ sender_id: senderId, to: { psid: '1' }, text: ['hi'] }) });
    expect(listText.status).toBe(400);
    expect(((await listText.json()) as ErrorBody).error.details['field']).toBe('body.text');
    const stringFlag = await fetch(`${s.url}/v1/senders/${senderId}`, { method: 'PATCH', headers: auth, body: JSON.stringify({ human_agent: 'false' }) });
    expect(stringFlag.status).toBe(400);
    expect(((await stringFlag.json()) as ErrorBody).error.details['field']).toBe('body.human_agent');
    const query = await fetch(`${s.url}/v1/senders?limit=1&include_disconnected=true`, { headers: auth });
    expect(query.status).toBe(200);
    expect(((await query.json()) as { data: unknown[] }).data).toHaveLength(1);
  });
});
