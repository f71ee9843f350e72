/**
 * The `deliver` job: one event to one endpoint (or per-message callback URL).
 *
 * One run is one attempt: the primary URL, and when it fails the fallback URL at once. Both are
 * logged in `delivery_attempts` (status, latency, answer excerpt, error). A 2xx from either is
 * delivered. Otherwise the job is retried on the `deliver` schedule (with jitter, over more than a
 * day), the delivery showing `failed` and its next attempt time, until the last try makes it
 * `dead`. The FIFO key makes later events of the conversation wait behind a failing one.
 *
 * An endpoint that keeps failing is disabled: `failing_since` marks the first failure of a run
 * (any success clears it), and a failure more than `disableAfterMs` after it disables the endpoint
 * and emits `endpoint.disabled`. Deliveries still queued for a disabled or deleted endpoint end as
 * `dead` without a request; a replay after re-enabling sends them again.
 */
import type { Job, JobHandler } from '../jobs/job.js';
import { PermanentJobError, RetryableJobError } from '../jobs/job.js';
import type { JobQueue } from '../jobs/queue.js';
import { nextRunAt } from '../jobs/schedule.js';
import type { EndpointDisabledData } from '../domain/events.js';
import type { Store } from '../store/db.js';
import type { SecretBox } from '../store/secrets.js';
import type { UrlGuard } from '../net/url-guard.js';
import { getEventById } from '../store/events.js';
import { clearEndpointFailing, disableEndpoint, getEndpointById, markEndpointFailing } from '../store/endpoints.js';
import type { Endpoint } from '../store/endpoints.js';
import { getDeliveryById, insertAttempts, markDeliveryDead, recordDeliveryOutcome } from '../store/deliveries.js';
import type { NewDeliveryAttempt } from '../store/deliveries.js';
import type { DeliveryRow, EventRow } from '../store/schema.js';
import { getFormat } from './formats/index.js';
import type { DeliveryMethod } from './formats/index.js';
import { DeliveryClient } from './http.js';
import type { AttemptResult } from './http.js';
import { signingSecretsFor } from './endpoints.js';
import { DELIVER_JOB, emitEvent } from './fanout.js';
import type { DeliverPayload } from './fanout.js';

/** What the delivery job needs; `PipelineContext` has all of it. */
export interface DeliveryContext {
  store: Store;
  queue: JobQueue;
  secrets: SecretBox;
  urlGuard: UrlGuard;
  now(): number;
  logger?: { warn(obj: object, msg?: string): void; info(obj: object, msg?: string): void };
}

export interface DeliveryOptions {
  /** An endpoint failing without a success for this long is disabled. */
  disableAfterMs?: number;
  /** Jitter source, [0, 1). */
  random?: () => number;
  /** The HTTP client (one is made from the URL guard when absent). */
  client?: DeliveryClient;
  /** Request deadline for a client made here. */
  timeoutMs?: number;
}

// Five days of nothing but failures (Svix disables after five days too): long enough to survive a
// long weekend's outage, short enough that a forgotten endpoint stops costing work within a week.
export const DEFAULT_DISABLE_AFTER_MS = 5 * 24 * 60 * 60_000;

export interface Deliverer {
  handler: JobHandler;
  client: DeliveryClient;
  close(): Promise<void>;
}

interface Target {
  url: string;
  method: DeliveryMethod;
  target: 'primary' | 'fallback' | 'callback';
}

export function createDeliverer(ctx: DeliveryContext, options: DeliveryOptions = {}): Deliverer {
  const client = options.client ?? new DeliveryClient({ urlGuard: ctx.urlGuard, timeoutMs: options.timeoutMs });
  const ownsClient = options.client === undefined;
  const disableAfterMs = options.disableAfterMs ?? DEFAULT_DISABLE_AFTER_MS;
  const random = options.random ?? Math.random;
  const db = ctx.store.db;

  async function finishWithoutSending(delivery: DeliveryRow, reason: string): Promise<void> {
    await markDeliveryDead(db, delivery.id, reason, ctx.now());
  }

  const handler: JobHandler = async (job: Job) => {
    const payload = readPayload(job.payload);
    const delivery = await getDeliveryById(db, payload.delivery_id);
    if (!delivery) throw new PermanentJobError(`delivery ${payload.delivery_id} does not exist`);
    if (delivery.status === 'delivered') return;
    const [event, endpoint] = await Promise.all([getEventById(db, delivery.event_id), getEndpointById(db, delivery.endpoint_id)]);
    if (!event || !endpoint) throw new PermanentJobError(`delivery ${delivery.id} lost its event or endpoint`);
    const isCallback = delivery.url !== null;
    if (!isCallback && endpoint.deleted_at !== null) return finishWithoutSending(delivery, 'the endpoint was deleted');
    if (!isCallback && endpoint.enabled !== 1) return finishWithoutSending(delivery, 'the endpoint is disabled');
    const formatName = delivery.format ?? endpoint.format;
    const format = getFormat(formatName);
    if (!format) {
      await finishWithoutSending(delivery, `unknown delivery format ${formatName}`);
      return;
    }

    const secrets = await signingSecretsFor(db, ctx.secrets, endpoint, ctx.now());
    const targets = targetsOf(delivery, endpoint);
    const attempts: NewDeliveryAttempt[] = [];
    let success: AttemptResult | null = null;
    let last: AttemptResult | null = null;
    // The durability barrier: the event and what it tells of are on disk before anyone hears of them.
    await ctx.store.sync?.();
    for (const t of targets) {
      const request = format.build({ event: deliverable(event), url: t.url, method: t.method, secrets, now: ctx.now() });
      const result = await client.send(request);
      attempts.push({
        delivery_id: delivery.id,
        account_id: delivery.account_id,
        url: t.url,
        target: t.target,
        status_code: result.statusCode,
        latency_ms: result.latencyMs,
        response_excerpt: result.excerpt,
        error: result.error,
        at: ctx.now(),
      });
      last = result;
      if (result.ok) {
        success = result;
        break;
      }
    }
    const now = ctx.now();

    if (success) {
      await db.transaction().execute(async (trx) => {
        await insertAttempts(trx, attempts);
        await recordDeliveryOutcome(trx, delivery.id, {
          status: 'delivered',
          addAttempts: 1,
          lastStatusCode: success.statusCode,
          lastError: null,
          nextAttemptAt: null,
          deliveredAt: now,
          now,
        });
        if (!isCallback && endpoint.failing_since !== null) await clearEndpointFailing(trx, endpoint.id);
      });
      return;
    }

    const error = last?.error ?? 'no URL to deliver to';
    const disableNow = !isCallback && endpoint.failing_since !== null && now - endpoint.failing_since >= disableAfterMs;
    const finalTry = disableNow || job.attempts >= job.maxAttempts;
    // The queue's `deliver` schedule: the same one sets the job's max_attempts at enqueue.
    const schedule = ctx.queue.scheduleFor(DELIVER_JOB);
    const retryAt = finalTry ? null : nextRunAt(schedule, job.attempts, now, random);
    await ctx.queue.transaction(async (trx) => {
      await insertAttempts(trx, attempts);
      await recordDeliveryOutcome(trx, delivery.id, {
        status: finalTry ? 'dead' : 'failed',
        addAttempts: 1,
        lastStatusCode: last?.statusCode ?? null,
        lastError: disableNow ? `${error} (endpoint disabled)` : error,
        nextAttemptAt: retryAt,
        deliveredAt: null,
        now,
      });
      if (isCallback) return;
      if (endpoint.failing_since === null) await markEndpointFailing(trx, endpoint.id, now);
      if (disableNow && endpoint.failing_since !== null) await disable(trx, endpoint, endpoint.failing_since, now);
    });
    if (disableNow) return;
    if (finalTry) throw new PermanentJobError(`delivery ${delivery.id} failed on its last try: ${error}`);
    throw new RetryableJobError(`delivery ${delivery.id} failed: ${error}`, { retryAt: retryAt ?? now });
  };

  async function disable(trx: Parameters<typeof emitEvent>[0], endpoint: Endpoint, failingSince: number, now: number): Promise<void> {
    const days = Math.round((now - failingSince) / 86_400_000);
    const reason = `every delivery failed for ${days >= 1 ? `${days} day${days === 1 ? '' : 's'}` : `${Math.round((now - failingSince) / 1000)} seconds`}`;
    if (!(await disableEndpoint(trx, endpoint.id, reason, now))) return;
    const data: EndpointDisabledData = {
      endpoint_id: endpoint.id,
      url: endpoint.url,
      reason,
      disabled_at: new Date(now).toISOString(),
      failing_since: new Date(failingSince).toISOString(),
    };
    await emitEvent(trx, ctx.queue, { account_id: endpoint.account_id, type: 'endpoint.disabled', sender_id: endpoint.sender_id, data, created_at: now });
    ctx.logger?.warn({ account: endpoint.account_id, endpoint: endpoint.id, failing_since: failingSince }, 'endpoint disabled after failing continuously');
  }

  return {
    handler,
    client,
    async close() {
      if (ownsClient) await client.close();
    },
  };
}

function readPayload(payload: unknown): DeliverPayload {
  const value = typeof payload === 'string' ? (JSON.parse(payload) as unknown) : payload;
  if (typeof value === 'object' && value !== null && typeof (value as DeliverPayload).delivery_id === 'string') return value as DeliverPayload;
  throw new PermanentJobError('a deliver job needs {delivery_id}');
}

function asMethod(method: string | null | undefined): DeliveryMethod {
  return method?.toUpperCase() === 'GET' ? 'GET' : 'POST';
}

function targetsOf(delivery: DeliveryRow, endpoint: Endpoint): Target[] {
  if (delivery.url !== null) return [{ url: delivery.url, method: asMethod(delivery.method), target: 'callback' }];
  const out: Target[] = [{ url: endpoint.url, method: asMethod(endpoint.method), target: 'primary' }];
  if (endpoint.fallback_url) out.push({ url: endpoint.fallback_url, method: asMethod(endpoint.fallback_method), target: 'fallback' });
  return out;
}

function deliverable(event: EventRow) {
  return {
    id: event.id,
    type: event.type,
    account_id: event.account_id,
    sender_id: event.sender_id,
    conversation_id: event.conversation_id,
    message_id: event.message_id,
    payload: event.payload,
    created_at: Number(event.created_at),
  };
}
