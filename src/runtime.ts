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
import { setFlagsFromString } from 'node:v8';

/** Applies `SWITCHBOARD_HEAP_GROWTH_PERCENT` (0 leaves V8's own heuristic). */
export function applyHeapGrowth(percent: number): void {
  if (!Number.isInteger(percent) || percent <= 0) return;
  setFlagsFromString(`--heap-growing-percent=${percent}`);
}
