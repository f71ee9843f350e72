/**
 * The outbound suites' world: the real emulator and the real gateway (`buildServer`) over
 * 127.0.0.1 sockets, on a real store (SQLite or PostgreSQL), an account with an API key, a Page
 * connected through the API, and customers who wrote to it. The gateway's clock follows the
 * emulator's, so moving one moves both.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { startEmulator } from '../../../emulator/index.js';
import type { EmulatorOptions, RunningEmulator } from '../../../emulator/index.js';
import { loadConfig } from '../../../src/config.js';
import type { Job, JobContext, JobHandler } from '../../../src/jobs/job.js';
import { outboundJobHandlers } from '../../../src/pipeline/outbound.js';
import type { SendJobOptions } from '../../../src/pipeline/outbound-send.js';
import { SenderPacer } from '../../../src/pipeline/pacing.js';
import { buildServer } from '../../../src/server.js';
import type { Gateway } from '../../../src/server.js';
import { createAccount } from '../../../src/store/accounts.js';
import { createApiKey } from '../../../src/store/api-keys.js';
import type { Engine } from '../../../src/store/db.js';
import { openTestStore } from '../../support/db.js';
import { newId } from '../../../src/domain/ids.js';
import { insertSender, newSenderRow } from '../../../src/store/senders.js';
import type { TestStore } from '../../support/db.js';

/** A fresh migrated store (kept as a name the outbound suites share). */
export function openOutboundStore(engine: Engine): Promise<TestStore> {
  return openTestStore(engine);
}

export interface HttpResult<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  body: T;
}

export async function http<T = Record<string, unknown>>(
  method: string,
  url: string,
  options: { json?: unknown; headers?: Record<string, string>; body?: RequestInit['body'] } = {},
): Promise<HttpResult<T>> {
  const headers: Record<string, string> = { ...(options.headers ?? {}) };
  let body = options.body;
  if (options.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(options.json);
  }
  const response = await fetch(url, { method, headers, body: body ?? null });
  const text = await response.text();
  let parsed: unknown = {};
  try {
    parsed = text.length > 0 ? JSON.parse(text) : {};
  } catch {
    parsed = { text };
  }
  return { status: response.status, headers: response.headers, body: parsed as T };
}

/** Polls until `check` returns something other than undefined/false; fails after `timeoutMs`. */
export async function waitFor<T>(check: () => T | undefined | false | Promise<T | undefined | false>, what: string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      // A check that finds the outcome cannot come any more says so at once.
      if ((err as Error).message.includes(' failed: ')) throw err;
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * Send-job timings for tests: retries and echo checks in fractions of a second instead of
 * seconds and minutes. Meta's regain time in the usage headers is ignored here (the emulator
 * reports at least a minute after any rate-limit fault).
 */
export const FAST_SEND: Partial<SendJobOptions> = {
  retryDelay: (_cls, attempt) => 50 * attempt,
  reconcileWaitMs: 1_500,
  reconcilePollMs: 100,
};

export interface ThreadMessage {
  mid: string;
  from: 'page' | 'user';
  text?: string;
  attachment?: unknown;
  quick_replies?: unknown;
  tag?: string;
  messaging_type?: string;
  timestamp: number;
}

export interface Customer {
  userId: string;
  psid: string;
  contactId: string;
}

export interface World {
  engine: Engine;
  store: TestStore;
  emulator: RunningEmulator;
  gateway: Gateway;
  url: string;
  apiKey: string;
  accountId: string;
  appId: string;
  appSecret: string;
  pageId: string;
  pageToken: string;
  senderId: string;
  /** How far the shared clock was moved (ms). */
  offset: { ms: number };
  /** While `sends` is true, send jobs wait without sending (the test arranges something first). */
  hold: { sends: boolean };
  /** Calls the gateway's API with the account's key. */
  api<T = Record<string, unknown>>(method: string, path: string, json?: unknown, headers?: Record<string, string>): Promise<HttpResult<T>>;
  /** Calls the emulator's control API. */
  control<T = Record<string, unknown>>(method: string, path: string, json?: unknown): Promise<HttpResult<T>>;
  /** A person who writes `text` to the Page (as of `timestamp`, default now) and is a contact once the webhook is processed. */
  customer(text?: string, options?: { timestamp?: number; pageId?: string; senderId?: string; channel?: 'messenger' | 'instagram' }): Promise<Customer>;
  /** The customer writes again. */
  write(customer: Customer, text: string, pageId?: string): Promise<void>;
  /** What the person saw. */
  thread(psid: string, pageId?: string): Promise<ThreadMessage[]>;
  /** Moves the emulator's clock and the gateway's together. */
  advance(ms: number): Promise<void>;
  /** Connects another Page of the same app as a sender (its Instagram account, with `instagram`), of the world's account or `accountId`. */
  connectPage(name?: string, instagram?: boolean, accountId?: string): Promise<{ pageId: string; pageToken: string; senderId: string; instagramId: string | null }>;
  /** Another account with an API key of its own, and its calls to the gateway's API. */
  newAccount(name: string): Promise<{ id: string; api: World['api'] }>;
  /** The message as its account sees it; `as` reads it with another account's key. */
  message(id: string, as?: World['api']): Promise<Record<string, unknown> & { status: string; status_history: { status: string; detail: unknown }[] }>;
  waitForStatus(id: string, status: string, timeoutMs?: number): Promise<Record<string, unknown> & { status: string; status_history: { status: string; detail: unknown }[] }>;
  /** Waits until the message is sent (or already delivered or read); a failure ends the wait with an error. */
  waitForSent(id: string, timeoutMs?: number, as?: World['api']): Promise<Record<string, unknown> & { status: string; status_history: { status: string; detail: unknown }[] }>;
  close(): Promise<void>;
}

export interface WorldOptions {
  humanAgent?: boolean;
  send?: Partial<SendJobOptions>;
  emulator?: EmulatorOptions;
  /** The Graph client's timeout. */
  metaTimeoutMs?: number;
  /** The sender's `settings` (opt-out words, pacing). */
  senderSettings?: Record<string, unknown>;
}

export async function startWorld(engine: Engine, options: WorldOptions = {}): Promise<World> {
  const cleanups: (() => Promise<void>)[] = [];
  try {
    return await buildWorld(engine, options, cleanups);
  } catch (err) {
    // A half-built world must not leave a PostgreSQL schema or a listening server behind.
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    throw err;
  }
}

async function buildWorld(engine: Engine, options: WorldOptions, cleanups: (() => Promise<void>)[]): Promise<World> {
  const emulator = await startEmulator({ batchWindowMs: 2, deliveryDelayMs: 50, readDelayMs: 150, webhookRetryDelaysMs: [100, 200, 500], ...options.emulator });
  cleanups.push(() => emulator.close());
  const control = <T = Record<string, unknown>>(method: string, path: string, json?: unknown) =>
    http<T>(method, `${emulator.url}${path}`, json === undefined ? {} : { json });
  const app = await control<{ id: string; secret: string; verify_token: string }>('POST', '/_emulator/apps', { human_agent: options.humanAgent ?? false });
  const store = await openOutboundStore(engine);
  cleanups.push(() => store.dispose());
  const dataDir = mkdtempSync(join(tmpdir(), 'switchboard-outbound-'));
  cleanups.push(async () => rmSync(dataDir, { recursive: true, force: true }));
  const config = loadConfig({
    env: {
      PORT: '0',
      HOST: '127.0.0.1',
      SWITCHBOARD_DATA_DIR: dataDir,
      SWITCHBOARD_SECRET_KEY: 'a'.repeat(64),
      META_APP_ID: app.body.id,
      META_APP_SECRET: app.body.secret,
      META_VERIFY_TOKEN: 'verify-outbound',
      META_GRAPH_URL: emulator.url,
      META_TIMEOUT_MS: String(options.metaTimeoutMs ?? 3_000),
      SWITCHBOARD_ALLOW_PRIVATE_URLS: 'loopback',
      LOG_LEVEL: 'silent',
      SWITCHBOARD_CONCURRENCY: '16',
    },
  });
  const offset = { ms: 0 };
  const hold = { sends: false };
  // The send handler is built once the gateway's context exists, with test timings.
  const send: { handler?: JobHandler } = {};
  const gateway = await buildServer(config, {
    store,
    logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    now: () => Date.now() + offset.ms,
    handlers: {
      send: async (job: Job, context: JobContext) => {
        // Held: the job waits its turn again shortly, so a test can arrange the message first.
        if (hold.sends) return { retryAt: Date.now() + 50 };
        return (send.handler as JobHandler)(job, context);
      },
    },
  });
  cleanups.push(() => gateway.close());
  send.handler = outboundJobHandlers(gateway.ctx, { pacer: new SenderPacer(), ...FAST_SEND, ...options.send })['send'];
  const url = await gateway.start();
  await control('PATCH', `/_emulator/apps/${app.body.id}`, { callback_url: `${url}/webhooks/meta`, verify_token: 'verify-outbound' });

  const account = await createAccount(store.db, { name: 'Outbound Test' });
  const { key } = await createApiKey(store.db, account.id, 'test');
  const apiWith =
    (apiKey: string) =>
    <T = Record<string, unknown>>(method: string, path: string, json?: unknown, headers?: Record<string, string>) =>
      http<T>(method, `${url}/v1${path}`, { ...(json === undefined ? {} : { json }), headers: { authorization: `Bearer ${apiKey}`, ...(headers ?? {}) } });
  const api = apiWith(key);

  // The sender row is written as connecting one writes it (the Page pre-subscribed in the
  // emulator), so these suites depend on the send path only, not on the connect flow.
  const connectPage = async (name = 'Outbound Page', instagram = false, accountId = account.id) => {
    const page = await control<{ id: string; access_token: string; instagram_id?: string | null }>('POST', '/_emulator/pages', { app_id: app.body.id, name, subscribe: true, instagram });
    if (page.status !== 201 && page.status !== 200) throw new Error(`creating the Page failed: ${page.status} ${JSON.stringify(page.body)}`);
    const now = gateway.ctx.now();
    const senderId = newId('snd');
    const instagramId = instagram ? (page.body.instagram_id ?? null) : null;
    if (instagram && instagramId === null) throw new Error('the emulator gave the Page no Instagram account');
    await insertSender(
      store.db,
      newSenderRow({
        id: senderId,
        account_id: accountId,
        channel: instagram ? 'instagram' : 'messenger',
        meta_id: instagramId ?? page.body.id,
        page_id: page.body.id,
        name,
        token_enc: gateway.ctx.secrets.seal(page.body.access_token),
        now,
        human_agent: options.humanAgent === true,
        settings: options.senderSettings ?? {},
        last_checked_at: now,
      }),
    );
    return { pageId: page.body.id, pageToken: page.body.access_token, senderId, instagramId };
  };
  const first = await connectPage();

  const world: World = {
    engine,
    store,
    emulator,
    gateway,
    url,
    apiKey: key,
    accountId: account.id,
    appId: app.body.id,
    appSecret: app.body.secret,
    pageId: first.pageId,
    pageToken: first.pageToken,
    senderId: first.senderId,
    offset,
    hold,
    api,
    control,
    async customer(text = 'hello', opts = {}) {
      const pageId = opts.pageId ?? first.pageId;
      const senderId = opts.senderId ?? first.senderId;
      const user = await control<{ id: string }>('POST', '/_emulator/users', { first_name: 'Grace', last_name: 'Hopper' });
      const inbound = await control<{ psid: string }>('POST', `/_emulator/pages/${pageId}/inbound`, {
        user: user.body.id,
        text,
        ...(opts.channel !== undefined ? { channel: opts.channel } : {}),
        ...(opts.timestamp !== undefined ? { timestamp: opts.timestamp } : {}),
      });
      if (inbound.status !== 200) throw new Error(`inbound failed: ${inbound.status} ${JSON.stringify(inbound.body)}`);
      const psid = inbound.body.psid;
      const contactId = await waitFor(async () => {
        const row = await store.db.selectFrom('contacts').select('id').where('sender_id', '=', senderId).where('psid', '=', psid).executeTakeFirst();
        return row?.id;
      }, `the contact for ${psid}`);
      return { userId: user.body.id, psid, contactId };
    },
    async write(customer, text, pageId = first.pageId) {
      const before = await store.db.selectFrom('messages').select('id').where('contact_id', '=', customer.contactId).where('direction', '=', 'inbound').execute();
      const res = await control('POST', `/_emulator/pages/${pageId}/inbound`, { user: customer.userId, text });
      if (res.status !== 200) throw new Error(`inbound failed: ${res.status}`);
      await waitFor(async () => {
        const after = await store.db.selectFrom('messages').select('id').where('contact_id', '=', customer.contactId).where('direction', '=', 'inbound').execute();
        return after.length > before.length;
      }, 'the inbound message');
    },
    async thread(psid, pageId = first.pageId) {
      const res = await control<{ messages: ThreadMessage[] }>('GET', `/_emulator/pages/${pageId}/threads/${psid}`);
      return res.body.messages ?? [];
    },
    async advance(ms) {
      const res = await control('POST', '/_emulator/clock', { advance_ms: ms });
      if (res.status !== 200) throw new Error(`moving the clock failed: ${res.status}`);
      offset.ms += ms;
    },
    connectPage,
    async newAccount(name) {
      const other = await createAccount(store.db, { name });
      const { key: otherKey } = await createApiKey(store.db, other.id, 'test');
      return { id: other.id, api: apiWith(otherKey) };
    },
    async message(id, as = api) {
      const res = await as<Record<string, unknown> & { status: string; status_history: { status: string; detail: unknown }[] }>('GET', `/messages/${id}`);
      if (res.status !== 200) throw new Error(`GET /v1/messages/${id}: ${res.status}`);
      return res.body;
    },
    async waitForStatus(id, status, timeoutMs = 20_000) {
      return waitFor(async () => {
        const m = await world.message(id);
        return m.status === status ? m : undefined;
      }, `message ${id} to be ${status}`, timeoutMs);
    },
    async waitForSent(id, timeoutMs = 20_000, as = api) {
      return waitFor(async () => {
        const m = await world.message(id, as);
        if (m.status === 'failed') throw new Error(`message ${id} failed: ${JSON.stringify(m['error'])}`);
        return ['sent', 'delivered', 'read'].includes(m.status) ? m : undefined;
      }, `message ${id} to be sent`, timeoutMs);
    },
    async close() {
      // Each step says so when it is slow, so a hang names its culprit.
      for (const [what, step] of [
        ['gateway', () => gateway.close()],
        ['emulator', () => emulator.close()],
        ['store', () => store.dispose()],
      ] as const) {
        const slow = setTimeout(() => console.warn(`closing the ${what} takes long`), 5_000);
        let giveUp: NodeJS.Timeout | undefined;
        try {
          // A close that has not finished in 15 s is left behind (the store's disposal ends its
          // database connections), so one slow shutdown cannot fail the suite; the warning above names it.
          await Promise.race([step(), new Promise<void>((resolve) => (giveUp = setTimeout(resolve, 15_000)))]);
        } finally {
          clearTimeout(slow);
          clearTimeout(giveUp);
        }
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return world;
}

/** The outbound messages the person saw from the Page, oldest first. */
export function pageTexts(thread: ThreadMessage[]): string[] {
  return thread.filter((m) => m.from === 'page').map((m) => m.text ?? '');
}
