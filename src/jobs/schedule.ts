/**
 * Retry schedules, one per job kind, as data. A job that throws is tried again after the delay
 * for its attempt number, moved a little either way by jitter, until it has used `maxAttempts`;
 * then it is dead (kept, visible, replayable).
 */

export interface RetrySchedule {
  /** Delay before the next try after failed attempt n (index n - 1); the last entry repeats. */
  delaysMs: readonly number[];
  /** Fraction of each delay randomised either way, so jobs that failed together do not retry together. */
  jitter: number;
  /** Tries in all, the first one included. */
  maxAttempts: number;
}

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

export const RETRY_SCHEDULES: Readonly<Record<string, RetrySchedule>> = {
  // A reply blocks its conversation while it retries, and a customer waits: retry fast, give up
  // within about ten minutes so the fate of the message is decided and the next one goes.
  send: { delaysMs: [2 * SECOND, 10 * SECOND, 30 * SECOND, MINUTE, 2 * MINUTE, 5 * MINUTE], jitter: 0.2, maxAttempts: 7 },
  // An endpoint may be down for a day (deploys, outages): the Standard Webhooks / Svix schedule,
  // immediately then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, spans about 27.5 hours; jitter of
  // 10 % keeps even the shortest draw above 24 hours.
  deliver: {
    delaysMs: [5 * SECOND, 5 * MINUTE, 30 * MINUTE, 2 * HOUR, 5 * HOUR, 10 * HOUR, 10 * HOUR],
    jitter: 0.1,
    maxAttempts: 8,
  },
  // A stored webhook batch failing to parse is a bug or a database outage: a few quick tries,
  // then dead so an operator sees it (the raw batch stays stored and can be replayed).
  inbound: { delaysMs: [SECOND, 10 * SECOND, MINUTE, 10 * MINUTE], jitter: 0.2, maxAttempts: 5 },
  // Profiles are nice to have and Graph API rate limits reset over the hour: a few tries over hours.
  profile: { delaysMs: [MINUTE, 15 * MINUTE, HOUR, 4 * HOUR], jitter: 0.3, maxAttempts: 5 },
  // Meta's CDN links expire after some hours, so tries later than that are useless.
  media: { delaysMs: [10 * SECOND, MINUTE, 10 * MINUTE, HOUR], jitter: 0.3, maxAttempts: 5 },
};

// Kinds without a schedule of their own: a transient fault usually clears within the hour.
export const DEFAULT_RETRY_SCHEDULE: RetrySchedule = {
  delaysMs: [SECOND, 10 * SECOND, MINUTE, 10 * MINUTE, HOUR],
  jitter: 0.2,
  maxAttempts: 6,
};

export type RetrySchedules = Readonly<Record<string, RetrySchedule>>;

export function scheduleFor(kind: string, schedules: RetrySchedules = RETRY_SCHEDULES): RetrySchedule {
  // Kinds are namespaced (`inbound.batch`, `media.download`): the family's schedule serves them all.
  const family = kind.split('.')[0] ?? kind;
  return schedules[kind] ?? RETRY_SCHEDULES[kind] ?? schedules[family] ?? RETRY_SCHEDULES[family] ?? DEFAULT_RETRY_SCHEDULE;
}

/**
 * When to try again after `attempts` tries have failed (attempts >= 1).
 * `random` returns a number in [0, 1); tests pass a fixed one.
 */
export function nextRunAt(schedule: RetrySchedule, attempts: number, now: number, random: () => number = Math.random): number {
  const { delaysMs } = schedule;
  if (delaysMs.length === 0) return now;
  const index = Math.min(Math.max(attempts, 1), delaysMs.length) - 1;
  const base = delaysMs[index] ?? 0;
  const spread = base * schedule.jitter * (2 * random() - 1);
  return now + Math.max(0, Math.round(base + spread));
}
