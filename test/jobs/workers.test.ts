import { afterEach, expect, it } from 'vitest';
import { sql } from 'kysely';
import { JobQueue } from '../../src/jobs/queue.js';
import { JobRunner } from '../../src/jobs/runner.js';
import type { Job } from '../../src/jobs/job.js';
import { openStore } from '../../src/store/db.js';
import type { Store } from '../../src/store/db.js';
import { POSTGRES_URL, describeEachEngine, openTestStore } from '../support/db.js';
import type { TestStore } from '../support/db.js';
import { Latch, waitFor } from './support.js';

/** A second view of the same database: on PostgreSQL its own pool, as another gateway process has. */
async function secondStore(store: TestStore): Promise<{ store: Store; close(): Promise<void> }> {
  if (store.engine === 'sqlite') return { store, close: async () => undefined };
  const { rows } = await sql<{ schema: string }>`select current_schema() as schema`.execute(store.db);
  const other = await openStore({ url: POSTGRES_URL, schema: rows[0]?.schema as string, poolSize: 5 });
  return { store: other, close: () => other.close() };
}

describeEachEngine('two workers', (engine) => {
  let store: TestStore | undefined;
  let other: { store: Store; close(): Promise<void> } | undefined;
  const runners: JobRunner[] = [];
  afterEach(async () => {
    for (const r of runners.splice(0)) await r.stop();
    await other?.close();
    await store?.dispose();
    other = undefined;
    store = undefined;
  });

  it('never run the same job twice and keep the order of every key', async () => {
    store = await openTestStore(engine);
    other = await secondStore(store);
    const queues = [new JobQueue(store), new JobQueue(other.store)];
    const keys = Array.from({ length: 10 }, (_, i) => `conv:${i}`);
    const runs = new Map<number, number>();
    const orderPerKey = new Map<string, number[]>();
    const activeKeys = new Set<string>();
    let overlaps = 0;
    // Each worker's first jobs hold until both workers have started one: both must take part.
    const bothStarted = new Latch(2);
    const startedBy = new Set<string>();

    const handlerFor = (worker: string) => async (job: Job) => {
      const key = job.key as string;
      if (activeKeys.has(key)) overlaps += 1;
      activeKeys.add(key);
      runs.set(job.id, (runs.get(job.id) ?? 0) + 1);
      orderPerKey.set(key, [...(orderPerKey.get(key) ?? []), (job.payload as { n: number }).n]);
      if (!startedBy.has(worker)) {
        startedBy.add(worker);
        await bothStarted.arrive();
      }
      await bothStarted.opened;
      await new Promise((resolve) => setImmediate(resolve));
      activeKeys.delete(key);
    };
    for (const [i, queue] of queues.entries()) {
      const runner = new JobRunner({
        store: queue.store,
        queue,
        workerId: `w${i}`,
        concurrency: 4,
        pollIntervalMs: 50,
        handlers: { send: handlerFor(`w${i}`) },
      });
      runners.push(runner);
      await runner.start();
    }

    const total = 200;
    const specs = Array.from({ length: total }, (_, n) => ({ kind: 'send', key: keys[n % keys.length] as string, payload: { n } }));
    // Enqueued from both sides, in several transactions, while the workers run.
    for (let i = 0; i < total; i += 20) {
      const queue = queues[(i / 20) % 2] as JobQueue;
      await queue.transaction((trx) => queue.enqueue(trx, specs.slice(i, i + 20)));
    }

    await waitFor('every job to run', () => runs.size === total);
    for (const r of runners) await r.drain();
    expect([...runs.values()].every((count) => count === 1)).toBe(true);
    expect(overlaps).toBe(0);
    expect(startedBy).toEqual(new Set(['w0', 'w1']));
    for (const [i, key] of keys.entries()) {
      expect(orderPerKey.get(key)).toEqual(Array.from({ length: total / keys.length }, (_, j) => i + j * keys.length));
    }
    expect(await queues[0]?.counts()).toEqual([]);
  });
});
