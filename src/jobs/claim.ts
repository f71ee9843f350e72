/**
 * The claim: take up to `limit` ready jobs and mark them running under a lease, in one statement.
 *
 * Ready means `pending` with `run_at <= now`, or `running` with an expired lease (its worker
 * crashed or stalled). A keyed pending job is ready only when no older job with its key is live,
 * including one waiting for a retry in the future: jobs sharing a key run one at a time, oldest
 * first. Expired leases are taken first: they are few and older than anything else.
 *
 * A lane may be read fairly (`ClaimLane.fair`: sends and event deliveries): its jobs carry a tenant,
 * their `fair_key` (the account), and the lane takes one ready job from each tenant in
 * turn, starting after the tenant it served last, then a second from each, and so on; each tenant's
 * jobs oldest first. So a business that queued thousands of messages does not hold back another
 * business's next reply behind all of them: that reply goes with the next free slot. The tenants
 * are found by a skip scan of `jobs_ready (kind, fair_key, run_at, id)` (one index seek each, and
 * no more tenants than the lane has slots: `tenantsInTurn`), and each tenant's ready jobs are the
 * start of its own range of that index.
 * Every other lane reads the `fair_key is null` range of its kinds, oldest first.
 *
 * PostgreSQL: `FOR UPDATE SKIP LOCKED`, so any number of processes claim side by side without
 * waiting on each other or taking the same job. SQLite: one process; the claim is one UPDATE,
 * either alone (a write statement takes the write lock before it reads) or inside the runner's
 * `BEGIN IMMEDIATE` transaction, so nothing runs between the read of ready jobs and their marking.
 */
import { sql } from 'kysely';
import { compiledByShape } from '../store/compiled.js';
import type { Db, Store } from '../store/db.js';
import type { JobRow } from '../store/schema.js';
import { LIVE_STATES_SQL } from './keys.js';

export interface ClaimOptions {
  workerId: string;
  /** Only jobs of these kinds (the ones this worker has handlers for). */
  kinds: readonly string[];
  limit: number;
  leaseMs: number;
  now: number;
  /**
   * Claim order and shares: each lane's ready jobs are taken, oldest first, before the next
   * lane's, up to the lane's own limit and the claim's `limit` in all. Absent: one lane of
   * `kinds`. Jobs with an expired lease come before every lane.
   */
  lanes?: readonly ClaimLane[];
}

export interface ClaimLane {
  kinds: readonly string[];
  limit: number;
  /**
   * Read fairly between tenants (kinds whose jobs carry a `fair_key`), taking turns from the first
   * tenant after `after` in key order (wrapping around): pass the `nextFairAfter` of the last claim.
   * `depth` (default `limit`) is the most jobs read of any one tenant: a claim reads about
   * tenants x depth rows, so with many tenants waiting the caller asks for `limit / tenants` each
   * and claims again if a tenant gave all it was asked for and slots are left.
   */
  fair?: { after: string; depth?: number };
}

/**
 * Where the next fair claim of a lane starts: after the last tenant served in this claim's last
 * round. A claim serves every tenant once in turn, then again, so the tenants served most often
 * (`rounds` times) were served in the last round, and the last of them in turn order is the one.
 */
export function nextFairAfter(after: string, claimed: readonly Pick<JobRow, 'fair_key'>[]): string {
  return lastInTurn(after, servedCounts(claimed));
}

/** How many jobs a claim took of each tenant (jobs without a fair key count as the tenant ''). */
export function servedCounts(claimed: readonly Pick<JobRow, 'fair_key'>[]): Map<string, number> {
  const served = new Map<string, number>();
  for (const row of claimed) served.set(row.fair_key ?? '', (served.get(row.fair_key ?? '') ?? 0) + 1);
  return served;
}

/** `nextFairAfter` from the counts of `servedCounts`. */
export function lastInTurn(after: string, served: ReadonlyMap<string, number>): string {
  const rounds = Math.max(0, ...served.values());
  let last: string | null = null;
  for (const [key, times] of served) {
    if (times < rounds) continue;
    // Turn order: the tenants after `after` in key order, then (wrapping around) those up to it.
    if (last === null || turnBefore(last, key, after)) last = key;
  }
  return last ?? after;
}

function turnBefore(a: string, b: string, after: string): boolean {
  const wrappedA = !(a > after);
  const wrappedB = !(b > after);
  return wrappedA === wrappedB ? a < b : !wrappedA;
}

// The tenants of a fair kind with pending jobs, one index seek each: the first, then each next one.
const firstTenant = (kind: string) =>
  sql`select (select fair_key from jobs where state = 'pending' and kind = ${kind} and fair_key is not null order by fair_key limit 1) as k`;
const nextTenant = (kind: string, t: ReturnType<typeof sql.raw>) =>
  sql`select (select fair_key from jobs where state = 'pending' and kind = ${kind} and fair_key > ${t}.k order by fair_key limit 1) from ${t} where ${t}.k is not null`;

/**
 * The tenants a fair claim reads, in turn order: those after `after` in key order, then (wrapping
 * around) those up to it; at most `cap`, the lane's limit, since a claim serves no more tenants
 * than it has slots. One index seek each, so a claim costs the same with a thousand tenants waiting
 * as with a few dozen: `after` moves on with every claim, and every tenant gets its turn.
 * Two recursive CTEs under the caller's names (`names.after`, then `names.upto`); the caller
 * selects `k` from both.
 */
function tenantsInTurn(kind: string, after: unknown, cap: number, names: { after: ReturnType<typeof sql.raw>; upto: ReturnType<typeof sql.raw> }) {
  const { after: ta, upto: tb } = names;
  const capLit = sql.lit(cap);
  const next = (from: ReturnType<typeof sql>, bound: ReturnType<typeof sql>) =>
    sql`(select fair_key from jobs where state = 'pending' and kind = ${kind} and fair_key > ${from} ${bound} order by fair_key limit 1)`;
  const found = sql`(select count(*) from ${ta} where ${ta}.k is not null)`;
  return [
    sql`${ta}(k, n) as (select ${next(sql`${after}`, sql``)} as k, 1 as n
      union all select ${next(sql`${ta}.k`, sql``)}, ${ta}.n + 1 from ${ta} where ${ta}.k is not null and ${ta}.n < ${capLit})`,
    sql`${tb}(k, n) as (select (select fair_key from jobs where state = 'pending' and kind = ${kind} and fair_key <= ${after} order by fair_key limit 1) as k, 1 as n
        where ${found} < ${capLit}
      union all select ${next(sql`${tb}.k`, sql`and fair_key <= ${after}`)}, ${tb}.n + 1 from ${tb} where ${tb}.k is not null and ${tb}.n + ${found} < ${capLit})`,
  ];
}

/** A claim's statement text depends on these only; its values (times, worker, turns) are arguments. */
interface ClaimShape {
  engine: Store['engine'];
  kinds: readonly string[];
  limit: number;
  lanes: readonly { kinds: readonly string[]; limit: number; fair?: { depth: number } }[];
}

const depthOf = (lane: ClaimLane) => Math.max(1, Math.min(lane.limit, lane.fair?.depth ?? lane.limit));

/**
 * Claim statements, compiled once per shape. Building the claim with Kysely's `sql` templates and
 * compiling it took about 100 µs on the benchmark machine, as long as running it, and a runner
 * claims after nearly every job at low rates (2.5 claims a message at 100 messages/s). The shapes
 * are as many as the limits' combinations (88 in a benchmark run); past 256 the least recently
 * used are dropped, with their prepared statements.
 */
const claimStatement = compiledByShape(
  (key: string) => {
    const shape = JSON.parse(key) as ClaimShape;
    // Arguments: now, locked until, worker id, then each fair lane's `after`, in lane order.
    const fairLanes = shape.lanes.map((l, i) => (l.fair ? i : -1)).filter((i) => i >= 0);
    return {
      arity: 3 + fairLanes.length,
      build: (db: Db, ...args: unknown[]) => {
        const afters: unknown[] = shape.lanes.map(() => undefined);
        fairLanes.forEach((laneIndex, k) => (afters[laneIndex] = args[3 + k]));
        const query = buildClaim(shape, args[0], args[1], args[2], afters);
        return { compile: () => query.compile(db) };
      },
    };
  },
  { maxShapes: 256 },
);

/** `executor`: a write transaction to claim in (the runner records outcomes in the same one), or the database. */
export async function claimJobs(store: Store, options: ClaimOptions, executor: Db = store.db): Promise<JobRow[]> {
  const { workerId, kinds, limit, leaseMs, now } = options;
  const lanes = (options.lanes ?? [{ kinds, limit }]).filter((l) => l.kinds.length > 0 && l.limit > 0);
  if (limit <= 0 || kinds.length === 0 || lanes.length === 0) return [];
  // Limits are written into the text, not bound: SQLite prepares a statement again whenever a
  // bound LIMIT's value differs from the run before (measured: 212 against 81 µs for five jobs).
  // They are small integers from the runner (free slots, a capped lane's room, a fair lane's depth
  // rounded to a power of two), so the texts stay in the hundreds and each is prepared once.
  for (const n of [limit, ...lanes.flatMap((l) => [l.limit, l.fair?.depth ?? l.limit])]) if (!Number.isInteger(n)) throw new Error(`claim limit must be an integer, not ${n}`);
  const shape: ClaimShape = {
    engine: store.engine,
    kinds: [...kinds],
    limit,
    lanes: lanes.map((l) => ({ kinds: [...l.kinds], limit: l.limit, ...(l.fair ? { fair: { depth: depthOf(l) } } : {}) })),
  };
  const afters = lanes.flatMap((l) => (l.fair ? [l.fair.after] : []));
  const rows = await claimStatement(JSON.stringify(shape)).all(executor, now, now + leaseMs, workerId, ...afters);
  return rows.sort((a, b) => a.id - b.id);
}

/** The claim statement of `shape`; `now`, `lockedUntil`, `workerId` and `afters` (by lane) are its values. */
function buildClaim(shape: ClaimShape, now: unknown, lockedUntil: unknown, workerId: unknown, afters: readonly unknown[]) {
  const { engine, kinds, limit, lanes } = shape;
  const kindList = sql.join([...kinds]);
  const lim = sql.lit(limit);
  const expiredLeases = sql`select r.id from jobs r
    where r.state = 'running' and r.locked_until < ${now} and r.kind in (${kindList})
    order by r.locked_until limit ${lim}`;
  // One kind's ready jobs without a tenant, oldest first: the `(kind, null)` range of the
  // `jobs_ready (kind, fair_key, run_at, id)` index.
  // Several kinds are read one range each and merged, not as one `kind in (…)` scan, which would
  // sort every ready job of those kinds (a backlog of thousands) on every claim.
  const keyFree = sql`(j.key is null or not exists (
        select 1 from jobs o where o.key = j.key and o.key is not null and o.state in ${LIVE_STATES_SQL} and o.id < j.id))`;
  const readyOf = (kind: string, n: number) => sql`select j.id, j.run_at from jobs j
    where j.state = 'pending' and j.kind = ${kind} and j.fair_key is null and j.run_at <= ${now} and ${keyFree}
    order by j.run_at, j.id limit ${sql.lit(n)}`;
  // One tenant's ready jobs of a fair kind, oldest first: the start of its range of the index.
  // The depth is written into the text like the limits (bound, it cost 240 µs a claim instead of
  // 10 on a copy of a running gateway's database).
  const tenantReady = (kind: string, tenant: ReturnType<typeof sql.ref>, depth: number) => sql`select j.id, j.run_at from jobs j
    where j.state = 'pending' and j.kind = ${kind} and j.fair_key = ${tenant} and j.run_at <= ${now} and ${keyFree}
    order by j.run_at, j.id limit ${sql.lit(depth)}`;
  // The lane's candidates in turn order: the first ready job of every tenant (those after `after`
  // first, in key order, then the rest), then the second of each, and so on.
  const inTurn = (ready: ReturnType<typeof sql>, after: unknown, n: number) => sql`select id from (
      select id, run_at, tk, row_number() over (partition by tk order by run_at, id) as turn from (${ready}) r
    ) f order by turn, case when tk > ${after} then 0 else 1 end, tk, run_at, id limit ${sql.lit(n)}`;
  const mark = sql`update jobs set state = 'running', locked_until = ${lockedUntil}, locked_by = ${workerId},
    attempts = attempts + 1, updated_at = ${now}`;

  if (engine === 'postgres') {
    // Each kind's range is locked as it is read (`skip locked`: other processes take others).
    const ctes = [sql`expired as (${expiredLeases} for update skip locked)`];
    const laneSelects = lanes.map((lane, i) => {
      const fair = lane.fair === undefined ? undefined : { after: afters[i], depth: lane.fair.depth };
      if (fair) {
        const arms = lane.kinds.map((kind, k) => {
          const names = { after: sql.raw(`tenants_after_${i}_${k}`), upto: sql.raw(`tenants_upto_${i}_${k}`) };
          ctes.push(...tenantsInTurn(kind, fair.after, lane.limit, names));
          return sql`select r.id, r.run_at, t.k as tk from (select k from ${names.after} union all select k from ${names.upto}) t
              cross join lateral (${tenantReady(kind, sql.ref('t.k'), fair.depth)} for update of j skip locked) r where t.k is not null
            union all
            select r.id, r.run_at, '' as tk from (${readyOf(kind, lane.limit)} for update of j skip locked) r`;
        });
        return sql`(${inTurn(sql.join(arms, sql` union all `), fair.after, lane.limit)})`;
      }
      const names = lane.kinds.map((kind, k) => {
        const name = sql.raw(`ready_${i}_${k}`);
        ctes.push(sql`${name} as (${readyOf(kind, lane.limit)} for update of j skip locked)`);
        return name;
      });
      const merged = sql.join(
        names.map((n) => sql`select id, run_at from ${n}`),
        sql` union all `,
      );
      return sql`(select id from (${merged}) lane order by run_at, id limit ${sql.lit(lane.limit)})`;
    });
    return sql<JobRow>`with recursive ${sql.join(ctes)},
        picked as (select id from expired union all ${sql.join(laneSelects, sql` union all `)} limit ${lim})
      ${mark} where id in (select id from picked) returning *`;
  } else {
    // A compound select runs its arms in order and stops at the limit: earlier lanes go first.
    const laneSelects = lanes.map((lane, i) => {
      const fair = lane.fair === undefined ? undefined : { after: afters[i], depth: lane.fair.depth };
      if (fair) {
        // Each tenant's range is read through `id in (…)`: SQLite runs that subquery once per
        // tenant, with its own limit, and never sorts a backlog.
        const arms = lane.kinds.map(
          (kind) => sql`select * from (
              with recursive ${sql.join(tenantsInTurn(kind, fair.after, lane.limit, { after: sql.raw('ta'), upto: sql.raw('tb') }))},
                t(k) as (select k from ta union all select k from tb)
              select j.id, j.run_at, t.k as tk from t join jobs j on j.id in (select id from (${tenantReady(kind, sql.ref('t.k'), fair.depth)})) where t.k is not null
              union all
              select id, run_at, '' as tk from (${readyOf(kind, lane.limit)})
            )`,
        );
        return sql`select id from (${inTurn(sql.join(arms, sql` union all `), fair.after, lane.limit)})`;
      }
      const ranges = lane.kinds.map((kind) => sql`select id, run_at from (${readyOf(kind, lane.limit)})`);
      const merged = ranges.length === 1 ? (ranges[0] as (typeof ranges)[number]) : sql`select id, run_at from (${sql.join(ranges, sql` union all `)}) order by run_at, id limit ${sql.lit(lane.limit)}`;
      return sql`select id from (${merged})`;
    });
    return sql<JobRow>`${mark} where id in (
          select id from (${expiredLeases}) union all ${sql.join(laneSelects, sql` union all `)} limit ${lim}
        ) returning *`;
  }
}

/**
 * When something may next become ready without anyone saying so: the earliest future `run_at`
 * of a pending job of these kinds, or the earliest lease of another worker to expire.
 */
export async function nextDueAt(store: Store, options: { workerId: string; kinds: readonly string[]; now: number; fairKinds?: ReadonlySet<string> }): Promise<number | null> {
  const { workerId, kinds, now } = options;
  if (kinds.length === 0) return null;
  const shape = JSON.stringify({ kinds, fair: kinds.filter((k) => options.fairKinds?.has(k) === true) });
  const row = await nextDueStatement(shape).first(store.db, now, workerId);
  const times = [row?.next_run, row?.next_expiry].filter((t): t is number => t !== null && t !== undefined).map(Number);
  return times.length > 0 ? Math.min(...times) : null;
}

// A runner asks this whenever a claim finds nothing (about once a message at low rates): compiled
// once per runner's kinds, like the claim.
const nextDueStatement = compiledByShape((shape: string) => {
  const { kinds, fair } = JSON.parse(shape) as { kinds: string[]; fair: string[] };
  return {
    arity: 2,
    build: (db: Db, now: number, workerId: string) => {
      const kindList = sql.join([...kinds]);
      // The earliest future run of each kind, one index range each (see `readyOf` above); of a fair
      // kind, of each tenant's range.
      const untenanted = (kind: string) => sql`select min(run_at) as m from jobs where state = 'pending' and kind = ${kind} and fair_key is null and run_at > ${now}`;
      const nextRuns = sql.join(
        kinds.map((kind) =>
          fair.includes(kind)
            ? sql`select * from (
            with recursive t(k) as (${firstTenant(kind)} union all ${nextTenant(kind, sql.raw('t'))})
            select (select min(run_at) from jobs j where j.state = 'pending' and j.kind = ${kind} and j.fair_key = t.k and j.run_at > ${now}) as m from t where t.k is not null
            union all ${untenanted(kind)}
          ) tenant_runs`
            : untenanted(kind),
        ),
        sql` union all `,
      );
      const query = sql<{ next_run: number | null; next_expiry: number | null }>`select
      (select min(m) from (${nextRuns}) runs) as next_run,
      (select min(locked_until) from jobs where state = 'running' and locked_by <> ${workerId} and kind in (${kindList})) as next_expiry`;
      return { compile: () => query.compile(db) };
    },
  };
});
