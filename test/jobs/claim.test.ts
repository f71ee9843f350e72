import { afterEach, describe, expect, it } from 'vitest';
import { claimJobs, nextDueAt, nextFairAfter } from '../../src/jobs/claim.js';
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

  describe('a fair lane', () => {
    async function fairSetUp() {
      store = await openTestStore(engine);
      const clock = new TestClock();
      const queue = queueWithClock(store, clock, { fairKinds: ['send'] });
      const turn = { after: '' };
      // Claims as the runner does: each claim starts after the tenant the last one served.
      const take = async (limit: number) => {
        const rows = await claimJobs(store!, { workerId: 'w', kinds: ['send'], limit, leaseMs: 30_000, now: clock.time, lanes: [{ kinds: ['send'], limit, fair: { ...turn } }] });
        turn.after = nextFairAfter(turn.after, rows);
        return rows;
      };
      const enqueue = async (tenant: string, n: number, key?: (i: number) => string) => {
        const ids = await queue.enqueue(
          store!.db,
          Array.from({ length: n }, (_, i) => ({ kind: 'send', fairKey: tenant, payload: `${tenant} ${i}`, ...(key ? { key: key(i) } : {}) })),
        );
        clock.advance(10);
        return ids;
      };
      return { queue, clock, take, enqueue };
    }

    it('takes one job of each tenant in turn, each tenant oldest first, then a second of each', async () => {
      const { take, enqueue } = await fairSetUp();
      const a = await enqueue('acc_a', 20);
      const b = await enqueue('acc_b', 2);
      const c = await enqueue('acc_c', 1);
      const claimed = await take(5);
      expect(claimed.map((j) => j.id).sort((x, y) => x - y)).toEqual(([a[0], a[1], b[0], b[1], c[0]] as number[]).sort((x, y) => x - y));
      expect(claimed.map((j) => j.fair_key).sort()).toEqual(['acc_a', 'acc_a', 'acc_b', 'acc_b', 'acc_c']);
    });

    it("goes round the tenants one slot at a time, so a backlog's next job waits for the others' turns", async () => {
      const { take, enqueue } = await fairSetUp();
      const a = await enqueue('acc_a', 20);
      const b = await enqueue('acc_b', 2);
      const c = await enqueue('acc_c', 1);
      const order: number[] = [];
      for (let i = 0; i < 7; i += 1) order.push(...(await take(1)).map((j) => j.id));
      // Oldest first would have taken seven of acc_a's twenty.
      expect(order).toEqual([a[0], b[0], c[0], a[1], b[1], a[2], a[3]]);
    });

    it('keeps the tenant of fair kinds only, also when one enqueue mixes kinds', async () => {
      const { queue } = await fairSetUp();
      const ids = await queue.enqueue(store!.db, [
        { kind: 'send', fairKey: 'acc_a', payload: 1 },
        { kind: 'deliver', fairKey: 'acc_a', payload: 2 },
        { kind: 'send', payload: 3 },
      ]);
      const rows = await store!.db.selectFrom('jobs').select(['id', 'fair_key']).where('id', 'in', ids).orderBy('id').execute();
      expect(rows.map((r) => r.fair_key)).toEqual(['acc_a', null, '']);
      const [one] = await queue.enqueue(store!.db, { kind: 'deliver', fairKey: 'acc_a', payload: 4 });
      const row = await store!.db.selectFrom('jobs').select('fair_key').where('id', '=', one as number).executeTakeFirstOrThrow();
      expect(row.fair_key).toBeNull();
    });

    it('with more tenants than slots, serves those after the last served first and wraps around to the rest', async () => {
      const { take, enqueue } = await fairSetUp();
      const tenants = Array.from({ length: 7 }, (_, i) => `acc_${i}`);
      for (const t of tenants) await enqueue(t, 2);
      const served: string[][] = [];
      for (let i = 0; i < 5; i += 1) served.push((await take(3)).map((j) => j.fair_key as string).sort());
      // A claim reads no more tenants than it has slots, in turn from where the last one stopped.
      expect(served).toEqual([
        ['acc_0', 'acc_1', 'acc_2'],
        ['acc_3', 'acc_4', 'acc_5'],
        ['acc_0', 'acc_1', 'acc_6'],
        ['acc_2', 'acc_3', 'acc_4'],
        ['acc_5', 'acc_6'],
      ]);
    });

    it('reads no more than the depth asked for of any one tenant', async () => {
      const { clock, enqueue } = await fairSetUp();
      const a = await enqueue('acc_a', 20);
      const b = await enqueue('acc_b', 2);
      const c = await enqueue('acc_c', 1);
      const lanes = [{ kinds: ['send'], limit: 6, fair: { after: '', depth: 2 } }];
      const claimed = await claimJobs(store!, { workerId: 'w', kinds: ['send'], limit: 6, leaseMs: 30_000, now: clock.time, lanes });
      expect(claimed.map((j) => j.id).sort((x, y) => x - y)).toEqual(([a[0], a[1], b[0], b[1], c[0]] as number[]).sort((x, y) => x - y));
    });

    it("keeps a tenant's keyed jobs one at a time, and leaves out jobs not yet due", async () => {
      const { clock, take, enqueue, queue } = await fairSetUp();
      const a = await enqueue('acc_a', 3, () => 'conv-a');
      const [later] = await queue.enqueue(store!.db, { kind: 'send', fairKey: 'acc_b', payload: 'later', runAt: clock.time + 1_000 });
      expect((await take(5)).map((j) => j.id)).toEqual([a[0]]);
      expect(await take(5)).toEqual([]);
      expect(await nextDueAt(store!, { workerId: 'w', kinds: ['send'], now: clock.time, fairKinds: new Set(['send']) })).toBe(clock.time + 1_000);
      clock.advance(1_000);
      expect((await take(5)).map((j) => j.id)).toEqual([later]);
    });
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

  it('binds each claim\'s own time and worker, across more statement shapes than are kept compiled', async () => {
    const { queue, clock } = await setUp();
    const ids = await queue.enqueue(
      store!.db,
      Array.from({ length: 300 }, (_, i) => ({ kind: 'send', payload: i })),
    );
    // Each lane limit of the first lane makes another statement text (300 of them, more than the
    // 256 kept), and the shape seen first comes back at the end, after it was dropped.
    const firstLaneLimits = [...Array.from({ length: 299 }, (_, i) => i + 1), 1];
    for (const [n, laneLimit] of firstLaneLimits.entries()) {
      clock.advance(1);
      const rows = await claimJobs(store!, {
        workerId: `w${n}`,
        kinds: ['deliver', 'send'],
        limit: 1,
        leaseMs: 30_000,
        now: clock.time,
        lanes: [{ kinds: ['deliver'], limit: laneLimit }, { kinds: ['send'], limit: 1 }],
      });
      expect(rows.map((j) => [j.id, j.locked_by, j.locked_until])).toEqual([[ids[n], `w${n}`, clock.time + 30_000]]);
    }
  });
});
