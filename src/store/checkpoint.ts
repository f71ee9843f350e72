/**
 * SQLite WAL checkpoints off the event loop. SQLite's automatic checkpoint runs inside whichever
 * commit crosses 1000 WAL pages, on the main thread, and stalls it for 8-17 ms; so the writer's
 * automatic checkpoints are turned off and a worker thread with its own connection checkpoints
 * PASSIVE (never waits for, never blocks the writer) on a timer.
 *
 * PASSIVE alone never lets a busy writer start the WAL over: the WAL restarts only when a write
 * begins after a checkpoint that copied every frame, and with a group committed every few
 * milliseconds new frames always arrive while it copies. So the WAL grew to the safety valve's size,
 * every page read searched a longer WAL index, and the valve's RESTART made the writer's
 * `BEGIN IMMEDIATE` spin in SQLite's busy handler on the event loop (measured: begin and commit took
 * twice as long after a few minutes of load). Now, once the WAL passes `resetAboveBytes`,
 * the worker asks the main thread, which takes the connection (every transaction and read waits for
 * it asynchronously, the event loop stays free), and with no writer in the way the worker's RESTART
 * completes in a few milliseconds; the next write starts the WAL from its beginning.
 *
 * That pause is what every API request arriving meanwhile waits for, so the worker makes it short
 * before asking for it: a RESTART copies what the last PASSIVE left and syncs the database file, and
 * a PASSIVE leaves what was written while it ran. So the worker first runs PASSIVE again, each pass
 * copying what arrived during the one before, until a pass is quick; the pause then copies about a
 * millisecond of writes. While the main thread gets to the pause (its loop may be busy for a few
 * milliseconds), the worker keeps copying what arrives, so the pause finds nothing or almost nothing
 * left. If a commit between two passes has already started the WAL over (a writer does that when
 * the pass before it copied every frame), no pause is asked for at all.
 *
 * If the WAL still grows past a limit (a long reader kept PASSIVE from finishing), a RESTART
 * checkpoint run by the worker alone stays the safety valve.
 * PostgreSQL and in-memory databases need none of this; `startCheckpointer` is then a no-op.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Store } from './db.js';

export interface CheckpointerOptions {
  /** How often the worker checkpoints. */
  intervalMs?: number;
  /** WAL content (frames x page size) above which a RESTART checkpoint runs. */
  restartAboveBytes?: number;
  /** WAL content above which the worker asks for the writer's pause to start the WAL over. */
  resetAboveBytes?: number;
  /** Runs `fn` while holding the database's connection (no transaction or read runs meanwhile). */
  exclusive?: (fn: () => Promise<void>) => Promise<void>;
  /** Told when the worker fails (the writer then checkpoints by itself again). */
  onError?: (err: Error) => void;
}

export interface CheckpointResult {
  mode: 'PASSIVE' | 'RESTART';
  /** 1 when the checkpoint could not finish because of a reader or writer. */
  busy: number;
  /** Frames in the WAL. */
  log: number;
  /** Frames copied into the database file. */
  checkpointed: number;
}

export interface Checkpointer {
  /** Runs one checkpoint now (the timer keeps running); resolves with its result. */
  checkpointNow(): Promise<CheckpointResult[]>;
  /** Stops the worker and gives checkpoints back to the writer. */
  stop(): Promise<void>;
  /**
   * Resolves once the worker's thread runs (or has ended). The server waits for it before going on:
   * setting up the thread's V8 heap undoes the young generation's cap (`src/runtime.ts`) until the
   * main thread hears that it is online, which it does only between tasks.
   */
  readonly online: Promise<void>;
}

// Half a second keeps the WAL to a few MB at thousands of writes per second while costing the
// worker one cheap call per tick when nothing changed.
const DEFAULT_INTERVAL_MS = 500;
// 64 MB of WAL means PASSIVE has been losing for a while; reads slow down as the WAL grows.
const DEFAULT_RESTART_ABOVE_BYTES = 64 * 1024 * 1024;
// A few thousand frames: the pause to start over then copies only what the last PASSIVE left.
const DEFAULT_RESET_ABOVE_BYTES = 16 * 1024 * 1024;
// SQLite's default automatic checkpoint threshold, given back to the writer on stop.
const SQLITE_DEFAULT_AUTOCHECKPOINT = 1000;
// The RESTART valve waits this long for readers before giving up until the next tick.
const RESTART_BUSY_TIMEOUT_MS = 2000;
// Before asking for the writer's pause, the worker copies again what arrived while it copied, until
// a pass is this quick (the frames left for the pause are then about a millisecond's worth) or it
// has made this many passes.
const CATCH_UP_MS = 2;
const CATCH_UP_PASSES = 4;
// And while it waits for the pause, it keeps copying, pass after pass, for at most this long (the
// main thread may be slow to get to it, or may have given up on a failure; the next tick asks again).
const PAUSE_WAIT_MS = 1000;

/**
 * The worker's code, evaluated as a script so it runs the same from sources (tests) and from the
 * build; `better-sqlite3` is passed in as a resolved path.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path, { fileMustExist: true });
db.pragma('busy_timeout = ' + workerData.busyTimeoutMs);
const pageSize = db.pragma('page_size', { simple: true });
function run(mode) {
  const row = db.pragma('wal_checkpoint(' + mode + ')')[0];
  return { mode, busy: row.busy, log: row.log, checkpointed: row.checkpointed };
}
function tick() {
  const results = [run('PASSIVE')];
  const last = results[0];
  if (last.log * pageSize > workerData.restartAboveBytes) results.push(run('RESTART'));
  else if (workerData.resetAboveBytes > 0 && pauseAskedAt === 0 && last.log * pageSize > workerData.resetAboveBytes && !catchUp(last.log)) {
    pauseAskedAt = performance.now();
    parentPort.postMessage({ type: 'reset-wanted' });
    setImmediate(keepUp);
  }
  return results;
}
let pauseAskedAt = 0;
let keptUpTo = 0;
function keepUp() {
  if (pauseAskedAt === 0) return;
  if (performance.now() - pauseAskedAt > workerData.pauseWaitMs) { pauseAskedAt = 0; return; }
  let now;
  try { now = run('PASSIVE'); } catch (err) { pauseAskedAt = 0; parentPort.postMessage({ type: 'error', message: String(err && err.message || err) }); return; }
  // Nothing new was written: look again in a millisecond rather than spin.
  const idle = now.log === keptUpTo;
  keptUpTo = now.log;
  if (idle) setTimeout(keepUp, 1);
  else setImmediate(keepUp);
}
function catchUp(log) {
  for (let pass = 0; pass < workerData.catchUpPasses; pass++) {
    const started = performance.now();
    const now = run('PASSIVE');
    if (now.log < log) return true;
    log = now.log;
    if (performance.now() - started < workerData.catchUpMs) break;
  }
  return false;
}
const timer = setInterval(() => {
  try { tick(); } catch (err) { parentPort.postMessage({ type: 'error', message: String(err && err.message || err) }); }
}, workerData.intervalMs);
parentPort.on('message', (msg) => {
  if (msg.type === 'reset') {
    pauseAskedAt = 0;
    let results, error;
    try { results = [run('RESTART')]; } catch (err) { error = String(err && err.message || err); }
    parentPort.postMessage({ type: 'reset-done', results, error });
  } else if (msg.type === 'now') {
    try { parentPort.postMessage({ type: 'result', id: msg.id, results: tick() }); }
    catch (err) { parentPort.postMessage({ type: 'result', id: msg.id, error: String(err && err.message || err) }); }
  } else if (msg.type === 'stop') {
    pauseAskedAt = 0;
    clearInterval(timer);
    db.close();
    parentPort.close();
  }
});
`;

type WorkerMessage =
  | { type: 'error'; message: string }
  | { type: 'result'; id: number; results?: CheckpointResult[]; error?: string }
  | { type: 'reset-wanted' }
  | { type: 'reset-done'; results?: CheckpointResult[]; error?: string };

export function startCheckpointer(store: Store, options: CheckpointerOptions = {}): Checkpointer {
  const sqlite = store.sqlite;
  if (store.engine !== 'sqlite' || !sqlite || sqlite.memory) {
    return { checkpointNow: async () => [], stop: async () => undefined, online: Promise.resolve() };
  }
  const path = sqlite.name;
  sqlite.pragma('wal_autocheckpoint = 0');
  // When the WAL is reset it is also cut back, so one burst does not leave a huge file behind.
  sqlite.pragma(`journal_size_limit = ${options.restartAboveBytes ?? DEFAULT_RESTART_ABOVE_BYTES}`);

  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: {
      driver: createRequire(import.meta.url).resolve('better-sqlite3'),
      path,
      intervalMs: options.intervalMs ?? DEFAULT_INTERVAL_MS,
      restartAboveBytes: options.restartAboveBytes ?? DEFAULT_RESTART_ABOVE_BYTES,
      // Without a way to pause the writer, the worker keeps to PASSIVE and the valve.
      resetAboveBytes: options.exclusive ? (options.resetAboveBytes ?? DEFAULT_RESET_ABOVE_BYTES) : 0,
      busyTimeoutMs: RESTART_BUSY_TIMEOUT_MS,
      catchUpPasses: CATCH_UP_PASSES,
      catchUpMs: CATCH_UP_MS,
      pauseWaitMs: PAUSE_WAIT_MS,
    },
  });
  // The checkpointer must never keep a finished process alive.
  worker.unref();
  const online = new Promise<void>((resolve) => {
    worker.once('online', resolve);
    worker.once('exit', () => resolve());
  });

  let nextId = 1;
  const waiting = new Map<number, { resolve(r: CheckpointResult[]): void; reject(e: Error): void }>();
  let stopped = false;
  const giveBack = () => {
    if (sqlite.open) sqlite.pragma(`wal_autocheckpoint = ${SQLITE_DEFAULT_AUTOCHECKPOINT}`);
  };

  // The writer's pause while the worker starts the WAL over (see the top of this file).
  let resetting = false;
  let resetDone: (() => void) | undefined;
  const reset = (): void => {
    const exclusive = options.exclusive;
    if (resetting || stopped || !exclusive) return;
    resetting = true;
    exclusive(
      () =>
        new Promise<void>((resolve) => {
          resetDone = resolve;
          worker.postMessage({ type: 'reset' });
        }),
    )
      .catch((err: unknown) => options.onError?.(err instanceof Error ? err : new Error(String(err))))
      .finally(() => {
        resetting = false;
        resetDone = undefined;
      });
  };

  worker.on('message', (msg: WorkerMessage) => {
    if (msg.type === 'reset-wanted') {
      reset();
      return;
    }
    if (msg.type === 'reset-done') {
      if (msg.error !== undefined) options.onError?.(new Error(`WAL checkpoint failed: ${msg.error}`));
      resetDone?.();
      return;
    }
    if (msg.type === 'error') {
      options.onError?.(new Error(`WAL checkpoint failed: ${msg.message}`));
      return;
    }
    const pending = waiting.get(msg.id);
    if (!pending) return;
    waiting.delete(msg.id);
    if (msg.error !== undefined) pending.reject(new Error(`WAL checkpoint failed: ${msg.error}`));
    else pending.resolve(msg.results ?? []);
  });
  const exited = new Promise<void>((resolve) => {
    worker.once('exit', () => {
      resetDone?.();
      for (const pending of waiting.values()) pending.reject(new Error('the checkpointer stopped'));
      waiting.clear();
      // Whatever ended the worker, the writer checkpoints by itself again rather than grow the WAL.
      giveBack();
      resolve();
    });
  });
  worker.on('error', (err) => {
    options.onError?.(err);
  });

  return {
    online,
    checkpointNow() {
      if (stopped) return Promise.reject(new Error('the checkpointer is stopped'));
      const id = nextId++;
      return new Promise<CheckpointResult[]>((resolve, reject) => {
        waiting.set(id, { resolve, reject });
        worker.postMessage({ type: 'now', id });
      });
    },
    async stop() {
      if (!stopped) {
        stopped = true;
        // Held while stopping: an unref'd worker busy in a checkpoint would otherwise let the process
        // end with this promise unsettled, before the database is closed.
        worker.ref();
        worker.postMessage({ type: 'stop' });
        // A checkpoint waits at most its busy timeout; past that, end the thread rather than hang a shutdown.
        const force = setTimeout(() => void worker.terminate(), RESTART_BUSY_TIMEOUT_MS + 5_000);
        await exited;
        clearTimeout(force);
      }
      await exited;
    },
  };
}
