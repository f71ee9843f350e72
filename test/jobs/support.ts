/** Small helpers for the job suites: a controllable clock, condition waits and latches. */
import { JobQueue } from '../../src/jobs/queue.js';
import type { JobQueueOptions } from '../../src/jobs/queue.js';
import type { Store } from '../../src/store/db.js';

/** A clock the test moves by hand, so retry schedules and leases play out without waiting. */
export class TestClock {
  constructor(public time = 1_700_000_000_000) {}
  readonly now = (): number => this.time;
  advance(ms: number): void {
    this.time += ms;
  }
}

export function queueWithClock(store: Store, clock: TestClock, options: JobQueueOptions = {}): JobQueue {
  return new JobQueue(store, { ...options, now: clock.now });
}

/** Polls `check` until it returns true; fails with `what` after a generous timeout. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Opens once `count` parties have arrived; each `arrive()` resolves when it opens. */
export class Latch {
  private arrived = 0;
  private open!: () => void;
  readonly opened = new Promise<void>((resolve) => (this.open = resolve));
  constructor(private readonly count: number) {}
  arrive(): Promise<void> {
    this.arrived += 1;
    if (this.arrived >= this.count) this.open();
    return this.opened;
  }
  get arrivals(): number {
    return this.arrived;
  }
}

/** A promise resolved from outside. */
export function gate(): { promise: Promise<void>; release(): void } {
  let release!: () => void;
  const promise = new Promise<void>((resolve) => (release = resolve));
  return { promise, release };
}
