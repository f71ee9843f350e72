/**
 * Inbound batches: each webhook POST from Meta exactly as received, written before anything is
 * parsed. The `inbound.batch` job reads one back, processes it and records the outcome here.
 */
import { compiled } from './compiled.js';
import type { Db } from './db.js';
import type { InboundBatchesTable } from './schema.js';
import type { Selectable } from 'kysely';

export type InboundBatchRow = Selectable<InboundBatchesTable>;

/** Inserts the bodies in one statement and returns their ids in the same order. */
export async function insertInboundBatches(trx: Db, bodies: readonly string[], receivedAt: number): Promise<number[]> {
  if (bodies.length === 0) return [];
  const rows = await trx
    .insertInto('inbound_batches')
    .values(bodies.map((body) => ({ received_at: receivedAt, body, processed_at: null, error: null })))
    .returning('id')
    .execute();
  // Both engines return the ids of a multi-row insert in the order of the values.
  return rows.map((r) => r.id);
}

// Every inbound job reads its batch and records its outcome: compiled once (`compiled.ts`).
const batchById = compiled((db: Db, id: number) => db.selectFrom('inbound_batches').selectAll().where('id', '=', id));
const markProcessed = compiled((db: Db, id: number, at: number, error: string | null) =>
  db.updateTable('inbound_batches').set({ processed_at: at, error }).where('id', '=', id),
);

export async function getInboundBatch(db: Db, id: number): Promise<InboundBatchRow | undefined> {
  return batchById.first(db, id);
}

/** Records the outcome: `error` lists what failed (null when every item went through). */
export async function markInboundBatchProcessed(db: Db, id: number, at: number, error: string | null): Promise<void> {
  await markProcessed.run(db, id, at, error);
}

export async function listInboundBatches(
  db: Db,
  opts: { after?: number; limit: number; withErrors?: boolean; unprocessed?: boolean },
): Promise<InboundBatchRow[]> {
  let q = db.selectFrom('inbound_batches').selectAll();
  if (opts.after !== undefined) q = q.where('id', '>', opts.after);
  if (opts.withErrors) q = q.where('error', 'is not', null);
  if (opts.unprocessed) q = q.where('processed_at', 'is', null);
  return q.orderBy('id').limit(opts.limit).execute();
}
