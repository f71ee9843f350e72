import { afterEach, expect, it } from 'vitest';
import { compiled, compiledByShape } from '../../src/store/compiled.js';
import type { Db } from '../../src/store/db.js';
import { describeEachEngine, openTestStore } from '../support/db.js';
import type { TestStore } from '../support/db.js';

const NOW = 1_700_000_000_000;

const insertAccount = compiled((db: Db, id: string, name: string, now: number) =>
  db.insertInto('accounts').values({ id, parent_id: null, name, status: 'active', created_at: now, updated_at: now }),
);
const accountName = compiled((db: Db, id: string) => db.selectFrom('accounts').select(['id', 'name']).where('id', '=', id));
const accountStatus = compiled((db: Db, id: string) => db.selectFrom('accounts').select('status').where('id', '=', id));
const renameBy = compiledByShape((shape: string) => ({
  arity: 2,
  build: (db: Db, id: string, name: string) => db.updateTable('accounts').set({ name, status: shape }).where('id', '=', id),
}));

describeEachEngine('compiled statements', (engine) => {
  let store: TestStore | undefined;
  afterEach(async () => {
    await store?.dispose();
    store = undefined;
  });

  it('run with new arguments each time, in and out of transactions', async () => {
    store = await openTestStore(engine);
    const db = store.db;
    await insertAccount.run(db, 'acc_1', 'One', NOW);
    await insertAccount.run(db, 'acc_2', 'Two', NOW);
    expect(await accountName.first(db, 'acc_1')).toEqual({ id: 'acc_1', name: 'One' });
    expect(await accountName.first(db, 'acc_2')).toEqual({ id: 'acc_2', name: 'Two' });
    expect(await accountName.first(db, 'acc_3')).toBeUndefined();

    // Inside a transaction: its own writes are seen, and a rollback undoes them.
    await expect(
      db.transaction().execute(async (trx) => {
        await insertAccount.run(trx, 'acc_3', 'Three', NOW);
        expect(await accountName.first(trx, 'acc_3')).toEqual({ id: 'acc_3', name: 'Three' });
        const moved = await renameBy('suspended').run(trx, 'acc_1', 'Uno');
        expect(Number(moved.numAffectedRows)).toBe(1);
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    expect(await accountName.first(db, 'acc_3')).toBeUndefined();
    expect(await accountName.first(db, 'acc_1')).toEqual({ id: 'acc_1', name: 'One' });

    await renameBy('suspended').run(db, 'acc_1', 'Uno');
    expect((await accountName.first(db, 'acc_1'))?.name).toBe('Uno');
    expect((await accountStatus.first(db, 'acc_1'))?.status).toBe('suspended');
    await renameBy('active').run(db, 'acc_1', 'Eins');
    expect((await accountStatus.first(db, 'acc_1'))?.status).toBe('active');
  });

  it('never read what an open transaction has not committed', async () => {
    store = await openTestStore(engine);
    const db = store.db;
    const trx = await db.startTransaction().execute();
    await insertAccount.run(trx, 'acc_1', 'One', NOW);
    // Outside the transaction: on SQLite this waits for the connection (it is held), on
    // PostgreSQL it reads from another connection; either way the row is not there yet.
    const outside = accountName.first(db, 'acc_1');
    let settled: unknown = 'pending';
    void outside.then((v) => (settled = v));
    await new Promise((r) => setTimeout(r, 50));
    if (engine === 'sqlite') expect(settled).toBe('pending');
    else expect(settled).toBeUndefined();
    await trx.commit().execute();
    const after = await accountName.first(db, 'acc_1');
    expect(after).toEqual({ id: 'acc_1', name: 'One' });
    if (engine === 'sqlite') expect(await outside).toEqual({ id: 'acc_1', name: 'One' });
  });

  it('refuse a statement that leaves an argument out', async () => {
    store = await openTestStore(engine);
    const careless = compiled((db: Db, id: string, _unused: string) => db.selectFrom('accounts').selectAll().where('id', '=', id));
    await expect(careless.first(store.db, 'acc_1', 'x')).rejects.toThrow(/uses 1 of its 2 arguments/);
  });
});
