/**
 * The young generation's cap (`src/runtime.ts`), observed in fresh Node processes: a test worker has
 * long since grown its own young generation to V8's maximum, and V8 cannot shrink it on request. The
 * module is compiled to JavaScript for the child with the project's own TypeScript.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const MB = 1024 * 1024;

// Allocates in small rounds (a request's worth, not megabytes at once) with turns of the event loop
// between them, keeping the last 60 alive so a good share survives each scavenge (what makes V8 grow
// the young generation): first while the cap holds it for start-up (with a worker thread starting,
// as the checkpointer's does), then after release; then, as the server does, starts another worker,
// waits until it is online and allocates without a turn of the loop (on Node 20 and 22 the worker's
// heap set-up has put V8's growth factor back by then).
const CHILD = `
import { Worker } from 'node:worker_threads';
import { once } from 'node:events';
import { capYoungGeneration, youngGenerationBytes } from './runtime.mjs';
const cap = process.env.CAP ? capYoungGeneration(Number(process.env.CAP), { doubleWhenSaturated: process.env.SATURATED === 'double' }) : undefined;
const keep = [];
const round = () => {
  const a = [];
  for (let i = 0; i < 2000; i++) a.push({ i, s: 'item ' + i });
  keep.push(a);
  if (keep.length > 60) keep.shift();
};
const churn = async () => {
  for (let r = 0; r < 1500; r++) {
    round();
    await new Promise((resolve) => setImmediate(resolve));
  }
};
// Read after a scavenge: Node 24 counts pages added since the last collection in the size.
const settled = () => {
  globalThis.gc({ type: 'minor' });
  return youngGenerationBytes();
};
if (process.env.SATURATED === 'double') {
  // Released at once and kept busy (every turn of the loop has work) for longer than the load window.
  cap?.release();
  const until = Date.now() + 5000;
  while (Date.now() < until) await churn();
  process.stdout.write(JSON.stringify({ saturated: settled(), capBytes: cap?.capBytes ?? null }));
  process.exit(0);
}
const first = new Worker('', { eval: true });
await once(first, 'online');
await churn();
const held = settled();
cap?.release();
await churn();
const released = settled();
const second = new Worker('', { eval: true });
await once(second, 'online');
for (let r = 0; r < 1500; r++) round();
const afterWorker = settled();
await Promise.all([first.terminate(), second.terminate()]);
cap?.stop();
process.stdout.write(JSON.stringify({ held, released, afterWorker, capBytes: cap?.capBytes ?? null }));
`;

describe('the young generation cap', () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sb-runtime-'));
    const source = readFileSync(new URL('../../src/runtime.ts', import.meta.url), 'utf8');
    const js = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
    writeFileSync(join(dir, 'runtime.mjs'), js);
    writeFileSync(join(dir, 'child.mjs'), CHILD);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const child = async (env: Record<string, string>) => {
    const { stdout } = await run(process.execPath, ['--expose-gc', join(dir, 'child.mjs')], { cwd: dir, env: { ...process.env, ...env } });
    return JSON.parse(stdout) as { held: number; released: number; afterWorker: number; saturated: number; capBytes: number | null };
  };

  it('lets V8 grow it past 8 MB without a cap; with one, holds it small during start-up, then at 4 MB a semi-space', async () => {
    const free = await child({});
    expect(free.capBytes).toBeNull();
    expect(free.held).toBeGreaterThan(8 * MB);
    expect(free.afterWorker).toBeGreaterThan(8 * MB);

    const capped = await child({ CAP: '4' });
    expect(capped.capBytes).toBe(8 * MB);
    // V8 starts at 1 MB a semi-space; one doubling while a worker starts is all the hold lets through.
    expect(capped.held).toBeLessThanOrEqual(4 * MB);
    // Released, it grew to the cap (so the load was enough to grow it) and no further, a worker notwithstanding.
    expect(capped.released).toBe(8 * MB);
    expect(capped.afterWorker).toBe(8 * MB);
  });

  it('allows twice the cap while the event loop stays saturated', async () => {
    const busy = await child({ CAP: '4', SATURATED: 'double' });
    expect(busy.capBytes).toBe(8 * MB);
    expect(busy.saturated).toBe(16 * MB);
  });
});
