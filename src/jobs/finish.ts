/**
 * Recording what handlers did, many jobs per transaction: done jobs are deleted (or marked done
 * when kept), failed ones rescheduled or dead, and the next job of every key released moves up.
 *
 * Every write is fenced by the lease: `locked_by` and `attempts` must still be the ones this
 * worker claimed, so a worker whose lease expired (and whose job another worker took) cannot
 * overwrite the newer run's outcome.
 */
import { sql } from 'kysely';
import type { RawBuilder } from 'kysely';
import type { Db, Engine, Store } from '../store/db.js';
import { lockKeys, promoteNext } from './keys.js';

/** A claimed run of a job: its id and the `attempts` value the claim gave it. */
export interface LeaseRef {
  id: number;
  attempts: number;
}

export type Outcome =
  | (LeaseRef & { type: 'done'; key: string | null })
  | (LeaseRef & { type: 'dead'; key: string | null; error: string })
  /** `counted: false` reschedules without using up a try (the handler asked for it). */
  | (LeaseRef & { type: 'retry'; key: string | null; runAt: number; error: string | null; counted: boolean });

export interface RecordResult {
  /** Outcomes whose lease still held and were written. */
  applied: LeaseRef[];
  /** Outcomes dropped because the lease was lost (the job was claimed again meanwhile). */
  stale: LeaseRef[];
  /** Waiting jobs made pending because their key was released. */
  promoted: number;
}

/**
 * `(id, attempts)` is one of these leases. The pairs travel as one or two array parameters, so
 * the statement's text is the same for any batch size (cheap to prepare, no size limits).
 */
export function leaseMatch(engine: Engine, refs: readonly LeaseRef[]): RawBuilder<unknown> {
  if (engine === 'postgres') {
    const ids = refs.map((r) => r.id);
    const attempts = refs.map((r) => r.attempts);
    return sql`(id, attempts) in (select * from unnest(cast(${ids} as bigint[]), cast(${attempts} as integer[])))`;
  }
  const pairs = JSON.stringify(refs.map((r) => [r.id, r.attempts]));
  return sql`(id, attempts) in (select l.value ->> 0, l.value ->> 1 from json_each(${pairs}) as l)`;
}

/** A write transaction: `BEGIN IMMEDIATE` on SQLite (no lock upgrade half way), a plain one on PostgreSQL. */
export async function writeTransaction<T>(store: Store, fn: (trx: Db) => Promise<T>): Promise<T> {
  if (store.engine === 'postgres') return store.db.transaction().execute(fn);
  return store.db.connection().execute(async (conn) => {
    await sql`begin immediate`.execute(conn);
    try {
      const result = await fn(conn);
      await sql`commit`.execute(conn);
      return result;
    } catch (err) {
      await sql`rollback`.execute(conn).catch(() => undefined);
      throw err;
    }
  });
}

export interface RecordOptions {
  workerId: string;
  outcomes: readonly Outcome[];
  now: number;
  /** Mark done jobs `done` instead of deleting them. */
  keepDone: boolean;
  /** PostgreSQL: the NOTIFY channel, to wake other processes when jobs were promoted. */
  channel?: string;
}

/** Records outcomes in a transaction of its own. */
export async function recordOutcomes(store: Store, options: RecordOptions): Promise<RecordResult> {
  return writeTransaction(store, (trx) => recordOutcomesIn(trx, store.engine, options));
}

/** Records outcomes inside the caller's write transaction (the runner claims in the same one). */
export async function recordOutcomesIn(trx: Db, engine: Engine, options: RecordOptions): Promise<RecordResult> {
  const { workerId, outcomes, now, keepDone } = options;
  const releasing = [...new Set(outcomes.filter((o) => o.type !== 'retry' && o.key !== null).map((o) => o.key as string))];
  await lockKeys(trx, engine, releasing, 'exclusive');
  const applied: LeaseRef[] = [];
  const releasedKeys = new Set<string>();
  const owned = sql`state = 'running' and locked_by = ${workerId}`;

  const done = outcomes.filter((o) => o.type === 'done');
  if (done.length > 0) {
    const where = sql`${owned} and ${leaseMatch(engine, done)}`;
    const { rows } = keepDone
      ? await sql<{ id: number; key: string | null }>`update jobs set state = 'done', locked_until = null, locked_by = null, updated_at = ${now}
          where ${where} returning id, key`.execute(trx)
      : await sql<{ id: number; key: string | null }>`delete from jobs where ${where} returning id, key`.execute(trx);
    collect(rows, done, applied, releasedKeys);
  }

  for (const o of outcomes) {
    if (o.type === 'done') continue;
    const where = sql`${owned} and id = ${o.id} and attempts = ${o.attempts}`;
    const { rows } =
      o.type === 'dead'
        ? await sql<{ id: number; key: string | null }>`update jobs set state = 'dead', last_error = ${o.error},
            locked_until = null, locked_by = null, updated_at = ${now} where ${where} returning id, key`.execute(trx)
        : await sql<{ id: number; key: string | null }>`update jobs set state = 'pending', run_at = ${o.runAt},
            locked_until = null, locked_by = null, updated_at = ${now},
            attempts = ${o.counted ? sql`attempts` : sql`attempts - 1`},
            last_error = ${o.error === null ? sql`last_error` : o.error}
            where ${where} returning id, key`.execute(trx);
    if (o.type === 'dead') collect(rows, [o], applied, releasedKeys);
    else if (rows.length > 0) applied.push({ id: o.id, attempts: o.attempts });
  }

  const promoted = await promoteNext(trx, engine, [...releasedKeys], now);
  if (promoted > 0 && engine === 'postgres' && options.channel) {
    // Other processes may run the promoted jobs' kinds; delivered on commit.
    await sql`select pg_notify(${options.channel}, '')`.execute(trx);
  }
  const appliedIds = new Set(applied.map((a) => a.id));
  const stale = outcomes.filter((o) => !appliedIds.has(o.id)).map((o) => ({ id: o.id, attempts: o.attempts }));
  return { applied, stale, promoted };
}

function collect(rows: ReadonlyArray<{ id: number; key: string | null }>, refs: readonly LeaseRef[], applied: LeaseRef[], keys: Set<string>): void {
  const attemptsOf = new Map(refs.map((r) => [r.id, r.attempts]));
  for (const row of rows) {
    const id = Number(row.id);
    applied.push({ id, attempts: attemptsOf.get(id) ?? 0 });
    if (row.key !== null) keys.add(row.key);
  }
}
