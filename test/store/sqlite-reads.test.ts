import SqliteDatabase from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { compiled } from '../../src/store/compiled.js';
import type { Db } from '../../src/store/db.js';
import { PreparedRows } from '../../src/store/sqlite-driver.js';
import { openTestStore } from '../support/db.js';
import type { TestStore } from '../support/db.js';

const NOW = 1_700_000_000_000;

const insertAccount = compiled((db: Db, id: string, name: string) =>
  db.insertInto('accounts').values({ id, parent_id: null, name, status: 'active', created_at: NOW, updated_at: NOW }),
);
const accountName = compiled((db: Db, id: string) => db.selectFrom('accounts').select('name').where('id', '=', id));
const wholeAccount = compiled((db: Db, id: string) => db.selectFrom('accounts').selectAll().where('id', '=', id));

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('SQLite reads on the free connection share one read transaction per event-loop turn', () => {
  let store: TestStore | undefined;
  let other: SqliteDatabase.Database | undefined;
  afterEach(async () => {
    other?.close();
    await store?.dispose();
    other = undefined;
    store = undefined;
  });

  it('open one transaction for the reads of a turn and end it before the turn is over', async () => {
    store = await openTestStore('sqlite');
    const sqlite = store.sqlite!;
    await insertAccount.run(store.db, 'acc_1', 'One');
    await nextTurn();
    expect(sqlite.inTransaction).toBe(false);

    expect(await accountName.first(store.db, 'acc_1')).toEqual({ name: 'One' });
    // The read left its transaction open for the next reads of this turn...
    expect(sqlite.inTransaction).toBe(true);
    expect(await accountName.first(store.db, 'acc_1')).toEqual({ name: 'One' });
    // ...and the turn's end closes it.
    await nextTurn();
    expect(sqlite.inTransaction).toBe(false);
  });

  it("see the connection's own writes made after them in the same turn, and let those writes run", async () => {
    store = await openTestStore('sqlite');
    await insertAccount.run(store.db, 'acc_1', 'One');
    await nextTurn();

    expect(await accountName.first(store.db, 'acc_1')).toEqual({ name: 'One' });
    // A write takes the connection: the shared read transaction ends before it begins its own.
    await store.db.transaction().execute(async (trx) => {
      await trx.updateTable('accounts').set({ name: 'Uno' }).where('id', '=', 'acc_1').execute();
    });
    await insertAccount.run(store.db, 'acc_2', 'Two');
    expect(await accountName.first(store.db, 'acc_1')).toEqual({ name: 'Uno' });
    expect(await accountName.first(store.db, 'acc_2')).toEqual({ name: 'Two' });
    await nextTurn();
    expect(store.sqlite!.inTransaction).toBe(false);
  });

  it("see another connection's commit from the next turn on, and never hold back its writes", async () => {
    store = await openTestStore('sqlite');
    await insertAccount.run(store.db, 'acc_1', 'One');
    await nextTurn();
    other = new SqliteDatabase(store.sqlite!.name);
    other.pragma('busy_timeout = 0');

    expect(await accountName.first(store.db, 'acc_1')).toEqual({ name: 'One' });
    // A reader never blocks a writer in WAL mode: the other connection commits at once.
    other.prepare("update accounts set name = 'Elsewhere' where id = 'acc_1'").run();
    // This turn's reads keep the snapshot they started with.
    expect(await accountName.first(store.db, 'acc_1')).toEqual({ name: 'One' });
    await nextTurn();
    expect(await accountName.first(store.db, 'acc_1')).toEqual({ name: 'Elsewhere' });
  });

  it('read inside a transaction as before, and close cleanly with a shared read open', async () => {
    store = await openTestStore('sqlite');
    await insertAccount.run(store.db, 'acc_1', 'One');
    const seen = await store.db.transaction().execute(async (trx) => {
      await trx.updateTable('accounts').set({ name: 'Inside' }).where('id', '=', 'acc_1').execute();
      return accountName.first(trx, 'acc_1');
    });
    expect(seen).toEqual({ name: 'Inside' });
    expect(await accountName.first(store.db, 'acc_1')).toEqual({ name: 'Inside' });
    expect(store.sqlite!.inTransaction).toBe(true);
    await store.dispose();
    store = undefined;
  });
});

describe('SQLite reads while a transaction holds the connection', () => {
  let store: TestStore | undefined;
  afterEach(async () => {
    await store?.dispose();
    store = undefined;
  });

  it('wait for it to let go and see what it committed, in the order they were asked', async () => {
    store = await openTestStore('sqlite');
    const db = store.db;
    await insertAccount.run(db, 'acc_1', 'One');
    const order: string[] = [];
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const writer = db.transaction().execute(async (trx) => {
      await trx.updateTable('accounts').set({ name: 'Uno' }).where('id', '=', 'acc_1').execute();
      await held;
      order.push('commit');
    });
    await new Promise((resolve) => setTimeout(resolve, 10));
    const read = accountName.first(db, 'acc_1').then((row) => {
      order.push('read');
      return row;
    });
    // Another transaction queued after the read: the read goes first.
    const next = db.transaction().execute(async (trx) => {
      order.push('next');
      await trx.updateTable('accounts').set({ name: 'Eins' }).where('id', '=', 'acc_1').execute();
    });
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(order).toEqual([]);
    release();
    await writer;
    expect(await read).toEqual({ name: 'Uno' });
    await next;
    expect(order).toEqual(['commit', 'read', 'next']);
    expect(await accountName.first(db, 'acc_1')).toEqual({ name: 'Eins' });
  });

  it('run on a Kysely bound to the held connection without waiting for themselves', async () => {
    store = await openTestStore('sqlite');
    await insertAccount.run(store.db, 'acc_1', 'One');
    const seen = await store.db.connection().execute((conn) => accountName.first(conn, 'acc_1'));
    expect(seen).toEqual({ name: 'One' });
  });
});

describe('rows read as arrays and made into objects (PreparedRows)', () => {
  let db: SqliteDatabase.Database | undefined;
  afterEach(() => {
    db?.close();
    db = undefined;
  });

  function open(): SqliteDatabase.Database {
    db = new SqliteDatabase(':memory:');
    db.exec(`create table t (id integer primary key, name text, n real, data blob, missing text);
      insert into t values (1, 'one', 1.5, x'0102', null), (2, 'two', 2.5, null, null);
      create table u (id integer primary key, name text);
      insert into u values (1, 'other');`);
    return db;
  }

  it('equal the objects better-sqlite3 makes, for every column type, several rows and none', () => {
    const sqlite = open();
    for (const text of ['select * from t order by id', 'select name, id from t where id = 2', 'select * from t where id = 99', 'select count(*) as n from t']) {
      const own = sqlite.prepare(text).all();
      expect(new PreparedRows(sqlite.prepare(text)).all([])).toEqual(own);
    }
    const rows = new PreparedRows(sqlite.prepare('select * from t where id = ?')).all([1]);
    expect(rows).toEqual([{ id: 1, name: 'one', n: 1.5, data: Buffer.from([1, 2]), missing: null }]);
    expect(Object.keys(rows[0]!)).toEqual(['id', 'name', 'n', 'data', 'missing']);
  });

  it('keep the last value of two columns of one name, as better-sqlite3 does', () => {
    const sqlite = open();
    const text = 'select t.*, u.name from t join u on u.id = t.id';
    const own = sqlite.prepare(text).all();
    expect(own).toEqual([{ id: 1, name: 'other', n: 1.5, data: Buffer.from([1, 2]), missing: null }]);
    expect(new PreparedRows(sqlite.prepare(text)).all([])).toEqual(own);
  });

  it('keep a column named __proto__ as an own property, never as the prototype', () => {
    const sqlite = open();
    const rows = new PreparedRows(sqlite.prepare("select 1 as id, x'01' as __proto__, 'after' as name")).all([]);
    expect(rows).toHaveLength(1);
    const row = rows[0]!;
    expect(Object.getPrototypeOf(row)).toBe(Object.prototype);
    expect(Object.keys(row)).toEqual(['id', '__proto__', 'name']);
    expect(Object.getOwnPropertyDescriptor(row, '__proto__')?.value).toEqual(Buffer.from([1]));
    expect(row).toMatchObject({ id: 1, name: 'after' });
  });

  it('follow a schema change that adds a column to a prepared select *', () => {
    const sqlite = open();
    const prepared = new PreparedRows(sqlite.prepare('select * from u'));
    expect(prepared.all([])).toEqual([{ id: 1, name: 'other' }]);
    sqlite.exec("alter table u add column note text default 'new'");
    expect(prepared.all([])).toEqual([{ id: 1, name: 'other', note: 'new' }]);
  });

  it('serve the compiled statements of a store: a whole row comes back with every column', async () => {
    const store = await openTestStore('sqlite');
    try {
      await insertAccount.run(store.db, 'acc_1', 'One');
      const row = await wholeAccount.first(store.db, 'acc_1');
      expect(row).toEqual(store.sqlite!.prepare("select * from accounts where id = 'acc_1'").get());
      const viaKysely = await store.db.selectFrom('accounts').selectAll().where('id', '=', 'acc_1').executeTakeFirst();
      expect(viaKysely).toEqual(row);
    } finally {
      await store.dispose();
    }
  });
});
