import { afterEach, expect, it } from 'vitest';
import { JobQueue } from '../../src/jobs/queue.js';
import { JobRunner } from '../../src/jobs/runner.js';
import type { Job } from '../../src/jobs/job.js';
import { describeEachEngine, openTestStore } from '../support/db.js';
import type { TestStore } from '../support/db.js';
import { Latch, waitFor } from './support.js';

describeEachEngine('jobs sharing a key', (engine) => {
  let store: TestStore | undefined;
  let runner: JobRunner | undefined;
  afterEach(async () => {
    await runner?.stop();
    await store?.dispose();
    runner = undefined;
    store = undefined;
  });

  it('run one at a time, oldest first, while different keys run in parallel', async () => {
    store = await openTestStore(engine);
    const queue = new JobQueue(store);
    const keys = ['k0', 'k1', 'k2', 'k3', 'k4'];
    // The first job of every key waits until all five have started: only parallel keys get past it.
    const firstOfEachKey = new Latch(keys.length);
    const started = new Map<string, number[]>();
    const activePerKey = new Map<string, number>();
    let overlaps = 0;
    let maxActive = 0;
    let active = 0;

    const handler = async (job: Job) => {
      const key = job.key as string;
      const { n } = job.payload as { n: number };
      if ((activePerKey.get(key) ?? 0) > 0) overlaps += 1;
      activePerKey.set(key, (activePerKey.get(key) ?? 0) + 1);
      active += 1;
      maxActive = Math.max(maxActive, active);
      started.set(key, [...(started.get(key) ?? []), n]);
      if (n < keys.length) await firstOfEachKey.arrive();
      // Give the other keys' jobs a turn to interleave.
      await new Promise((resolve) => setImmediate(resolve));
      active -= 1;
      activePerKey.set(key, (activePerKey.get(key) ?? 0) - 1);
    };
    runner = new JobRunner({ store, queue, handlers: { send: handler }, concurrency: 8, pollIntervalMs: 50 });

    // Fifty jobs over five keys, enqueued in two transactions to exercise both ways of parking.
    const specs = Array.from({ length: 50 }, (_, n) => ({ kind: 'send', key: keys[n % keys.length] as string, payload: { n } }));
    await queue.transaction((trx) => queue.enqueue(trx, specs.slice(0, 25)));
    await runner.start();
    await queue.transaction((trx) => queue.enqueue(trx, specs.slice(25)));

    await waitFor('the first job of every key to start', () => firstOfEachKey.arrivals === keys.length);
    await waitFor('all fifty jobs', () => [...started.values()].reduce((sum, list) => sum + list.length, 0) === 50);
    await runner.drain();

    expect(overlaps).toBe(0);
    expect(maxActive).toBeGreaterThanOrEqual(keys.length);
    for (const [i, key] of keys.entries()) {
      expect(started.get(key)).toEqual(Array.from({ length: 10 }, (_, j) => i + j * keys.length));
    }
    expect(await queue.counts()).toEqual([]);
  });

  it('mixed with jobs without a key, which run freely', async () => {
    store = await openTestStore(engine);
    const queue = new JobQueue(store);
    const order: string[] = [];
    const unkeyedStarted = new Latch(3);
    runner = new JobRunner({
      store,
      queue,
      concurrency: 4,
      pollIntervalMs: 50,
      handlers: {
        // Three free jobs all start before any finishes: they do not queue behind one another.
        free: async () => {
          await unkeyedStarted.arrive();
        },
        send: async (job) => {
          order.push(String(job.payload));
        },
      },
    });
    await queue.enqueue(store.db, [
      { kind: 'send', key: 'c', payload: 'c1' },
      { kind: 'free', payload: null },
      { kind: 'send', key: 'c', payload: 'c2' },
      { kind: 'free', payload: null },
      { kind: 'free', payload: null },
      { kind: 'send', key: 'c', payload: 'c3' },
    ]);
    await runner.start();
    await runner.drain();
    expect(unkeyedStarted.arrivals).toBe(3);
    expect(order).toEqual(['c1', 'c2', 'c3']);
  });
});
