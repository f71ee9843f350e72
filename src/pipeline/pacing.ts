/**
 * Per-sender pacing under Meta's Send API limits: 300 calls/s per Page for text, links, reactions
 * and stickers, 10 calls/s for audio and video (PLATFORM.md, "Rate limits"); a sender may lower or
 * raise them in `settings.pacing`. Each (sender, class) is a GCRA bucket, set so that no second,
 * wherever it starts, holds more than 90 % of the limit: a call may go when the bucket's
 * theoretical arrival time is within the burst tolerance, else the caller learns how long to wait
 * and reschedules (its job keeps its place: the conversation's later messages wait).
 *
 * The pacer slows a sender down as Meta's usage headers climb, stops it for the time Meta names
 * (`estimated_time_to_regain_access`), and after a rate-limit answer for a backoff that doubles
 * while the answers keep coming.
 *
 * State is in memory, per process: with several gateway processes each paces its own share, and
 * Meta's own usage headers and 613 answers (which every process reads) keep the sum in bounds.
 */
import type { GraphUsage } from '../meta/usage.js';

/** Meta: 300 Send API calls per second per Page for text, links, reactions and stickers. */
export const DEFAULT_TEXT_PER_SECOND = 300;
/** Meta: 10 Send API calls per second per Page for audio and video. */
export const DEFAULT_AUDIO_VIDEO_PER_SECOND = 10;
/** Bounds for a sender's own settings: below 0.1/s a queue never drains, above 1000/s Meta refuses anyway. */
const MIN_PER_SECOND = 0.1;
const MAX_PER_SECOND = 1000;
/**
 * A burst of a fiftieth of a second's allowance may go at once, so a backlog starts without
 * stalls. The steady rate is lowered to make room for it (see `reserve`).
 */
const BURST_SECONDS = 0.02;
/**
 * The share of Meta's limit left unused: calls that leave evenly spaced can arrive bunched (a
 * slow network, a busy event loop at either end), and a tenth of a second's allowance absorbs a
 * tenth of a second of that.
 */
const HEADROOM = 0.1;
/** Usage below this percentage leaves the rate alone; Meta throttles at 100. */
const SLOW_FROM_PERCENT = 75;
/** At or above 100 % usage a sender keeps a trickle going, so the next answer can report recovery. */
const FLOOR_FACTOR = 0.05;
/** Forget a sender's buckets after this long idle, so memory follows the active senders only. */
const IDLE_FORGET_MS = 10 * 60_000;

export type PaceClass = 'text' | 'audio_video';

export interface PacingLimits {
  text_per_second: number;
  audio_video_per_second: number;
}

export const DEFAULT_LIMITS: PacingLimits = Object.freeze({
  text_per_second: DEFAULT_TEXT_PER_SECOND,
  audio_video_per_second: DEFAULT_AUDIO_VIDEO_PER_SECOND,
});

function clampRate(value: unknown, fallback: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) return fallback;
  return Math.min(MAX_PER_SECOND, Math.max(MIN_PER_SECOND, value));
}

/** The limits in a sender's `settings` JSON (`{pacing: {text_per_second?, audio_video_per_second?}}`). */
export function pacingLimits(settings: string | Record<string, unknown> | null | undefined): PacingLimits {
  let parsed: unknown = settings;
  if (typeof settings === 'string') {
    try {
      parsed = JSON.parse(settings);
    } catch {
      return DEFAULT_LIMITS;
    }
  }
  const pacing = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>)['pacing'] : undefined;
  if (typeof pacing !== 'object' || pacing === null) return DEFAULT_LIMITS;
  const p = pacing as Record<string, unknown>;
  return {
    text_per_second: clampRate(p['text_per_second'], DEFAULT_TEXT_PER_SECOND),
    audio_video_per_second: clampRate(p['audio_video_per_second'], DEFAULT_AUDIO_VIDEO_PER_SECOND),
  };
}

/** Audio and video have their own, much lower limit; everything else counts as text. */
export function paceClassOf(mediaType: string | undefined): PaceClass {
  return mediaType === 'audio' || mediaType === 'video' ? 'audio_video' : 'text';
}

interface SenderPace {
  tat: Record<PaceClass, number>;
  /** The next slot to hand a caller told to wait: each waiter gets a slot of its own (see `reserve`). */
  waitSlot: Record<PaceClass, number>;
  /** No call before this (a rate-limit answer or Meta's regain time). */
  pausedUntil: number;
  /** 1 = full rate; lower while the usage headers are high. */
  factor: number;
  /** Rate-limit answers in a row, for the doubling backoff. */
  strikes: number;
  lastSeen: number;
}

export class SenderPacer {
  private readonly senders = new Map<string, SenderPace>();
  private lastSweep = 0;

  /** `clock` is monotonic milliseconds; pacing is about real seconds whatever the gateway's clock says. */
  constructor(private readonly clock: () => number = () => performance.now()) {}

  private state(senderId: string, now: number): SenderPace {
    let pace = this.senders.get(senderId);
    if (pace === undefined) {
      pace = { tat: { text: now, audio_video: now }, waitSlot: { text: 0, audio_video: 0 }, pausedUntil: 0, factor: 1, strikes: 0, lastSeen: now };
      this.senders.set(senderId, pace);
    }
    pace.lastSeen = now;
    if (now - this.lastSweep > IDLE_FORGET_MS) this.sweep(now);
    return pace;
  }

  private sweep(now: number): void {
    this.lastSweep = now;
    for (const [id, pace] of this.senders) {
      if (now - pace.lastSeen > IDLE_FORGET_MS && pace.pausedUntil < now) this.senders.delete(id);
    }
  }

  /**
   * Takes a slot for one call of `cls`: 0 means go now; a positive number is how many
   * milliseconds to wait, and nothing was taken (ask again then).
   */
  reserve(senderId: string, cls: PaceClass, limits: PacingLimits = DEFAULT_LIMITS): number {
    const now = this.clock();
    const pace = this.state(senderId, now);
    if (pace.pausedUntil > now) return Math.ceil(pace.pausedUntil - now);
    const base = cls === 'audio_video' ? limits.audio_video_per_second : limits.text_per_second;
    // A GCRA bucket lets through its rate plus its burst in any one second. Meta counts calls per
    // second, and a Page that went over (the emulator counts over the last second, wherever it
    // starts) gets 613 answers and a pause far costlier than the margin: so the rate leaves room
    // for the burst and the headroom, and no second holds more than 90 % of the limit.
    const rate = Math.max(MIN_PER_SECOND, (base * pace.factor * (1 - HEADROOM)) / (1 + BURST_SECONDS));
    const interval = 1000 / rate;
    const tolerance = interval * Math.max(0, rate * BURST_SECONDS - 1);
    const tat = Math.max(pace.tat[cls], now);
    if (tat - now > tolerance) {
      // Callers told to wait come back one slot apart, not all at the first free one: with a
      // backlog, every waiter asking at the same moment would be told to wait again but one, and
      // each such try is a job put back (reads, a commit). Nothing is reserved: whoever asks at a
      // free slot takes it.
      const slot = Math.max(tat - tolerance, pace.waitSlot[cls]);
      pace.waitSlot[cls] = slot + interval;
      return Math.max(1, Math.ceil(slot - now));
    }
    pace.tat[cls] = tat + interval;
    return 0;
  }

  /** Reads the usage headers of an answer: slow down as they climb, stop for Meta's regain time. */
  observeUsage(senderId: string, usage: GraphUsage | undefined): void {
    if (usage === undefined) return;
    const now = this.clock();
    const pace = this.state(senderId, now);
    const percent = usage.maxPercent;
    if (percent <= SLOW_FROM_PERCENT) pace.factor = 1;
    else if (percent >= 100) pace.factor = FLOOR_FACTOR;
    else pace.factor = Math.max(FLOOR_FACTOR, 1 - (percent - SLOW_FROM_PERCENT) / (100 - SLOW_FROM_PERCENT));
    if (usage.regainAccessMinutes > 0) pace.pausedUntil = Math.max(pace.pausedUntil, now + usage.regainAccessMinutes * 60_000);
  }

  /** A successful call: the rate-limit backoff starts over. */
  succeeded(senderId: string): void {
    const pace = this.senders.get(senderId);
    if (pace !== undefined) pace.strikes = 0;
  }

  /**
   * Meta answered with a rate limit: no call from this sender for `backoff(strike)` ms (the
   * strike count doubles the wait while the answers keep coming). Returns the wait.
   */
  rateLimited(senderId: string, backoff: (strike: number) => number): number {
    const now = this.clock();
    const pace = this.state(senderId, now);
    pace.strikes += 1;
    const wait = Math.max(1, Math.round(backoff(pace.strikes)));
    pace.pausedUntil = Math.max(pace.pausedUntil, now + wait);
    return Math.ceil(pace.pausedUntil - now);
  }

  /** How long the sender is still paused, in ms (0 when it is not). */
  pausedFor(senderId: string): number {
    const pace = this.senders.get(senderId);
    if (pace === undefined) return 0;
    return Math.max(0, Math.ceil(pace.pausedUntil - this.clock()));
  }
}

// One pacer per gateway (per pipeline context): the send jobs and the sender-action route share it.
const pacers = new WeakMap<object, SenderPacer>();

export function pacerFor(owner: object): SenderPacer {
  let pacer = pacers.get(owner);
  if (pacer === undefined) {
    pacer = new SenderPacer();
    pacers.set(owner, pacer);
  }
  return pacer;
}
