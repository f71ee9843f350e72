import { afterEach, expect, it } from 'vitest';
import { sql } from 'kysely';
import { migrate } from '../../src/store/db.js';
import { describeEachEngine, openTestStore } from '../support/db.js';
import type { TestStore } from '../support/db.js';

describeEachEngine('migrations', (engine) => {
  let store: TestStore | undefined;
  afterEach(async () => {
    await store?.dispose();
    store = undefined;
  });

  it('create every table and run again as a no-op', async () => {
    store = await openTestStore(engine);
    expect(await migrate(store)).toEqual([]);
    const now = Date.now();
    await store.db.insertInto('accounts').values({ id: 'acc_1', parent_id: null, name: 'A', status: 'active', created_at: now, updated_at: now }).execute();
    const row = await store.db.selectFrom('accounts').selectAll().executeTakeFirstOrThrow();
    expect(row.created_at).toBe(now);
    expect(typeof row.created_at).toBe('number');
  });

  it('give jobs an increasing numeric id', async () => {
    store = await openTestStore(engine);
    const now = Date.now();
    const values = { kind: 'k', key: null, payload: '{}', state: 'pending', run_at: now, locked_until: null, locked_by: null, attempts: 0, max_attempts: 3, last_error: null, created_at: now, updated_at: now };
    const a = await store.db.insertInto('jobs').values(values).returning('id').executeTakeFirstOrThrow();
    const b = await store.db.insertInto('jobs').values(values).returning('id').executeTakeFirstOrThrow();
    expect(typeof a.id).toBe('number');
    expect(b.id).toBeGreaterThan(a.id);
  });

  it('refuse a second live sender for the same Meta id', async () => {
    store = await openTestStore(engine);
    const now = Date.now();
    await store.db.insertInto('accounts').values({ id: 'acc_1', parent_id: null, name: 'A', status: 'active', created_at: now, updated_at: now }).execute();
    const sender = (id: string, health: string) => ({ id, account_id: 'acc_1', channel: 'messenger', meta_id: '42', page_id: '42', name: null, username: null, token_enc: 'x', health, health_reason: null, health_changed_at: now, inbound_url: null, inbound_method: 'POST', fallback_url: null, fallback_method: 'POST', status_url: null, status_method: 'POST', format: 'native', human_agent: 0, settings: '{}', last_checked_at: null, created_at: now, updated_at: now });
    await store.db.insertInto('senders').values(sender('snd_1', 'disconnected')).execute();
    await store.db.insertInto('senders').values(sender('snd_2', 'active')).execute();
    await expect(store.db.insertInto('senders').values(sender('snd_3', 'active')).execute()).rejects.toThrow();
    const count = await sql<{ n: number }>`select count(*) as n from senders`.execute(store.db);
    expect(Number(count.rows[0]?.n)).toBe(2);
  });
});
