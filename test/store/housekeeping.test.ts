import { afterEach, expect, it } from 'vitest';
import { sql } from 'kysely';
import { INBOUND_ITEM_KEY_TTL_MS, purgeExpired } from '../../src/pipeline/housekeeping.js';
import { IDEMPOTENCY_TTL_MS } from '../../src/pipeline/idempotency.js';
import { describeEachEngine, openTestStore } from '../support/db.js';
import type { TestStore } from '../support/db.js';

const NOW = 1_764_000_000_000;

describeEachEngine('housekeeping', (engine) => {
  let store: TestStore | undefined;
  afterEach(async () => {
    await store?.dispose();
    store = undefined;
  });

  it('removes idempotency keys older than 24 hours, expired login states and week-old item keys, in batches, and keeps the rest', async () => {
    store = await openTestStore(engine);
    const db = store.db;
    const key = (i: number, created_at: number) => ({ account_id: i % 2 ? 'acc_a' : 'acc_b', key: `k-${i}`, request_hash: 'h', status_code: 202, response: '{}', created_at });
    // 23 expired (the oldest a week old), 5 still within their 24 hours, one exactly at the edge.
    const expired = Array.from({ length: 23 }, (_, i) => key(i, NOW - IDEMPOTENCY_TTL_MS - 1 - i * 25_000_000));
    const fresh = Array.from({ length: 5 }, (_, i) => key(100 + i, NOW - i * 3_600_000));
    const edge = key(200, NOW - IDEMPOTENCY_TTL_MS);
    await db.insertInto('idempotency_keys').values([...expired, ...fresh, edge]).execute();
    await db
      .insertInto('oauth_states')
      .values([
        { state: 's-old', account_id: 'acc_a', data: '{}', created_at: NOW - 7_200_000, expires_at: NOW - 3_600_000 },
        { state: 's-live', account_id: 'acc_a', data: '{}', created_at: NOW - 60_000, expires_at: NOW + 540_000 },
      ])
      .execute();
    await db
      .insertInto('inbound_item_keys')
      .values([
        { sender_id: 'snd_a', key: 'old', created_at: NOW - INBOUND_ITEM_KEY_TTL_MS - 1 },
        { sender_id: 'snd_a', key: 'recent', created_at: NOW - 3_600_000 },
      ])
      .execute();

    const removed = await purgeExpired(db, NOW, { batchSize: 5 });
    expect(removed).toEqual({ idempotency_keys: 23, oauth_states: 1, inbound_item_keys: 1 });
    const left = await db.selectFrom('idempotency_keys').select('key').orderBy('key').execute();
    expect(left.map((r) => r.key).sort()).toEqual([...fresh.map((r) => r.key), edge.key].sort());
    expect((await db.selectFrom('oauth_states').select('state').execute()).map((r) => r.state)).toEqual(['s-live']);
    expect(await purgeExpired(db, NOW)).toEqual({ idempotency_keys: 0, oauth_states: 0, inbound_item_keys: 0 });
    expect((await db.selectFrom('inbound_item_keys').select('key').execute()).map((r) => r.key)).toEqual(['recent']);
  });

  it('stops after its batch budget and leaves the rest, oldest gone first, for the next run', async () => {
    store = await openTestStore(engine);
    const db = store.db;
    const rows = Array.from({ length: 12 }, (_, i) => ({ account_id: 'acc_a', key: `k-${i}`, request_hash: 'h', status_code: 202, response: '{}', created_at: NOW - IDEMPOTENCY_TTL_MS - 1_000 * (i + 1) }));
    await db.insertInto('idempotency_keys').values(rows).execute();
    expect(await purgeExpired(db, NOW, { batchSize: 4, maxBatches: 2 })).toEqual({ idempotency_keys: 8, oauth_states: 0, inbound_item_keys: 0 });
    // The four created last (the youngest of the expired) are what is left.
    expect((await db.selectFrom('idempotency_keys').select('key').execute()).map((r) => r.key).sort()).toEqual(['k-0', 'k-1', 'k-2', 'k-3']);
    expect(await purgeExpired(db, NOW, { batchSize: 4, maxBatches: 2 })).toEqual({ idempotency_keys: 4, oauth_states: 0, inbound_item_keys: 0 });
  });

  it.runIf(engine === 'sqlite')('finds the expired rows through their indexes (006, 007)', async () => {
    store = await openTestStore(engine);
    const plan = async (q: string) => (await sql<{ detail: string }>`${sql.raw(`explain query plan ${q}`)}`.execute(store!.db)).rows.map((r) => r.detail).join('\n');
    expect(await plan('select account_id, key from idempotency_keys where created_at < 1 order by created_at limit 5')).toContain('idempotency_keys_created');
    expect(await plan('select state from oauth_states where expires_at < 1 order by expires_at limit 5')).toContain('oauth_states_expires');
    expect(await plan('select sender_id, key from inbound_item_keys where created_at < 1 order by created_at limit 5')).toContain('inbound_item_keys_created');
  });
});
