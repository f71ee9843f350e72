import { afterEach, expect, it } from 'vitest';
import { sql } from 'kysely';
import { statusHistory } from '../../src/pipeline/message-status.js';
import { migrate } from '../../src/store/db.js';
import { JobQueue } from '../../src/jobs/queue.js';
import { claimJobs } from '../../src/jobs/claim.js';
import { describeEachEngine, openTestStore } from '../support/db.js';
import type { TestStore } from '../support/db.js';

/** The definition of `jobs_ready` as the engine reports it, whitespace squeezed. */
async function readyIndex(store: TestStore): Promise<string | undefined> {
  const q =
    store.engine === 'sqlite'
      ? sql<{ sql: string }>`select sql from sqlite_master where type = 'index' and name = 'jobs_ready'`
      : sql<{ sql: string }>`select indexdef as sql from pg_indexes where indexname = 'jobs_ready' and schemaname = current_schema()`;
  return (await q.execute(store.db)).rows[0]?.sql.replace(/\s+/g, ' ');
}

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

  it('index ready jobs by kind first and keep the jobs waiting in the queue claimable (009)', async () => {
    store = await openTestStore(engine, { migrateTo: '008_contact_unreachable' });
    const queue = new JobQueue(store);
    const [send] = await queue.enqueue(store.db, { kind: 'send', payload: null });
    const [batch] = await queue.enqueue(store.db, { kind: 'inbound.batch', payload: null });
    expect(await migrate(store, { to: '009_jobs_ready_by_kind' })).toEqual(['009_jobs_ready_by_kind']);
    expect(await readyIndex(store)).toMatch(/\(kind, run_at, id\) WHERE \(?state = 'pending'/i);
    // The claim of today reads the index as 010 leaves it.
    expect(await migrate(store)).toEqual(['010_jobs_fair_key']);
    const lanes = [{ kinds: ['inbound.batch'], limit: 2 }, { kinds: ['send'], limit: 2 }];
    const claimed = await claimJobs(store, { workerId: 'w', kinds: ['inbound.batch', 'send'], limit: 1, leaseMs: 1_000, now: Date.now(), lanes });
    expect(claimed.map((j) => j.id)).toEqual([batch]);
    const rest = await claimJobs(store, { workerId: 'w', kinds: ['inbound.batch', 'send'], limit: 2, leaseMs: 1_000, now: Date.now(), lanes });
    expect(rest.map((j) => j.id)).toEqual([send]);
  });

  it('give jobs a fair key, index ready jobs by tenant, and serve the jobs written before as a tenant of their own (010)', async () => {
    store = await openTestStore(engine, { migrateTo: '009_jobs_ready_by_kind' });
    const before = await new JobQueue(store).enqueue(store.db, [1, 2].map((n) => ({ kind: 'send', payload: n })));
    expect(await migrate(store)).toEqual(['010_jobs_fair_key']);
    expect(await readyIndex(store)).toMatch(/\(kind, fair_key, run_at, id\) WHERE \(?state = 'pending'/i);
    const queue = new JobQueue(store, { fairKinds: ['send'] });
    const [after] = await queue.enqueue(store.db, { kind: 'send', fairKey: 'acc_b', payload: 3 });
    expect((await store.db.selectFrom('jobs').select(['id', 'fair_key']).orderBy('id').execute()).map((j) => j.fair_key)).toEqual([null, null, 'acc_b']);
    const lanes = [{ kinds: ['send'], limit: 2, fair: { after: '' } }];
    const claimed = await claimJobs(store, { workerId: 'w', kinds: ['send'], limit: 2, leaseMs: 1_000, now: Date.now(), lanes });
    // One of each tenant: the older jobs (no fair key) and the new account's.
    expect(claimed.map((j) => j.id)).toEqual([before[0], after]);
  });

  it('leave events with the (account, id) index and without the (account, created_at) one (005)', async () => {
    store = await openTestStore(engine, { migrateTo: '004_hot_paths' });
    const indexes = async () => {
      const q =
        engine === 'sqlite'
          ? sql<{ name: string }>`select name from sqlite_master where type = 'index' and tbl_name = 'events'`
          : sql<{ name: string }>`select indexname as name from pg_indexes where tablename = 'events' and schemaname = current_schema()`;
      return (await q.execute(store!.db)).rows.map((r) => r.name);
    };
    expect(await indexes()).toContain('events_account');
    expect(await migrate(store)).toEqual(['005_event_indexes', '006_expiry_indexes', '007_inbound_item_keys', '008_contact_unreachable', '009_jobs_ready_by_kind', '010_jobs_fair_key']);
    const after = await indexes();
    expect(after).not.toContain('events_account');
    expect(after).toEqual(expect.arrayContaining(['events_account_id', 'events_sender']));
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

  it('move the status history of existing messages into their rows (004)', async () => {
    store = await openTestStore(engine, { migrateTo: '003_delivery' });
    const db = store.db;
    const now = 1_700_000_000_000;
    await db.insertInto('accounts').values({ id: 'acc_1', parent_id: null, name: 'A', status: 'active', created_at: now, updated_at: now }).execute();
    await db
      .insertInto('senders')
      .values({ id: 'snd_1', account_id: 'acc_1', channel: 'messenger', meta_id: '42', page_id: '42', name: null, username: null, token_enc: 'x', health: 'active', health_reason: null, health_changed_at: now, inbound_url: null, inbound_method: 'POST', fallback_url: null, fallback_method: 'POST', status_url: null, status_method: 'POST', format: 'native', human_agent: 0, settings: '{}', last_checked_at: null, created_at: now, updated_at: now })
      .execute();
    await sql`insert into contacts (id, account_id, sender_id, channel, psid, profile_status, created_at, updated_at) values ('con_1', 'acc_1', 'snd_1', 'messenger', '7', 'pending', ${now}, ${now})`.execute(db);
    await sql`insert into conversations (id, account_id, sender_id, contact_id, status, created_at, updated_at) values ('cnv_1', 'acc_1', 'snd_1', 'con_1', 'open', ${now}, ${now})`.execute(db);
    const message = (id: string, direction: string, status: string) =>
      sql`insert into messages (id, account_id, sender_id, contact_id, conversation_id, direction, kind, content, status, origin, created_at, updated_at)
        values (${id}, 'acc_1', 'snd_1', 'con_1', 'cnv_1', ${direction}, 'text', '{}', ${status}, 'api', ${now}, ${now})`.execute(db);
    await message('msg_out', 'outbound', 'delivered');
    await message('msg_in', 'inbound', 'received');
    const history = (status: string, detail: string | null, at: number) =>
      sql`insert into message_status_history (message_id, account_id, status, detail, at) values ('msg_out', 'acc_1', ${status}, ${detail}, ${at})`.execute(db);
    await history('accepted', null, now);
    await history('queued', null, now);
    await history('sent', JSON.stringify({ mid: 'm_1' }), now + 5);
    await history('delivered', JSON.stringify({ source: 'delivery', watermark: now + 9 }), now + 9);

    expect(await migrate(store)).toEqual(['004_hot_paths', '005_event_indexes', '006_expiry_indexes', '007_inbound_item_keys', '008_contact_unreachable', '009_jobs_ready_by_kind', '010_jobs_fair_key']);
    const rows = await db.selectFrom('messages').select(['id', 'status_log']).orderBy('id').execute();
    const byId = new Map(rows.map((r) => [r.id, r]));
    expect(statusHistory(byId.get('msg_out')!)).toEqual([
      { status: 'accepted', at: new Date(now).toISOString(), detail: null },
      { status: 'queued', at: new Date(now).toISOString(), detail: null },
      { status: 'sent', at: new Date(now + 5).toISOString(), detail: { mid: 'm_1' } },
      { status: 'delivered', at: new Date(now + 9).toISOString(), detail: { source: 'delivery', watermark: now + 9 } },
    ]);
    expect(byId.get('msg_in')!.status_log).toBeNull();
    await expect(sql`select count(*) from message_status_history`.execute(db)).rejects.toThrow();
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
