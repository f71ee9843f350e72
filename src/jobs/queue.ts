/**
 * The durable job queue: enqueue in the caller's transaction, wake the runners after commit,
 * and the admin views (get, list, counts, replay of dead jobs, purge of kept done jobs).
 *
 * Why our own queue rather than graphile-worker or pg-boss: both are PostgreSQL-only (their
 * queues are PL/pgSQL functions and tables in their own schema), while our default engine is
 * SQLite and the job semantics must be identical on both engines with the same tests. Using one
 * of them on PostgreSQL would mean a second, hand-written SQLite queue beside it, and two sets of
 * FIFO, lease and retry rules to keep equal. graphile-worker's named queues (one job at a time per
 * queue) and pg-boss's singleton keys show the shape; what we need is small enough to write once
 * on Kysely: one table, a claim statement per engine (`FOR UPDATE SKIP LOCKED` on PostgreSQL),
 * FIFO keys with parking (`keys.ts`), leases and per-kind retry schedules.
 */
import { EventEmitter } from 'node:events';
import { sql } from 'kysely';
import { compiled } from '../store/compiled.js';
import type { Db, Store } from '../store/db.js';
import type { JobRow } from '../store/schema.js';
import type { JobInfo, JobSpec, JobState } from './job.js';
import { initialStateFor, lockKeys } from './keys.js';
import { RETRY_SCHEDULES, scheduleFor } from './schedule.js';
import type { RetrySchedule, RetrySchedules } from './schedule.js';

export interface JobQueueOptions {
  /** Retry schedules by kind, over the defaults in `schedule.ts`. */
  schedules?: RetrySchedules;
  /**
   * Kinds claimed fairly between tenants (`claim.ts`): their jobs keep the `fairKey` they are
   * enqueued with (an empty one when none is given); every other kind's jobs have none.
   */
  fairKinds?: readonly string[];
  /** The clock (epoch ms). */
  now?: () => number;
}

export interface JobListFilter {
  state?: JobState;
  kind?: string;
  key?: string;
  /** Only jobs with a smaller id: the cursor for the next page (lists are newest first). */
  beforeId?: number;
  limit?: number;
}

export interface JobCount {
  kind: string;
  state: JobState;
  count: number;
}

// SQLite allows 32766 bound values per statement; 500 rows of 12 columns stays well below.
const ROWS_PER_INSERT = 500;
// An admin page; more than this is a query for a report, not a list.
const MAX_LIST = 1000;
// NOTIFY channel names are identifiers: at most 63 bytes.
const MAX_CHANNEL_LENGTH = 63;

// One job row; a job of a kind claimed fairly names its tenant, other kinds' rows leave `fair_key` null.
const insertJob = (db: Db, kind: string, key: string | null, fairKey: string | undefined, payload: string, runAt: number, maxAttempts: number, now: number) =>
  db
    .insertInto('jobs')
    .values({
      kind,
      key,
      ...(fairKey === undefined ? {} : { fair_key: fairKey }),
      payload,
      // A null key never matches (`=` with null is not true): pending, as for any unkeyed job.
      state: initialStateFor(key as string),
      run_at: runAt,
      locked_until: null,
      locked_by: null,
      attempts: 0,
      max_attempts: maxAttempts,
      last_error: null,
      created_at: now,
      updated_at: now,
    })
    .returning('id');
const insertOneJob = compiled((db: Db, kind: string, key: string | null, payload: string, runAt: number, maxAttempts: number, now: number) =>
  insertJob(db, kind, key, undefined, payload, runAt, maxAttempts, now),
);
const insertOneFairJob = compiled((db: Db, kind: string, key: string | null, fairKey: string, payload: string, runAt: number, maxAttempts: number, now: number) =>
  insertJob(db, kind, key, fairKey, payload, runAt, maxAttempts, now),
);

export class JobQueue {
  readonly store: Store;
  private readonly schedules: RetrySchedules;
  private readonly clock: () => number;
  private readonly wakes = new EventEmitter();
  /** Transactions that enqueued something: only those notify on commit. */
  private readonly writers = new WeakSet<object>();
  private channelName: Promise<string> | undefined;
  /** Kinds claimed fairly between tenants (see `JobQueueOptions.fairKinds`). */
  readonly fairKinds: ReadonlySet<string>;

  constructor(store: Store, options: JobQueueOptions = {}) {
    this.store = store;
    this.schedules = { ...RETRY_SCHEDULES, ...options.schedules };
    this.fairKinds = new Set(options.fairKinds ?? []);
    this.clock = options.now ?? Date.now;
    // Every runner in the process listens; more than ten is not a leak.
    this.wakes.setMaxListeners(0);
  }

  now(): number {
    return this.clock();
  }

  scheduleFor(kind: string): RetrySchedule {
    return scheduleFor(kind, this.schedules);
  }

  /**
   * Inserts jobs in the caller's transaction; given the database itself, in a transaction of its
   * own that wakes the runners when it commits. In a transaction you opened yourself, call
   * `notify()` after the commit, or use `transaction()`, which does it for you.
   * Returns the new ids in order.
   */
  async enqueue(trx: Db, spec: JobSpec | readonly JobSpec[]): Promise<number[]> {
    const specs: readonly JobSpec[] = Array.isArray(spec) ? spec : [spec as JobSpec];
    if (specs.length === 0) return [];
    // The key locks last until commit, and several insert chunks must land together: always a transaction.
    if (!trx.isTransaction) return this.transaction((t) => this.enqueue(t, specs));
    const now = this.clock();
    const keys = [...new Set(specs.map((s) => s.key ?? null).filter((k): k is string => k !== null))];
    await lockKeys(trx, this.store.engine, keys, 'shared');
    const seen = new Set<string>();
    const rows = specs.map((s) => {
      const key = s.key ?? null;
      let state;
      if (key === null) state = 'pending';
      else if (seen.has(key)) state = 'waiting';
      else {
        seen.add(key);
        state = initialStateFor(key);
      }
      return {
        kind: s.kind,
        key,
        // Other kinds leave the column out (null; in a batch mixing kinds, Kysely writes null or
        // DEFAULT for a column a row lacks).
        ...(this.fairKinds.has(s.kind) ? { fair_key: s.fairKey ?? '' } : {}),
        payload: JSON.stringify(s.payload ?? null),
        state,
        run_at: s.runAt ?? now,
        locked_until: null,
        locked_by: null,
        attempts: 0,
        max_attempts: s.maxAttempts ?? this.scheduleFor(s.kind).maxAttempts,
        last_error: null,
        created_at: now,
        updated_at: now,
      };
    });
    const ids: number[] = [];
    const one = rows.length === 1 ? rows[0] : undefined;
    if (one !== undefined) {
      // The common case (a message's send, a delivery): one row, a statement compiled once.
      const { rows: inserted } = await (one.fair_key === undefined
        ? insertOneJob.run(trx, one.kind, one.key, one.payload, one.run_at, one.max_attempts, now)
        : insertOneFairJob.run(trx, one.kind, one.key, one.fair_key, one.payload, one.run_at, one.max_attempts, now));
      for (const row of inserted) ids.push(Number(row.id));
      this.writers.add(trx);
      return ids;
    }
    for (let i = 0; i < rows.length; i += ROWS_PER_INSERT) {
      const inserted = await trx.insertInto('jobs').values(rows.slice(i, i + ROWS_PER_INSERT)).returning('id').execute();
      for (const row of inserted) ids.push(Number(row.id));
    }
    this.writers.add(trx);
    return ids;
  }

  /**
   * Runs `fn` in a database transaction; if it enqueued jobs, the runners wake after the commit
   * (on PostgreSQL through `pg_notify` sent with the commit, so other processes wake too).
   */
  async transaction<T>(fn: (trx: Db) => Promise<T>): Promise<T> {
    const channel = this.store.engine === 'postgres' ? await this.channel() : undefined;
    let enqueued = false;
    const result = await this.store.db.transaction().execute(async (trx) => {
      const value = await fn(trx);
      enqueued = this.writers.has(trx);
      if (enqueued && channel !== undefined) await sql`select pg_notify(${channel}, '')`.execute(trx);
      return value;
    });
    if (enqueued) this.wakeInProcess();
    return result;
  }

  /** Whether `enqueue` wrote jobs in this transaction (or savepoint). */
  enqueuedIn(trx: Db): boolean {
    return this.writers.has(trx);
  }

  /** Wakes the runners: in this process, and on PostgreSQL in every process. */
  async notify(): Promise<void> {
    this.wakeInProcess();
    if (this.store.engine === 'postgres') await sql`select pg_notify(${await this.channel()}, '')`.execute(this.store.db);
  }

  /** Wakes the runners of this process only (other processes learn through the database). */
  wakeInProcess(): void {
    this.wakes.emit('wake');
  }

  /** Called on every wake in this process; returns the unsubscribe function. */
  onWake(listener: () => void): () => void {
    this.wakes.on('wake', listener);
    return () => this.wakes.off('wake', listener);
  }

  /** The NOTIFY channel, one per schema so test schemas (and tenants of one server) do not wake each other. */
  channel(): Promise<string> {
    this.channelName ??= (async () => {
      const { rows } = await sql<{ schema: string }>`select current_schema() as schema`.execute(this.store.db);
      return `switchboard_jobs_${rows[0]?.schema ?? 'public'}`.slice(0, MAX_CHANNEL_LENGTH);
    })();
    return this.channelName;
  }

  async get(id: number): Promise<JobInfo | undefined> {
    const row = await this.store.db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? toJobInfo(row) : undefined;
  }

  /** Newest first. */
  async list(filter: JobListFilter = {}): Promise<JobInfo[]> {
    let query = this.store.db.selectFrom('jobs').selectAll();
    if (filter.state !== undefined) query = query.where('state', '=', filter.state);
    if (filter.kind !== undefined) query = query.where('kind', '=', filter.kind);
    if (filter.key !== undefined) query = query.where('key', '=', filter.key);
    if (filter.beforeId !== undefined) query = query.where('id', '<', filter.beforeId);
    const limit = Math.min(Math.max(filter.limit ?? 100, 1), MAX_LIST);
    const rows = await query.orderBy('id', 'desc').limit(limit).execute();
    return rows.map(toJobInfo);
  }

  /**
   * Replays a dead job: pending now, with a fresh set of tries. Its last error stays until the
   * next try overwrites it. Returns false when the job is not dead (or does not exist).
   */
  async retryDead(id: number): Promise<boolean> {
    const now = this.clock();
    const result = await this.store.db
      .updateTable('jobs')
      .set({ state: 'pending', attempts: 0, run_at: now, locked_until: null, locked_by: null, updated_at: now })
      .where('id', '=', id)
      .where('state', '=', 'dead')
      .executeTakeFirst();
    const replayed = Number(result.numUpdatedRows) > 0;
    if (replayed) await this.notify();
    return replayed;
  }

  async counts(): Promise<JobCount[]> {
    const rows = await this.store.db
      .selectFrom('jobs')
      .select(['kind', 'state', (eb) => eb.fn.countAll<number>().as('count')])
      .groupBy(['kind', 'state'])
      .orderBy('kind')
      .orderBy('state')
      .execute();
    return rows.map((r) => ({ kind: r.kind, state: r.state as JobState, count: Number(r.count) }));
  }

  /**
   * Whether jobs of this kind created before `createdBefore` still wait to run or are running
   * (those waiting for a later retry too): work received that long ago is not done yet.
   */
  async hasLiveJobs(kind: string, createdBefore: number): Promise<boolean> {
    for (const state of ['pending', 'running'] as const) {
      const row = await this.store.db
        .selectFrom('jobs')
        .select('id')
        .where('state', '=', state)
        .where('kind', '=', kind)
        .where('created_at', '<', createdBefore)
        .limit(1)
        .executeTakeFirst();
      if (row !== undefined) return true;
    }
    return false;
  }

  /** Deletes done jobs (kept only when a runner has `keepDoneMs`) older than this; returns how many. */
  async purgeDone(olderThanMs: number): Promise<number> {
    const result = await this.store.db
      .deleteFrom('jobs')
      .where('state', '=', 'done')
      .where('updated_at', '<', this.clock() - olderThanMs)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}

export function toJobInfo(row: JobRow): JobInfo {
  return {
    id: Number(row.id),
    kind: row.kind,
    key: row.key,
    payload: parsePayload(row.payload),
    state: row.state as JobState,
    attempts: Number(row.attempts),
    maxAttempts: Number(row.max_attempts),
    runAt: Number(row.run_at),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    lockedUntil: row.locked_until === null ? null : Number(row.locked_until),
    lockedBy: row.locked_by,
    lastError: row.last_error,
  };
}

/** Admin views show a payload that is not JSON as its text rather than failing the whole list. */
function parsePayload(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}
