/**
 * The runner: claims ready jobs up to its free concurrency, runs their handlers, extends their
 * leases while they run and records the outcomes in batches, each in the same transaction as
 * the next claim (one commit per cycle).
 *
 * It sleeps until woken: by `JobQueue` in this process, by LISTEN/NOTIFY from other processes on
 * PostgreSQL, by a handler finishing, or by one timer set to the next known due time (a retry,
 * another worker's lease) capped at the poll interval, the safety net for a lost notification.
 * One lease timer serves every running job; nothing spins and no timer is kept per job.
 *
 * Done jobs are deleted when recorded: the row that caused the work (message, delivery) keeps
 * the result, and a table holding only live and dead jobs keeps the claim and the admin views
 * fast at thousands of jobs per second. `keepDoneMs` keeps them that long instead, for debugging.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Db, Store } from '../store/db.js';
import type { JobRow } from '../store/schema.js';
import { claimJobs, lastInTurn, nextDueAt, servedCounts } from './claim.js';
import { recordOutcomesIn, writeTransaction } from './finish.js';
import { groupCommitFor } from './group-commit.js';
import type { LeaseRef, Outcome } from './finish.js';
import { PermanentJobError, RetryableJobError } from './job.js';
import type { Job, JobHandler, JobLogger } from './job.js';
import { extendLeases } from './lease.js';
import type { JobQueue } from './queue.js';
import { nextRunAt } from './schedule.js';

export type { Job, JobContext, JobHandler, JobReschedule } from './job.js';
export { PermanentJobError, RetryableJobError } from './job.js';

export interface JobRunnerOptions {
  store: Store;
  queue: JobQueue;
  handlers: Readonly<Record<string, JobHandler>>;
  /** Handlers running at once. */
  concurrency?: number;
  /**
   * Claim order and shares (see `RunnerLane`). Kinds in no lane form a last lane of their own.
   * Absent: one lane, every job oldest first.
   */
  lanes?: readonly RunnerLane[];
  /** How long a claim holds a job before another worker may take it. */
  leaseMs?: number;
  /** Longest sleep without a wake. */
  pollIntervalMs?: number;
  /** Names this worker in `locked_by`; unique per runner. */
  workerId?: string;
  logger?: JobLogger;
  /** How long `stop()` waits for running handlers. */
  stopTimeoutMs?: number;
  /** Keep done jobs this long (0: delete them when done). */
  keepDoneMs?: number;
  /** Jitter source, [0, 1). */
  random?: () => number;
}

// Enough to keep a Send API pool busy without one claim holding SQLite's single connection long.
const DEFAULT_CONCURRENCY = 32;
// Three times the Graph API client's 20 s timeout, so a slow but alive worker keeps its job even
// if an extension is late; short enough that a crashed worker's conversations resume within a minute.
const DEFAULT_LEASE_MS = 60_000;
// Notifications do the waking; polling only covers a lost one (a dropped LISTEN connection).
const DEFAULT_POLL_MS = 2_000;
// A deploy waits this long for running sends before their leases are left to expire.
const DEFAULT_STOP_TIMEOUT_MS = 10_000;
// Bounds one claim statement and its RETURNING, whatever the concurrency.
const MAX_CLAIM_BATCH = 100;
// Bounds one outcome transaction.
const MAX_FINISH_BATCH = 500;
// At stop, a database that keeps failing gets a few tries, not a hang.
const STOP_FLUSH_TRIES = 3;
// Extend leases three times per lease, so two late extensions in a row still leave time.
const LEASE_EXTENSIONS_PER_LEASE = 3;
// Stored errors are for people; a stack trace or a huge response body adds nothing there.
const MAX_ERROR_LENGTH = 2000;
// Purging kept done jobs once a minute keeps each delete small.
const PURGE_INTERVAL_MS = 60_000;

/**
 * A lane of jobs: when slots are free, the runner fills them lane by lane in the order given,
 * each lane's ready jobs oldest first, so work in an earlier lane never waits behind a backlog in
 * a later one. `max` caps the slots a lane may hold at once (of the runner's concurrency), so a
 * lane whose jobs are slow (an endpoint taking its time) leaves slots for the lanes after it.
 */
export interface RunnerLane {
  name: string;
  kinds: readonly string[];
  max?: number;
}

interface Lane {
  name: string;
  kinds: string[];
  max: number;
  running: number;
  /** Its kinds are claimed fairly between tenants (the queue's `fairKinds`). */
  fair: FairTurn | undefined;
}

/** Where a fair lane stands between claims. */
interface FairTurn {
  /** The tenant served last: the next claim starts after it. */
  after: string;
  /** Tenants served by the last claim that took any: the next claim asks each for its share of the slots. */
  tenants: number;
  /** The current claim's slots and share per tenant. */
  limit: number;
  depth: number;
}

interface ActiveJob {
  ref: LeaseRef;
  lane: Lane;
  /** Still counted in its lane's `running`. */
  counted: boolean;
  controller: AbortController;
  settled: Promise<void>;
}

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
}

const silentLogger: JobLogger = { debug() {}, info() {}, warn() {}, error() {} };

export class JobRunner {
  readonly workerId: string;
  private readonly store: Store;
  private readonly queue: JobQueue;
  private readonly handlers: Readonly<Record<string, JobHandler>>;
  private readonly kinds: string[];
  private readonly lanes: Lane[];
  private readonly laneOf = new Map<string, Lane>();
  private readonly concurrency: number;
  private readonly leaseMs: number;
  private readonly pollIntervalMs: number;
  private readonly stopTimeoutMs: number;
  private readonly keepDoneMs: number;
  private readonly logger: JobLogger;
  private readonly random: () => number;

  private started = false;
  private readonly active = new Map<number, ActiveJob>();
  /** Outcomes not yet written; their leases are still ours and still extended. */
  private unflushed: Outcome[] = [];
  private loopRunning: Promise<void> | undefined;
  private wakeRequested = false;
  /** The last cycle failed: wait for the timer before trying again, whatever wakes us. */
  private backingOff = false;
  private sleepTimer: NodeJS.Timeout | undefined;
  private leaseTimer: NodeJS.Timeout | undefined;
  private purgeTimer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private listener: pg.Client | undefined;
  private listenRetry: NodeJS.Timeout | undefined;
  private channel: string | undefined;
  private drainWaiters: Waiter[] = [];

  constructor(options: JobRunnerOptions) {
    this.store = options.store;
    this.queue = options.queue;
    this.handlers = options.handlers;
    this.kinds = Object.keys(options.handlers).sort();
    this.concurrency = Math.max(1, options.concurrency ?? DEFAULT_CONCURRENCY);
    this.lanes = [];
    for (const lane of options.lanes ?? []) {
      const kinds = lane.kinds.filter((k) => this.kinds.includes(k) && !this.laneOf.has(k));
      if (kinds.length === 0) continue;
      const entry: Lane = { name: lane.name, kinds, max: Math.max(1, Math.min(this.concurrency, lane.max ?? this.concurrency)), running: 0, fair: this.fairness(lane.name, kinds) };
      this.lanes.push(entry);
      for (const k of kinds) this.laneOf.set(k, entry);
    }
    // Kinds no lane names form the last lanes: the fairly claimed ones one lane, the others another.
    for (const fair of [false, true]) {
      const rest = this.kinds.filter((k) => !this.laneOf.has(k) && this.queue.fairKinds.has(k) === fair);
      if (rest.length === 0) continue;
      const name = this.lanes.length === 0 ? 'jobs' : 'other';
      const entry: Lane = { name, kinds: rest, max: this.concurrency, running: 0, fair: this.fairness(name, rest) };
      this.lanes.push(entry);
      for (const k of rest) this.laneOf.set(k, entry);
    }
    this.leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
    this.pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_MS;
    this.stopTimeoutMs = options.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
    this.keepDoneMs = options.keepDoneMs ?? 0;
    this.logger = options.logger ?? silentLogger;
    this.random = options.random ?? Math.random;
    this.workerId = options.workerId ?? `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  }

  /** Between `start()` and `stop()`. */
  isRunning(): boolean {
    return this.started;
  }

  /** Handlers running now. */
  get running(): number {
    return this.active.size;
  }

  /** Starts claiming; on PostgreSQL resolves once the LISTEN connection is up (or has failed and will retry). */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.unsubscribe = this.queue.onWake(() => this.wake());
    if (this.store.engine === 'postgres') {
      this.channel = await this.queue.channel();
      await this.listen();
    }
    this.leaseTimer = setInterval(() => void this.extend(), Math.max(1, Math.floor(this.leaseMs / LEASE_EXTENSIONS_PER_LEASE)));
    if (this.keepDoneMs > 0) {
      this.purgeTimer = setInterval(() => void this.purge(), Math.min(this.keepDoneMs, PURGE_INTERVAL_MS));
    }
    this.logger.info(
      { worker: this.workerId, concurrency: this.concurrency, lanes: this.lanes.map((l) => ({ name: l.name, kinds: l.kinds, max: l.max })) },
      'job runner started',
    );
    this.wake();
  }

  /**
   * Stops claiming, waits up to `timeoutMs` for running handlers and records their outcomes.
   * Handlers still running then are told through their abort signal and their leases left to
   * expire, so another worker takes the jobs up.
   */
  async stop(timeoutMs: number = this.stopTimeoutMs): Promise<void> {
    if (!this.started) return;
    this.started = false;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    clearTimeout(this.sleepTimer);
    clearInterval(this.purgeTimer);
    clearTimeout(this.listenRetry);
    const listener = this.listener;
    this.listener = undefined;
    await listener?.end().catch(() => undefined);
    await this.loopRunning;

    const running = [...this.active.values()];
    if (running.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        Promise.all(running.map((a) => a.settled)).then(() => false),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs))),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        const left = [...this.active.values()];
        for (const a of left) {
          a.controller.abort(new Error('job runner stopped'));
          a.counted = false;
          a.lane.running -= 1;
        }
        this.logger.warn({ worker: this.workerId, jobs: left.map((a) => a.ref.id) }, 'handlers still running at stop; their leases will expire');
        this.active.clear();
      }
    }
    // Outcomes of handlers that finished meanwhile: a few tries, then their leases expire and the jobs run again.
    for (let tries = 0; tries < STOP_FLUSH_TRIES && this.unflushed.length > 0; tries += 1) {
      this.backingOff = false;
      this.wake();
      while (this.loopRunning) await this.loopRunning;
    }
    if (this.unflushed.length > 0) {
      this.logger.error({ worker: this.workerId, jobs: this.unflushed.map((o) => o.id) }, 'job outcomes not recorded at stop; the jobs will run again');
      this.unflushed = [];
    }
    clearInterval(this.leaseTimer);
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w.reject(new Error('job runner stopped'));
    this.logger.info({ worker: this.workerId }, 'job runner stopped');
  }

  /** Resolves once nothing is ready and nothing runs (jobs due later do not count). For tests and tools. */
  drain(): Promise<void> {
    if (!this.started) return Promise.reject(new Error('job runner is not started'));
    const done = new Promise<void>((resolve, reject) => this.drainWaiters.push({ resolve, reject }));
    this.wake();
    return done;
  }

  private wake(): void {
    if (!this.started) {
      // Stopping: no claims, but outcomes of handlers finishing in the grace time are recorded.
      if (this.unflushed.length === 0) return;
    }
    this.wakeRequested = true;
    if (this.loopRunning || this.backingOff) return;
    clearTimeout(this.sleepTimer);
    this.sleepTimer = undefined;
    // Wakes in the same turn (a burst of enqueues, handlers finishing together) share one cycle.
    this.loopRunning = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.loop());
  }

  /**
   * Cycles until there is nothing to do: each cycle records finished jobs' outcomes and claims
   * as many ready jobs as there are free slots, in one write transaction (one commit, one fsync
   * on SQLite), and starts their handlers.
   */
  private async loop(): Promise<void> {
    let sleepMs: number | undefined;
    try {
      while (this.wakeRequested) {
        this.wakeRequested = false;
        const outcomes = this.unflushed.slice(0, MAX_FINISH_BATCH);
        const limit = this.started ? Math.min(this.concurrency - this.active.size, MAX_CLAIM_BATCH) : 0;
        if (outcomes.length === 0 && limit <= 0) break; // full: a finishing handler wakes us
        const rows = await this.cycle(outcomes, limit);
        for (const row of rows) this.run(row);
        if (this.unflushed.length > 0 || (limit > 0 && rows.length === limit)) {
          this.wakeRequested = true; // more to record, or more may be ready
          continue;
        }
        // A wake during the cycle (a job just enqueued or finished) means look again.
        if (this.started && limit > 0 && rows.length === 0 && !this.wakeRequested) {
          if (this.active.size === 0) this.resolveDrained();
          const due = await nextDueAt(this.store, { workerId: this.workerId, kinds: this.kinds, now: this.queue.now(), fairKinds: this.queue.fairKinds });
          sleepMs = due === null ? this.pollIntervalMs : Math.min(this.pollIntervalMs, Math.max(0, due - this.queue.now()) + 1);
        }
      }
    } catch (err) {
      this.logger.error({ worker: this.workerId, err }, 'job cycle failed; trying again after the poll interval');
      this.backingOff = true;
      sleepMs = this.pollIntervalMs;
    } finally {
      this.loopRunning = undefined;
    }
    if (!this.started) return;
    if (this.wakeRequested && !this.backingOff) this.wake();
    else this.sleep(sleepMs ?? this.pollIntervalMs);
  }

  /** A lane's fair state: fair when its kinds are, never a mix (one claim order per lane). */
  private fairness(lane: string, kinds: readonly string[]): FairTurn | undefined {
    const fair = kinds.filter((k) => this.queue.fairKinds.has(k));
    if (fair.length === 0) return undefined;
    if (fair.length < kinds.length) throw new Error(`job lane ${lane} mixes kinds claimed fairly (${fair.join(', ')}) with others`);
    return { after: '', tenants: 1, limit: 0, depth: 0 };
  }

  /**
   * Claimed (committed): each fair lane's next claim starts after the last tenant it served and
   * asks each tenant for its share of the slots, as many tenants as this claim served. A tenant
   * that gave its whole share while slots were left may have more: claim again at once (the share
   * was set from fewer tenants than are waiting now, or some had less than their share).
   */
  private taken(rows: JobRow[]): JobRow[] {
    for (const lane of this.lanes) {
      const turn = lane.fair;
      if (!turn || turn.limit <= 0) continue;
      const mine = rows.filter((r) => this.laneOf.get(r.kind) === lane);
      if (mine.length === 0) continue;
      const served = servedCounts(mine);
      turn.after = lastInTurn(turn.after, served);
      turn.tenants = served.size;
      if (mine.length < turn.limit && turn.depth < turn.limit && Math.max(...served.values()) >= turn.depth) this.wakeRequested = true;
    }
    return rows;
  }

  /** The fair lanes' claim for this cycle: each tenant's share of the lane's free slots. */
  private fairClaim(lane: Lane, limit: number): { after: string; depth: number } | undefined {
    const turn = lane.fair;
    if (!turn) return undefined;
    turn.limit = limit;
    // Rounded up to a power of two: the depth is part of the claim's statement text (`claim.ts`).
    turn.depth = Math.min(limit, 2 ** Math.ceil(Math.log2(Math.max(1, Math.ceil(limit / turn.tenants)))));
    return { after: turn.after, depth: turn.depth };
  }

  private async cycle(outcomes: readonly Outcome[], limit: number): Promise<JobRow[]> {
    const now = this.queue.now();
    const lanes = this.lanes.map((l) => {
      const laneLimit = Math.min(limit, l.max - l.running);
      const fair = this.fairClaim(l, laneLimit);
      return { kinds: l.kinds, limit: laneLimit, ...(fair ? { fair } : {}) };
    });
    const claim = { workerId: this.workerId, kinds: this.kinds, limit, leaseMs: this.leaseMs, now, lanes };
    const sqlite = this.store.engine === 'sqlite';
    if (outcomes.length === 0 && !sqlite) return this.taken(await claimJobs(this.store, claim));
    // SQLite: the cycle joins the process's group commit, so claims and outcomes share one commit
    // with the messages and status moves written at the same moment (a lone claim was its own
    // commit, about 200 µs of the loop's time at a few thousand jobs a second).
    const transaction = sqlite ? <T>(fn: (trx: Db) => Promise<T>) => groupCommitFor({ queue: this.queue }).run(fn) : <T>(fn: (trx: Db) => Promise<T>) => writeTransaction(this.store, fn);
    const { result, rows } = await transaction(async (trx) => {
      if (outcomes.length === 0) return { result: null, rows: limit > 0 ? await claimJobs(this.store, claim, trx) : [] };
      const recorded = await recordOutcomesIn(trx, this.store.engine, {
        workerId: this.workerId,
        outcomes,
        now,
        keepDone: this.keepDoneMs > 0,
        ...(this.channel === undefined ? {} : { channel: this.channel }),
      });
      // Claimed after the outcomes, so the next job of a key just released is taken at once.
      return { result: recorded, rows: limit > 0 ? await claimJobs(this.store, claim, trx) : [] };
    });
    this.unflushed.splice(0, outcomes.length);
    this.taken(rows);
    if (result === null) return rows;
    if (result.stale.length > 0) {
      this.logger.warn({ worker: this.workerId, jobs: result.stale.map((s) => s.id) }, 'lease lost before the outcome was recorded; outcome dropped');
    }
    // Promoted jobs may be of kinds another runner of this process handles.
    if (result.promoted > 0) this.queue.wakeInProcess();
    return rows;
  }

  private sleep(ms: number): void {
    clearTimeout(this.sleepTimer);
    this.sleepTimer = setTimeout(() => {
      this.sleepTimer = undefined;
      this.backingOff = false;
      this.wake();
    }, ms);
  }

  private resolveDrained(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w.resolve();
  }

  private run(row: JobRow): void {
    const ref: LeaseRef = { id: Number(row.id), attempts: Number(row.attempts) };
    const controller = new AbortController();
    let settle!: () => void;
    // Every kind the runner claims has a lane: those no lane names form the last one.
    const lane = this.laneOf.get(row.kind) as Lane;
    const entry: ActiveJob = { ref, lane, counted: true, controller, settled: new Promise<void>((resolve) => (settle = resolve)) };
    this.active.set(ref.id, entry);
    lane.running += 1;
    void this.execute(row, entry).then((outcome) => {
      settle();
      if (entry.counted) {
        entry.counted = false;
        lane.running -= 1;
      }
      if (this.active.get(ref.id) !== entry) {
        // Abandoned at stop, or claimed again by this worker after its lease was lost.
        this.logger.warn({ worker: this.workerId, job: ref.id, kind: row.kind }, 'outcome of an abandoned job run discarded');
        return;
      }
      this.active.delete(ref.id);
      this.unflushed.push(outcome);
      this.wake();
    });
  }

  private async execute(row: JobRow, entry: ActiveJob): Promise<Outcome> {
    const { ref } = entry;
    const key = row.key;
    try {
      const handler = this.handlers[row.kind];
      if (!handler) throw new PermanentJobError(`no handler for job kind ${row.kind}`);
      const job: Job = {
        id: ref.id,
        kind: row.kind,
        key,
        payload: parseJobPayload(row.payload),
        attempts: ref.attempts,
        maxAttempts: Number(row.max_attempts),
        runAt: Number(row.run_at),
        createdAt: Number(row.created_at),
        lastError: row.last_error,
      };
      const result = await handler(job, { signal: entry.controller.signal, workerId: this.workerId });
      if (result && typeof result.retryAt === 'number') {
        this.logger.debug({ job: ref.id, kind: row.kind, retryAt: result.retryAt }, 'job rescheduled');
        return { type: 'retry', ...ref, key, runAt: result.retryAt, error: null, counted: false };
      }
      return { type: 'done', ...ref, key };
    } catch (err) {
      const error = describeError(err);
      const context = { worker: this.workerId, job: ref.id, kind: row.kind, key, attempts: ref.attempts, error };
      if (err instanceof PermanentJobError || ref.attempts >= Number(row.max_attempts)) {
        this.logger.error(context, 'job dead');
        return { type: 'dead', ...ref, key, error };
      }
      const now = this.queue.now();
      const runAt =
        err instanceof RetryableJobError && err.retryAt !== undefined
          ? err.retryAt
          : nextRunAt(this.queue.scheduleFor(row.kind), ref.attempts, now, this.random);
      this.logger.warn({ ...context, runAt }, 'job failed; will retry');
      return { type: 'retry', ...ref, key, runAt, error, counted: true };
    }
  }

  private async extend(): Promise<void> {
    const leases = [...[...this.active.values()].map((a) => a.ref), ...this.unflushed.map((o) => ({ id: o.id, attempts: o.attempts }))];
    if (leases.length === 0) return;
    try {
      const held = await extendLeases(this.store, { workerId: this.workerId, leases, leaseMs: this.leaseMs, now: this.queue.now() });
      for (const a of this.active.values()) {
        if (held.has(a.ref.id)) continue;
        this.logger.warn({ worker: this.workerId, job: a.ref.id }, 'job lease lost (another worker took the job); aborting its handler');
        a.controller.abort(new Error('job lease lost'));
      }
    } catch (err) {
      this.logger.error({ worker: this.workerId, err }, 'extending job leases failed');
    }
  }

  private async purge(): Promise<void> {
    try {
      await this.queue.purgeDone(this.keepDoneMs);
    } catch (err) {
      this.logger.error({ worker: this.workerId, err }, 'purging done jobs failed');
    }
  }

  /** A dedicated connection that LISTENs; on loss, reconnects after the poll interval (polling covers the gap). */
  private async listen(): Promise<void> {
    const pool = this.store.pool;
    const channel = this.channel;
    if (!pool || channel === undefined) return;
    const client = new pg.Client(pool.options);
    const retry = (err?: unknown) => {
      if (this.listener !== client) return;
      this.listener = undefined;
      client.removeAllListeners('notification');
      void client.end().catch(() => undefined);
      if (!this.started) return;
      this.logger.warn({ worker: this.workerId, err }, 'job notification connection lost; reconnecting');
      this.listenRetry = setTimeout(() => void this.listen().then(() => this.wake()), this.pollIntervalMs);
    };
    client.on('notification', () => this.wake());
    client.on('error', retry);
    client.on('end', () => retry());
    this.listener = client;
    try {
      await client.connect();
      await client.query(`listen "${channel.replaceAll('"', '""')}"`);
    } catch (err) {
      retry(err);
    }
  }
}

function parseJobPayload(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new PermanentJobError(`job payload is not JSON: ${(err as Error).message}`);
  }
}

function describeError(err: unknown): string {
  const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return text.length > MAX_ERROR_LENGTH ? `${text.slice(0, MAX_ERROR_LENGTH - 1)}…` : text;
}
