import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Test helpers for the emulator suites: a webhook receiver, HTTP calls, polling. */

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  raw: Buffer;
  json: unknown;
}

export interface Answer {
  status: number;
  body?: string;
  /** Never answer (the socket stays open until the emulator gives up). */
  hang?: boolean;
}

export interface Receiver {
  url: string;
  requests: ReceivedRequest[];
  posts(): ReceivedRequest[];
  respondWith(answer: (request: ReceivedRequest) => Answer): void;
  close(): Promise<void>;
}

/** A webhook receiver on 127.0.0.1 that records raw bytes and answers the handshake. */
export async function startReceiver(verifyToken?: string): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  let answer: (request: ReceivedRequest) => Answer = () => ({ status: 200, body: 'EVENT_RECEIVED' });
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      let json: unknown = undefined;
      try {
        json = raw.length > 0 ? JSON.parse(raw.toString('utf8')) : undefined;
      } catch {
        json = undefined;
      }
      const recorded: ReceivedRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, raw, json };
      requests.push(recorded);
      if (req.method === 'GET') {
        const url = new URL(req.url ?? '/', 'http://127.0.0.1');
        const ok = url.searchParams.get('hub.mode') === 'subscribe' && (verifyToken === undefined || url.searchParams.get('hub.verify_token') === verifyToken);
        res.writeHead(ok ? 200 : 403).end(ok ? (url.searchParams.get('hub.challenge') ?? '') : 'forbidden');
        return;
      }
      const reply = answer(recorded);
      if (reply.hang) return;
      res.writeHead(reply.status, { 'content-type': 'text/plain' }).end(reply.body ?? '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/webhook`,
    requests,
    posts: () => requests.filter((r) => r.method === 'POST'),
    respondWith(next) {
      answer = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function validSignature(request: ReceivedRequest, secret: string): boolean {
  const expected = `sha256=${createHmac('sha256', secret).update(request.raw).digest('hex')}`;
  const sha1 = `sha1=${createHmac('sha1', secret).update(request.raw).digest('hex')}`;
  return request.headers['x-hub-signature-256'] === expected && request.headers['x-hub-signature'] === sha1;
}

export interface HttpResult<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

export async function http<T = Record<string, unknown>>(
  method: string,
  url: string,
  options: { json?: unknown; headers?: Record<string, string>; body?: string | FormData | URLSearchParams; redirect?: 'follow' | 'manual' } = {},
): Promise<HttpResult<T>> {
  const headers: Record<string, string> = { ...(options.headers ?? {}) };
  let body: string | FormData | URLSearchParams | undefined = options.body;
  if (options.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(options.json);
  }
  const response = await fetch(url, { method, headers, body, redirect: options.redirect ?? 'follow' });
  const text = await response.text();
  let parsed: unknown = {};
  try {
    parsed = text.length > 0 ? JSON.parse(text) : {};
  } catch {
    parsed = {};
  }
  return { status: response.status, headers: response.headers, body: parsed as T, text };
}

/** Polls until `check` returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function waitFor<T>(check: () => T | undefined | false | Promise<T | undefined | false>, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export interface World {
  appId: string;
  secret: string;
  pageId: string;
  token: string;
  instagramId: string | null;
  userId: string;
  psid: string;
}

/** An app pointed at `callbackUrl`, a subscribed Page, and a person who wrote to it once. */
export async function createWorld(
  base: string,
  options: { callbackUrl?: string; humanAgent?: boolean; instagram?: boolean; userFields?: Record<string, unknown> } = {},
): Promise<World> {
  const app = await http<{ id: string; secret: string }>('POST', `${base}/_emulator/apps`, {
    json: { ...(options.callbackUrl ? { callback_url: options.callbackUrl } : {}), human_agent: options.humanAgent ?? false },
  });
  const page = await http<{ id: string; access_token: string; instagram_id?: string }>('POST', `${base}/_emulator/pages`, {
    json: { app_id: app.body.id, name: 'Test Page', subscribe: true, instagram: options.instagram ?? false },
  });
  const user = await http<{ id: string }>('POST', `${base}/_emulator/users`, { json: { first_name: 'Ada', last_name: 'Lovelace', ...(options.userFields ?? {}) } });
  const inbound = await http<{ psid: string }>('POST', `${base}/_emulator/pages/${page.body.id}/inbound`, {
    json: { user: user.body.id, text: 'hello' },
  });
  return {
    appId: app.body.id,
    secret: app.body.secret,
    pageId: page.body.id,
    token: page.body.access_token,
    instagramId: page.body.instagram_id ?? null,
    userId: user.body.id,
    psid: inbound.body.psid,
  };
}

export interface GraphErrorBody {
  error: { message: string; type: string; code: number; error_subcode?: number; fbtrace_id: string };
}

/** A Send API call with a Page token. */
export function send(base: string, token: string, body: Record<string, unknown>, path = 'me') {
  return http<Record<string, unknown> & Partial<GraphErrorBody>>('POST', `${base}/v25.0/${path}/messages?access_token=${encodeURIComponent(token)}`, {
    json: body,
  });
}

/** All messaging items (across POSTs and entries) the receiver got so far. */
export function items(receiver: Receiver): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const post of receiver.posts()) {
    const body = post.json as { entry?: Array<{ messaging?: Array<Record<string, unknown>>; standby?: Array<Record<string, unknown>> }> };
    for (const entry of body.entry ?? []) out.push(...(entry.messaging ?? []), ...(entry.standby ?? []));
  }
  return out;
}
