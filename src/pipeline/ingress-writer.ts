/**
 * Group commit for webhook ingress. Each POST waits for a durable write before it is answered, and
 * one commit per request would cap ingress at the disk's commit rate: so requests arriving within
 * a short window (or until a group fills) are written together, `inbound_batches` rows plus one
 * `inbound.batch` job for the group, and every request is answered after that write is durable.
 * Collecting for a timed window rather than one event-loop turn matters: with a new connection per
 * request, a turn holds a single request.
 *
 * How a group is written is the committer's business: SQLite files use `SqliteIngressCommitter`
 * (prepared statements, the disk flush off the event loop; see `ingress-sqlite.ts`), everything
 * else `QueueCommitter` (a Kysely transaction through the job queue).
 */
import type { JobQueue } from '../jobs/queue.js';
import type { Store } from '../store/db.js';
import { insertInboundBatches } from '../store/inbound-batches.js';
import { INBOUND_BATCH_JOB } from './ingress-batch.js';
import type { BatchCommitter, InboundBatchJobPayload } from './ingress-batch.js';
import { SqliteIngressCommitter } from './ingress-sqlite.js';

export { INBOUND_BATCH_JOB };
export type { BatchCommitter, InboundBatchJobPayload };

// PostgreSQL commits overlap on the server; four in flight keep its pool busy without starving others.
const POSTGRES_IN_FLIGHT = 4;

/** The portable committer: one Kysely transaction per group through the job queue. */
export class QueueCommitter implements BatchCommitter {
  readonly maxInFlight: number;
  // A commit here costs about a millisecond: waiting as long again gathers a group worth it.
  readonly windowMs = 1;

  constructor(
    private readonly queue: JobQueue,
    engine: Store['engine'],
  ) {
    this.maxInFlight = engine === 'postgres' ? POSTGRES_IN_FLIGHT : 1;
  }

  async commit(bodies: readonly string[], receivedAt: number): Promise<number[]> {
    return this.queue.transaction(async (trx) => {
      const ids = await insertInboundBatches(trx, bodies, receivedAt);
      await this.queue.enqueue(trx, { kind: INBOUND_BATCH_JOB, payload: { batch_ids: ids } satisfies InboundBatchJobPayload });
      return ids;
    });
  }

  async close(): Promise<void> {}
}

/** The best committer for the store: the SQLite fast path for a database file, else the queue's. */
export function committerFor(store: Store, queue: JobQueue): BatchCommitter {
  if (store.engine === 'sqlite' && store.sqlite && !store.sqlite.memory) return new SqliteIngressCommitter(store, queue);
  return new QueueCommitter(queue, store.engine);
}

export interface IngressWriterOptions {
  store: Store;
  queue: JobQueue;
  now(): number;
  /** How long the first request of a group waits for company; the committer's choice when absent. */
  windowMs?: number;
  /** A group is written at once when it reaches this many requests. */
  maxGroup?: number;
  /** Overrides the store's default committer. */
  committer?: BatchCommitter;
}

interface Waiting {
  body: string;
  resolve(): void;
  reject(err: unknown): void;
}

// 256 bodies of a few KB keep one group's statements and memory small.
const DEFAULT_MAX_GROUP = 256;

export class IngressWriter {
  readonly #committer: BatchCommitter;
  /** The durability barrier (`Store.sync`); absent where commits return durable. */
  readonly #sync: (() => Promise<void>) | undefined;
  readonly #now: () => number;
  readonly #windowMs: number;
  readonly #maxGroup: number;
  #waiting: Waiting[] = [];
  #timer: NodeJS.Timeout | NodeJS.Immediate | null = null;
  #inFlight = 0;
  #idle: (() => void)[] = [];
  #closed = false;

  constructor(options: IngressWriterOptions) {
    this.#committer = options.committer ?? committerFor(options.store, options.queue);
    this.#sync = options.store.sync;
    this.#now = options.now;
    this.#windowMs = options.windowMs ?? this.#committer.windowMs;
    this.#maxGroup = options.maxGroup ?? DEFAULT_MAX_GROUP;
  }

  /** Resolves once the body is durably stored together with its `inbound.batch` job. */
  write(body: string): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('ingress is closing'));
    return new Promise<void>((resolve, reject) => {
      this.#waiting.push({ body, resolve, reject });
      if (this.#waiting.length >= this.#maxGroup) this.#flush();
      else this.#timer ??= this.#windowMs > 0 ? setTimeout(this.#onTimer, this.#windowMs) : setImmediate(this.#onTimer);
    });
  }

  /** Writes what is waiting, waits for every group on its way, then releases the committer. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#flush();
    while (this.#inFlight > 0 || this.#waiting.length > 0) {
      await new Promise<void>((resolve) => this.#idle.push(resolve));
      this.#flush();
    }
    await this.#committer.close();
  }

  readonly #onTimer = (): void => {
    this.#timer = null;
    this.#flush();
  };

  #flush(): void {
    if (this.#timer !== null) {
      if (this.#windowMs > 0) clearTimeout(this.#timer as NodeJS.Timeout);
      else clearImmediate(this.#timer as NodeJS.Immediate);
      this.#timer = null;
    }
    // While the writer is busy, requests keep gathering: the group that ends starts the next one.
    while (this.#waiting.length > 0 && this.#inFlight < this.#committer.maxInFlight) {
      const group = this.#waiting.length <= this.#maxGroup ? this.#waiting : this.#waiting.slice(0, this.#maxGroup);
      this.#waiting = group === this.#waiting ? [] : this.#waiting.slice(this.#maxGroup);
      this.#inFlight += 1;
      // Meta forgets a delivery it was told we have: the group is answered once on disk, and stays in
      // flight until then, so what arrives meanwhile gathers into the next group.
      this.#committer
        .commit(
          group.map((w) => w.body),
          this.#now(),
        )
        .then(() => this.#sync?.())
        .then(
          () => this.#settled(group, null),
          (err: unknown) => this.#settled(group, err ?? new Error('ingress write failed')),
        );
    }
  }

  #settled(group: Waiting[], err: unknown): void {
    this.#inFlight -= 1;
    if (err === null) for (const w of group) w.resolve();
    else for (const w of group) w.reject(err);
    if (this.#waiting.length > 0) this.#flush();
    if (this.#inFlight === 0) {
      const idle = this.#idle;
      this.#idle = [];
      for (const wake of idle) wake();
    }
  }
}
