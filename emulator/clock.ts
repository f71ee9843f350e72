/**
 * The emulator clock: real time plus an offset the control API can move, so window and tag-date
 * rules can be tested without waiting. Timers still run in real time; only timestamps and rule
 * checks read this clock.
 */
export class EmulatorClock {
  private offsetMs = 0;

  now(): number {
    return Date.now() + this.offsetMs;
  }

  get offset(): number {
    return this.offsetMs;
  }

  setOffset(offsetMs: number): void {
    this.offsetMs = offsetMs;
  }

  advance(ms: number): void {
    this.offsetMs += ms;
  }

  /** Sets the clock so that `now()` returns `epochMs` at this instant. */
  setNow(epochMs: number): void {
    this.offsetMs = epochMs - Date.now();
  }

  reset(): void {
    this.offsetMs = 0;
  }
}
