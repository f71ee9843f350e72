import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphClient, MetaApiError, MetaTransportError, PAGE_SUBSCRIBED_FIELDS } from '../../src/meta/graph.js';

/**
 * The Graph client's transport against a small local HTTP server whose every answer the test
 * controls: timeouts, dropped connections, error bodies and usage headers over real sockets.
 */

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

type Handler = (req: Seen, res: ServerResponse, socket: Socket) => void;

let server: Server;
let baseUrl: string;
const seen: Seen[] = [];
const routes = new Map<string, Handler>();
const openSockets = new Set<Socket>();

function route(method: string, path: string, handler: Handler): void {
  routes.set(`${method} ${path}`, handler);
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const entry: Seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) };
      seen.push(entry);
      const path = (req.url ?? '').split('?')[0] ?? '';
      const handler = routes.get(`${req.method} ${path}`);
      if (handler) handler(entry, res, req.socket);
      else json(res, 404, { error: { message: 'Unknown path components', type: 'OAuthException', code: 2500, fbtrace_id: 'T' } });
    });
  });
  server.on('connection', (socket) => {
    openSockets.add(socket);
    socket.on('close', () => openSockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const socket of openSockets) socket.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function client(over: Partial<ConstructorParameters<typeof GraphClient>[0]> = {}): GraphClient {
  return new GraphClient({ baseUrl, version: 'v25.0', appId: '555', appSecret: 'shh', timeoutMs: 5_000, ...over });
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to fail');
}

describe('GraphClient over a local HTTP server', () => {
  it('sends a message with the token in a Bearer header, the appsecret_proof, and reads usage headers', async () => {
    route('POST', '/v25.0/100/messages', (_req, res) =>
      json(res, 200, { recipient_id: '200', message_id: 'm_abc' }, {
        'x-app-usage': '{"call_count":12,"total_time":3,"total_cputime":4}',
        'x-business-use-case-usage': '{"100":[{"type":"messenger","call_count":40,"total_time":1,"total_cputime":1,"estimated_time_to_regain_access":0}]}',
      }),
    );
    const graph = client({ appsecretProof: true });
    try {
      const result = await graph.sendMessage('100', 'EAAtoken', { recipient: { id: '200' }, messaging_type: 'RESPONSE', message: { text: 'hi' } });
      expect(result).toMatchObject({ recipient_id: '200', message_id: 'm_abc', usage: { maxPercent: 40 } });
      expect(graph.usageFor('100')?.app?.maxPercent).toBe(12);
      const request = seen.at(-1);
      expect(request?.headers['authorization']).toBe('Bearer EAAtoken');
      expect(request?.url).toContain(`appsecret_proof=${createHmac('sha256', 'shh').update('EAAtoken').digest('hex')}`);
      expect(request?.url).not.toContain('EAAtoken');
      expect(JSON.parse(request?.body.toString() ?? '')).toEqual({ recipient: { id: '200' }, messaging_type: 'RESPONSE', message: { text: 'hi' } });
    } finally {
      await graph.close();
    }
  });

  it('keeps a long numeric recipient_id exact', async () => {
    route('POST', '/v25.0/101/messages', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"recipient_id":17841400000000001,"message_id":"m_ig"}');
    });
    const graph = client();
    try {
      expect(await graph.sendMessage('101', 't', { recipient: { id: '17841400000000001' }, message: { text: 'x' } })).toMatchObject({ recipient_id: '17841400000000001' });
    } finally {
      await graph.close();
    }
  });

  it("throws MetaApiError with Meta's code, subcode, type, trace id and usage", async () => {
    route('POST', '/v25.0/102/messages', (_req, res) =>
      json(res, 400, { error: { message: '(#551) This person isn\'t available right now.', type: 'OAuthException', code: 551, error_subcode: 1545041, fbtrace_id: 'GZL' } }, { 'x-app-usage': '{"call_count":1}' }),
    );
    const graph = client();
    try {
      const err = await rejection(graph.sendMessage('102', 't', { recipient: { id: '1' }, message: { text: 'x' } }));
      expect(err).toBeInstanceOf(MetaApiError);
      expect(err).toMatchObject({ httpStatus: 400, code: 551, subcode: 1545041, type: 'OAuthException', fbtraceId: 'GZL', usage: { maxPercent: 1 } });
    } finally {
      await graph.close();
    }
  });

  it('throws MetaApiError without a code for a 5xx that is not a Graph error body', async () => {
    route('GET', '/v25.0/103', (_req, res) => {
      res.writeHead(503, { 'content-type': 'text/html' });
      res.end('<html>down</html>');
    });
    const graph = client();
    try {
      expect(await rejection(graph.getPage('103', 't', ['id']))).toMatchObject({ httpStatus: 503, code: null, body: '<html>down</html>' });
    } finally {
      await graph.close();
    }
  });

  it('times out with maybeDelivered when the request was written and no answer came', async () => {
    route('POST', '/v25.0/104/messages', () => {
      // Never answer: the message may have been sent.
    });
    const graph = client({ timeoutMs: 300 });
    try {
      const err = await rejection(graph.sendMessage('104', 't', { recipient: { id: '1' }, message: { text: 'x' } }));
      expect(err).toBeInstanceOf(MetaTransportError);
      expect(err).toMatchObject({ kind: 'timeout', maybeDelivered: true });
    } finally {
      await graph.close();
    }
  });

  it('gives up on a request still queued behind a slow one as never delivered, and never writes it later', async () => {
    route('POST', '/v25.0/111/messages', () => {
      // The first send hangs and holds the only connection.
    });
    route('POST', '/v25.0/112/messages', (_req, res) => json(res, 200, { recipient_id: '1', message_id: 'm_late' }));
    route('GET', '/v25.0/113', (_req, res) => json(res, 200, { id: '113' }));
    const graph = client({ timeoutMs: 300, connections: 1 });
    try {
      const body = { recipient: { id: '1' }, message: { text: 'x' } };
      const [first, queued] = await Promise.all([rejection(graph.sendMessage('111', 't', body)), rejection(graph.sendMessage('112', 't', body))]);
      expect(first).toMatchObject({ kind: 'timeout', maybeDelivered: true });
      expect(queued).toMatchObject({ kind: 'timeout', maybeDelivered: false });
      // The pool is FIFO over one connection: once a later call is answered, the abandoned one had its turn.
      expect(await graph.getPage('113', 't', ['id'])).toMatchObject({ id: '113' });
      expect(seen.filter((r) => r.url.startsWith('/v25.0/112/'))).toEqual([]);
    } finally {
      await graph.close();
    }
  });

  it('reports a dropped connection after the request as a reset that may have been delivered', async () => {
    route('POST', '/v25.0/105/messages', (_req, _res, socket) => socket.destroy());
    const graph = client();
    try {
      expect(await rejection(graph.sendMessage('105', 't', { recipient: { id: '1' }, message: { text: 'x' } }))).toMatchObject({ kind: 'reset', maybeDelivered: true });
    } finally {
      await graph.close();
    }
  });

  it('reports a refused connection as never delivered', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const graph = client({ baseUrl: `http://127.0.0.1:${port}` });
    try {
      const err = await rejection(graph.sendMessage('106', 't', { recipient: { id: '1' }, message: { text: 'x' } }));
      expect(err).toMatchObject({ kind: 'connection', maybeDelivered: false });
    } finally {
      await graph.close();
    }
  });

  it('treats a 2xx send without message_id as maybe delivered, never as success', async () => {
    route('POST', '/v25.0/107/messages', (_req, res) => json(res, 200, { ok: true }));
    const graph = client();
    try {
      expect(await rejection(graph.sendMessage('107', 't', { recipient: { id: '1' }, message: { text: 'x' } }))).toMatchObject({ kind: 'invalid_response', maybeDelivered: true });
    } finally {
      await graph.close();
    }
  });

  it('subscribes with the full field list and throws when Meta does not confirm', async () => {
    route('POST', '/v25.0/108/subscribed_apps', (_req, res) => json(res, 200, { success: true }));
    route('POST', '/v25.0/109/subscribed_apps', (_req, res) => json(res, 200, { success: false }));
    const graph = client();
    try {
      expect(await graph.subscribeApp('108', 't')).toEqual({ success: true });
      const url = new URL(seen.at(-1)?.url ?? '', baseUrl);
      expect(url.searchParams.get('subscribed_fields')?.split(',')).toEqual([...PAGE_SUBSCRIBED_FIELDS]);
      expect(await rejection(graph.subscribeApp('109', 't'))).toBeInstanceOf(MetaApiError);
    } finally {
      await graph.close();
    }
  });

  it('uploads bytes as multipart filedata', async () => {
    route('POST', '/v25.0/110/message_attachments', (_req, res) => json(res, 200, { attachment_id: '1857777774821032' }));
    const graph = client();
    try {
      const result = await graph.uploadAttachment('110', 't', { type: 'image', data: Buffer.from('PNGDATA'), filename: 'a.png', contentType: 'image/png' });
      expect(result).toEqual({ attachment_id: '1857777774821032' });
      const request = seen.at(-1);
      expect(request?.headers['content-type']).toMatch(/^multipart\/form-data; boundary=/);
      const body = request?.body.toString() ?? '';
      expect(body).toContain('name="filedata"; filename="a.png"');
      expect(body).toContain('PNGDATA');
      expect(body).toContain('{"attachment":{"type":"image","payload":{"is_reusable":true}}}');
    } finally {
      await graph.close();
    }
  });

  it('follows /me/accounts cursors and reads the linked Instagram account', async () => {
    route('GET', '/v25.0/me/accounts', (req, res) => {
      const after = new URL(req.url, baseUrl).searchParams.get('after');
      if (after === null) {
        json(res, 200, { data: [{ id: '1', name: 'One', access_token: 'EAA1', tasks: ['MESSAGING'] }], paging: { cursors: { after: 'c1' }, next: 'https://graph/next' } });
      } else {
        json(res, 200, { data: [{ id: '2', name: 'Two', access_token: 'EAA2', instagram_business_account: { id: '17841400000000002' } }], paging: { cursors: { after: 'c2' } } });
      }
    });
    const graph = client();
    try {
      const pages = await graph.listPages('user-token');
      expect(pages).toEqual([
        { id: '1', name: 'One', access_token: 'EAA1', tasks: ['MESSAGING'] },
        { id: '2', name: 'Two', access_token: 'EAA2', instagram_business_account: { id: '17841400000000002' } },
      ]);
    } finally {
      await graph.close();
    }
  });

  it('checks tokens with the app token and exchanges login codes with the client secret', async () => {
    route('GET', '/v25.0/debug_token', (_req, res) => json(res, 200, { data: { app_id: 555, is_valid: true, scopes: ['pages_messaging'], expires_at: 0 } }));
    route('GET', '/v25.0/oauth/access_token', (_req, res) => json(res, 200, { access_token: 'user', token_type: 'bearer', expires_in: 5183944 }));
    const graph = client();
    try {
      expect(await graph.debugToken('EAAx')).toMatchObject({ is_valid: true, app_id: '555', scopes: ['pages_messaging'] });
      expect(new URL(seen.at(-1)?.url ?? '', baseUrl).searchParams.get('access_token')).toBe('555|shh');
      expect(await graph.exchangeCode('CODE', 'https://gw.test/cb')).toEqual({ access_token: 'user', token_type: 'bearer', expires_in: 5183944 });
      const params = new URL(seen.at(-1)?.url ?? '', baseUrl).searchParams;
      expect(Object.fromEntries(params)).toEqual({ client_id: '555', client_secret: 'shh', redirect_uri: 'https://gw.test/cb', code: 'CODE' });
      await graph.exchangeLongLived('user');
      expect(new URL(seen.at(-1)?.url ?? '', baseUrl).searchParams.get('grant_type')).toBe('fb_exchange_token');
    } finally {
      await graph.close();
    }
  });

  it('builds the Facebook Login dialog URL, on another base for the emulator', () => {
    const graph = client();
    const url = new URL(graph.oauthDialogUrl({ redirectUri: 'https://gw.test/cb', state: 's1', scopes: ['pages_messaging', 'pages_show_list'] }));
    expect(url.origin + url.pathname).toBe('https://www.facebook.com/v25.0/dialog/oauth');
    expect(Object.fromEntries(url.searchParams)).toEqual({ client_id: '555', redirect_uri: 'https://gw.test/cb', state: 's1', scope: 'pages_messaging,pages_show_list', response_type: 'code' });
    expect(graph.oauthDialogUrl({ redirectUri: 'x', state: 's', scopes: [], dialogBaseUrl: 'http://127.0.0.1:4000/' })).toMatch(/^http:\/\/127\.0\.0\.1:4000\/v25\.0\/dialog\/oauth\?/);
  });
});
