/**
 * Removing expired rows a batch at a time (housekeeping): the oldest `limit` rows whose time column
 * is before the cut-off, found through that column's index and deleted by their key. A row value
 * (`(a, b) in (select a, b ...)`) names them on both engines; a delete with a limit of its own is not
 * portable.
 */
import { sql } from 'kysely';
import type { Db } from './db.js';

/** The tables housekeeping empties, with their keys and the column their age is read from. */
export const EXPIRING = {
  idempotency_keys: { key: ['account_id', 'key'], time: 'created_at' },
  oauth_states: { key: ['state'], time: 'expires_at' },
  inbound_item_keys: { key: ['sender_id', 'key'], time: 'created_at' },
} as const;

export type ExpiringTable = keyof typeof EXPIRING;

/** Deletes up to `limit` rows of `table` older than `before`, oldest first; returns how many went. */
export async function deleteExpiredBatch(db: Db, table: ExpiringTable, before: number, limit: number): Promise<number> {
  const { key, time } = EXPIRING[table];
  const columns = sql.join(key.map((k) => sql.ref(k)));
  const result = await sql`delete from ${sql.table(table)} where (${columns}) in (select ${columns} from ${sql.table(table)} where ${sql.ref(time)} < ${before} order by ${sql.ref(time)} limit ${limit})`.execute(db);
  return Number(result.numAffectedRows ?? 0n);
}
