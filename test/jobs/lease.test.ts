import { afterEach, expect, it } from 'vitest';
import { claimJobs } from '../../src/jobs/claim.js';
import { recordOutcomes } from '../../src/jobs/finish.js';
import { JobQueue } from '../../src/jobs/queue.js';
import { JobRunner } from '../../src/jobs/runner.js';
import { describeEachEngine, openTestStore } from '../support/db.js';
import type { TestStore } from '../support/db.js';
import { TestClock, gate, queueWithClock, waitFor } from './support.js';

describeEachEngine('job leases', (engine) => {
  let store: TestStore | undefined;
  const runners: JobRunner[] = [];
  afterEach(async () => {
    for (const r of runners.splice(0)) await r.stop(0);
    await store?.dispose();
    store = undefined;
  });

  it("hand a crashed worker's job to another worker once its lease expires, and drop the crashed worker's late outcome", async () => {
    store = await openTestStore(engine);
    const clock = new TestClock();
    const queue = queueWithClock(store, clock);
    const [id, next] = await queue.enqueue(store.db, [
      { kind: 'send', key: 'conv', payload: 'first' },
      { kind: 'send', key: 'conv', payload: 'second' },
    ]);
    // The crashed worker: it claims with a 1 s lease and never reports back.
    const claimed = await claimJobs(store, { workerId: 'crashed', kinds: ['send'], limit: 10, leaseMs: 1_000, now: clock.time });
    expect(claimed.map((j) => j.id)).toEqual([id]);

    const runs: string[] = [];
    const runner = new JobRunner({ store, queue, handlers: { send: async (job) => void runs.push(`${String(job.payload)}#${job.attempts}`) }, workerId: 'healthy', pollIntervalMs: 50 });
    runners.push(runner);
    await runner.start();
    await runner.drain();
    expect(runs).toEqual([]);
    expect(await queue.get(id!)).toMatchObject({ state: 'running', lockedBy: 'crashed' });

    clock.advance(1_001);
    await runner.drain();
    expect(runs).toEqual(['first#2', 'second#1']);
    expect(await queue.get(id!)).toBeUndefined();
    expect(await queue.get(next!)).toBeUndefined();

    const late = await recordOutcomes(store, { workerId: 'crashed', outcomes: [{ type: 'dead', id: id!, attempts: 1, key: 'conv', error: 'late' }], now: clock.time, keepDone: false });
    expect(late.applied).toEqual([]);
    expect(late.stale).toEqual([{ id: id!, attempts: 1 }]);
    expect(await queue.counts()).toEqual([]);
  });

  it('keep a long handler\'s job by extending its lease, so no other worker takes it', async () => {
    store = await openTestStore(engine);
    const queue = new JobQueue(store);
    const release = gate();
    const runsBy: string[] = [];
    // Real time here: the lease (3 s) is extended every second while the handler waits.
    const make = (workerId: string) =>
      new JobRunner({
        store: store!,
        queue,
        workerId,
        leaseMs: 3_000,
        pollIntervalMs: 50,
        handlers: {
          slow: async () => {
            runsBy.push(workerId);
            await release.promise;
          },
        },
      });
    const a = make('a');
    runners.push(a);
    await a.start();
    const [id] = await queue.enqueue(store.db, { kind: 'slow', payload: null });
    await waitFor('the job to start', () => runsBy.length === 1);
    const firstLease = (await queue.get(id!))?.lockedUntil as number;
    const b = make('b');
    runners.push(b);
    await b.start();
    await waitFor('the lease to be extended by more than a second', async () => ((await queue.get(id!))?.lockedUntil ?? 0) > firstLease + 1_000);
    release.release();
    await a.drain();
    await b.drain();
    expect(runsBy).toEqual(['a']);
    expect(await queue.get(id!)).toBeUndefined();
  });

  it('wait at stop for running handlers and record their outcomes', async () => {
    store = await openTestStore(engine);
    const queue = new JobQueue(store);
    const release = gate();
    let started = false;
    const runner = new JobRunner({
      store,
      queue,
      pollIntervalMs: 50,
      handlers: {
        slow: async () => {
          started = true;
          await release.promise;
        },
      },
    });
    await runner.start();
    const [id] = await queue.enqueue(store.db, { kind: 'slow', payload: null });
    await waitFor('the job to start', () => started);
    const stopped = runner.stop(30_000);
    release.release();
    await stopped;
    expect(await queue.get(id!)).toBeUndefined();
  });

  it('abort handlers still running after the stop timeout and leave their leases to expire', async () => {
    store = await openTestStore(engine);
    const queue = new JobQueue(store);
    let signal: AbortSignal | undefined;
    const warnings: string[] = [];
    const logger = { debug() {}, info() {}, error() {}, warn: (_obj: object, msg?: string) => void warnings.push(msg ?? '') };
    const runner = new JobRunner({
      store,
      queue,
      logger,
      workerId: 'stopping',
      pollIntervalMs: 50,
      handlers: {
        stuck: async (_job, context) => {
          signal = context.signal;
          await new Promise((resolve) => context.signal.addEventListener('abort', resolve));
          throw new Error('aborted');
        },
      },
    });
    await runner.start();
    const [id] = await queue.enqueue(store.db, { kind: 'stuck', payload: null });
    await waitFor('the job to start', () => signal !== undefined);
    await runner.stop(0);
    expect(signal?.aborted).toBe(true);
    // The aborted handler's error is not recorded: the job stays leased until its lease runs out.
    await waitFor('the late outcome to be discarded', () => warnings.includes('outcome of an abandoned job run discarded'));
    expect(await queue.get(id!)).toMatchObject({ state: 'running', lockedBy: 'stopping', attempts: 1 });
  });
});
