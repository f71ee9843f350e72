/** What ingress writes: a stored webhook body and its `inbound.batch` job, and who writes them. */

export const INBOUND_BATCH_JOB = 'inbound.batch';

/**
 * The batches one `inbound.batch` job processes: every body of one ingress group (`batch_ids`),
 * or one batch (`batch_id`, as jobs were written before groups shared a job).
 */
export interface InboundBatchJobPayload {
  batch_ids?: number[];
  batch_id?: number;
}

/** The payload of the job of one ingress group. */
export function groupJobPayload(ids: readonly number[]): string {
  return JSON.stringify({ batch_ids: [...ids] } satisfies InboundBatchJobPayload);
}

/** Writes one group durably: the bodies and one `inbound.batch` job for them all. */
export interface BatchCommitter {
  /** Groups that may be on their way at once. */
  readonly maxInFlight: number;
  /** How long the first request of a group waits for company (0: until the next event-loop turn). */
  readonly windowMs: number;
  /** Resolves with the batch ids once the group is committed and the job runners are told (the writer flushes it). */
  commit(bodies: readonly string[], receivedAt: number): Promise<number[]>;
  close(): Promise<void>;
}
