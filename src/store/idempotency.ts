/**
 * Idempotency keys: the first response to a request made with an `Idempotency-Key`, kept so a
 * repeat of the same request returns it instead of acting twice. One row per (account, key); the
 * primary key is what stops two concurrent duplicates from both acting.
 */
import type { Db } from './db.js';

export interface IdempotencyRecord {
  account_id: string;
  key: string;
  request_hash: string;
  status_code: number | null;
  response: string | null;
  created_at: number;
}

export async function getIdempotencyRecord(db: Db, accountId: string, key: string): Promise<IdempotencyRecord | undefined> {
  return db.selectFrom('idempotency_keys').selectAll().where('account_id', '=', accountId).where('key', '=', key).executeTakeFirst();
}

/**
 * Inserts the record unless the key is taken; returns whether this call inserted it. Run inside
 * the transaction that does the work: on PostgreSQL a concurrent duplicate waits on the unique
 * index until the first commits, then finds the key taken.
 */
export async function insertIdempotencyRecord(db: Db, record: IdempotencyRecord): Promise<boolean> {
  const result = await db
    .insertInto('idempotency_keys')
    .values(record)
    .onConflict((oc) => oc.columns(['account_id', 'key']).doNothing())
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0n) > 0;
}

/** Removes one expired record so its key can be used again. */
export async function deleteExpiredIdempotencyRecord(db: Db, accountId: string, key: string, createdBefore: number): Promise<void> {
  await db.deleteFrom('idempotency_keys').where('account_id', '=', accountId).where('key', '=', key).where('created_at', '<', createdBefore).execute();
}
