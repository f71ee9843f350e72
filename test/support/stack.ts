/**
 * An end-to-end world over real sockets: the emulator, the gateway (`buildServer`) on a real store,
 * an account with an API key, and helpers to call both. Each test file builds its own.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { startEmulator } from '../../emulator/index.js';
import type { EmulatorOptions, RunningEmulator } from '../../emulator/index.js';
import { loadConfig } from '../../src/config.js';
import { buildServer } from '../../src/server.js';
import type { BuildOptions, Gateway } from '../../src/server.js';
import { createAccount } from '../../src/store/accounts.js';
import { createApiKey } from '../../src/store/api-keys.js';
import { SecretBox } from '../../src/store/secrets.js';
import type { Engine } from '../../src/store/db.js';
import { openTestStore } from './db.js';
import type { TestStore } from './db.js';

export interface Reply<T = Record<string, unknown>> {
  status: number;
  body: T;
  headers: Headers;
}

export async function call<T = Record<string, unknown>>(method: string, url: string, json?: unknown, headers: Record<string, string> = {}): Promise<Reply<T>> {
  const res = await fetch(url, {
    method,
    headers: { ...(json === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: json === undefined ? null : JSON.stringify(json),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : {};
  } catch {
    body = text;
  }
  return { status: res.status, body: body as T, headers: res.headers };
}

export interface Stack {
  emulator: RunningEmulator;
  gateway: Gateway;
  store: TestStore;
  url: string;
  app: { id: string; secret: string; verify_token: string };
  account: { id: string; key: string };
  /** Calls the gateway's API as the account. */
  api<T = Record<string, unknown>>(method: string, path: string, json?: unknown, key?: string): Promise<Reply<T>>;
  /** Calls the emulator's control or Graph API. */
  emu<T = Record<string, unknown>>(method: string, path: string, json?: unknown): Promise<Reply<T>>;
  /** A new account (optionally a subaccount) with its own key. */
  newAccount(name: string, parentId?: string): Promise<{ id: string; key: string }>;
  /** A Page in the emulator, connected through `POST /v1/senders`. */
  connectPage(opts?: { instagram?: boolean; name?: string; key?: string }): Promise<{ page: { id: string; access_token: string; instagram_id?: string }; sender: { id: string } }>;
  close(): Promise<void>;
}

export interface StackOptions {
  engine?: Engine;
  emulator?: EmulatorOptions;
  build?: BuildOptions;
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const emulator = await startEmulator({ deliveryDelayMs: 20, readDelayMs: 40, batchWindowMs: 2, ...options.emulator });
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-e2e-'));
  const store = await openTestStore(options.engine ?? 'sqlite');
  const emu = <T = Record<string, unknown>>(method: string, path: string, json?: unknown) => call<T>(method, `${emulator.url}${path}`, json);
  const app = (await emu<{ id: string; secret: string; verify_token: string }>('POST', '/_emulator/apps', { human_agent: true })).body;
  const config = loadConfig({
    env: {},
    defaults: {
      PORT: '0',
      HOST: '127.0.0.1',
      SWITCHBOARD_DATA_DIR: dir,
      SWITCHBOARD_SECRET_KEY: SecretBox.generateKey(),
      META_APP_ID: app.id,
      META_APP_SECRET: app.secret,
      META_VERIFY_TOKEN: app.verify_token,
      META_GRAPH_URL: emulator.url,
      META_DIALOG_URL: emulator.url,
      META_TIMEOUT_MS: '3000',
      SWITCHBOARD_ALLOW_PRIVATE_URLS: 'loopback',
      LOG_LEVEL: 'silent',
    },
  });
  const gateway = await buildServer(config, { store, logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }), ...options.build });
  const url = await gateway.start();
  const patched = await emu('PATCH', `/_emulator/apps/${app.id}`, { callback_url: `${url}/webhooks/meta` });
  if (patched.status >= 300) throw new Error(`emulator refused the callback: ${JSON.stringify(patched.body)}`);
  const newAccount = async (name: string, parentId?: string) => {
    const a = await createAccount(store.db, { name, parent_id: parentId ?? null });
    const { key } = await createApiKey(store.db, a.id, 'test');
    return { id: a.id, key };
  };
  const account = await newAccount('Test business');
  const api = <T = Record<string, unknown>>(method: string, path: string, json?: unknown, key = account.key) => call<T>(method, `${url}${path}`, json, { authorization: `Bearer ${key}` });
  return {
    emulator,
    gateway,
    store,
    url,
    app,
    account,
    api,
    emu,
    newAccount,
    async connectPage(opts = {}) {
      const page = (await emu<{ id: string; access_token: string; instagram_id?: string }>('POST', '/_emulator/pages', { app_id: app.id, name: opts.name ?? 'Test Page', instagram: opts.instagram ?? false })).body;
      const res = await api<{ id: string }>('POST', '/v1/senders', { access_token: page.access_token, page_id: page.id }, opts.key ?? account.key);
      if (res.status !== 201) throw new Error(`connecting the Page failed: ${res.status} ${JSON.stringify(res.body)}`);
      return { page, sender: res.body };
    },
    async close() {
      await gateway.close();
      await emulator.close();
      await store.dispose();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A receiving endpoint on 127.0.0.1 that records what it is sent and answers `status()`. */
export async function startReceiver(status: (r: Received) => number = () => 200): Promise<{ url: string; received: Received[]; server: Server; close(): Promise<void> }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      const code = status(r);
      if (code < 300) received.push(r);
      res.writeHead(code).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    received,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Polls until `check` returns a value (not undefined/false), or fails after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 15_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
