import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startCheckpointer } from '../../../src/store/checkpoint.js';
import type { Checkpointer } from '../../../src/store/checkpoint.js';
import { insertInboundBatches } from '../../../src/store/inbound-batches.js';
import { openTestStore } from '../../support/db.js';
import type { TestStore } from '../../support/db.js';

describe('WAL checkpoints off the event loop (SQLite)', () => {
  let store: TestStore | undefined;
  let checkpointer: Checkpointer | undefined;
  afterEach(async () => {
    await checkpointer?.stop();
    await store?.dispose();
    checkpointer = undefined;
    store = undefined;
  });

  it('turn off automatic checkpoints on the writer and checkpoint from the worker', async () => {
    store = await openTestStore('sqlite');
    // A long interval: this test drives the checkpoints itself.
    checkpointer = startCheckpointer(store, { intervalMs: 60_000 });
    expect(store.sqlite!.pragma('wal_autocheckpoint', { simple: true })).toBe(0);
    for (let i = 0; i < 20; i += 1) await insertInboundBatches(store.db, ['x'.repeat(4000)], i);
    const [passive] = await checkpointer.checkpointNow();
    expect(passive).toMatchObject({ mode: 'PASSIVE', busy: 0 });
    expect(passive!.log).toBeGreaterThan(0);
    expect(passive!.checkpointed).toBe(passive!.log);
  });

  it('run a RESTART checkpoint when the WAL grows past the limit', async () => {
    store = await openTestStore('sqlite');
    checkpointer = startCheckpointer(store, { intervalMs: 60_000, restartAboveBytes: 1 });
    await insertInboundBatches(store.db, ['y'.repeat(10_000)], 1);
    const results = await checkpointer.checkpointNow();
    expect(results.map((r) => r.mode)).toEqual(['PASSIVE', 'RESTART']);
    expect(results[1]!.busy).toBe(0);
  });

  it('pause the writer to start the WAL over once it passes the reset size', async () => {
    store = await openTestStore('sqlite');
    const db = store.db;
    let pauses = 0;
    checkpointer = startCheckpointer(store, {
      intervalMs: 60_000,
      resetAboveBytes: 64 * 1024,
      exclusive: async (fn) => {
        pauses += 1;
        await db.connection().execute(() => fn());
      },
    });
    for (let i = 0; i < 40; i += 1) await insertInboundBatches(db, ['z'.repeat(8000)], i);
    const [before] = await checkpointer.checkpointNow();
    expect(before!.log * 4096).toBeGreaterThan(64 * 1024);
    // The reset holds the connection: this write waits for it, then starts the WAL from its beginning.
    await insertInboundBatches(db, ['w'], 99);
    expect(pauses).toBe(1);
    const [after] = await checkpointer.checkpointNow();
    expect(after!.log).toBeLessThan(10);
    expect(after!.log).toBeGreaterThan(0);
  });

  it('keep copying what is written while the pause is on its way, so the pause finds nothing left', async () => {
    store = await openTestStore('sqlite');
    const db = store.db;
    const shm = `${store.sqlite!.name}-shm`;
    // The WAL index (the -shm file, native byte order): the header's mxFrame at byte 16 (frames
    // in the WAL), the checkpoint info's nBackfill at byte 96 (frames copied into the database).
    const walIndex = () => {
      const bytes = readFileSync(shm);
      return { frames: bytes.readUInt32LE(16), copied: bytes.readUInt32LE(96) };
    };
    let atPause: { frames: number; copied: number } | undefined;
    checkpointer = startCheckpointer(store, {
      intervalMs: 60_000,
      resetAboveBytes: 64 * 1024,
      exclusive: async (fn) => {
        // A main thread slow to get to the pause, writing meanwhile.
        for (let i = 0; i < 20; i += 1) await insertInboundBatches(db, ['v'.repeat(8000)], 100 + i);
        await new Promise((resolve) => setTimeout(resolve, 100));
        await db.connection().execute(async () => {
          atPause = walIndex();
          await fn();
        });
      },
    });
    for (let i = 0; i < 40; i += 1) await insertInboundBatches(db, ['z'.repeat(8000)], i);
    await checkpointer.checkpointNow();
    await vi.waitFor(() => expect(atPause).toBeDefined(), { timeout: 5_000 });
    expect(atPause!.frames).toBeGreaterThan(0);
    expect(atPause!.copied).toBe(atPause!.frames);
  });

  it('give checkpoints back to the writer when stopped', async () => {
    store = await openTestStore('sqlite');
    checkpointer = startCheckpointer(store, { intervalMs: 60_000 });
    await checkpointer.stop();
    expect(store.sqlite!.pragma('wal_autocheckpoint', { simple: true })).toBe(1000);
    await expect(checkpointer.checkpointNow()).rejects.toThrow('stopped');
  });

  it('do nothing for PostgreSQL, which checkpoints on its own', async () => {
    store = await openTestStore('sqlite');
    const noop = startCheckpointer({ ...store, engine: 'postgres', sqlite: undefined });
    expect(await noop.checkpointNow()).toEqual([]);
    await noop.stop();
    expect(store.sqlite!.pragma('wal_autocheckpoint', { simple: true })).toBe(1000);
  });
});
