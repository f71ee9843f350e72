/**
 * Housekeeping: rows that only matter for a while are removed once they expire.
 * - Idempotency-Key records after 24 hours (the API's contract, `idempotency.ts`): without this the
 *   table keeps every key and its full response for ever.
 * - Facebook Login states of flows never finished, once past their `expires_at`.
 * - The keys of webhook items already forwarded (`inbound_item_keys`) after a week: Meta stops
 *   retrying a delivery long before.
 *
 * Each table is purged oldest first in batches of `batchSize` rows, with a turn of the event loop
 * between batches, so a large backlog (after a long downtime) never holds the loop on SQLite or a
 * long lock on PostgreSQL; one run removes at most `maxBatches` batches and the next run goes on.
 * Every gateway process runs it on a timer (`server.ts`); two processes purging at once delete
 * the same expired rows, which is harmless.
 */
import type { Db } from '../store/db.js';
import { deleteExpiredBatch } from '../store/expiry.js';
import type { ExpiringTable } from '../store/expiry.js';
import { IDEMPOTENCY_TTL_MS } from './idempotency.js';

export interface HousekeepingOptions {
  batchSize?: number;
  maxBatches?: number;
}

/** Rows removed, by table. */
export type HousekeepingResult = Record<ExpiringTable, number>;

/** How long the key of a forwarded webhook item is kept. */
export const INBOUND_ITEM_KEY_TTL_MS = 7 * 24 * 3_600_000;

const DEFAULT_BATCH_SIZE = 500;
const DEFAULT_MAX_BATCHES = 200;

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function inBatches(db: Db, table: ExpiringTable, before: number, batchSize: number, maxBatches: number): Promise<number> {
  let removed = 0;
  for (let batch = 0; batch < maxBatches; batch++) {
    const n = await deleteExpiredBatch(db, table, before, batchSize);
    removed += n;
    if (n < batchSize) break;
    await nextTurn();
  }
  return removed;
}

/** Removes what has expired by `now`; returns how many rows of each kind went. */
export async function purgeExpired(db: Db, now: number, options: HousekeepingOptions = {}): Promise<HousekeepingResult> {
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  const maxBatches = options.maxBatches ?? DEFAULT_MAX_BATCHES;
  // What each table keeps: rows from this time on.
  const keepFrom: HousekeepingResult = {
    idempotency_keys: now - IDEMPOTENCY_TTL_MS,
    oauth_states: now,
    inbound_item_keys: now - INBOUND_ITEM_KEY_TTL_MS,
  };
  const removed = { ...keepFrom };
  for (const table of Object.keys(keepFrom) as ExpiringTable[]) removed[table] = await inBatches(db, table, keepFrom[table], batchSize, maxBatches);
  return removed;
}
