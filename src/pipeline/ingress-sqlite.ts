/**
 * The SQLite fast path for ingress. Each group of requests is written with statements prepared once,
 * in one `BEGIN IMMEDIATE` transaction on Kysely's own connection while holding it (Kysely's mutex,
 * so no Kysely transaction interleaves). The commit is counted with the store's WAL flusher
 * (`Store.noteCommit`), and the writer (`ingress-writer.ts`) answers the group after the durability
 * barrier (`Store.sync`, an `fdatasync` of the WAL off the event loop, `src/store/sqlite-driver.ts`):
 * every 200 stands for data on disk, and the event loop reads and checks the next requests meanwhile.
 * One group is on its way at a time and the next is everything that arrived meanwhile, so the flush
 * is what groups requests; no timed window is needed. (Several groups in flight were slower: flushes
 * overlapping the next writes took far longer.)
 *
 * The job row is the job queue's (`src/jobs/queue.ts` `enqueue`): pending, no key, the kind's
 * attempt budget, one for the whole group (a job per body was a third of the write's time); the
 * runners are woken after the flush.
 */
import type SqliteDatabase from 'better-sqlite3';
import type { JobQueue } from '../jobs/queue.js';
import type { Store } from '../store/db.js';
import type { BatchCommitter } from './ingress-batch.js';
import { INBOUND_BATCH_JOB, groupJobPayload } from './ingress-batch.js';

type WriteGroup = (bodies: readonly string[], receivedAt: number, now: number) => number[];

export class SqliteIngressCommitter implements BatchCommitter {
  readonly maxInFlight = 1;
  readonly windowMs = 0;
  readonly #store: Store;
  readonly #queue: JobQueue;
  readonly #write: WriteGroup;

  constructor(store: Store, queue: JobQueue) {
    const sqlite = store.sqlite;
    if (!sqlite) throw new Error('the SQLite ingress committer needs a SQLite store');
    this.#store = store;
    this.#queue = queue;
    const maxAttempts = queue.scheduleFor(INBOUND_BATCH_JOB).maxAttempts;
    const insertBatch: SqliteDatabase.Statement<[number, string]> = sqlite.prepare(
      'insert into inbound_batches (received_at, body, processed_at, error) values (?, ?, null, null)',
    );
    const insertJob: SqliteDatabase.Statement<[string, string, number, number, number, number]> = sqlite.prepare(
      "insert into jobs (kind, key, payload, state, run_at, locked_until, locked_by, attempts, max_attempts, last_error, created_at, updated_at) values (?, null, ?, 'pending', ?, null, null, 0, ?, null, ?, ?)",
    );
    const writeGroup: WriteGroup = (bodies, receivedAt, now) => {
      const ids: number[] = [];
      for (const body of bodies) ids.push(Number(insertBatch.run(receivedAt, body).lastInsertRowid));
      insertJob.run(INBOUND_BATCH_JOB, groupJobPayload(ids), now, maxAttempts, now, now);
      return ids;
    };
    this.#write = sqlite.transaction(writeGroup).immediate as WriteGroup;
  }

  async commit(bodies: readonly string[], receivedAt: number): Promise<number[]> {
    const now = this.#queue.now();
    const ids = await this.#store.db.connection().execute(async () => {
      const written = this.#write(bodies, receivedAt, now);
      this.#store.noteCommit?.();
      return written;
    });
    await this.#queue.notify();
    return ids;
  }

  async close(): Promise<void> {
    // The store owns the WAL flusher and closes it with the database.
  }
}
