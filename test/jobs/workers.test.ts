import { afterEach, expect, it } from 'vitest';
import { sql } from 'kysely';
import { JobQueue } from '../../src/jobs/queue.js';
import { JobRunner } from '../../src/jobs/runner.js';
import { claimJobs } from '../../src/jobs/claim.js';
import { recordOutcomes } from '../../src/jobs/finish.js';
import type { Job } from '../../src/jobs/job.js';
import { openStore } from '../../src/store/db.js';
import type { Store } from '../../src/store/db.js';
import { POSTGRES_URL, describeEachEngine, openTestStore } from '../support/db.js';
import type { TestStore } from '../support/db.js';
import { Latch, gate, waitFor } from './support.js';

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

  // Read oldest first, and read fairly between tenants (the send and delivery lanes' way).
  for (const fair of [false, true]) {
    it(`never run the same job twice and keep the order of every key${fair ? ', claiming fairly between tenants' : ''}`, async () => {
      store = await openTestStore(engine);
      other = await secondStore(store);
      const options = fair ? { fairKinds: ['send'] } : {};
      const queues = [new JobQueue(store, options), new JobQueue(other.store, options)];
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
      // Three tenants, each with keys of its own.
      const specs = Array.from({ length: total }, (_, n) => ({ kind: 'send', key: keys[n % keys.length] as string, fairKey: `acc_${(n % keys.length) % 3}`, payload: { n } }));
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
  }

  if (engine === 'postgres') {
    it('never strand a job enqueued behind one that finishes at the same moment', async () => {
      store = await openTestStore(engine);
      const queue = new JobQueue(store);
      const [first] = await queue.enqueue(store.db, { kind: 'send', key: 'conv', payload: 'first' });
      const [claimed] = await claimJobs(store, { workerId: 'w', kinds: ['send'], limit: 1, leaseMs: 60_000, now: Date.now() });
      expect(claimed?.id).toBe(first);

      // A caller's transaction enqueues the next job of the key (parked behind the running one) and stays open…
      const entered = gate();
      const commit = gate();
      let second: number | undefined;
      const caller = store.db.transaction().execute(async (trx) => {
        [second] = await queue.enqueue(trx, { kind: 'send', key: 'conv', payload: 'second' });
        entered.release();
        await commit.promise;
      });
      await entered.promise;
      // …while the running job finishes: its finish must wait for the caller, or it misses the parked job.
      let finished = false;
      const finishing = recordOutcomes(store, { workerId: 'w', outcomes: [{ type: 'done', id: first!, attempts: 1, key: 'conv' }], now: Date.now(), keepDone: false }).then(
        () => void (finished = true),
      );
      await waitFor('the finish to complete or wait for the key lock', async () => {
        if (finished) return true;
        const { rows } = await sql<{ n: number }>`select count(*) as n from pg_locks where locktype = 'advisory' and not granted and database = (select oid from pg_database where datname = current_database())`.execute(store!.db);
        return Number(rows[0]?.n) > 0;
      });
      commit.release();
      await caller;
      await finishing;
      expect((await queue.get(second!))?.state).toBe('pending');
    });
  }
});
