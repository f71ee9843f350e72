/**
 * Fan-out: an event is stored once and gets one delivery (and one `deliver` job) per endpoint that
 * wants it, all in the caller's transaction, so an event and its deliveries commit together.
 *
 * Job keys keep order: `deliver:<endpoint>:<conversation | sender | 'account'>` runs one job at a
 * time, oldest first, so a conversation's events reach an endpoint in order even while it fails
 * (a later event waits behind the failing one). A per-message callback's key adds a hash of its
 * URL, so one broken callback URL does not hold back the callbacks of other messages.
 *
 * Cheap by design (the inbound path emits for every message): one insert for the event, one
 * indexed read of the account's endpoints, one multi-row insert of deliveries and one of jobs.
 */
import { createHash } from 'node:crypto';
import type { EventType } from '../domain/glossary.js';
import { endpointWants } from '../domain/events.js';
import { newId } from '../domain/ids.js';
import type { Db } from '../store/db.js';
import type { JobQueue } from '../jobs/queue.js';
import type { JobSpec } from '../jobs/job.js';
import { insertEvent } from '../store/events.js';
import { ensureSigningEndpoint, listFanOutTargets } from '../store/endpoints.js';
import type { FanOutTarget } from '../store/endpoints.js';
import { insertDeliveries } from '../store/deliveries.js';
import type { DeliveryRow } from '../store/schema.js';

export const DELIVER_JOB = 'deliver';

export interface NewEvent {
  account_id: string;
  type: EventType;
  sender_id?: string | null;
  conversation_id?: string | null;
  message_id?: string | null;
  /** The event's `data`; stored as JSON text and sent as it is stored. */
  data: unknown;
  /** A per-message status callback URL (issue 4): gets a delivery of its own. */
  callback_url?: string | null;
  /** The callback's HTTP method (POST unless told). */
  callback_method?: 'POST' | 'GET';
  /** The callback's format (native unless told; the Twilio dialect asks for its own). */
  callback_format?: string;
  /** Epoch ms; now when absent. */
  created_at?: number;
}

/** The job payload of a delivery. */
export interface DeliverPayload {
  delivery_id: string;
}

/** Stores the event and fans it out; returns the event id. */
export async function emitEvent(trx: Db, queue: JobQueue, event: NewEvent): Promise<string> {
  const now = event.created_at ?? Date.now();
  const id = newId('evt', now);
  const senderId = event.sender_id ?? null;
  await insertEvent(trx, {
    id,
    account_id: event.account_id,
    type: event.type,
    sender_id: senderId,
    conversation_id: event.conversation_id ?? null,
    message_id: event.message_id ?? null,
    payload: JSON.stringify(event.data ?? null),
    created_at: now,
  });
  const targets = (await listFanOutTargets(trx, event.account_id, senderId)).filter((t) => targetWants(t, event.type, senderId));
  const scope = orderScope(event);
  const planned: PlannedDelivery[] = targets.map((t) => ({ endpointId: t.id, key: `deliver:${t.id}:${scope}` }));
  if (event.callback_url) {
    const signing = await ensureSigningEndpoint(trx, event.account_id, now, () => newId('ep', now));
    planned.push({
      endpointId: signing.id,
      key: `deliver:${signing.id}:${scope}:${urlHash(event.callback_url)}`,
      url: event.callback_url,
      method: event.callback_method ?? 'POST',
      format: event.callback_format ?? 'native',
    });
  }
  await createDeliveries(trx, queue, event.account_id, id, planned, now);
  return id;
}

export interface PlannedDelivery {
  endpointId: string;
  key: string;
  url?: string;
  method?: string;
  format?: string;
}

/** Inserts the deliveries of one event and enqueues one `deliver` job each. */
export async function createDeliveries(trx: Db, queue: JobQueue, accountId: string, eventId: string, planned: readonly PlannedDelivery[], now: number): Promise<string[]> {
  if (planned.length === 0) return [];
  const rows: DeliveryRow[] = planned.map((p) => ({
    id: newId('dlv', now),
    account_id: accountId,
    event_id: eventId,
    endpoint_id: p.endpointId,
    status: 'pending',
    attempts: 0,
    last_status_code: null,
    last_error: null,
    next_attempt_at: now,
    delivered_at: null,
    created_at: now,
    updated_at: now,
    url: p.url ?? null,
    method: p.method ?? null,
    format: p.format ?? null,
  }));
  await insertDeliveries(trx, rows);
  // The account's share of the delivery lane: a replay of thousands of its events does not hold back another account's.
  const jobs: JobSpec[] = rows.map((r, i) => ({ kind: DELIVER_JOB, key: planned[i]?.key ?? null, fairKey: accountId, payload: { delivery_id: r.id } satisfies DeliverPayload }));
  await queue.enqueue(trx, jobs);
  return rows.map((r) => r.id);
}

/** What a stored event's deliveries are ordered by. */
export function orderScope(event: { conversation_id?: string | null; sender_id?: string | null }): string {
  return event.conversation_id ?? event.sender_id ?? 'account';
}

export function urlHash(url: string): string {
  // Twelve hex characters tell callback URLs apart within one conversation; not a security boundary.
  return createHash('sha256').update(url).digest('hex').slice(0, 12);
}

/**
 * Whether an endpoint takes an event: account endpoints by their filter; a sender's `inbound`
 * endpoint takes that sender's events except `message.status`, its `status` endpoint only those.
 */
export function targetWants(target: FanOutTarget, type: string, senderId: string | null): boolean {
  switch (target.role) {
    case 'account':
      return endpointWants(parseFilter(target.events), type as EventType);
    case 'inbound':
      return target.sender_id === senderId && type !== 'message.status';
    case 'status':
      return target.sender_id === senderId && type === 'message.status';
    default:
      return false;
  }
}

function parseFilter(events: string | null): string[] | null {
  if (events === null) return null;
  try {
    const parsed = JSON.parse(events) as unknown;
    return Array.isArray(parsed) ? parsed.filter((e): e is string => typeof e === 'string') : null;
  } catch {
    return null;
  }
}
