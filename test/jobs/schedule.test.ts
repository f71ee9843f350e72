import { describe, expect, it } from 'vitest';
import { DEFAULT_RETRY_SCHEDULE, RETRY_SCHEDULES, nextRunAt, scheduleFor } from '../../src/jobs/schedule.js';
import type { RetrySchedule } from '../../src/jobs/schedule.js';

const HOUR = 3_600_000;

/** The time from the first try to the last, with every delay at its shortest jitter. */
function shortestSpan(schedule: RetrySchedule): number {
  let at = 0;
  for (let attempts = 1; attempts < schedule.maxAttempts; attempts += 1) at = nextRunAt(schedule, attempts, at, () => 0);
  return at;
}

describe('retry schedules', () => {
  it('spread event delivery over at least 24 hours even at the shortest jitter', () => {
    expect(shortestSpan(scheduleFor('deliver'))).toBeGreaterThanOrEqual(24 * HOUR);
  });

  it('decide a send within minutes, so its conversation moves on', () => {
    const send = scheduleFor('send');
    const longest = (() => {
      let at = 0;
      for (let attempts = 1; attempts < send.maxAttempts; attempts += 1) at = nextRunAt(send, attempts, at, () => 0.999_999);
      return at;
    })();
    expect(longest).toBeLessThan(15 * 60_000);
  });

  it('try profiles and media a few times over hours', () => {
    for (const kind of ['profile', 'media']) {
      const schedule = scheduleFor(kind);
      expect(schedule.maxAttempts).toBeLessThanOrEqual(6);
      expect(shortestSpan(schedule)).toBeGreaterThanOrEqual(HOUR / 2);
    }
  });

  it('move each delay by at most its jitter, either way', () => {
    const schedule: RetrySchedule = { delaysMs: [10_000], jitter: 0.2, maxAttempts: 3 };
    expect(nextRunAt(schedule, 1, 1_000, () => 0)).toBe(1_000 + 8_000);
    expect(nextRunAt(schedule, 1, 1_000, () => 0.5)).toBe(1_000 + 10_000);
    expect(nextRunAt(schedule, 1, 1_000, () => 0.999_999)).toBe(1_000 + 12_000);
  });

  it('repeat the last delay past the end of the list', () => {
    const schedule: RetrySchedule = { delaysMs: [1_000, 5_000], jitter: 0, maxAttempts: 10 };
    expect(nextRunAt(schedule, 1, 0)).toBe(1_000);
    expect(nextRunAt(schedule, 2, 0)).toBe(5_000);
    expect(nextRunAt(schedule, 7, 0)).toBe(5_000);
  });

  it('fall back to the default schedule, and let overrides win', () => {
    expect(scheduleFor('unheard-of')).toBe(DEFAULT_RETRY_SCHEDULE);
    const custom: RetrySchedule = { delaysMs: [1], jitter: 0, maxAttempts: 2 };
    expect(scheduleFor('send', { send: custom })).toBe(custom);
    expect(scheduleFor('send')).toBe(RETRY_SCHEDULES.send);
  });
});

describe('namespaced kinds', () => {
  it('use the schedule of their family', () => {
    expect(scheduleFor('media.download')).toBe(RETRY_SCHEDULES.media);
    expect(scheduleFor('inbound.batch')).toBe(RETRY_SCHEDULES.inbound);
    expect(scheduleFor('profile.fetch')).toBe(RETRY_SCHEDULES.profile);
  });
});
