/** Helpers for the delivery suites: real HTTP receivers on 127.0.0.1, a gateway-side harness, waits. */
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { JobQueue } from '../../src/jobs/queue.js';
import { JobRunner } from '../../src/jobs/runner.js';
import type { RetrySchedule } from '../../src/jobs/schedule.js';
import { createDeliverer } from '../../src/delivery/deliver.js';
import type { Deliverer, DeliveryOptions } from '../../src/delivery/deliver.js';
import { UrlGuard } from '../../src/net/url-guard.js';
import { SecretBox } from '../../src/store/secrets.js';
import type { Engine } from '../../src/store/db.js';
import { openTestStore } from '../support/db.js';
import type { TestStore } from '../support/db.js';

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** The status the receiver answered. */
  status: number;
}

export interface Receiver {
  url: string;
  requests: ReceivedRequest[];
  /** Requests answered 2xx. */
  accepted(): ReceivedRequest[];
  /** Decides the status of each request (200 unless set). */
  respond: (req: Omit<ReceivedRequest, 'status'>) => number;
  close(): Promise<void>;
}

export async function startReceiver(respond: Receiver['respond'] = () => 200): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  const receiver: Receiver = {
    url: '',
    requests,
    accepted: () => requests.filter((r) => r.status >= 200 && r.status < 300),
    respond,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      const status = receiver.respond(seen);
      requests.push({ ...seen, status });
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(status >= 200 && status < 300 ? 'ok' : `refused with ${status}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // Keep-alive sockets from the gateway's pools must not hold the test process open.
  server.keepAliveTimeout = 1000;
  const close = receiver.close;
  receiver.close = async () => {
    server.closeAllConnections();
    await close();
  };
  return receiver;
}

/** A URL on 127.0.0.1 where nothing listens (connection refused). */
export async function refusedUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

/** Polls `check` until it is true; fails with `what` after a generous timeout. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Short delays so retries play out in a test; the production schedule spans more than a day. */
export const TEST_SCHEDULE: RetrySchedule = { delaysMs: [20, 40, 60], jitter: 0, maxAttempts: 30 };

export interface Harness {
  store: TestStore;
  queue: JobQueue;
  runner: JobRunner;
  secrets: SecretBox;
  urlGuard: UrlGuard;
  deliverer: Deliverer;
  accountId: string;
  /** Makes another account. */
  account(name?: string): Promise<string>;
  close(): Promise<void>;
}

let accountSeq = 0;

export async function startHarness(engine: Engine, options: DeliveryOptions & { schedule?: RetrySchedule; start?: boolean } = {}): Promise<Harness> {
  const store = await openTestStore(engine);
  const queue = new JobQueue(store, { schedules: { deliver: options.schedule ?? TEST_SCHEDULE } });
  const secrets = new SecretBox(Buffer.alloc(32, 7));
  const urlGuard = new UrlGuard({ allowPrivate: ['loopback'] });
  const { schedule: _schedule, start: _start, ...deliveryOptions } = options;
  const deliverer = createDeliverer({ store, queue, secrets, urlGuard, now: Date.now }, { random: () => 0.5, ...deliveryOptions });
  // A short poll so retries due in milliseconds are claimed promptly; notifications do the rest.
  const runner = new JobRunner({ store, queue, handlers: { deliver: deliverer.handler }, concurrency: 4, pollIntervalMs: 20 });
  const account = async (name = 'Test account') => {
    const now = Date.now();
    accountSeq += 1;
    const id = `acc_test${accountSeq}_${Math.random().toString(36).slice(2, 8)}`;
    await store.db.insertInto('accounts').values({ id, parent_id: null, name, status: 'active', created_at: now, updated_at: now }).execute();
    return id;
  };
  const accountId = await account();
  if (options.start !== false) await runner.start();
  return {
    store,
    queue,
    runner,
    secrets,
    urlGuard,
    deliverer,
    accountId,
    account,
    async close() {
      await runner.stop();
      await deliverer.close();
      await store.dispose();
    },
  };
}
