import { sql } from 'kysely';
import { afterEach, expect, it } from 'vitest';
import { newId } from '../../src/domain/ids.js';
import { insertEvent, listEvents } from '../../src/store/events.js';
import { describeEachEngine, openTestStore } from '../support/db.js';
import type { TestStore } from '../support/db.js';

const T0 = 1_764_000_000_000;

describeEachEngine('events listed by time', (engine) => {
  let store: TestStore | undefined;
  afterEach(async () => {
    await store?.dispose();
    store = undefined;
  });

  it('return exactly the events created at or after since and before until, oldest first, through the (account, id) index', async () => {
    store = await openTestStore(engine);
    const db = store.db;
    await db.insertInto('accounts').values([
      { id: 'acc_a', parent_id: null, name: 'A', status: 'active', created_at: T0, updated_at: T0 },
      { id: 'acc_b', parent_id: null, name: 'B', status: 'active', created_at: T0, updated_at: T0 },
    ]).execute();
    const made: { id: string; at: number; account: string }[] = [];
    for (let i = 0; i < 40; i++) {
      const at = T0 + i * 250;
      const account = i % 4 === 3 ? 'acc_b' : 'acc_a';
      const id = newId('evt', at);
      made.push({ id, at, account });
      await insertEvent(db, { id, account_id: account, type: 'message.received', sender_id: null, conversation_id: null, message_id: null, payload: '{}', created_at: at });
    }
    const expected = (since: number, until?: number) =>
      made.filter((e) => e.account === 'acc_a' && e.at >= since && (until === undefined || e.at < until)).map((e) => e.id);

    for (const since of [T0, T0 + 1, T0 + 2_500, T0 + 2_749, T0 + 9_750, T0 + 20_000]) {
      expect((await listEvents(db, 'acc_a', { since, limit: 100 })).map((e) => e.id)).toEqual(expected(since));
    }
    expect((await listEvents(db, 'acc_a', { since: T0 + 1_000, until: T0 + 3_000, limit: 100 })).map((e) => e.id)).toEqual(expected(T0 + 1_000, T0 + 3_000));
    // A cursor continues where a page ended.
    const first = await listEvents(db, 'acc_a', { since: T0 + 1_000, limit: 5 });
    const next = await listEvents(db, 'acc_a', { since: T0 + 1_000, after: first[4]!.id, limit: 100 });
    expect([...first, ...next].map((e) => e.id)).toEqual(expected(T0 + 1_000));

    if (engine === 'sqlite') {
      const plan = await sql<{ detail: string }>`explain query plan select * from events where account_id = ${'acc_a'} and id >= ${'evt_0'} and created_at >= ${T0} order by id limit 50`.execute(db);
      expect(plan.rows.map((r) => r.detail).join('\n')).toContain('events_account_id');
    }
  });
});
