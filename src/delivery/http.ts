/**
 * Sending one delivery request: an undici Pool per origin with keep-alive (Node 20's global fetch
 * costs about 13x the CPU per request), the URL guard at connect time, a deadline, and a capped
 * read of the answer. Never throws: every outcome becomes an `AttemptResult` for the attempt log.
 */
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import type { Dispatcher } from 'undici';
import { isGatewayError } from '../domain/errors.js';
import type { UrlGuard } from '../net/url-guard.js';
import type { OutgoingRequest } from './formats/index.js';

export interface AttemptResult {
  ok: boolean;
  statusCode: number | null;
  latencyMs: number;
  /** The first bytes of the answer, as text. */
  excerpt: string | null;
  error: string | null;
}

export interface DeliveryClientOptions {
  urlGuard: UrlGuard;
  /** Whole-request deadline. */
  timeoutMs?: number;
  /** Most bytes read from an answer before the rest is dropped. */
  maxResponseBytes?: number;
  /** Most bytes of an answer kept in the attempt log. */
  excerptBytes?: number;
  /** Connections per receiver origin. */
  connectionsPerOrigin?: number;
}

// A receiver should acknowledge and work later (the Standard Webhooks advice); 10 s covers a slow
// one, and bounds how long a hung endpoint holds one of the runner's few worker slots.
export const DEFAULT_TIMEOUT_MS = 10_000;
// Only the status decides; a receiver answering with a large page must not cost memory.
const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024;
// Enough of an error page to tell what went wrong, without bloating the attempt log.
const DEFAULT_EXCERPT_BYTES = 1024;
// FIFO keys already serialise each conversation; this bounds parallel requests to one receiver.
const DEFAULT_CONNECTIONS = 10;
// Idle sockets are kept this long for the next event (receivers commonly close theirs after 60 s+).
const KEEP_ALIVE_MS = 30_000;
// A gateway delivering to thousands of origins closes the pools it has not used for a while.
const POOL_IDLE_CLOSE_MS = 5 * 60_000;
const SWEEP_EVERY_MS = 60_000;

interface PoolEntry {
  pool: Pool;
  lastUsed: number;
}

export class DeliveryClient {
  readonly #guard: UrlGuard;
  readonly #timeoutMs: number;
  readonly #maxResponseBytes: number;
  readonly #excerptBytes: number;
  readonly #connections: number;
  readonly #pools = new Map<string, PoolEntry>();
  #lastSweep = Date.now();
  #closed = false;

  constructor(options: DeliveryClientOptions) {
    this.#guard = options.urlGuard;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    this.#excerptBytes = options.excerptBytes ?? DEFAULT_EXCERPT_BYTES;
    this.#connections = options.connectionsPerOrigin ?? DEFAULT_CONNECTIONS;
  }

  async send(req: OutgoingRequest): Promise<AttemptResult> {
    const started = performance.now();
    const elapsed = () => Math.max(0, Math.round(performance.now() - started));
    let url: URL;
    try {
      url = this.#guard.checkSyntax(req.url);
    } catch (err) {
      const message = isGatewayError(err) ? `URL not allowed: ${String(err.details.reason ?? err.message)}` : (err as Error).message;
      return { ok: false, statusCode: null, latencyMs: elapsed(), excerpt: null, error: message };
    }
    if (this.#closed) return { ok: false, statusCode: null, latencyMs: 0, excerpt: null, error: 'the delivery client is closed' };
    const pool = this.#poolFor(url.origin);
    let response: Dispatcher.ResponseData;
    try {
      response = await pool.request({
        path: `${url.pathname}${url.search}`,
        method: req.method,
        headers: req.headers,
        body: req.body,
        signal: AbortSignal.timeout(this.#timeoutMs),
        headersTimeout: this.#timeoutMs,
        bodyTimeout: this.#timeoutMs,
      });
    } catch (err) {
      return { ok: false, statusCode: null, latencyMs: elapsed(), excerpt: null, error: describeError(err, this.#timeoutMs) };
    }
    let excerpt: string | null = null;
    let readError: string | null = null;
    try {
      excerpt = await this.#readExcerpt(response.body);
    } catch (err) {
      readError = describeError(err, this.#timeoutMs);
    }
    const ok = response.statusCode >= 200 && response.statusCode < 300;
    return { ok, statusCode: response.statusCode, latencyMs: elapsed(), excerpt, error: ok ? null : (readError ?? `HTTP ${response.statusCode}`) };
  }

  /** Reads up to the cap; a longer answer is cut off (and its connection dropped), never buffered. */
  async #readExcerpt(body: Dispatcher.ResponseData['body']): Promise<string | null> {
    const chunks: Buffer[] = [];
    let kept = 0;
    let read = 0;
    for await (const chunk of body as AsyncIterable<Buffer>) {
      read += chunk.length;
      if (kept < this.#excerptBytes) {
        const part = chunk.subarray(0, this.#excerptBytes - kept);
        chunks.push(part);
        kept += part.length;
      }
      if (read >= this.#maxResponseBytes) break;
    }
    if (kept === 0) return null;
    return Buffer.concat(chunks).toString('utf8');
  }

  #poolFor(origin: string): Pool {
    const now = Date.now();
    if (now - this.#lastSweep > SWEEP_EVERY_MS) this.#sweep(now);
    let entry = this.#pools.get(origin);
    if (!entry) {
      entry = {
        pool: new Pool(origin, {
          connections: this.#connections,
          keepAliveTimeout: KEEP_ALIVE_MS,
          // The guard's lookup runs inside net.connect: the addresses checked are the ones connected to.
          connect: { lookup: this.#guard.lookup, timeout: this.#timeoutMs },
        }),
        lastUsed: now,
      };
      this.#pools.set(origin, entry);
    }
    entry.lastUsed = now;
    return entry.pool;
  }

  #sweep(now: number): void {
    this.#lastSweep = now;
    for (const [origin, entry] of this.#pools) {
      if (now - entry.lastUsed > POOL_IDLE_CLOSE_MS) {
        this.#pools.delete(origin);
        entry.pool.close().catch(() => undefined);
      }
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    const pools = [...this.#pools.values()].map((e) => e.pool);
    this.#pools.clear();
    await Promise.all(pools.map((p) => p.destroy().catch(() => undefined)));
  }
}

function describeError(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; code?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError' || e.name === 'AbortError' || e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_BODY_TIMEOUT') {
    return `no answer within ${timeoutMs} ms`;
  }
  if (e.code === 'URL_NOT_ALLOWED' || e.cause?.code === 'URL_NOT_ALLOWED') return e.message ?? e.cause?.message ?? 'URL not allowed';
  const code = e.code ?? e.cause?.code;
  const message = e.message ?? String(err);
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}
