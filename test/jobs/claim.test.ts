import { afterEach, expect, it } from 'vitest';
import { claimJobs } from '../../src/jobs/claim.js';
import { recordOutcomes } from '../../src/jobs/finish.js';
import { describeEachEngine, openTestStore } from '../support/db.js';
import type { TestStore } from '../support/db.js';
import { TestClock, queueWithClock } from './support.js';

describeEachEngine('the claim', (engine) => {
  let store: TestStore | undefined;
  afterEach(async () => {
    await store?.dispose();
    store = undefined;
  });

  async function setUp() {
    store = await openTestStore(engine);
    const clock = new TestClock();
    const queue = queueWithClock(store, clock);
    const claim = (limit = 10, workerId = 'w') =>
      claimJobs(store!, { workerId, kinds: ['send', 'deliver'], limit, leaseMs: 30_000, now: clock.time });
    return { queue, clock, claim };
  }

  it('marks the jobs it takes running under a lease, up to its limit, oldest first', async () => {
    const { queue, clock, claim } = await setUp();
    const ids = await queue.enqueue(store!.db, [1, 2, 3].map((n) => ({ kind: 'send', payload: n })));
    const first = await claim(2);
    expect(first.map((j) => j.id)).toEqual(ids.slice(0, 2));
    expect(first[0]).toMatchObject({ state: 'running', locked_by: 'w', locked_until: clock.time + 30_000, attempts: 1 });
    expect((await claim(2)).map((j) => j.id)).toEqual(ids.slice(2));
    expect(await claim(2)).toEqual([]);
  });

  it('takes only the kinds it is given and only jobs that are due', async () => {
    const { queue, clock, claim } = await setUp();
    const [later] = await queue.enqueue(store!.db, [
      { kind: 'send', payload: null, runAt: clock.time + 1_000 },
      { kind: 'profile', payload: null },
    ]);
    expect(await claim()).toEqual([]);
    clock.advance(1_000);
    expect((await claim()).map((j) => j.id)).toEqual([later]);
  });

  it('leaves a keyed job while an older job of its key waits for a retry in the future', async () => {
    const { queue, clock, claim } = await setUp();
    const [older, younger] = await queue.enqueue(store!.db, [
      { kind: 'send', key: 'conv', payload: 'older', runAt: clock.time + 60_000 },
      { kind: 'send', key: 'conv', payload: 'younger' },
    ]);
    // Two PostgreSQL transactions enqueuing at once can both store `pending`: the claim alone must keep the order.
    await store!.db.updateTable('jobs').set({ state: 'pending' }).where('id', '=', younger!).execute();
    expect(await claim()).toEqual([]);
    clock.advance(60_000);
    expect((await claim()).map((j) => j.id)).toEqual([older]);
    expect(await claim()).toEqual([]);
  });

  it('runs a replayed dead job before the younger jobs of its key', async () => {
    const { queue, claim, clock } = await setUp();
    const [dead] = await queue.enqueue(store!.db, { kind: 'send', key: 'conv', payload: 'dead' });
    const [claimed] = await claim();
    await recordOutcomes(store!, { workerId: 'w', outcomes: [{ type: 'dead', id: dead!, attempts: claimed!.attempts, key: 'conv', error: 'x' }], now: clock.time, keepDone: false });
    const [younger] = await queue.enqueue(store!.db, { kind: 'send', key: 'conv', payload: 'younger' });
    expect((await queue.get(younger!))?.state).toBe('pending');
    expect(await queue.retryDead(dead!)).toBe(true);
    expect((await claim()).map((j) => j.id)).toEqual([dead]);
    expect(await claim()).toEqual([]);
  });

  it('takes an expired lease before new work, and not a live one', async () => {
    const { queue, clock, claim } = await setUp();
    const [stuck] = await queue.enqueue(store!.db, { kind: 'deliver', payload: 'stuck' });
    expect((await claim(1, 'crashed')).map((j) => j.id)).toEqual([stuck]);
    const fresh = await queue.enqueue(store!.db, [1, 2].map((n) => ({ kind: 'send', payload: n })));
    clock.advance(29_999);
    expect((await claim(1)).map((j) => j.id)).toEqual([fresh[0]]);
    clock.advance(2);
    const retaken = await claim(1);
    expect(retaken.map((j) => j.id)).toEqual([stuck]);
    expect(retaken[0]).toMatchObject({ locked_by: 'w', attempts: 2 });
  });

  it('fills lanes in order: a later job of an earlier lane goes before older jobs of the next lane', async () => {
    const { queue, clock } = await setUp();
    const sends = await queue.enqueue(store!.db, [1, 2, 3].map((n) => ({ kind: 'send', payload: n })));
    clock.advance(10);
    const [webhook] = await queue.enqueue(store!.db, { kind: 'inbound.batch', payload: null });
    const lanes = [{ kinds: ['inbound.batch'], limit: 2 }, { kinds: ['send'], limit: 2 }];
    const claimed = await claimJobs(store!, { workerId: 'w', kinds: ['inbound.batch', 'send'], limit: 2, leaseMs: 30_000, now: clock.time, lanes });
    expect(claimed.map((j) => j.id).sort((a, b) => a - b)).toEqual([sends[0], webhook]);
  });

  it('takes no more from a lane than its limit, and the next lane fills the rest', async () => {
    const { queue, clock } = await setUp();
    const deliveries = await queue.enqueue(store!.db, [1, 2, 3].map((n) => ({ kind: 'deliver', payload: n })));
    clock.advance(10);
    const sends = await queue.enqueue(store!.db, [1, 2, 3].map((n) => ({ kind: 'send', payload: n })));
    const lanes = [{ kinds: ['deliver'], limit: 1 }, { kinds: ['send'], limit: 4 }];
    const claimed = await claimJobs(store!, { workerId: 'w', kinds: ['deliver', 'send'], limit: 4, leaseMs: 30_000, now: clock.time, lanes });
    expect(claimed.map((j) => j.id)).toEqual([deliveries[0], ...sends]);
  });

  it('takes the kinds of one lane oldest first across them', async () => {
    const { queue, clock } = await setUp();
    const [a] = await queue.enqueue(store!.db, { kind: 'profile.fetch', payload: null });
    clock.advance(10);
    const [b] = await queue.enqueue(store!.db, { kind: 'media.download', payload: null });
    clock.advance(10);
    const [c] = await queue.enqueue(store!.db, { kind: 'profile.fetch', payload: null });
    const kinds = ['profile.fetch', 'media.download'];
    const take = () => claimJobs(store!, { workerId: 'w', kinds, limit: 1, leaseMs: 30_000, now: clock.time, lanes: [{ kinds, limit: 1 }] });
    expect((await take()).map((j) => j.id)).toEqual([a]);
    expect((await take()).map((j) => j.id)).toEqual([b]);
    expect((await take()).map((j) => j.id)).toEqual([c]);
    expect(await take()).toEqual([]);
  });
});
