/**
 * Group commit on SQLite: the accepted messages, the status moves of sends and receipts, and the
 * job runners' claims and outcomes are each a small transaction. A commit writes its pages to the
 * WAL on the event loop's thread (better-sqlite3 is synchronous), tens to hundreds of microseconds
 * of the loop's time each. So the transactions that arrive while one group is being written are
 * gathered and written together, each inside its own savepoint (one failing rolls back only
 * itself), and each caller hears its result once the group has committed (flushed to disk at the
 * next durability barrier, `Store.sync`, before anything depending on it leaves the process). An
 * idle gateway commits a lone transaction at once. A transaction an
 * API request waits for goes ahead of all but one of the job runners' in the next group, and a group
 * stops taking items after ten milliseconds, so a request waits for at most one bounded group (and
 * one job's item) before its own.
 *
 * PostgreSQL commits on its own server without blocking the loop, and a pool runs them in
 * parallel; grouping there would also make unrelated row locks (contacts, FIFO keys) wait on each
 * other and risk deadlocks between groups. So on PostgreSQL `run` is a plain transaction.
 */
import type SqliteDatabase from 'better-sqlite3';
import type { Db, Store } from '../store/db.js';
import type { JobQueue } from './queue.js';

const SAVEPOINT = 'savepoint item';
const RELEASE = 'release item';
const ROLLBACK_TO = 'rollback to item';
type Step = typeof SAVEPOINT | typeof RELEASE | typeof ROLLBACK_TO;

/** A group is written at once when it reaches this size, keeping one commit's work and memory small. */
const MAX_GROUP = 128;

/**
 * A group stops taking its next item once it has run this long; the rest go first into the next
 * group. The loop serves no request while a group runs (its statements are synchronous), and at
 * 600 messages/s one group in a hundred ran 15-28 ms (a burst of receipts and job outcomes), which
 * every API request arriving meanwhile waited for. Most groups take 1-5 ms, so this trims only
 * that tail and adds few commits.
 */
const GROUP_BUDGET_MS = 10;

interface Pending {
  fn: (trx: Db) => Promise<unknown>;
  resolve(value: unknown): void;
  reject(err: unknown): void;
  urgent: boolean;
}

export interface GroupRunOptions {
  /**
   * Someone is waiting for this transaction (an API request): it goes into the next group ahead of
   * the job runners' work, which no one watches the clock for.
   */
  urgent?: boolean;
}

type SqliteStatement = SqliteDatabase.Statement;

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

export class GroupCommit {
  readonly #store: Store;
  readonly #queue: JobQueue;
  /** SQLite only (absent: every `run` is a plain transaction). */
  readonly #steps: Record<Step, SqliteStatement> | undefined;
  #urgent: Pending[] = [];
  #waiting: Pending[] = [];
  #scheduled = false;
  #committing = false;

  constructor(store: Store, queue: JobQueue) {
    this.#store = store;
    this.#queue = queue;
    // The savepoints run on SQLite's one connection, which the group's transaction holds while they
    // run: prepared once and run directly, they skip Kysely's executor, several asynchronous hops
    // for each of the two or three statements every item costs.
    const sqlite = store.engine === 'sqlite' ? store.sqlite : undefined;
    this.#steps = sqlite ? { [SAVEPOINT]: sqlite.prepare(SAVEPOINT), [RELEASE]: sqlite.prepare(RELEASE), [ROLLBACK_TO]: sqlite.prepare(ROLLBACK_TO) } : undefined;
  }

  /**
   * Runs `fn` in a transaction and resolves with its value once that transaction is committed;
   * runners are woken afterwards (jobs enqueued in it become visible). `fn` must do all its work
   * through the `trx` it is given.
   */
  run<T>(fn: (trx: Db) => Promise<T>, options: GroupRunOptions = {}): Promise<T> {
    if (this.#steps === undefined) return this.#queue.transaction(fn);
    return new Promise<T>((resolve, reject) => {
      const urgent = options.urgent === true;
      (urgent ? this.#urgent : this.#waiting).push({ fn, resolve: resolve as (value: unknown) => void, reject, urgent });
      this.#schedule();
    });
  }

  #pending(): number {
    return this.#urgent.length + this.#waiting.length;
  }

  /**
   * The next group: the oldest of the others, then the urgent transactions, then the rest of the
   * others, each in the order asked. The one taken first keeps job work moving (a runner's claim or
   * outcomes are among it) when urgent transactions alone would fill every group's budget.
   */
  #take(): Pending[] {
    const group = this.#waiting.splice(0, 1);
    group.push(...this.#urgent.splice(0, MAX_GROUP - group.length));
    group.push(...this.#waiting.splice(0, MAX_GROUP - group.length));
    return group;
  }

  /** Transactions a group did not get to go back to the front of their queues. */
  #putBack(left: Pending[]): void {
    this.#urgent.unshift(...left.filter((p) => p.urgent));
    this.#waiting.unshift(...left.filter((p) => !p.urgent));
  }

  #schedule(): void {
    if (this.#committing || this.#scheduled) return;
    this.#scheduled = true;
    // One turn of the loop gathers the transactions asked for in the same tick.
    setImmediate(() => {
      this.#scheduled = false;
      void this.#commitNext();
    });
  }

  async #commitNext(): Promise<void> {
    if (this.#committing || this.#pending() === 0) return;
    this.#committing = true;
    let group = this.#take();
    let outcomes: Outcome[] | null = null;
    let failure: unknown = null;
    const enqueued = { any: false };
    try {
      outcomes = await this.#write(group, enqueued);
      if (outcomes.length < group.length) {
        this.#putBack(group.slice(outcomes.length));
        group = group.slice(0, outcomes.length);
      }
    } catch (err) {
      failure = err;
    }
    this.#committing = false;
    if (this.#pending() > 0) this.#schedule();
    if (outcomes !== null) {
      // Wakes the runners for the jobs the group enqueued (committed now). Only then: a runner's
      // own claim is a member of groups too, and waking it for nothing would make it cycle again.
      if (enqueued.any) await this.#queue.notify().catch(() => undefined);
      group.forEach((p, i) => {
        const outcome = outcomes[i] as Outcome;
        if (outcome.ok) p.resolve(outcome.value);
        else p.reject(outcome.error);
      });
    } else {
      for (const p of group) p.reject(failure);
    }
  }

  async #write(group: Pending[], enqueued: { any: boolean }): Promise<Outcome[]> {
    // `run` groups only when the savepoint statements exist.
    const steps = this.#steps as Record<Step, SqliteStatement>;
    const trx = await this.#store.db.startTransaction().execute();
    const outcomes: Outcome[] = [];
    try {
      if (group.length === 1) {
        // Alone, the transaction is the item's own: no savepoint needed.
        outcomes.push({ ok: true, value: await (group[0] as Pending).fn(trx) });
        enqueued.any = this.#queue.enqueuedIn(trx);
      } else {
        // Kysely's own savepoints make two new transaction objects per item (about 2 % of the
        // gateway's time under load); these are statements on the connection the group holds.
        const started = performance.now();
        for (const p of group) {
          // Past the budget, what is left waits for the next group (see GROUP_BUDGET_MS).
          if (outcomes.length > 0 && performance.now() - started >= GROUP_BUDGET_MS) break;
          steps[SAVEPOINT].run();
          try {
            const value = await p.fn(trx);
            steps[RELEASE].run();
            outcomes.push({ ok: true, value });
          } catch (error) {
            steps[ROLLBACK_TO].run();
            steps[RELEASE].run();
            outcomes.push({ ok: false, error });
          }
        }
        // One item rolled back after enqueueing at worst wakes the runners for nothing.
        enqueued.any = this.#queue.enqueuedIn(trx);
      }
      await trx.commit().execute();
      return outcomes;
    } catch (err) {
      await trx.rollback().execute().catch(() => undefined);
      throw err;
    }
  }
}

// One per job queue (one per gateway), like its connection: the pipeline and the runners share it.
const committers = new WeakMap<JobQueue, GroupCommit>();

export function groupCommitFor(owner: { queue: JobQueue }): GroupCommit {
  let committer = committers.get(owner.queue);
  if (committer === undefined) {
    committer = new GroupCommit(owner.queue.store, owner.queue);
    committers.set(owner.queue, committer);
  }
  return committer;
}
