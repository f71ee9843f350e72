/**
 * Unroutable events: items for a Page or Instagram account that no account has connected (or an
 * object type the gateway does not route). Kept and listable so an operator can see what arrived.
 */
import type { Selectable } from 'kysely';
import type { Db } from './db.js';
import type { UnroutableEventsTable } from './schema.js';

export type UnroutableEventRow = Selectable<UnroutableEventsTable>;

export interface NewUnroutableEvent {
  batch_id: number;
  object: string;
  entry_id: string;
  /** The item as received, JSON. */
  item: string;
  received_at: number;
}

export async function insertUnroutable(db: Db, rows: readonly NewUnroutableEvent[]): Promise<void> {
  if (rows.length === 0) return;
  await db.insertInto('unroutable_events').values([...rows]).execute();
}

/** Newest last; `entryId` narrows to one Page or Instagram account id. */
export async function listUnroutable(db: Db, opts: { entryId?: string; after?: number; limit: number }): Promise<UnroutableEventRow[]> {
  let q = db.selectFrom('unroutable_events').selectAll();
  if (opts.entryId !== undefined) q = q.where('entry_id', '=', opts.entryId);
  if (opts.after !== undefined) q = q.where('id', '>', opts.after);
  return q.orderBy('id').limit(opts.limit).execute();
}

/** Whether a batch already left its unroutable items (a retried batch must not store them twice). */
export async function hasUnroutableForBatch(db: Db, batchId: number, entryId: string): Promise<boolean> {
  const row = await db
    .selectFrom('unroutable_events')
    .select('id')
    .where('batch_id', '=', batchId)
    .where('entry_id', '=', entryId)
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}
