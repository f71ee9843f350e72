import { afterEach, expect, it } from 'vitest';
import { sql } from 'kysely';
import { JobQueue } from '../../src/jobs/queue.js';
import { JobRunner } from '../../src/jobs/runner.js';
import type { JobHandler } from '../../src/jobs/job.js';
import { openStore } from '../../src/store/db.js';
import type { Store } from '../../src/store/db.js';
import { POSTGRES_URL, describeEachEngine, openTestStore } from '../support/db.js';
import type { TestStore } from '../support/db.js';
import { waitFor } from './support.js';

// Far longer than any test may take: a job that runs was woken, not polled.
const HOUR = 3_600_000;

describeEachEngine('a sleeping runner', (engine) => {
  let store: TestStore | undefined;
  const closers: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
    await store?.dispose();
    store = undefined;
  });

  async function sleepingRunner(on: Store, queue: JobQueue, handlers: Record<string, JobHandler>): Promise<JobRunner> {
    const runner = new JobRunner({ store: on, queue, handlers, pollIntervalMs: HOUR });
    closers.push(() => runner.stop());
    await runner.start();
    await runner.drain();
    return runner;
  }

  it('wakes when a transaction that enqueued commits, or when told', async () => {
    store = await openTestStore(engine);
    const queue = new JobQueue(store);
    const ran: string[] = [];
    await sleepingRunner(store, queue, { send: async (job) => void ran.push(String(job.payload)) });

    await queue.transaction((trx) => queue.enqueue(trx, { kind: 'send', payload: 'in queue.transaction' }));
    await waitFor('the job from queue.transaction', () => ran.length === 1);

    await queue.enqueue(store.db, { kind: 'send', payload: 'outside a transaction' });
    await waitFor('the job enqueued outside a transaction', () => ran.length === 2);

    await store.db.transaction().execute((trx) => queue.enqueue(trx, { kind: 'send', payload: 'own transaction' }));
    await queue.notify();
    await waitFor('the job from a transaction of its own', () => ran.length === 3);
    expect(ran).toEqual(['in queue.transaction', 'outside a transaction', 'own transaction']);
  });

  if (engine === 'postgres') {
    async function otherProcess(): Promise<Store> {
      const { rows } = await sql<{ schema: string }>`select current_schema() as schema`.execute(store!.db);
      const other = await openStore({ url: POSTGRES_URL, schema: rows[0]?.schema as string, poolSize: 3 });
      closers.push(() => other.close());
      return other;
    }

    it('in another process wakes through LISTEN/NOTIFY', async () => {
      store = await openTestStore(engine);
      const other = await otherProcess();
      const ran: string[] = [];
      await sleepingRunner(other, new JobQueue(other), { send: async (job) => void ran.push(String(job.payload)) });
      const queue = new JobQueue(store);
      await queue.transaction((trx) => queue.enqueue(trx, { kind: 'send', payload: 'from elsewhere' }));
      await waitFor('the job enqueued by the other process', () => ran.length === 1);
    });

    it('in another process wakes when the job ahead of its key finishes', async () => {
      store = await openTestStore(engine);
      const other = await otherProcess();
      const ran: string[] = [];
      await sleepingRunner(other, new JobQueue(other), { second: async () => void ran.push('second') });
      const queue = new JobQueue(store);
      // Both jobs share a key; only this process runs the first, only the other the second.
      await queue.enqueue(store.db, [
        { kind: 'first', key: 'conv', payload: null },
        { kind: 'second', key: 'conv', payload: null },
      ]);
      const here = new JobRunner({ store, queue, handlers: { first: async () => void ran.push('first') }, pollIntervalMs: HOUR });
      closers.push(() => here.stop());
      await here.start();
      await waitFor('the second job, in the other process', () => ran.length === 2);
      expect(ran).toEqual(['first', 'second']);
    });
  }
});
