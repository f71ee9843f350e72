/**
 * FIFO keys: jobs sharing a key run one at a time, oldest first.
 *
 * The claim only takes a keyed job when no older job with its key is live (pending, running or
 * waiting); that check alone keeps the order. Parking is what keeps it fast: a job enqueued behind
 * a live job of its key is stored as `waiting`, outside the ready index, so a conversation with a
 * long backlog (an endpoint down for a day) costs the claim nothing. When a keyed job leaves the
 * live states (done or dead) the oldest waiting job of its key becomes `pending`.
 *
 * On PostgreSQL an enqueue and a finish may run at the same time in different processes: the
 * finish could miss a `waiting` row that is not committed yet and leave it parked for ever. So an
 * enqueue holds a shared advisory lock on each key it parks behind and a finish an exclusive one
 * on each key it releases, both until commit: a finish waits for enqueues in flight on its keys,
 * and an enqueue that starts after a finish sees its result. SQLite runs one writer at a time.
 */
import { sql } from 'kysely';
import type { RawBuilder } from 'kysely';
import type { Db, Engine } from '../store/db.js';
import { LIVE_STATES } from './job.js';

/** The live states, written exactly as in the `jobs_key_live` index predicate so SQLite uses it. */
export const LIVE_STATES_SQL = sql.raw(`(${LIVE_STATES.map((state) => `'${state}'`).join(', ')})`);

/** `pending`, or `waiting` when an older live job holds the key (evaluated by the insert itself). */
export function initialStateFor(key: string): RawBuilder<string> {
  return sql<string>`case when exists (select 1 from jobs o where o.key = ${key} and o.key is not null and o.state in ${LIVE_STATES_SQL}) then 'waiting' else 'pending' end`;
}

/**
 * PostgreSQL only: takes transaction-scoped advisory locks on the keys, in one consistent order
 * (by lock id) so two lockers never wait on each other in a circle.
 */
export async function lockKeys(trx: Db, engine: Engine, keys: readonly string[], mode: 'shared' | 'exclusive'): Promise<void> {
  if (engine !== 'postgres' || keys.length === 0) return;
  const fn = sql.raw(mode === 'shared' ? 'pg_advisory_xact_lock_shared' : 'pg_advisory_xact_lock');
  await sql`select count(${fn}(h)) from (select distinct hashtextextended(k, 0) as h from unnest(cast(${[...keys]} as text[])) as t(k) order by h) as l`.execute(trx);
}

/**
 * A subquery with one text column, `value`, one row per item, bound as a single parameter: the
 * statement's text stays the same whatever the number of items, so it is cheap to prepare.
 */
export function textRows(engine: Engine, values: readonly string[]): RawBuilder<{ value: string }> {
  return engine === 'postgres'
    ? sql`select t.value from unnest(cast(${[...values]} as text[])) as t(value)`
    : sql`select t.value from json_each(${JSON.stringify(values)}) as t`;
}

/** Makes the oldest waiting job of each key pending; returns how many moved. */
export async function promoteNext(trx: Db, engine: Engine, keys: readonly string[], now: number): Promise<number> {
  if (keys.length === 0) return 0;
  const result = await sql`update jobs set state = 'pending', updated_at = ${now} where state = 'waiting' and id in (
      select (select o.id from jobs o where o.key = k.value and o.key is not null and o.state in ${LIVE_STATES_SQL} and o.state = 'waiting'
              order by o.id limit 1)
      from (${textRows(engine, keys)}) as k)`.execute(trx);
  return Number(result.numAffectedRows ?? 0);
}
