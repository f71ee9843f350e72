/**
 * Deliveries: one event on its way to one endpoint (or one per-message callback URL), with every
 * attempt logged. Status: `pending` -> `delivered`, or `failed` (retrying) -> … -> `dead`.
 */
import { sql } from 'kysely';
import type { Selectable } from 'kysely';
import { allColumns, compiled, compiledInsert } from './compiled.js';
import type { Db } from './db.js';
import type { DeliveriesTable, DeliveryAttemptsTable, DeliveryRow } from './schema.js';

export type DeliveryStatus = 'pending' | 'delivered' | 'failed' | 'dead';
export type NewDeliveryAttempt = Omit<Selectable<DeliveryAttemptsTable>, 'id'>;
export type DeliveryAttemptRow = Selectable<DeliveryAttemptsTable>;

// An event and each of its attempts are a few rows: one compiled statement run per row costs less
// than building a multi-row statement for every event (see `compiled.ts`).
const deliveryInsert = compiledInsert(
  'deliveries',
  allColumns<DeliveriesTable>({
    id: true,
    account_id: true,
    event_id: true,
    endpoint_id: true,
    status: true,
    attempts: true,
    last_status_code: true,
    last_error: true,
    next_attempt_at: true,
    delivered_at: true,
    created_at: true,
    updated_at: true,
    url: true,
    method: true,
    format: true,
  }),
);
const attemptInsert = compiledInsert(
  'delivery_attempts',
  allColumns<Omit<DeliveryAttemptsTable, 'id'>>({
    delivery_id: true,
    account_id: true,
    url: true,
    target: true,
    status_code: true,
    latency_ms: true,
    response_excerpt: true,
    error: true,
    at: true,
  }),
);
const deliveryById = compiled((db: Db, id: string) => db.selectFrom('deliveries').selectAll().where('id', '=', id));
const outcomeUpdate = compiled(
  (db: Db, id: string, status: string, addAttempts: number, lastStatusCode: number | null, lastError: string | null, nextAttemptAt: number | null, deliveredAt: number | null, now: number) =>
    db
      .updateTable('deliveries')
      .set({
        status,
        attempts: sql<number>`attempts + ${addAttempts}`,
        last_status_code: lastStatusCode,
        last_error: lastError,
        next_attempt_at: nextAttemptAt,
        delivered_at: deliveredAt,
        updated_at: now,
      })
      .where('id', '=', id),
);
const deadUpdate = compiled((db: Db, id: string, reason: string, now: number) =>
  db.updateTable('deliveries').set({ status: 'dead', last_error: reason, next_attempt_at: null, updated_at: now }).where('id', '=', id),
);

/** Inserts an event's deliveries (the fan-out's hot path); several rows commit together in `db`'s transaction. */
export async function insertDeliveries(db: Db, rows: DeliveryRow[]): Promise<void> {
  if (rows.length === 0) return;
  if (rows.length > 1 && !db.isTransaction) return db.transaction().execute((trx) => insertDeliveries(trx, rows));
  for (const r of rows) await deliveryInsert.run(db, r);
}

/** Unscoped, for the delivery job. */
export async function getDeliveryById(db: Db, id: string): Promise<DeliveryRow | undefined> {
  return deliveryById.first(db, id);
}

export async function listDeliveriesForEvent(db: Db, accountId: string, eventId: string): Promise<DeliveryRow[]> {
  return db.selectFrom('deliveries').selectAll().where('account_id', '=', accountId).where('event_id', '=', eventId).orderBy('id').execute();
}

export async function listAttemptsForDeliveries(db: Db, accountId: string, deliveryIds: readonly string[]): Promise<DeliveryAttemptRow[]> {
  if (deliveryIds.length === 0) return [];
  return db
    .selectFrom('delivery_attempts')
    .selectAll()
    .where('account_id', '=', accountId)
    .where('delivery_id', 'in', [...deliveryIds])
    .orderBy('id')
    .execute();
}

export async function insertAttempts(db: Db, rows: NewDeliveryAttempt[]): Promise<void> {
  if (rows.length === 0) return;
  if (rows.length > 1 && !db.isTransaction) return db.transaction().execute((trx) => insertAttempts(trx, rows));
  for (const r of rows) await attemptInsert.run(db, r);
}

export interface DeliveryOutcome {
  status: DeliveryStatus;
  /** Attempts made by this run of the job (each tries the primary and maybe the fallback). */
  addAttempts: number;
  lastStatusCode: number | null;
  lastError: string | null;
  nextAttemptAt: number | null;
  deliveredAt: number | null;
  now: number;
}

export async function recordDeliveryOutcome(db: Db, id: string, outcome: DeliveryOutcome): Promise<void> {
  const o = outcome;
  await outcomeUpdate.run(db, id, o.status, o.addAttempts, o.lastStatusCode, o.lastError, o.nextAttemptAt, o.deliveredAt, o.now);
}

/** Ends a delivery without sending (endpoint disabled or deleted, unknown format). */
export async function markDeliveryDead(db: Db, id: string, reason: string, now: number): Promise<void> {
  await deadUpdate.run(db, id, reason, now);
}

/**
 * Of these events, those with a delivery to the endpoint that succeeded or is still under way:
 * what a "failed only" replay leaves out (only events whose deliveries all died, or that never
 * had one, as while the endpoint was disabled, are sent again).
 */
export async function eventIdsDeliveredOrInFlight(db: Db, endpointId: string, eventIds: readonly string[]): Promise<Set<string>> {
  if (eventIds.length === 0) return new Set();
  const rows = await db
    .selectFrom('deliveries')
    .select('event_id')
    .where('endpoint_id', '=', endpointId)
    .where('event_id', 'in', [...eventIds])
    .where('status', 'in', ['pending', 'failed', 'delivered'])
    .execute();
  return new Set(rows.map((r) => r.event_id));
}
