/**
 * Lease extension: while handlers run, their worker pushes `locked_until` forward, all its jobs
 * in one statement. A job missing from the answer was taken by another worker after its lease
 * expired (this process stalled); its handler is told through its abort signal.
 */
import { sql } from 'kysely';
import type { Store } from '../store/db.js';
import { leaseMatch } from './finish.js';
import type { LeaseRef } from './finish.js';

/** Returns the ids whose lease this worker still holds. */
export async function extendLeases(
  store: Store,
  options: { workerId: string; leases: readonly LeaseRef[]; leaseMs: number; now: number },
): Promise<Set<number>> {
  const { workerId, leases, leaseMs, now } = options;
  if (leases.length === 0) return new Set();
  const { rows } = await sql<{ id: number }>`update jobs set locked_until = ${now + leaseMs}
    where state = 'running' and locked_by = ${workerId} and ${leaseMatch(store.engine, leases)} returning id`.execute(store.db);
  return new Set(rows.map((row) => Number(row.id)));
}
