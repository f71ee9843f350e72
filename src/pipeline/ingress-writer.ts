/**
 * Group commit for webhook ingress. Each POST waits for a durable write before it is answered, and
 * one commit per request would cap ingress at the disk's commit rate: so requests arriving within
 * a short window (or until a batch fills) are written in one transaction, `inbound_batches` rows
 * plus one `inbound.batch` job each, and every request is answered after that commit.
 * Collecting for a timed window rather than one event-loop turn matters: with a new connection per
 * request, a turn holds a single request.
 */
import type { JobQueue } from '../jobs/queue.js';
import type { Store } from '../store/db.js';
import { insertInboundBatches } from '../store/inbound-batches.js';

export const INBOUND_BATCH_JOB = 'inbound.batch';

export interface InboundBatchJobPayload {
  batch_id: number;
}

export interface IngressWriterOptions {
  store: Store;
  queue: JobQueue;
  now(): number;
  /** How long the first request of a group waits for company. */
  windowMs?: number;
  /** A group is written at once when it reaches this many requests. */
  maxGroup?: number;
  /** Commits in flight at once (SQLite has one writer; PostgreSQL gains from a few). */
  maxInFlight?: number;
}

interface Waiting {
  body: string;
  resolve(): void;
  reject(err: unknown): void;
}

// 1 ms: a commit costs about as much, so waiting longer adds latency without larger groups.
const DEFAULT_WINDOW_MS = 1;
// 256 bodies of a few KB make one statement well under SQLite's and PostgreSQL's parameter limits.
const DEFAULT_MAX_GROUP = 256;
// PostgreSQL commits overlap on the server; four in flight keep its pool busy without starving others.
const POSTGRES_IN_FLIGHT = 4;

export class IngressWriter {
  readonly #queue: JobQueue;
  readonly #now: () => number;
  readonly #windowMs: number;
  readonly #maxGroup: number;
  readonly #maxInFlight: number;
  #waiting: Waiting[] = [];
  #timer: NodeJS.Timeout | null = null;
  #inFlight = 0;
  #idle: (() => void)[] = [];
  #closed = false;

  constructor(options: IngressWriterOptions) {
    this.#queue = options.queue;
    this.#now = options.now;
    this.#windowMs = options.windowMs ?? DEFAULT_WINDOW_MS;
    this.#maxGroup = options.maxGroup ?? DEFAULT_MAX_GROUP;
    this.#maxInFlight = options.maxInFlight ?? (options.store.engine === 'postgres' ? POSTGRES_IN_FLIGHT : 1);
  }

  /** Resolves once the body is committed together with its `inbound.batch` job. */
  write(body: string): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('ingress is closing'));
    return new Promise<void>((resolve, reject) => {
      this.#waiting.push({ body, resolve, reject });
      if (this.#waiting.length >= this.#maxGroup) this.#flush();
      else this.#timer ??= setTimeout(this.#onTimer, this.#windowMs);
    });
  }

  /** Writes what is waiting and resolves when no commit is in flight. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#flush();
    while (this.#inFlight > 0 || this.#waiting.length > 0) {
      await new Promise<void>((resolve) => this.#idle.push(resolve));
      this.#flush();
    }
  }

  readonly #onTimer = (): void => {
    this.#timer = null;
    this.#flush();
  };

  #flush(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    // While the writer is busy, requests keep gathering: the commit that ends starts the next group.
    while (this.#waiting.length > 0 && this.#inFlight < this.#maxInFlight) {
      const group = this.#waiting.length <= this.#maxGroup ? this.#waiting : this.#waiting.slice(0, this.#maxGroup);
      this.#waiting = group === this.#waiting ? [] : this.#waiting.slice(this.#maxGroup);
      this.#inFlight += 1;
      this.#commit(group).then(
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

  async #commit(group: Waiting[]): Promise<void> {
    const bodies = group.map((w) => w.body);
    const receivedAt = this.#now();
    await this.#queue.transaction(async (trx) => {
      const ids = await insertInboundBatches(trx, bodies, receivedAt);
      await this.#queue.enqueue(
        trx,
        ids.map((id) => ({ kind: INBOUND_BATCH_JOB, payload: { batch_id: id } satisfies InboundBatchJobPayload })),
      );
    });
  }
}
