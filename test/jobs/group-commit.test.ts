/** Group commit: transactions asked for together commit together, each isolated from the others' failures. */
import { afterEach, describe, expect, it } from 'vitest';
import { JobQueue } from '../../src/jobs/queue.js';
import { GroupCommit } from '../../src/jobs/group-commit.js';
import type { Db } from '../../src/store/db.js';
import { describeEachEngine } from '../support/db.js';
import type { TestStore } from '../support/db.js';
import { openOutboundStore } from '../pipeline/outbound/support.js';

const NOW = Date.UTC(2026, 5, 1, 12);

describeEachEngine('group commit', (engine) => {
  let store: TestStore | undefined;
  afterEach(async () => {
    await store?.dispose();
    store = undefined;
  });

  const account = (id: string) => ({ id, parent_id: null, name: id, status: 'active', created_at: NOW, updated_at: NOW });

  it('commits every transaction of a group, rolls back only the one that failed, and answers after the commit', async () => {
    store = await openOutboundStore(engine);
    const queue = new JobQueue(store, { now: () => NOW });
    const commit = new GroupCommit(store, queue);
    const db = store.db;
    let wakes = 0;
    queue.onWake(() => {
      wakes += 1;
    });
    const runs = Array.from({ length: 10 }, (_, i) =>
      commit.run(async (trx) => {
        await trx.insertInto('accounts').values(account(`acc_${i}`)).execute();
        if (i === 4) throw new Error('the fifth one fails');
        await queue.enqueue(trx, { kind: 'noop', payload: { i } });
        return i;
      }),
    );
    const settled = await Promise.allSettled(runs);
    expect(settled.map((s) => s.status)).toEqual(Array.from({ length: 10 }, (_, i) => (i === 4 ? 'rejected' : 'fulfilled')));
    expect((settled[4] as PromiseRejectedResult).reason).toMatchObject({ message: 'the fifth one fails' });
    expect(settled.filter((s) => s.status === 'fulfilled').map((s) => (s as PromiseFulfilledResult<number>).value)).toEqual([0, 1, 2, 3, 5, 6, 7, 8, 9]);
    // Answered only once durable: every row is there when the promises have settled.
    const ids = (await db.selectFrom('accounts').select('id').orderBy('id').execute()).map((r) => r.id);
    expect(ids).toEqual(['acc_0', 'acc_1', 'acc_2', 'acc_3', 'acc_5', 'acc_6', 'acc_7', 'acc_8', 'acc_9']);
    expect(await db.selectFrom('jobs').select('id').execute()).toHaveLength(9);
    expect(wakes).toBeGreaterThan(0);
  });

  it('rolls back a lone transaction that fails', async () => {
    store = await openOutboundStore(engine);
    const commit = new GroupCommit(store, new JobQueue(store));
    await expect(
      commit.run(async (trx) => {
        await trx.insertInto('accounts').values(account('acc_alone')).execute();
        throw new Error('no');
      }),
    ).rejects.toThrow('no');
    expect(await store.db.selectFrom('accounts').select('id').execute()).toEqual([]);
    await expect(commit.run(async (trx) => (await trx.insertInto('accounts').values(account('acc_next')).execute(), 'ok'))).resolves.toBe('ok');
  });
});

// Grouping happens on SQLite only (PostgreSQL runs each as a transaction of its own).
describe('group commit order and size (SQLite)', () => {
  const engine = 'sqlite';
  let store: TestStore | undefined;
  afterEach(async () => {
    await store?.dispose();
    store = undefined;
  });

  const account = (id: string) => ({ id, parent_id: null, name: id, status: 'active', created_at: NOW, updated_at: NOW });
  const busy = (ms: number) => {
    const until = performance.now() + ms;
    while (performance.now() < until);
  };
  /** A transaction that notes its turn in `order`, works `ms` on the loop and inserts an account. */
  const work = (order: string[], name: string, ms = 0) => async (trx: Db) => {
    order.push(name);
    busy(ms);
    await trx.insertInto('accounts').values(account(name)).execute();
    return name;
  };

  it('runs a transaction someone waits for ahead of the job work asked for before it', async () => {
    store = await openOutboundStore(engine);
    const commit = new GroupCommit(store, new JobQueue(store, { now: () => NOW }));
    const order: string[] = [];
    const runs = [...Array.from({ length: 6 }, (_, i) => commit.run(work(order, `job_${i}`))), commit.run(work(order, 'api'), { urgent: true })];
    expect(await Promise.all(runs)).toEqual(['job_0', 'job_1', 'job_2', 'job_3', 'job_4', 'job_5', 'api']);
    // The oldest job item still goes first: job work moves on however many requests come.
    expect(order).toEqual(['job_0', 'api', 'job_1', 'job_2', 'job_3', 'job_4', 'job_5']);
  });

  it('keeps job work moving while urgent transactions alone would fill every group', async () => {
    store = await openOutboundStore(engine);
    const commit = new GroupCommit(store, new JobQueue(store, { now: () => NOW }));
    const order: string[] = [];
    const jobs = [commit.run(work(order, 'job_0', 4)), commit.run(work(order, 'job_1', 4))];
    const api = Array.from({ length: 9 }, (_, i) => commit.run(work(order, `api_${i}`, 4), { urgent: true }));
    await Promise.all([...jobs, ...api]);
    // Three groups of about 10 ms, each led by a job item: job_1 is not left for after every request.
    expect(order.indexOf('job_0')).toBe(0);
    expect(order.indexOf('job_1')).toBeLessThan(order.indexOf('api_8'));
  });

  it('stops a group after ten milliseconds of work and commits the rest in the next, in order', async () => {
    store = await openOutboundStore(engine);
    const commit = new GroupCommit(store, new JobQueue(store, { now: () => NOW }));
    const groups: object[] = [];
    const order: number[] = [];
    const runs = Array.from({ length: 12 }, (_, i) =>
      commit.run(async (trx) => {
        if (!groups.includes(trx)) groups.push(trx);
        order.push(i);
        busy(4);
        await trx.insertInto('accounts').values(account(`acc_${i}`)).execute();
        return i;
      }),
    );
    expect(await Promise.all(runs)).toEqual(Array.from({ length: 12 }, (_, i) => i));
    expect(order).toEqual(Array.from({ length: 12 }, (_, i) => i));
    // 48 ms of work in groups of about 10 ms: several commits, none holding all twelve.
    expect(groups.length).toBeGreaterThanOrEqual(3);
    expect(await store.db.selectFrom('accounts').select('id').execute()).toHaveLength(12);
  });
});
