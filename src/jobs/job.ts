/**
 * The durable job queue's words.
 *
 * - job: one unit of work stored in the `jobs` table (send a message, deliver an event, fetch a
 *   profile, download media); it commits with the row that causes it.
 * - kind: what a job does; the runner has one handler per kind and each kind its retry schedule.
 * - key: jobs sharing a key run one at a time, oldest first (`send:<sender>:<contact>`,
 *   `deliver:<endpoint>:<conversation>`); a job without a key runs freely.
 * - fair key: the tenant of a job of a kind claimed fairly (a send's or a delivery's account): tenants take turns
 *   for the slots of its lane, each tenant's jobs oldest first.
 * - state: `pending` (ready at `run_at`), `waiting` (parked behind an older live job with the same
 *   key), `running` (claimed under a lease), `done` (kept briefly when asked) or `dead` (out of
 *   tries or failed for good; kept, visible, replayable).
 * - lease: a claimed job belongs to its worker until `locked_until`; the worker extends it while
 *   the handler runs, and a crashed worker's jobs are claimed again once it expires.
 */

export type JobState = 'pending' | 'waiting' | 'running' | 'done' | 'dead';

/** The states in which a job still holds its key: younger jobs with that key wait behind it. */
export const LIVE_STATES = ['pending', 'running', 'waiting'] as const;

export interface JobSpec {
  kind: string;
  key?: string | null;
  /** Serialised as JSON. */
  payload: unknown;
  /** Epoch ms; now when absent. */
  runAt?: number;
  /** Tries in all; the kind's schedule decides when absent. */
  maxAttempts?: number;
  /** The tenant (a send's or a delivery's account) whose share of a fairly claimed kind the job uses; see `JobQueueOptions.fairKinds`. */
  fairKey?: string;
}

/** What a handler receives. */
export interface Job<P = unknown> {
  id: number;
  kind: string;
  key: string | null;
  payload: P;
  /** Tries so far, this one included (1 on the first run). */
  attempts: number;
  maxAttempts: number;
  runAt: number;
  createdAt: number;
  /** The error of the previous failed try, if any. */
  lastError: string | null;
}

/** A job as the admin views see it. */
export interface JobInfo extends Job {
  state: JobState;
  lockedUntil: number | null;
  lockedBy: string | null;
  updatedAt: number;
}

export interface JobContext {
  /** Aborted when the runner stops past its grace time or the job's lease was lost. */
  signal: AbortSignal;
  workerId: string;
}

/** Reschedules the job without counting a failed try (for example when rate limited). */
export interface JobReschedule {
  retryAt: number;
}

export type JobHandler = (job: Job, context: JobContext) => Promise<void | JobReschedule>;

/** The job failed but may succeed later: tried again on its kind's schedule (or at `retryAt`). */
export class RetryableJobError extends Error {
  override name = 'RetryableJobError';
  readonly retryAt: number | undefined;
  constructor(message: string, options?: { retryAt?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.retryAt = options?.retryAt;
  }
}

/** The job can never succeed (bad payload, a refusal that will not change): dead at once. */
export class PermanentJobError extends Error {
  override name = 'PermanentJobError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
  }
}

/** The subset of a pino logger the queue uses. */
export interface JobLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}
