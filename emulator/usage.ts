import type { EmulatorState } from './state.js';

/**
 * Call accounting behind the usage headers Meta puts on every Graph response, and the per-Page
 * Send API rate limit.
 *
 * Percentages follow Meta's published formulas with the emulator's own counts:
 * - X-App-Usage: calls by the app in the last hour against 200 x people reachable by its Pages;
 * - X-Page-Usage: calls with the Page's tokens in the last 24 h against 4800 x engaged people;
 * - X-Business-Use-Case-Usage (type messenger): Send API calls for the Page in the last 24 h
 *   against 200 x engaged people.
 * Meta publishes no time budgets; the emulator allots 100 ms of wall time and 50 ms of CPU to
 * each budgeted call.
 */

const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;
// Meta's platform rate limit: 200 calls per hour per user of the app.
const APP_CALLS_PER_USER_PER_HOUR = 200;
// Meta's Page rate limit: 4800 calls per 24 h per engaged user.
const PAGE_CALLS_PER_USER_PER_DAY = 4800;
// Messenger business-use-case limit: 200 calls per 24 h per engaged user.
const MESSENGER_CALLS_PER_USER_PER_DAY = 200;
const TIME_BUDGET_PER_CALL_MS = 100;
const CPU_BUDGET_PER_CALL_MS = 50;
// Memory guard: a counter never keeps more samples than this.
const MAX_SAMPLES = 100_000;
// How often the process's CPU is read to set the share charged to each call.
const CPU_READ_EVERY_MS = 100;

interface Sample {
  at: number;
  timeMs: number;
  cpuMs: number;
}

/** Samples in arrival order with running sums, so a total costs nothing per request. */
class RollingCounter {
  private samples: Sample[] = [];
  private head = 0;
  private timeMs = 0;
  private cpuMs = 0;

  add(sample: Sample): void {
    this.samples.push(sample);
    this.timeMs += sample.timeMs;
    this.cpuMs += sample.cpuMs;
    if (this.samples.length - this.head > MAX_SAMPLES) this.dropOldest();
  }

  totals(now: number, windowMs: number): { calls: number; timeMs: number; cpuMs: number } {
    const since = now - windowMs;
    while (this.head < this.samples.length && (this.samples[this.head]?.at ?? 0) < since) this.dropOldest();
    // Compact now and then so the array does not grow without bound.
    if (this.head > 1024 && this.head * 2 > this.samples.length) {
      this.samples = this.samples.slice(this.head);
      this.head = 0;
    }
    return { calls: this.samples.length - this.head, timeMs: this.timeMs, cpuMs: this.cpuMs };
  }

  private dropOldest(): void {
    const oldest = this.samples[this.head];
    if (!oldest) return;
    this.timeMs -= oldest.timeMs;
    this.cpuMs -= oldest.cpuMs;
    this.head++;
  }
}

/**
 * The CPU charged to a Graph call: the process's CPU over the last period of `CPU_READ_EVERY_MS`,
 * split evenly between the calls answered in it. Reading the process's CPU is a system call that
 * sums the time of every thread; read twice a call, around each handler, it was 8 % of the
 * emulator's samples (16 % of its busy time) at 3,000 calls a second on the benchmark machine,
 * and around an asynchronous handler it measured whatever else the process did meanwhile anyway.
 */
export class CpuShare {
  #last: NodeJS.CpuUsage;
  #readAt: number;
  #calls = 0;
  #perCallMs = 0;
  readonly #now: () => number;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
    this.#last = process.cpuUsage();
    this.#readAt = now();
  }

  /** Counts one answered call and returns its share, in ms, from the last full period. */
  charge(): number {
    this.#calls += 1;
    const now = this.#now();
    if (now - this.#readAt >= CPU_READ_EVERY_MS) {
      const total = process.cpuUsage();
      const usedUs = total.user - this.#last.user + (total.system - this.#last.system);
      this.#last = total;
      this.#perCallMs = usedUs / 1000 / this.#calls;
      this.#calls = 0;
      this.#readAt = now;
    }
    return this.#perCallMs;
  }
}

export interface UsageNumbers {
  call_count: number;
  total_time: number;
  total_cputime: number;
}

export interface BusinessUseCaseUsage extends UsageNumbers {
  type: 'messenger';
  estimated_time_to_regain_access: number;
}

export class UsageMeter {
  private readonly apps = new Map<string, RollingCounter>();
  private readonly pages = new Map<string, RollingCounter>();
  private readonly pageSends = new Map<string, RollingCounter>();
  /** Real-time send timestamps per Page, for the per-second limit. */
  private readonly sendsThisSecond = new Map<string, number[]>();
  /** Page id -> real time until which a rate_limit fault says the Page is throttled. */
  private readonly throttledUntil = new Map<string, number>();
  /** Page id -> Send API calls refused for going over the per-second limit. */
  private readonly refusedSends = new Map<string, number>();

  /** The CPU each call is charged with (`record` callers ask it once per call). */
  readonly cpu = new CpuShare();

  constructor(private readonly state: EmulatorState) {}

  clear(): void {
    this.apps.clear();
    this.pages.clear();
    this.pageSends.clear();
    this.sendsThisSecond.clear();
    this.throttledUntil.clear();
    this.refusedSends.clear();
  }

  record(call: { appId: string | null; pageId: string | null; isSend: boolean; timeMs: number; cpuMs: number }): void {
    const sample: Sample = { at: Date.now(), timeMs: call.timeMs, cpuMs: call.cpuMs };
    if (call.appId !== null) counter(this.apps, call.appId).add(sample);
    if (call.pageId !== null) {
      counter(this.pages, call.pageId).add(sample);
      if (call.isSend) counter(this.pageSends, call.pageId).add(sample);
    }
  }

  /** True when one more send fits in the Page's per-second budget; counts it if so. */
  admitSend(pageId: string, perSecond: number): boolean {
    const now = Date.now();
    const recent = (this.sendsThisSecond.get(pageId) ?? []).filter((at) => at > now - 1000);
    if (recent.length >= perSecond) {
      this.sendsThisSecond.set(pageId, recent);
      this.refusedSends.set(pageId, (this.refusedSends.get(pageId) ?? 0) + 1);
      return false;
    }
    recent.push(now);
    this.sendsThisSecond.set(pageId, recent);
    return true;
  }

  /** Send API calls refused for the Page's per-second limit since the start (or the last reset). */
  refusedSendsOf(pageId: string): number {
    return this.refusedSends.get(pageId) ?? 0;
  }

  throttle(pageId: string, forMs: number): void {
    this.throttledUntil.set(pageId, Date.now() + forMs);
  }

  appUsage(appId: string | null): UsageNumbers {
    if (appId === null) return { call_count: 0, total_time: 0, total_cputime: 0 };
    const people = this.reachablePeople(appId);
    const budget = APP_CALLS_PER_USER_PER_HOUR * Math.max(1, people);
    return percentages(counter(this.apps, appId).totals(Date.now(), HOUR_MS), budget);
  }

  pageUsage(pageId: string): UsageNumbers {
    const budget = PAGE_CALLS_PER_USER_PER_DAY * Math.max(1, this.engagedPeople(pageId));
    return percentages(counter(this.pages, pageId).totals(Date.now(), DAY_MS), budget);
  }

  businessUseCaseUsage(pageId: string): Record<string, BusinessUseCaseUsage[]> {
    const budget = MESSENGER_CALLS_PER_USER_PER_DAY * Math.max(1, this.engagedPeople(pageId));
    const numbers = percentages(counter(this.pageSends, pageId).totals(Date.now(), DAY_MS), budget);
    const throttled = (this.throttledUntil.get(pageId) ?? 0) - Date.now();
    const entry: BusinessUseCaseUsage = {
      type: 'messenger',
      ...numbers,
      estimated_time_to_regain_access: 0,
    };
    if (throttled > 0) {
      entry.call_count = 100;
      // Meta gives this value in minutes.
      entry.estimated_time_to_regain_access = Math.ceil(throttled / 60_000);
    }
    return { [pageId]: [entry] };
  }

  private engagedPeople(pageId: string): number {
    return this.state.threadCount(pageId);
  }

  private reachablePeople(appId: string): number {
    let count = 0;
    for (const page of this.state.pages.values()) if (page.appId === appId) count += this.state.threadCount(page.id);
    return count;
  }
}

function counter(map: Map<string, RollingCounter>, key: string): RollingCounter {
  let found = map.get(key);
  if (!found) {
    found = new RollingCounter();
    map.set(key, found);
  }
  return found;
}

function percentages(totals: { calls: number; timeMs: number; cpuMs: number }, budgetCalls: number): UsageNumbers {
  const percent = (value: number, budget: number) => Math.min(100, Math.ceil((value / budget) * 100));
  return {
    call_count: percent(totals.calls, budgetCalls),
    total_time: percent(totals.timeMs, budgetCalls * TIME_BUDGET_PER_CALL_MS),
    total_cputime: percent(totals.cpuMs, budgetCalls * CPU_BUDGET_PER_CALL_MS),
  };
}
