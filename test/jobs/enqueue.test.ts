import { afterEach, expect, it } from 'vitest';
import { JobQueue } from '../../src/jobs/queue.js';
import { RETRY_SCHEDULES } from '../../src/jobs/schedule.js';
import { describeEachEngine, openTestStore } from '../support/db.js';
import type { TestStore } from '../support/db.js';

describeEachEngine('enqueue', (engine) => {
  let store: TestStore | undefined;
  afterEach(async () => {
    await store?.dispose();
    store = undefined;
  });

  it('leaves no job when the transaction rolls back', async () => {
    store = await openTestStore(engine);
    const queue = new JobQueue(store);
    await expect(
      queue.transaction(async (trx) => {
        await trx.insertInto('inbound_batches').values({ received_at: 1, body: '{}', processed_at: null, error: null }).execute();
        await queue.enqueue(trx, { kind: 'inbound', key: 'k', payload: { batch: 1 } });
        throw new Error('caller failed after enqueue');
      }),
    ).rejects.toThrow('caller failed after enqueue');
    expect(await queue.counts()).toEqual([]);
    expect(await store.db.selectFrom('inbound_batches').selectAll().execute()).toEqual([]);
  });

  it('commits the job with the row that causes it', async () => {
    store = await openTestStore(engine);
    const queue = new JobQueue(store, { now: () => 5_000 });
    const ids = await queue.transaction(async (trx) => {
      await trx.insertInto('inbound_batches').values({ received_at: 1, body: '{}', processed_at: null, error: null }).execute();
      return queue.enqueue(trx, { kind: 'send', key: 'send:s:c', payload: { message: 'msg_1' } });
    });
    expect(ids).toHaveLength(1);
    const job = await queue.get(ids[0] as number);
    expect(job).toMatchObject({
      kind: 'send',
      key: 'send:s:c',
      payload: { message: 'msg_1' },
      state: 'pending',
      attempts: 0,
      maxAttempts: RETRY_SCHEDULES.send?.maxAttempts,
      runAt: 5_000,
      lockedBy: null,
    });
  });

  it('parks a job behind a live job of its key, in one batch and across transactions', async () => {
    store = await openTestStore(engine);
    const queue = new JobQueue(store);
    const first = await queue.transaction((trx) =>
      queue.enqueue(trx, [
        { kind: 'send', key: 'a', payload: 1 },
        { kind: 'send', key: 'a', payload: 2 },
        { kind: 'send', key: 'b', payload: 3 },
        { kind: 'send', key: null, payload: 4 },
        { kind: 'send', payload: 5 },
      ]),
    );
    const later = await queue.enqueue(store.db, [
      { kind: 'send', key: 'a', payload: 6 },
      { kind: 'send', key: 'c', payload: 7 },
    ]);
    const ids = [...first, ...later];
    expect(ids).toEqual([...ids].sort((x, y) => x - y));
    const states = await Promise.all(ids.map(async (id) => (await queue.get(id))?.state));
    expect(states).toEqual(['pending', 'waiting', 'pending', 'pending', 'pending', 'waiting', 'pending']);
    expect(await queue.counts()).toEqual([
      { kind: 'send', state: 'pending', count: 5 },
      { kind: 'send', state: 'waiting', count: 2 },
    ]);
  });

  it('lists newest first with filters and a cursor', async () => {
    store = await openTestStore(engine);
    const queue = new JobQueue(store);
    const ids = await queue.enqueue(store.db, [
      { kind: 'send', key: 'a', payload: 1 },
      { kind: 'deliver', key: 'a', payload: 2 },
      { kind: 'send', key: 'b', payload: 3, maxAttempts: 2, runAt: 42 },
    ]);
    const sends = await queue.list({ kind: 'send' });
    expect(sends.map((j) => j.id)).toEqual([ids[2], ids[0]]);
    expect(sends[0]).toMatchObject({ maxAttempts: 2, runAt: 42 });
    expect((await queue.list({ state: 'waiting' })).map((j) => j.id)).toEqual([ids[1]]);
    expect((await queue.list({ limit: 1, beforeId: ids[2] as number })).map((j) => j.id)).toEqual([ids[1]]);
    expect((await queue.list({ key: 'b' })).map((j) => j.payload)).toEqual([3]);
    expect(await queue.get(999_999)).toBeUndefined();
  });

  it('enqueues nothing for an empty list', async () => {
    store = await openTestStore(engine);
    const queue = new JobQueue(store);
    expect(await queue.enqueue(store.db, [])).toEqual([]);
    expect(await queue.counts()).toEqual([]);
  });

  it('tells whether jobs of a kind created before a time are still pending or running', async () => {
    store = await openTestStore(engine);
    let clock = 1_000;
    const queue = new JobQueue(store, { now: () => clock });
    const [older] = await queue.transaction((trx) => queue.enqueue(trx, { kind: 'inbound.batch', payload: {} }));
    clock = 5_000;
    await queue.transaction((trx) => queue.enqueue(trx, { kind: 'send', payload: {} }));
    expect(await queue.hasLiveJobs('inbound.batch', 1_000)).toBe(false);
    expect(await queue.hasLiveJobs('inbound.batch', 1_001)).toBe(true);
    expect(await queue.hasLiveJobs('profile.fetch', 10_000)).toBe(false);
    await store.db.updateTable('jobs').set({ state: 'running', locked_by: 'w', locked_until: 9_000 }).where('id', '=', older as number).execute();
    expect(await queue.hasLiveJobs('inbound.batch', 2_000)).toBe(true);
    await store.db.updateTable('jobs').set({ state: 'dead' }).where('id', '=', older as number).execute();
    expect(await queue.hasLiveJobs('inbound.batch', 2_000)).toBe(false);
  });
});
