/**
 * Deliveries: one event on its way to one endpoint (or one per-message callback URL), with every
 * attempt logged. Status: `pending` -> `delivered`, or `failed` (retrying) -> … -> `dead`.
 */
import type { Insertable, Selectable } from 'kysely';
import type { Db } from './db.js';
import type { DeliveriesTable, DeliveryAttemptsTable, DeliveryRow } from './schema.js';

export type DeliveryStatus = 'pending' | 'delivered' | 'failed' | 'dead';
export type NewDelivery = Insertable<DeliveriesTable>;
export type NewDeliveryAttempt = Insertable<DeliveryAttemptsTable>;
export type DeliveryAttemptRow = Selectable<DeliveryAttemptsTable>;

/** Inserts many deliveries in one statement (the fan-out's hot path). */
export async function insertDeliveries(db: Db, rows: NewDelivery[]): Promise<void> {
  if (rows.length === 0) return;
  await db.insertInto('deliveries').values(rows).execute();
}

/** Unscoped, for the delivery job. */
export async function getDeliveryById(db: Db, id: string): Promise<DeliveryRow | undefined> {
  return db.selectFrom('deliveries').selectAll().where('id', '=', id).executeTakeFirst();
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
  await db.insertInto('delivery_attempts').values(rows).execute();
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
  await db
    .updateTable('deliveries')
    .set((eb) => ({
      status: outcome.status,
      attempts: eb('attempts', '+', outcome.addAttempts),
      last_status_code: outcome.lastStatusCode,
      last_error: outcome.lastError,
      next_attempt_at: outcome.nextAttemptAt,
      delivered_at: outcome.deliveredAt,
      updated_at: outcome.now,
    }))
    .where('id', '=', id)
    .execute();
}

/** Ends a delivery without sending (endpoint disabled or deleted, unknown format). */
export async function markDeliveryDead(db: Db, id: string, reason: string, now: number): Promise<void> {
  await db.updateTable('deliveries').set({ status: 'dead', last_error: reason, next_attempt_at: null, updated_at: now }).where('id', '=', id).execute();
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
