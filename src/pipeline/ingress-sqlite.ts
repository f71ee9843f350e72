/**
 * The SQLite fast path for ingress. With `synchronous=FULL` every commit calls fsync on the event
 * loop's thread (better-sqlite3 is synchronous): about a millisecond per group on this machine,
 * during which no request is read or answered. So a group is committed with the connection
 * briefly at `synchronous=NORMAL` (the same WAL frames, written to the OS but not yet flushed) and
 * the WAL file is then flushed with `fdatasync` on libuv's thread pool; the requests are answered
 * only after that flush, so every 200 still stands for data on disk. A power loss before the flush
 * loses only groups not yet answered, which Meta sends again. Flushes are coalesced: groups that
 * commit while one flush runs share the next, which is where the grouping of this path happens.
 *
 * The statements are prepared once and run on Kysely's own connection while holding it (its
 * mutex), so no Kysely transaction can interleave; the setting goes back to what it was before the
 * connection is released, so every other transaction keeps its durability. The job rows are the
 * job queue's (`src/jobs/queue.ts` `enqueue`): pending, no key, the kind's attempt budget.
 */
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import type SqliteDatabase from 'better-sqlite3';
import type { JobQueue } from '../jobs/queue.js';
import type { Store } from '../store/db.js';
import type { BatchCommitter } from './ingress-batch.js';
import { INBOUND_BATCH_JOB } from './ingress-batch.js';

// Groups waiting for a flush cost nothing but memory; the flushes, not the groups, bound the rate.
const SQLITE_IN_FLIGHT = 64;
// SQLite's codes for the synchronous setting.
const SYNCHRONOUS_NORMAL = 1;

/** fdatasync of one file, coalesced: a caller is answered by a flush that started after it asked. */
export class FileFlusher {
  #handle: Promise<FileHandle> | undefined;
  #running: Promise<void> | null = null;
  #next: Promise<void> | null = null;

  constructor(private readonly path: string) {}

  flush(): Promise<void> {
    // A flush already running may have started before the caller's write: queue one more after it.
    if (this.#running !== null) {
      this.#next ??= this.#running.then(
        () => this.#start(),
        () => this.#start(),
      );
      return this.#next;
    }
    return this.#start();
  }

  #start(): Promise<void> {
    this.#next = null;
    const run = (async () => {
      this.#handle ??= open(this.path, 'r+');
      await (await this.#handle).datasync();
    })();
    this.#running = run;
    const clear = () => {
      if (this.#running === run) this.#running = null;
    };
    run.then(clear, clear);
    return run;
  }

  async close(): Promise<void> {
    await this.#running?.catch(() => undefined);
    const handle = this.#handle;
    this.#handle = undefined;
    if (handle) await (await handle).close();
  }
}

export class SqliteIngressCommitter implements BatchCommitter {
  readonly maxInFlight = SQLITE_IN_FLIGHT;
  // Writing a group costs tens of microseconds here; the expensive flush is what gets shared, and
  // flushes coalesce by themselves (groups written while one runs share the next). So a group is
  // written on the next event-loop turn rather than after a timed wait.
  readonly windowMs = 0;
  readonly #store: Store;
  readonly #queue: JobQueue;
  readonly #sqlite: SqliteDatabase.Database;
  readonly #flusher: FileFlusher;
  readonly #insertBatch: SqliteDatabase.Statement<[number, string]>;
  readonly #insertJob: SqliteDatabase.Statement<[string, string, number, number, number, number]>;
  readonly #write: (bodies: readonly string[], receivedAt: number) => number[];
  readonly #maxAttempts: number;

  constructor(store: Store, queue: JobQueue) {
    if (!store.sqlite) throw new Error('the SQLite ingress committer needs a SQLite store');
    this.#store = store;
    this.#queue = queue;
    const sqlite = store.sqlite;
    this.#sqlite = sqlite;
    this.#flusher = new FileFlusher(`${sqlite.name}-wal`);
    this.#maxAttempts = queue.scheduleFor(INBOUND_BATCH_JOB).maxAttempts;
    this.#insertBatch = sqlite.prepare('insert into inbound_batches (received_at, body, processed_at, error) values (?, ?, null, null)');
    this.#insertJob = sqlite.prepare(
      "insert into jobs (kind, key, payload, state, run_at, locked_until, locked_by, attempts, max_attempts, last_error, created_at, updated_at) values (?, null, ?, 'pending', ?, null, null, 0, ?, null, ?, ?)",
    );
    const insertAll = (bodies: readonly string[], receivedAt: number): number[] => {
      const now = this.#queue.now();
      const ids: number[] = [];
      for (const body of bodies) {
        const id = Number(this.#insertBatch.run(receivedAt, body).lastInsertRowid);
        this.#insertJob.run(INBOUND_BATCH_JOB, `{"batch_id":${id}}`, now, this.#maxAttempts, now, now);
        ids.push(id);
      }
      return ids;
    };
    this.#write = sqlite.transaction(insertAll).immediate as (bodies: readonly string[], receivedAt: number) => number[];
  }

  async commit(bodies: readonly string[], receivedAt: number): Promise<number[]> {
    const ids = await this.#store.db.connection().execute(async () => {
      const previous = this.#sqlite.pragma('synchronous', { simple: true }) as number;
      if (previous <= SYNCHRONOUS_NORMAL) return this.#write(bodies, receivedAt);
      this.#sqlite.pragma(`synchronous = ${SYNCHRONOUS_NORMAL}`);
      try {
        return this.#write(bodies, receivedAt);
      } finally {
        this.#sqlite.pragma(`synchronous = ${previous}`);
      }
    });
    // The WAL lives as long as the process holds the database open, so this flushes the frames
    // just written (a flush covers the whole file, whichever descriptor asks for it).
    await this.#flusher.flush();
    await this.#queue.notify();
    return ids;
  }

  async close(): Promise<void> {
    await this.#flusher.close();
  }
}
