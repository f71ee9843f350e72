/**
 * Watches the SQLite store's WAL flushes through Node's own `FileHandle.datasync` (still called), and
 * can hold them: while held, a flush waits until the test lets it through, so a test can show that
 * something does not leave the process before its flush (the durability barrier). Flushes are made
 * by the store's `WalSync`, always through a `FileHandle` of the WAL file.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

type DatasyncProto = { datasync: FileHandle['datasync'] };

export interface FlushWatch {
  /** What happened, in order: `flushed` for each flush that finished, and whatever the test notes. */
  readonly log: string[];
  note(what: string): void;
  /** Flushes from now on wait until `release()` or `stop()`. */
  hold(): void;
  /** Resolves when a flush is waiting to be let through (at once if one already is). */
  waiting(): Promise<void>;
  /** Lets every waiting flush through; later ones still wait while holding. */
  release(): void;
  /** From now on every flush fails as a disk would (`EIO`), without calling the real one. */
  fail(): void;
  /** Flushes asked for so far, failed ones included. */
  readonly asked: number;
  /** Flushes made so far (finished). */
  readonly count: number;
  /** Stops holding, lets everything through and puts `datasync` back. */
  stop(): Promise<void>;
}

async function datasyncPrototype(): Promise<DatasyncProto> {
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-flushes-'));
  try {
    const handle = await open(join(dir, 'probe'), 'w');
    const proto = Object.getPrototypeOf(handle) as DatasyncProto;
    await handle.close();
    return proto;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function watchFlushes(): Promise<FlushWatch> {
  const proto = await datasyncPrototype();
  const real = proto.datasync;
  const log: string[] = [];
  let holding = false;
  let failing = false;
  let asked = 0;
  let count = 0;
  let held: (() => void)[] = [];
  let onWaiting: (() => void)[] = [];
  proto.datasync = async function (this: FileHandle) {
    asked += 1;
    if (failing) throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO', errno: -5, syscall: 'fdatasync' });
    if (holding) {
      await new Promise<void>((resolve) => {
        held.push(resolve);
        const wake = onWaiting;
        onWaiting = [];
        for (const w of wake) w();
      });
    }
    await real.call(this);
    count += 1;
    log.push('flushed');
  };
  const release = (): void => {
    const go = held;
    held = [];
    for (const g of go) g();
  };
  return {
    log,
    note: (what) => void log.push(what),
    hold: () => {
      holding = true;
    },
    waiting: () => (held.length > 0 ? Promise.resolve() : new Promise<void>((resolve) => onWaiting.push(resolve))),
    release,
    fail: () => {
      failing = true;
    },
    get asked() {
      return asked;
    },
    get count() {
      return count;
    },
    async stop() {
      holding = false;
      failing = false;
      release();
      proto.datasync = real;
    },
  };
}

/** Whether `p` settles within `ms` (it keeps running either way). */
export async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let settled = false;
  void p.then(
    () => (settled = true),
    () => (settled = true),
  );
  await new Promise((r) => setTimeout(r, ms));
  return settled;
}
