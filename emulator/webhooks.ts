import { createHmac, randomInt } from 'node:crypto';
import { Agent, request } from 'undici';
import type { EmulatorClock } from './clock.js';
import type { IdFactory } from './ids.js';
import { metaStringify } from './meta-json.js';
import type { ResolvedOptions } from './options.js';
import type { App, EmulatorState, VerificationResult } from './state.js';

/**
 * Webhook delivery as Meta does it: events for one app collected for a few milliseconds into one
 * POST (one `entry` per Page or Instagram account, several items per entry), signed with the app
 * secret over the exact bytes sent, retried with backoff when the call fails or is slow, in order
 * per Page: a Page's later events wait behind its failing batch; other Pages keep flowing.
 */

export type WebhookObject = 'page' | 'instagram';

export interface WebhookEvent {
  /** The Page whose subscriptions decide who receives the event. */
  pageId: string;
  object: WebhookObject;
  /** `entry[].id`: the Page id, or the Instagram account id for `object: "instagram"`. */
  entryId: string;
  /** The subscription field the event belongs to (messages, message_echoes, ...). */
  field: string;
  item: Record<string, unknown>;
  /** Put under `standby[]` instead of `messaging[]`. */
  standby?: boolean;
}

export interface DeliveryAttempt {
  id: number;
  batch_id: string;
  app_id: string;
  url: string | null;
  object: WebhookObject | 'raw';
  attempt: number;
  started_at: number;
  duration_ms: number;
  status: number | null;
  error: string | null;
  ok: boolean;
  gave_up: boolean;
  entries: number;
  items: number;
  body: string;
  response_body: string | null;
}

interface QueuedEvent extends WebhookEvent {
  queuedAt: number;
}

interface AppQueue {
  pending: QueuedEvent[];
  /** Entry ids (Pages or Instagram accounts) with a batch in flight or waiting to be retried. */
  inflight: Set<string>;
  timer: NodeJS.Timeout | null;
  paused: boolean;
}

interface Batch {
  id: string;
  appId: string;
  object: WebhookObject | 'raw';
  body: string;
  entryIds: string[];
  entries: number;
  items: number;
}

// Meta puts up to 1000 entries in one POST.
const MAX_ENTRIES_PER_BATCH = 1000;
// Memory guard: the attempt log keeps the most recent attempts only.
const MAX_ATTEMPTS_KEPT = 5000;
// Enough of a receiver's answer to debug it without keeping whole pages in memory.
const MAX_RESPONSE_BODY_KEPT = 2000;

export class WebhookDispatcher {
  private readonly queues = new Map<string, AppQueue>();
  private readonly attemptLog: DeliveryAttempt[] = [];
  private nextAttemptId = 1;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly deliveries = new Set<Promise<void>>();
  private abort = new AbortController();
  private readonly agent = new Agent({ keepAliveTimeout: 4_000, connections: 32 });
  private closed = false;

  constructor(
    private readonly state: EmulatorState,
    private readonly clock: EmulatorClock,
    private readonly ids: IdFactory,
    private readonly options: ResolvedOptions,
  ) {}

  /** Queues an event for every app subscribed to its field on its Page; returns how many apps. */
  publish(event: WebhookEvent): number {
    const page = this.state.pages.get(event.pageId);
    if (!page || this.closed) return 0;
    const field = event.standby ? 'standby' : event.field;
    let apps = 0;
    for (const [appId, fields] of page.subscriptions) {
      if (!fields.has(field)) continue;
      const app = this.state.apps.get(appId);
      if (!app?.callbackUrl) {
        this.options.logger(`webhook: app ${appId} has no callback URL; ${event.field} event for ${event.entryId} dropped`);
        continue;
      }
      const queue = this.queue(appId);
      queue.pending.push({ ...event, queuedAt: Date.now() });
      apps++;
      this.schedule(appId, queue, this.options.batchWindowMs);
    }
    return apps;
  }

  /** Sends a body exactly as given (signed), outside batching, with the usual retries. */
  sendRaw(appId: string, body: string): string {
    const batch: Batch = { id: this.ids.opaque(8), appId, object: 'raw', body, entryIds: [], entries: 0, items: 0 };
    this.track(this.deliver(batch));
    return batch.id;
  }

  pause(appId: string): void {
    this.queue(appId).paused = true;
  }

  resume(appId: string): void {
    const queue = this.queue(appId);
    queue.paused = false;
    this.schedule(appId, queue, 0);
  }

  pending(appId: string): number {
    return this.queues.get(appId)?.pending.length ?? 0;
  }

  attempts(filter: { appId?: string; limit?: number } = {}): DeliveryAttempt[] {
    const matching = this.attemptLog.filter((attempt) => filter.appId === undefined || attempt.app_id === filter.appId);
    return filter.limit === undefined ? matching : matching.slice(-filter.limit);
  }

  clearAttempts(): void {
    this.attemptLog.length = 0;
  }

  /** Meta's verification handshake against the app's callback URL. */
  async verify(app: App): Promise<VerificationResult> {
    if (!app.callbackUrl) return { ok: false, error: 'no callback URL', at: this.clock.now() };
    const challenge = String(randomInt(1, 2 ** 31 - 1));
    let url: URL;
    try {
      url = new URL(app.callbackUrl);
    } catch {
      return { ok: false, error: 'callback URL is not a valid URL', at: this.clock.now() };
    }
    url.searchParams.set('hub.mode', 'subscribe');
    url.searchParams.set('hub.challenge', challenge);
    url.searchParams.set('hub.verify_token', app.verifyToken);
    try {
      const response = await request(url, {
        method: 'GET',
        dispatcher: this.agent,
        headers: { 'user-agent': 'facebookplatform/1.0 (+http://developers.facebook.com)' },
        signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.options.webhookTimeoutMs)]),
      });
      const text = await response.body.text();
      const ok = response.statusCode === 200 && text === challenge;
      const result: VerificationResult = { ok, status: response.statusCode, at: this.clock.now() };
      if (!ok) result.error = response.statusCode === 200 ? 'the answer did not echo hub.challenge' : `HTTP ${response.statusCode}`;
      return result;
    } catch (error) {
      return { ok: false, error: describe(error), at: this.clock.now() };
    }
  }

  /** Drops every queued event and stops retries (the log is kept). */
  reset(): void {
    for (const queue of this.queues.values()) if (queue.timer) clearTimeout(queue.timer);
    this.queues.clear();
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.abort.abort();
    this.abort = new AbortController();
    this.attemptLog.length = 0;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.reset();
    await Promise.allSettled([...this.deliveries]);
    await this.agent.close();
  }

  private queue(appId: string): AppQueue {
    let queue = this.queues.get(appId);
    if (!queue) {
      queue = { pending: [], inflight: new Set(), timer: null, paused: false };
      this.queues.set(appId, queue);
    }
    return queue;
  }

  private schedule(appId: string, queue: AppQueue, delayMs: number): void {
    if (queue.paused || queue.timer || this.closed) return;
    queue.timer = setTimeout(() => {
      queue.timer = null;
      this.flush(appId, queue);
    }, delayMs);
  }

  private flush(appId: string, queue: AppQueue): void {
    if (queue.paused || this.closed) return;
    for (;;) {
      const first = queue.pending.find((event) => !queue.inflight.has(event.entryId));
      if (!first) return;
      const taken: QueuedEvent[] = [];
      const entries = new Set<string>();
      const rest: QueuedEvent[] = [];
      for (const event of queue.pending) {
        const eligible =
          event.object === first.object &&
          !queue.inflight.has(event.entryId) &&
          (entries.has(event.entryId) || entries.size < MAX_ENTRIES_PER_BATCH);
        if (eligible) {
          entries.add(event.entryId);
          taken.push(event);
        } else {
          rest.push(event);
        }
      }
      const entryOrder = [...entries];
      queue.pending = rest;
      for (const entryId of entryOrder) queue.inflight.add(entryId);
      const batch = this.buildBatch(appId, first.object, entryOrder, taken);
      this.track(
        this.deliver(batch).finally(() => {
          for (const entryId of entryOrder) queue.inflight.delete(entryId);
          if (queue.pending.length > 0) this.schedule(appId, queue, 0);
        }),
      );
    }
  }

  private buildBatch(appId: string, object: WebhookObject, entryOrder: string[], events: QueuedEvent[]): Batch {
    const time = this.clock.now();
    const byEntry = new Map<string, { messaging: Array<Record<string, unknown>>; standby: Array<Record<string, unknown>> }>();
    for (const entryId of entryOrder) byEntry.set(entryId, { messaging: [], standby: [] });
    for (const event of events) byEntry.get(event.entryId)?.[event.standby ? 'standby' : 'messaging'].push(event.item);
    const entries = entryOrder.map((entryId) => {
      const lists = byEntry.get(entryId) ?? { messaging: [], standby: [] };
      const entry: Record<string, unknown> = { id: entryId, time };
      if (lists.messaging.length > 0) entry.messaging = lists.messaging;
      if (lists.standby.length > 0) entry.standby = lists.standby;
      return entry;
    });
    return {
      id: this.ids.opaque(8),
      appId,
      object,
      body: metaStringify({ object, entry: entries }),
      entryIds: entryOrder,
      entries: entries.length,
      items: events.length,
    };
  }

  private track(delivery: Promise<void>): void {
    this.deliveries.add(delivery);
    void delivery.finally(() => this.deliveries.delete(delivery));
  }

  private async deliver(batch: Batch): Promise<void> {
    const firstAttemptAt = Date.now();
    const signal = this.abort.signal;
    for (let attempt = 1; ; attempt++) {
      if (signal.aborted) return;
      const record = await this.attempt(batch, attempt);
      if (record.ok || signal.aborted) return;
      const delays = this.options.webhookRetryDelaysMs;
      const delay = delays[Math.min(attempt - 1, delays.length - 1)] ?? 0;
      if (Date.now() + delay - firstAttemptAt > this.options.webhookGiveUpMs) {
        record.gave_up = true;
        this.options.logger(`webhook: batch ${batch.id} for app ${batch.appId} dropped after ${attempt} attempts`);
        return;
      }
      await this.sleep(delay, signal);
    }
  }

  private async attempt(batch: Batch, attempt: number): Promise<DeliveryAttempt> {
    const app = this.state.apps.get(batch.appId);
    const url = app?.callbackUrl ?? null;
    const record: DeliveryAttempt = {
      id: this.nextAttemptId++,
      batch_id: batch.id,
      app_id: batch.appId,
      url,
      object: batch.object,
      attempt,
      started_at: this.clock.now(),
      duration_ms: 0,
      status: null,
      error: null,
      ok: false,
      gave_up: false,
      entries: batch.entries,
      items: batch.items,
      body: batch.body,
      response_body: null,
    };
    this.attemptLog.push(record);
    if (this.attemptLog.length > MAX_ATTEMPTS_KEPT) this.attemptLog.splice(0, this.attemptLog.length - MAX_ATTEMPTS_KEPT);
    const started = Date.now();
    if (!app || url === null) {
      record.error = app ? 'the app has no callback URL' : 'the app no longer exists';
      return record;
    }
    const bytes = Buffer.from(batch.body, 'utf8');
    try {
      const response = await request(url, {
        method: 'POST',
        dispatcher: this.agent,
        body: bytes,
        headers: {
          'content-type': 'application/json',
          'user-agent': 'facebookexternalua',
          'x-hub-signature': `sha1=${createHmac('sha1', app.secret).update(bytes).digest('hex')}`,
          'x-hub-signature-256': `sha256=${createHmac('sha256', app.secret).update(bytes).digest('hex')}`,
        },
        signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.options.webhookTimeoutMs)]),
      });
      const text = await response.body.text();
      record.status = response.statusCode;
      record.response_body = text.slice(0, MAX_RESPONSE_BODY_KEPT);
      record.ok = response.statusCode >= 200 && response.statusCode < 300;
      if (!record.ok) record.error = `HTTP ${response.statusCode}`;
    } catch (error) {
      record.error = isTimeout(error) ? `no answer within ${this.options.webhookTimeoutMs} ms` : describe(error);
    }
    record.duration_ms = Date.now() - started;
    this.options.logger(
      `webhook: ${batch.object} batch ${batch.id} (${batch.entries} entries, ${batch.items} items) -> ${url} attempt ${attempt}: ${record.ok ? record.status : record.error}`,
    );
    return record;
  }

  private sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      const onAbort = () => {
        clearTimeout(timer);
        this.timers.delete(timer);
        resolve();
      };
      this.timers.add(timer);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}

function isTimeout(error: unknown): boolean {
  return error instanceof Error && (error.name === 'TimeoutError' || error.name === 'HeadersTimeoutError');
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as Error & { cause?: unknown }).cause;
    const code = (error as Error & { code?: unknown }).code ?? (cause instanceof Error ? (cause as Error & { code?: unknown }).code : undefined);
    return typeof code === 'string' ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}
