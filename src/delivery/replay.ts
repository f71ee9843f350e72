/**
 * Sending events again: one event to where it went (redeliver), or an endpoint's events since a
 * time (replay). Each makes new deliveries (the old ones and their attempts stay as history) on
 * the same FIFO keys as live events, and the receiver sees the same `webhook-id` again, so it
 * can tell a replay from a new event.
 */
import { GatewayError } from '../domain/errors.js';
import type { Db } from '../store/db.js';
import type { JobQueue } from '../jobs/queue.js';
import { getEvent, listEvents } from '../store/events.js';
import { getEndpoint, getEndpointById } from '../store/endpoints.js';
import type { Endpoint } from '../store/endpoints.js';
import { eventIdsDeliveredOrInFlight, listDeliveriesForEvent } from '../store/deliveries.js';
import type { EventRow } from '../store/schema.js';
import { createDeliveries, orderScope, targetWants, urlHash } from './fanout.js';
import type { PlannedDelivery } from './fanout.js';

/**
 * Redelivers one event: to the given endpoint, or else to every endpoint and callback URL it was
 * delivered to before. Returns the new delivery ids.
 */
export async function redeliverEvent(trx: Db, queue: JobQueue, accountId: string, eventId: string, opts: { endpointId?: string; now: number }): Promise<string[]> {
  const event = await getEvent(trx, accountId, eventId);
  if (!event) throw new GatewayError('NOT_FOUND', { resource: 'event' });
  const scope = orderScope(event);
  const planned: PlannedDelivery[] = [];
  if (opts.endpointId !== undefined) {
    const endpoint = await getEndpoint(trx, accountId, opts.endpointId);
    if (!endpoint) throw new GatewayError('NOT_FOUND', { resource: 'endpoint' });
    assertEnabled(endpoint);
    planned.push({ endpointId: endpoint.id, key: `deliver:${endpoint.id}:${scope}` });
  } else {
    const seen = new Set<string>();
    for (const d of await listDeliveriesForEvent(trx, accountId, event.id)) {
      const id = `${d.endpoint_id} ${d.url ?? ''}`;
      if (seen.has(id)) continue;
      seen.add(id);
      if (d.url !== null) {
        planned.push({ endpointId: d.endpoint_id, key: `deliver:${d.endpoint_id}:${scope}:${urlHash(d.url)}`, url: d.url, method: d.method ?? 'POST', format: d.format ?? 'native' });
        continue;
      }
      const endpoint = await getEndpointById(trx, d.endpoint_id);
      // Endpoints deleted or disabled since are skipped: enable one and name it to send there.
      if (!endpoint || endpoint.deleted_at !== null || endpoint.enabled !== 1) continue;
      planned.push({ endpointId: endpoint.id, key: `deliver:${endpoint.id}:${scope}` });
    }
  }
  return createDeliveries(trx, queue, accountId, event.id, planned, opts.now);
}

// One replay request resends at most this many events, so a request stays bounded in time and in
// transaction size; the answer says where to continue.
export const MAX_REPLAY_EVENTS = 10_000;
// Events per transaction while replaying: short transactions keep SQLite's one writer available.
const REPLAY_CHUNK = 500;

export interface ReplayResult {
  /** Events given a new delivery. */
  replayed: number;
  /** When more events remain: the `after` to pass to continue. */
  next_after: string | null;
}

/**
 * Resends to an endpoint the events since `since` (until `until`) that it wants, or only those
 * it never got (`onlyFailed`: every delivery died, or none was made while it was disabled).
 * Runs in chunks, each its own transaction.
 */
export async function replayEndpoint(
  queue: JobQueue,
  accountId: string,
  endpointId: string,
  opts: { since: number; until: number; onlyFailed?: boolean; after?: string; now: number },
): Promise<ReplayResult> {
  const db = queue.store.db;
  const endpoint = await getEndpoint(db, accountId, endpointId);
  if (!endpoint) throw new GatewayError('NOT_FOUND', { resource: 'endpoint' });
  assertEnabled(endpoint);
  let after = opts.after;
  let replayed = 0;
  let scanned = 0;
  for (;;) {
    const batch: EventRow[] = await listEvents(db, accountId, {
      since: opts.since,
      until: opts.until,
      after,
      limit: REPLAY_CHUNK,
      ...(endpoint.sender_id !== null ? { senderId: endpoint.sender_id } : {}),
    });
    if (batch.length === 0) return { replayed, next_after: null };
    const skip = opts.onlyFailed ? await eventIdsDeliveredOrInFlight(db, endpoint.id, batch.map((e) => e.id)) : null;
    const wanted = batch.filter((e) => targetWants(endpoint, e.type, e.sender_id) && !skip?.has(e.id));
    await queue.transaction(async (trx) => {
      for (const e of wanted) await createDeliveries(trx, queue, accountId, e.id, [{ endpointId: endpoint.id, key: `deliver:${endpoint.id}:${orderScope(e)}` }], opts.now);
    });
    replayed += wanted.length;
    scanned += batch.length;
    after = batch[batch.length - 1]?.id;
    if (batch.length < REPLAY_CHUNK) return { replayed, next_after: null };
    if (scanned >= MAX_REPLAY_EVENTS) return { replayed, next_after: after ?? null };
  }
}

function assertEnabled(endpoint: Endpoint): void {
  if (endpoint.enabled !== 1) {
    throw new GatewayError('CONFLICT', { reason: 'the endpoint is disabled; enable it first (POST /v1/endpoints/{id}/enable)', endpoint_id: endpoint.id });
  }
}
