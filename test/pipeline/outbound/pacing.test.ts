/** Per-sender pacing: Meta's per-Page limits, slowing down on usage headers and rate limits. */
import { describe, expect, it } from 'vitest';
import { NO_USAGE } from '../../../src/meta/usage.js';
import type { GraphUsage } from '../../../src/meta/usage.js';
import { DEFAULT_LIMITS, SenderPacer, paceClassOf, pacingLimits } from '../../../src/pipeline/pacing.js';

function clock(start = 1_000) {
  const c = { t: start, now: () => c.t };
  return c;
}

/** How many calls go within `ms` when asked as fast as they are allowed. */
function callsWithin(pacer: SenderPacer, c: { t: number }, ms: number, cls: 'text' | 'audio_video', limits = DEFAULT_LIMITS): number {
  const end = c.t + ms;
  let calls = 0;
  while (c.t < end) {
    const wait = pacer.reserve('snd_a', cls, limits);
    if (wait === 0) calls += 1;
    else c.t += wait;
  }
  return calls;
}

function usage(maxPercent: number, regainAccessMinutes = 0): GraphUsage {
  return { ...NO_USAGE, maxPercent, regainAccessMinutes };
}

describe('pacing a sender', () => {
  it('lets about 300 text calls a second through and no more', () => {
    const c = clock();
    const pacer = new SenderPacer(c.now);
    const calls = callsWithin(pacer, c, 2_000, 'text');
    // A burst of a tenth of a second's allowance on top of 300/s.
    expect(calls).toBeGreaterThanOrEqual(600);
    expect(calls).toBeLessThanOrEqual(600 + 31);
  });

  it('holds audio and video to 10 a second, apart from text', () => {
    const c = clock();
    const pacer = new SenderPacer(c.now);
    expect(callsWithin(pacer, c, 3_000, 'audio_video')).toBeLessThanOrEqual(31);
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
