/**
 * Process-wide runtime settings for the long-running commands (`serve`, `dev`).
 *
 * V8 decides when to collect its old generation from how large the heap may grow, and on a machine
 * with gigabytes of memory it lets the heap reach three to four times the live data first. The
 * gateway's live heap is small (about 30-40 MB under load) but it promotes short-lived request and
 * job objects steadily, so an idle-looking old generation of 100 MB of garbage was normal: at 500
 * messages a second the process reached 245 MB resident. Capping the growth factor makes V8 collect
 * (concurrently, off the main thread for the most part) once the heap is 1.6x the live data; the
 * benchmarks measured 187-201 MB peak with the same throughput and latency (docs/BENCHMARKS.md).
 *
 * V8 reads this factor each time it sizes the heap after a collection, so it can be set once the
 * process runs; a heap limit (`--max-old-space-size`) could not be, and would turn a large live
 * heap into a crash rather than more frequent collections. V8's own flag is used because Node has
 * no API for it (checked on Node 20 and 22); a V8 that no longer knew it would print a warning and
 * carry on with its own heuristic.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import type { Worker } from 'node:worker_threads';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';

/** Applies `SWITCHBOARD_HEAP_GROWTH_PERCENT` (0 leaves V8's own heuristic). */
export function applyHeapGrowth(percent: number): void {
  if (!Number.isInteger(percent) || percent <= 0) return;
  setFlagsFromString(`--heap-growing-percent=${percent}`);
}

/*
 * The young generation. V8 doubles it from 1 MB a semi-space whenever enough survives a collection,
 * up to 16 MB on Node 20 and 22 (32 MB resident for the pair) and 64 MB on Node 24; a gateway reaches
 * the maximum while it loads its modules. At 8 MB the inbound benchmark peaked 15-20 MB lower at the
 * same CPU a message (docs/BENCHMARKS.md). `--max-semi-space-size` is only read when V8 sets up the
 * heap, so it would be a start flag in every command; what V8 does read at each growth is
 * `--semi-space-growth-factor`: 1 means no growth, 2 is V8's own. V8 cannot shrink the young
 * generation on request, so the cap is installed before the gateway's modules load (`src/cli.ts`
 * imports them after it).
 *
 * On Node 20 and 22, V8 puts a factor below 2 back to 2 for the whole process whenever a new isolate
 * (a worker thread, such as the SQLite checkpointer's) sets up its heap, and a collection before the
 * main thread hears that the worker is online (an idle-time mark-compact finishing, say) may then
 * grow the young generation once. So while the gateway starts (and its worker with it), the factor
 * is held at 1 and the young generation stays at a few MB, where one such doubling stays far under
 * the cap; `release()` once it runs lets it grow to the cap and no further. Each worker that comes
 * online later has the factor set again, and the size is checked after every collection (a `gc`
 * performance entry). Node 24's V8 keeps the factor, and counts pages it adds between collections in
 * the size it reports: after each collection the young generation is back at the cap.
 *
 * At full speed the larger young generation pays for itself: in outbound runs at saturation, 8 MB
 * doubled the scavenges (1.1-1.2 s of pauses against 0.74-0.83 s) and carried 1,400 messages/s on average
 * against 1,540 with V8's 16 MB (nine alternating pairs). So while the event loop is busy over 90 % of
 * the time, the cap is twice the setting; once it is not, the young generation stops growing again,
 * and V8 gives back what it has grown when allocation nearly stops.
 */
const NEW_SPACE = 'new_space';
const SATURATED = 0.9;
// How often the event loop's utilisation is read (a cheap call) to tell saturation.
const LOAD_WINDOW_MS = 2000;
// V8's own growth factor (its default), restored whenever the young generation is under the cap.
const V8_GROWTH_FACTOR = 2;

/** The young generation's size (both semi-spaces), as V8 reports it. */
export function youngGenerationBytes(): number {
  return getHeapSpaceStatistics().find((s) => s.space_name === NEW_SPACE)?.space_size ?? 0;
}

export interface YoungGenerationOptions {
  /** Doubles the cap while the event loop is saturated (the default). */
  doubleWhenSaturated?: boolean;
}

export interface YoungGenerationCap {
  /** The cap for both semi-spaces together, in bytes (what V8 reports as the new space's size). */
  readonly capBytes: number;
  /** Ends the start-up hold: from now on the young generation may grow, up to the cap. */
  release(): void;
  stop(): void;
}

/**
 * Applies `SWITCHBOARD_SEMI_SPACE_MB` (a power of two; 0 leaves V8's own maximum) until `stop()`,
 * holding the young generation where it is until `release()`, and allowing twice the setting while
 * the event loop is saturated. Returns undefined when there is nothing to do.
 */
export function capYoungGeneration(semiSpaceMb: number, options: YoungGenerationOptions = {}): YoungGenerationCap | undefined {
  if (!Number.isInteger(semiSpaceMb) || semiSpaceMb <= 0) return undefined;
  const capBytes = 2 * semiSpaceMb * 1024 * 1024;
  let limit = capBytes;
  let holding = true;
  let factor = 0;
  let stopped = false;
  const apply = (force: boolean): void => {
    if (stopped) return;
    const next = holding || youngGenerationBytes() >= limit ? 1 : V8_GROWTH_FACTOR;
    // Set when it changes or a worker may have reset it, not after every collection: a V8 that no
    // longer knew the flag would print an error for each call.
    if (next === factor && !force) return;
    factor = next;
    setFlagsFromString(`--semi-space-growth-factor=${next}`);
  };
  const observer = new PerformanceObserver(() => apply(false));
  const onWorker = (message: unknown): void => {
    (message as { worker?: Worker }).worker?.once('online', () => apply(true));
  };
  let lastLoad = performance.eventLoopUtilization();
  const load =
    options.doubleWhenSaturated === false
      ? undefined
      : setInterval(() => {
          const now = performance.eventLoopUtilization();
          const saturated = performance.eventLoopUtilization(now, lastLoad).utilization > SATURATED;
          lastLoad = now;
          const next = saturated ? 2 * capBytes : capBytes;
          if (next === limit) return;
          limit = next;
          apply(true);
        }, LOAD_WINDOW_MS);
  load?.unref();
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    observer.disconnect();
    unsubscribe('worker_threads', onWorker);
    if (load) clearInterval(load);
  };
  observer.observe({ entryTypes: ['gc'] });
  subscribe('worker_threads', onWorker);
  apply(true);
  return {
    capBytes,
    release: () => {
      holding = false;
      apply(true);
    },
    stop,
  };
}
