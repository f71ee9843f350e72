/**
 * Group commit for the outbound path on SQLite. Every accepted message and every status move of a
 * send is a small transaction; on SQLite each commit is an fsync on the event loop's thread
 * (better-sqlite3 is synchronous), a couple of milliseconds during which nothing else runs. So the
 * transactions that arrive while one group is committing are gathered and written together, each
 * inside its own savepoint (one failing rolls back only itself), and each caller hears its result
 * once the group's commit is durable. An idle gateway commits a lone transaction at once.
 *
 * PostgreSQL commits on its own server without blocking the loop, and a pool runs them in
 * parallel; grouping there would also make unrelated row locks (contacts, FIFO keys) wait on each
 * other and risk deadlocks between groups. So on PostgreSQL `run` is a plain transaction.
 */
import type { JobQueue } from '../jobs/queue.js';
import type { Db, Store } from '../store/db.js';

/** A group is written at once when it reaches this size, keeping one commit's work and memory small. */
const MAX_GROUP = 128;

interface Pending {
  fn: (trx: Db) => Promise<unknown>;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

export class GroupCommit {
  readonly #store: Store;
  readonly #queue: JobQueue;
  #waiting: Pending[] = [];
  #scheduled = false;
  #committing = false;

  constructor(store: Store, queue: JobQueue) {
    this.#store = store;
    this.#queue = queue;
  }

  /**
   * Runs `fn` in a transaction and resolves with its value once that transaction is committed;
   * runners are woken afterwards (jobs enqueued in it become visible). `fn` must do all its work
   * through the `trx` it is given.
   */
  run<T>(fn: (trx: Db) => Promise<T>): Promise<T> {
    if (this.#store.engine !== 'sqlite') return this.#queue.transaction(fn);
    return new Promise<T>((resolve, reject) => {
      this.#waiting.push({ fn, resolve: resolve as (value: unknown) => void, reject });
      this.#schedule();
    });
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
    if (this.#committing || this.#waiting.length === 0) return;
    this.#committing = true;
    const group = this.#waiting.slice(0, MAX_GROUP);
    this.#waiting = this.#waiting.slice(group.length);
    let outcomes: Outcome[] | null = null;
    let failure: unknown = null;
    try {
      outcomes = await this.#write(group);
    } catch (err) {
      failure = err;
    }
    this.#committing = false;
    if (this.#waiting.length > 0) this.#schedule();
    if (outcomes !== null) {
      // Wakes the runners for the jobs the group enqueued (committed now).
      await this.#queue.notify().catch(() => undefined);
      group.forEach((p, i) => {
        const outcome = outcomes[i] as Outcome;
        if (outcome.ok) p.resolve(outcome.value);
        else p.reject(outcome.error);
      });
    } else {
      for (const p of group) p.reject(failure);
    }
  }

  async #write(group: Pending[]): Promise<Outcome[]> {
    const trx = await this.#store.db.startTransaction().execute();
    const outcomes: Outcome[] = [];
    try {
      if (group.length === 1) {
        // Alone, the transaction is the item's own: no savepoint needed.
        outcomes.push({ ok: true, value: await (group[0] as Pending).fn(trx) });
      } else {
        for (const p of group) {
          const item = await trx.savepoint('item').execute();
          try {
            const value = await p.fn(item);
            await item.releaseSavepoint('item').execute();
            outcomes.push({ ok: true, value });
          } catch (error) {
            await item.rollbackToSavepoint('item').execute();
            await item.releaseSavepoint('item').execute();
            outcomes.push({ ok: false, error });
          }
        }
      }
      await trx.commit().execute();
      // A controlled transaction's commit returns before its flush: wait for the data to be on disk.
      await this.#store.sync?.();
      return outcomes;
    } catch (err) {
      await trx.rollback().execute().catch(() => undefined);
      throw err;
    }
  }
}

// One per gateway (per pipeline context), like its connection.
const committers = new WeakMap<object, GroupCommit>();

export function groupCommitFor(ctx: { store: Store; queue: JobQueue }): GroupCommit {
  let committer = committers.get(ctx);
  if (committer === undefined) {
    committer = new GroupCommit(ctx.store, ctx.queue);
    committers.set(ctx, committer);
  }
  return committer;
}
