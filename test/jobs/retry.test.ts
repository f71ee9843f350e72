import { afterEach, expect, it } from 'vitest';
import { JobRunner } from '../../src/jobs/runner.js';
import { PermanentJobError, RetryableJobError } from '../../src/jobs/job.js';
import type { JobHandler } from '../../src/jobs/job.js';
import type { JobQueue } from '../../src/jobs/queue.js';
import { describeEachEngine, openTestStore } from '../support/db.js';
import type { TestStore } from '../support/db.js';
import { TestClock, queueWithClock } from './support.js';

describeEachEngine('job retries', (engine) => {
  let store: TestStore | undefined;
  let runner: JobRunner | undefined;
  afterEach(async () => {
    await runner?.stop();
    await store?.dispose();
    runner = undefined;
    store = undefined;
  });

  async function setUp(handlers: Record<string, JobHandler>, options: { keepDoneMs?: number } = {}): Promise<{ queue: JobQueue; clock: TestClock }> {
    store = await openTestStore(engine);
    const clock = new TestClock();
    // No jitter, so the expected run times are exact.
    const queue = queueWithClock(store, clock, {
      schedules: { flaky: { delaysMs: [60_000, 120_000], jitter: 0, maxAttempts: 3 } },
    });
    runner = new JobRunner({ store, queue, handlers, concurrency: 4, pollIntervalMs: 50, ...options });
    await runner.start();
    return { queue, clock };
  }

  it('retry a failing job on its schedule, then kill it, and then run the next job of its key', async () => {
    const runs: string[] = [];
    const { queue, clock } = await setUp({
      flaky: async (job) => {
        runs.push(`${String(job.payload)}#${job.attempts}`);
        if (job.payload === 'bad') throw new Error(`refused on try ${job.attempts}`);
      },
    });
    const t0 = clock.time;
    const [bad, next] = await queue.enqueue(store!.db, [
      { kind: 'flaky', key: 'conv', payload: 'bad' },
      { kind: 'flaky', key: 'conv', payload: 'next' },
    ]);

    await runner!.drain();
    expect(runs).toEqual(['bad#1']);
    expect(await queue.get(bad!)).toMatchObject({ state: 'pending', attempts: 1, runAt: t0 + 60_000, lastError: 'Error: refused on try 1' });
    expect((await queue.get(next!))?.state).toBe('waiting');

    clock.advance(59_999);
    await runner!.drain();
    expect(runs).toEqual(['bad#1']);

    clock.advance(1);
    await runner!.drain();
    expect(runs).toEqual(['bad#1', 'bad#2']);
    expect(await queue.get(bad!)).toMatchObject({ state: 'pending', attempts: 2, runAt: clock.time + 120_000 });

    clock.advance(120_000);
    await runner!.drain();
    expect(runs).toEqual(['bad#1', 'bad#2', 'bad#3', 'next#1']);
    expect(await queue.get(bad!)).toMatchObject({ state: 'dead', attempts: 3, lastError: 'Error: refused on try 3', lockedBy: null });
    expect(await queue.get(next!)).toBeUndefined();
  });

  it('kill a job at once on PermanentJobError and move on to the next of its key', async () => {
    const runs: string[] = [];
    const { queue } = await setUp({
      flaky: async (job) => {
        runs.push(String(job.payload));
        if (job.payload === 'bad') throw new PermanentJobError('recipient cannot be reached');
      },
    });
    const [bad] = await queue.enqueue(store!.db, [
      { kind: 'flaky', key: 'conv', payload: 'bad' },
      { kind: 'flaky', key: 'conv', payload: 'next' },
    ]);
    await runner!.drain();
    expect(runs).toEqual(['bad', 'next']);
    expect(await queue.get(bad!)).toMatchObject({ state: 'dead', attempts: 1, lastError: 'PermanentJobError: recipient cannot be reached' });
  });

  it('reschedule without using up a try when the handler returns retryAt', async () => {
    const seen: number[] = [];
    const { queue, clock } = await setUp({
      flaky: async (job) => {
        seen.push(job.attempts);
        if (seen.length < 4) return { retryAt: clock.time + 1_000 };
      },
    });
    const [id] = await queue.enqueue(store!.db, { kind: 'flaky', payload: null });
    for (let i = 0; i < 3; i += 1) {
      await runner!.drain();
      expect(await queue.get(id!)).toMatchObject({ state: 'pending', attempts: 0, runAt: clock.time + 1_000, lastError: null });
      clock.advance(1_000);
    }
    await runner!.drain();
    // Four runs although the kind allows three tries: reschedules are not failures.
    expect(seen).toEqual([1, 1, 1, 1]);
    expect(await queue.get(id!)).toBeUndefined();
  });

  it('retry at the time a RetryableJobError asks for', async () => {
    const { queue, clock } = await setUp({
      flaky: async () => {
        throw new RetryableJobError('rate limited', { retryAt: clock.time + 5_000 });
      },
    });
    const [id] = await queue.enqueue(store!.db, { kind: 'flaky', payload: null });
    await runner!.drain();
    expect(await queue.get(id!)).toMatchObject({ state: 'pending', attempts: 1, runAt: clock.time + 5_000, lastError: 'RetryableJobError: rate limited' });
  });

  it('replay a dead job with retryDead', async () => {
    let healthy = false;
    const runs: number[] = [];
    const { queue } = await setUp({
      flaky: async (job) => {
        runs.push(job.attempts);
        if (!healthy) throw new PermanentJobError('endpoint gone');
      },
    });
    const [id] = await queue.enqueue(store!.db, { kind: 'flaky', key: 'k', payload: null });
    await runner!.drain();
    expect((await queue.get(id!))?.state).toBe('dead');
    expect(await queue.list({ state: 'dead' })).toHaveLength(1);

    healthy = true;
    expect(await queue.retryDead(id!)).toBe(true);
    await runner!.drain();
    expect(runs).toEqual([1, 1]);
    expect(await queue.get(id!)).toBeUndefined();
    expect(await queue.retryDead(id!)).toBe(false);
  });

  it('kill a job whose payload is not JSON', async () => {
    const { queue } = await setUp({ flaky: async () => undefined });
    const now = Date.now();
    const { id } = await store!.db
      .insertInto('jobs')
      .values({ kind: 'flaky', key: null, payload: '{not json', state: 'pending', run_at: 0, locked_until: null, locked_by: null, attempts: 0, max_attempts: 3, last_error: null, created_at: now, updated_at: now })
      .returning('id')
      .executeTakeFirstOrThrow();
    await runner!.drain();
    const job = await queue.get(Number(id));
    expect(job?.state).toBe('dead');
    expect(job?.lastError).toMatch(/^PermanentJobError: job payload is not JSON/);
  });

  it('keep done jobs when asked, until purged', async () => {
    const { queue, clock } = await setUp({ flaky: async () => undefined }, { keepDoneMs: 3_600_000 });
    const [id] = await queue.enqueue(store!.db, { kind: 'flaky', payload: null });
    await runner!.drain();
    expect(await queue.get(id!)).toMatchObject({ state: 'done', lockedBy: null });
    expect(await queue.purgeDone(1_000)).toBe(0);
    clock.advance(1_001);
    expect(await queue.purgeDone(1_000)).toBe(1);
    expect(await queue.get(id!)).toBeUndefined();
  });

  it('leave jobs of kinds it has no handler for to other workers', async () => {
    const { queue } = await setUp({ flaky: async () => undefined });
    const [id] = await queue.enqueue(store!.db, { kind: 'elsewhere', payload: null });
    await runner!.drain();
    expect(await queue.get(id!)).toMatchObject({ state: 'pending', attempts: 0 });
  });
});
