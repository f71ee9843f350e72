import { afterEach, expect, it } from 'vitest';
import { JobQueue } from '../../src/jobs/queue.js';
import { JobRunner } from '../../src/jobs/runner.js';
import type { Job } from '../../src/jobs/job.js';
import { describeEachEngine, openTestStore } from '../support/db.js';
import type { TestStore } from '../support/db.js';
import { gate, waitFor } from './support.js';

describeEachEngine('runner lanes', (engine) => {
  let store: TestStore | undefined;
  let runner: JobRunner | undefined;
  afterEach(async () => {
    await runner?.stop();
    await store?.dispose();
    runner = undefined;
    store = undefined;
  });

  it('fill free slots lane by lane, and a lane holds no more slots than its share', async () => {
    store = await openTestStore(engine);
    const queue = new JobQueue(store);
    const release = gate();
    const running = new Map<string, number>();
    const most = new Map<string, number>();
    const order: string[] = [];
    const handler = async (job: Job) => {
      const now = (running.get(job.kind) ?? 0) + 1;
      running.set(job.kind, now);
      most.set(job.kind, Math.max(most.get(job.kind) ?? 0, now));
      order.push(`${job.kind}:${(job.payload as { n: number }).n}`);
      await release.promise;
      running.set(job.kind, (running.get(job.kind) ?? 0) - 1);
    };
    runner = new JobRunner({
      store,
      queue,
      handlers: { 'inbound.batch': handler, deliver: handler, send: handler },
      concurrency: 6,
      pollIntervalMs: 50,
      lanes: [
        { name: 'inbound', kinds: ['inbound.batch'] },
        { name: 'deliver', kinds: ['deliver'], max: 2 },
        { name: 'send', kinds: ['send'] },
      ],
    });
    // The oldest jobs are sends and deliveries; the webhook batch comes last.
    await queue.enqueue(store.db, Array.from({ length: 6 }, (_, n) => ({ kind: 'send', payload: { n } })));
    await queue.enqueue(store.db, Array.from({ length: 6 }, (_, n) => ({ kind: 'deliver', payload: { n } })));
    await queue.enqueue(store.db, { kind: 'inbound.batch', payload: { n: 0 } });
    await runner.start();

    // Six slots: the webhook batch, two deliveries (their share), and the oldest three sends.
    await waitFor('six jobs to start', () => order.length === 6);
    expect([...order].sort()).toEqual(['deliver:0', 'deliver:1', 'inbound.batch:0', 'send:0', 'send:1', 'send:2']);
    release.release();
    await waitFor('every job to run', () => order.length === 13);
    await runner.drain();
    expect(most.get('deliver')).toBe(2);
    expect(order.filter((o) => o.startsWith('send:'))).toEqual(Array.from({ length: 6 }, (_, n) => `send:${n}`));
  });

  it("a fair lane asks each tenant for its share, and claims again at once when one gave all it was asked for", async () => {
    store = await openTestStore(engine);
    const queue = new JobQueue(store, { fairKinds: ['send'] });
    let release = gate();
    const started: string[] = [];
    let running = 0;
    let most = 0;
    runner = new JobRunner({
      store,
      queue,
      handlers: {
        send: async (job: Job) => {
          running += 1;
          most = Math.max(most, running);
          started.push(String(job.payload));
          await release.promise;
          running -= 1;
        },
      },
      concurrency: 8,
      pollIntervalMs: 60_000,
    });
    // Four tenants with one send each: the lane learns there are four, so each is asked for 8 / 4.
    await queue.enqueue(store.db, ['t1', 't2', 't3', 't4'].map((t) => ({ kind: 'send', fairKey: t, payload: `${t}:0` })));
    await runner.start();
    await waitFor('the four sends to start', () => started.length === 4);
    release.release();
    await runner.drain();

    // Now one tenant has a backlog and another one send: asked for two each, they give three, and
    // the tenant that gave all it was asked for is asked again until every slot is busy.
    release = gate();
    started.length = 0;
    most = 0;
    await queue.enqueue(store.db, [
      ...Array.from({ length: 20 }, (_, i) => ({ kind: 'send', fairKey: 'big', payload: `big:${i}` })),
      { kind: 'send', fairKey: 'small', payload: 'small:0' },
    ]);
    // The poll interval is long and no handler finishes: only the claims' own follow-ups fill the slots.
    await waitFor('every slot to be busy', () => running === 8, 5_000);
    expect(most).toBe(8);
    expect(started).toContain('small:0');
    expect(started.filter((p) => p.startsWith('big:'))).toEqual(Array.from({ length: 7 }, (_, i) => `big:${i}`));
    release.release();
    await runner.drain();
    expect(started).toHaveLength(21);
  });
});
