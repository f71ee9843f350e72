/** Per-sender pacing: Meta's per-Page limits, slowing down on usage headers and rate limits. */
import { describe, expect, it } from 'vitest';
import { NO_USAGE } from '../../../src/meta/usage.js';
import type { GraphUsage } from '../../../src/meta/usage.js';
import { DEFAULT_LIMITS, SenderPacer, paceClassOf, pacingLimits } from '../../../src/pipeline/pacing.js';

function clock(start = 1_000) {
  const c = { t: start, now: () => c.t };
  return c;
}

/** When the calls go within `ms` when asked as fast as they are allowed. */
function callTimes(pacer: SenderPacer, c: { t: number }, ms: number, cls: 'text' | 'audio_video', limits = DEFAULT_LIMITS): number[] {
  const end = c.t + ms;
  const times: number[] = [];
  while (c.t < end) {
    const wait = pacer.reserve('snd_a', cls, limits);
    if (wait === 0) times.push(c.t);
    else c.t += wait;
  }
  return times;
}

/** How many calls go within `ms` when asked as fast as they are allowed. */
function callsWithin(pacer: SenderPacer, c: { t: number }, ms: number, cls: 'text' | 'audio_video', limits = DEFAULT_LIMITS): number {
  return callTimes(pacer, c, ms, cls, limits).length;
}

/** The most calls in any one second, wherever it starts (Meta counts calls per second). */
function mostInOneSecond(times: number[]): number {
  let most = 0;
  for (let i = 0, j = 0; i < times.length; i += 1) {
    while ((times[i] as number) - (times[j] as number) >= 1_000) j += 1;
    most = Math.max(most, i - j + 1);
  }
  return most;
}

function usage(maxPercent: number, regainAccessMinutes = 0): GraphUsage {
  return { ...NO_USAGE, maxPercent, regainAccessMinutes };
}

describe('pacing a sender', () => {
  it('lets 270 text calls a second through: a tenth under Meta\'s 300 in any one second, wherever it starts', () => {
    const c = clock();
    const pacer = new SenderPacer(c.now);
    const times = callTimes(pacer, c, 3_000, 'text');
    // The burst that starts a backlog comes out of the rate: 270 / 1.02 a second, plus 5 at once.
    expect(times.length).toBeGreaterThanOrEqual(3 * 264);
    expect(mostInOneSecond(times)).toBeLessThanOrEqual(270);
    expect(mostInOneSecond(times)).toBeGreaterThanOrEqual(265);
  });

  it('tells callers that must wait to come back one slot apart, and each finds its slot free then', () => {
    const c = clock();
    const pacer = new SenderPacer(c.now);
    while (pacer.reserve('snd_a', 'text') === 0); // the burst is spent
    const waits = Array.from({ length: 10 }, () => pacer.reserve('snd_a', 'text'));
    for (let i = 1; i < waits.length; i += 1) expect(waits[i]).toBeGreaterThan(waits[i - 1] as number);
    const start = c.t;
    for (const wait of waits) {
      c.t = start + wait;
      expect(pacer.reserve('snd_a', 'text')).toBe(0);
    }
  });

  it('holds audio and video to 10 a second, apart from text', () => {
    const c = clock();
    const pacer = new SenderPacer(c.now);
    const times = callTimes(pacer, c, 3_000, 'audio_video');
    expect(times.length).toBeGreaterThanOrEqual(25);
    expect(mostInOneSecond(times)).toBeLessThanOrEqual(9);
    expect(pacer.reserve('snd_a', 'text')).toBe(0);
    expect(paceClassOf('video')).toBe('audio_video');
    expect(paceClassOf('audio')).toBe('audio_video');
    expect(paceClassOf('image')).toBe('text');
    expect(paceClassOf(undefined)).toBe('text');
  });

  it("paces senders apart: one sender's backlog does not slow another", () => {
    const c = clock();
    const pacer = new SenderPacer(c.now);
    while (pacer.reserve('snd_a', 'audio_video') === 0);
    expect(pacer.reserve('snd_b', 'audio_video')).toBe(0);
  });

  it("takes a sender's own limits from its settings, within bounds", () => {
    expect(pacingLimits(JSON.stringify({ pacing: { text_per_second: 20, audio_video_per_second: 2 } }))).toEqual({ text_per_second: 20, audio_video_per_second: 2 });
    expect(pacingLimits('{"pacing":{"text_per_second":-5}}')).toEqual(DEFAULT_LIMITS);
    expect(pacingLimits('not json')).toEqual(DEFAULT_LIMITS);
    expect(pacingLimits({ pacing: { text_per_second: 1e9 } }).text_per_second).toBe(1000);
    const c = clock();
    const pacer = new SenderPacer(c.now);
    expect(callsWithin(pacer, c, 1_000, 'text', pacingLimits({ pacing: { text_per_second: 20 } }))).toBeLessThanOrEqual(22);
  });

  it('slows down as the usage headers climb and recovers when they fall', () => {
    const c = clock();
    const pacer = new SenderPacer(c.now);
    pacer.observeUsage('snd_a', usage(95));
    const slow = callsWithin(pacer, c, 1_000, 'text');
    expect(slow).toBeLessThan(100);
    pacer.observeUsage('snd_a', usage(10));
    expect(callsWithin(pacer, c, 1_000, 'text')).toBeGreaterThan(250);
  });

  it("stops for Meta's regain time, and after rate-limit answers for a doubling backoff", () => {
    const c = clock();
    const pacer = new SenderPacer(c.now);
    pacer.observeUsage('snd_a', usage(100, 2));
    expect(pacer.reserve('snd_a', 'text')).toBe(120_000);
    c.t += 120_000;
    pacer.observeUsage('snd_a', usage(0));
    expect(pacer.reserve('snd_a', 'text')).toBe(0);

    const waits = [1, 2, 3].map(() => {
      const wait = pacer.rateLimited('snd_a', (strike) => 1_000 * 2 ** (strike - 1));
      c.t += wait;
      return wait;
    });
    expect(waits).toEqual([1_000, 2_000, 4_000]);
    pacer.succeeded('snd_a');
    expect(pacer.rateLimited('snd_a', (strike) => 1_000 * 2 ** (strike - 1))).toBe(1_000);
    expect(pacer.pausedFor('snd_a')).toBe(1_000);
  });
});
