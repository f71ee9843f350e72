/**
 * A small HTTP load generator run in its own process (so it does not steal the event loop of the
 * server it measures). Closed loop (N connections, each sending the next request when the previous
 * answers) or open loop at a fixed rate. Only ever aimed at 127.0.0.1; bounded in count and time.
 */
import { Pool } from 'undici';

export interface LoadSpec {
  url: string;
  path: string;
  method: 'POST' | 'GET';
  headers: Record<string, string>;
  /** Bodies sent round-robin. */
  bodies: string[];
  /** Per-body paths (e.g. one Page each), same order as bodies; `path` when absent. */
  paths?: string[];
  /** Per-body extra headers (e.g. signatures), same order as bodies. */
  bodyHeaders?: Record<string, string>[];
  connections: number;
  durationMs: number;
  /** Hard cap on requests. */
  maxRequests: number;
  /** Open loop: requests per second; closed loop when absent. */
  rate?: number;
  warmupMs?: number;
}

export interface LoadResult {
  requests: number;
  ok: number;
  errors: number;
  statuses: Record<string, number>;
  seconds: number;
  rps: number;
  p50: number;
  p99: number;
  max: number;
  /** The load generator's own CPU over the whole run, warm-up included (ms, every thread). */
  cpuMs: number;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

/** `__NOW__` in a body becomes the send time (epoch ms), so a receiver can measure end-to-end latency. */
function stamp(body: string): string {
  return body.includes('__NOW__') ? body.replaceAll('__NOW__', String(Date.now())) : body;
}

export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const origin = new URL(spec.url);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(origin.hostname)) throw new Error('load is only ever sent to 127.0.0.1');
  const pool = new Pool(origin.origin, { connections: spec.connections, pipelining: 1, keepAliveTimeout: 30_000 });
  const cpuBefore = process.cpuUsage();
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let requests = 0;
  let ok = 0;
  let errors = 0;
  let i = 0;
  let measuring = !spec.warmupMs;
  const one = async () => {
    const n = i++;
    const idx = n % spec.bodies.length;
    // Counted or not by when it was sent: a warm-up request answered after the warm-up is not.
    const counted = measuring;
    const started = performance.now();
    try {
      const res = await pool.request({
        path: spec.paths?.[idx] ?? spec.path,
        method: spec.method,
        headers: { ...spec.headers, ...(spec.bodyHeaders?.[idx] ?? {}) },
        body: spec.method === 'POST' ? stamp(spec.bodies[idx] ?? '') : undefined,
      });
      await res.body.dump();
      if (counted) {
        latencies.push(performance.now() - started);
        statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
        requests++;
        if (res.statusCode < 300) ok++;
        else errors++;
      }
    } catch (err) {
      if (counted) {
        requests++;
        errors++;
        const k = (err as { code?: string }).code ?? 'error';
        statuses[k] = (statuses[k] ?? 0) + 1;
      }
    }
  };
  if (spec.warmupMs && !spec.rate) {
    const until = performance.now() + spec.warmupMs;
    await Promise.all(Array.from({ length: spec.connections }, async () => {
      while (performance.now() < until) await one();
    }));
    measuring = true;
  }
  let started = performance.now();
  if (spec.rate) {
    // Open loop, warm-up included: the warm-up keeps the same rate (a closed-loop warm-up would
    // send as fast as answered and leave a backlog behind it).
    const interval = 1000 / spec.rate;
    const inflight = new Set<Promise<void>>();
    const warmUntil = started + (spec.warmupMs ?? 0);
    const deadline = warmUntil + spec.durationMs;
    let next = performance.now();
    while (performance.now() < deadline && requests + inflight.size < spec.maxRequests) {
      const now = performance.now();
      if (!measuring && now >= warmUntil) {
        measuring = true;
        started = now;
      }
      while (next <= now && performance.now() < deadline) {
        const p = one().finally(() => inflight.delete(p));
        inflight.add(p);
        next += interval;
      }
      await new Promise((r) => setTimeout(r, Math.max(0, Math.min(5, next - performance.now()))));
    }
    await Promise.all(inflight);
  } else {
    const deadline = started + spec.durationMs;
    await Promise.all(Array.from({ length: spec.connections }, async () => {
      while (performance.now() < deadline && requests < spec.maxRequests) await one();
    }));
  }
  const seconds = (performance.now() - started) / 1000;
  await pool.close();
  const cpu = process.cpuUsage(cpuBefore);
  latencies.sort((a, b) => a - b);
  return {
    requests,
    ok,
    errors,
    statuses,
    seconds,
    rps: ok / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max: latencies[latencies.length - 1] ?? 0,
    cpuMs: (cpu.user + cpu.system) / 1000,
  };
}

// As a child process: run each spec received over IPC, one at a time, and answer with its result;
// an `{ op: 'exit' }` message (or the parent going away) ends the worker.
if (process.send && process.argv.includes('--load-worker')) {
  let queue: Promise<void> = Promise.resolve();
  process.on('message', (m: LoadSpec | { op: 'exit' }) => {
    if ('op' in m) {
      // Disconnect and let the process end by itself: exiting from the send callback sometimes lost
      // the result in flight, and the parent then waited for a message that never came.
      queue = queue.then(() => process.disconnect());
      return;
    }
    queue = queue.then(() =>
      runLoad(m).then(
        (result) => void process.send?.({ result }),
        (err: unknown) => {
          process.exitCode = 1;
          process.send?.({ error: String(err) });
        },
      ),
    );
  });
}
