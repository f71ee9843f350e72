/**
 * The gateway as an operator runs it: `switchboard serve` in a process of its own, set up with the
 * CLI (`accounts create`) on the same data directory. The memory and CPU the scenarios report are
 * this process's alone, not the harness's, its event receiver's or the load generator's.
 */
import { execFile, fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { EventLoopUtilization } from 'node:perf_hooks';

const here = dirname(fileURLToPath(import.meta.url));
const CLI = join(here, '..', 'src', 'cli.js');
const run = promisify(execFile);

/** What a served gateway says of itself when asked over its IPC channel (see `src/cli.ts`). */
export interface ProcessStats {
  rss: number;
  cpu: NodeJS.CpuUsage;
  elu: EventLoopUtilization;
  /** V8's young generation (both semi-spaces), bytes: held to `SWITCHBOARD_SEMI_SPACE_MB` x 2. */
  young: number;
}

/** What the emulator, run with `switchboard emulator` beside the gateway, says of itself. */
export type EmulatorStats = Omit<ProcessStats, 'young'>;

export interface ChildGateway {
  url: string;
  child: ChildProcess;
  stats(): Promise<ProcessStats>;
  stop(): Promise<void>;
}

/** Runs a CLI command against the same configuration and returns its JSON output line. */
export async function cliJson<T>(env: Record<string, string>, args: string[]): Promise<T> {
  const { stdout } = await run(process.execPath, [CLI, ...args, '--json'], { env: { ...process.env, ...env } });
  return JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as T;
}

/** Starts `switchboard serve` with `env` (its whole configuration) and waits until it listens. */
export async function gatewayInChild(env: Record<string, string>): Promise<ChildGateway> {
  // Info level for the one "listening" line; requests are not logged at info (see `src/server.ts`).
  const child = fork(CLI, ['serve'], { env: { ...process.env, ...env, LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer): void => {
      out += d.toString();
      const m = /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(out);
      if (m?.[1]) {
        child.stdout?.off('data', onData);
        child.stdout?.resume();
        resolve(m[1]);
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`switchboard serve exited with ${code}: ${out}`)));
  });
  return {
    url,
    child,
    stats: statsOf<ProcessStats>(child),
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/**
 * Asks a child started with an IPC channel (`switchboard serve`, `switchboard emulator`) for its
 * own figures: it answers `{ op: 'stats' }` with `{ stats }`. Asks made while one is unanswered
 * share its answer.
 */
export function statsOf<T>(child: ChildProcess): () => Promise<T> {
  let waiting: ((s: T) => void)[] = [];
  child.on('message', (m: { stats?: T }) => {
    if (!m.stats) return;
    const answered = waiting;
    waiting = [];
    for (const w of answered) w(m.stats);
  });
  return () =>
    new Promise<T>((resolve) => {
      waiting.push(resolve);
      child.send({ op: 'stats' });
    });
}

/** Asks `done` every `everyMs` until it says yes or `withinMs` have passed; resolves either way. */
export async function pollUntil(done: () => Promise<boolean>, withinMs: number, everyMs: number): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (!(await done()) && Date.now() <= deadline) await new Promise((r) => setTimeout(r, everyMs));
}
