/** What ingress writes: a stored webhook body and its `inbound.batch` job, and who writes them. */

export const INBOUND_BATCH_JOB = 'inbound.batch';

export interface InboundBatchJobPayload {
  batch_id: number;
}

/** Writes one group durably: the bodies and one `inbound.batch` job each. */
export interface BatchCommitter {
  /** Groups that may be on their way at once. */
  readonly maxInFlight: number;
  /** How long the first request of a group waits for company (0: until the next event-loop turn). */
  readonly windowMs: number;
  /** Resolves with the batch ids once the group is durable and the job runners are told. */
  commit(bodies: readonly string[], receivedAt: number): Promise<number[]>;
  close(): Promise<void>;
}
