import { mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GroupCommit } from '../../src/jobs/group-commit.js';
import { JobQueue } from '../../src/jobs/queue.js';
import { openTestStore } from '../support/db.js';
import type { TestStore } from '../support/db.js';

/**
 * Commits on a SQLite file run at `synchronous=NORMAL` and are made durable by an `fdatasync` of the
 * WAL before their caller hears of them (`src/store/sqlite-driver.ts`). Node's own
 * `FileHandle.datasync` is watched (and still called): each flush and each answer is written down in
 * the order they happen.
 */
describe('SQLite commits are on disk before they are answered', () => {
  let store: TestStore | undefined;
  let order: string[] = [];
  let proto: { datasync: FileHandle['datasync'] } | undefined;
  let original: FileHandle['datasync'] | undefined;

  beforeEach(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'switchboard-durability-'));
    const handle = await open(join(dir, 'probe'), 'w');
    proto = Object.getPrototypeOf(handle) as { datasync: FileHandle['datasync'] };
    await handle.close();
    rmSync(dir, { recursive: true, force: true });
    const real = proto.datasync;
    original = real;
    proto.datasync = async function (this: FileHandle) {
      await real.call(this);
      order.push('flushed');
    };
    store = await openTestStore('sqlite');
    await sql`create table probe (n integer)`.execute(store.db);
    await store.sync?.();
    order = [];
  });

  afterEach(async () => {
    if (proto && original) proto.datasync = original;
    await store?.dispose();
    store = undefined;
  });

  const count = async (s: TestStore) => Number((await sql<{ n: number }>`select count(*) as n from probe`.execute(s.db)).rows[0]?.n);

  it('a transaction', async () => {
    const s = store as TestStore;
    await s.db.transaction().execute(async (trx) => {
      await sql`insert into probe (n) values (1)`.execute(trx);
      await sql`insert into probe (n) values (2)`.execute(trx);
    });
    order.push('answered');
    expect(order).toEqual(['flushed', 'answered']);
  });

  it('a write outside a transaction', async () => {
    const s = store as TestStore;
    await sql`insert into probe (n) values (1)`.execute(s.db);
    order.push('answered');
    expect(order).toEqual(['flushed', 'answered']);
  });

  it('a controlled transaction, once the store is synced', async () => {
    const s = store as TestStore;
    const trx = await s.db.startTransaction().execute();
    await sql`insert into probe (n) values (1)`.execute(trx);
    await trx.commit().execute();
    await s.sync?.();
    order.push('answered');
    expect(order).toEqual(['flushed', 'answered']);
  });

  it('the job queue group commit', async () => {
    const s = store as TestStore;
    const commit = new GroupCommit(s, new JobQueue(s));
    const answers = await Promise.all([1, 2, 3].map((n) => commit.run(async (trx) => (await sql`insert into probe (n) values (${n})`.execute(trx), n))));
    order.push('answered');
    expect(answers).toEqual([1, 2, 3]);
    expect(order[0]).toBe('flushed');
    expect(order.at(-1)).toBe('answered');
    expect(await count(s)).toBe(3);
  });

  it('but a rolled-back transaction has nothing to flush', async () => {
    const s = store as TestStore;
    await expect(
      s.db.transaction().execute(async (trx) => {
        await sql`insert into probe (n) values (1)`.execute(trx);
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    order.push('answered');
    expect(order).toEqual(['answered']);
    expect(await count(s)).toBe(0);
  });

  it('nor a read outside a transaction', async () => {
    const s = store as TestStore;
    expect(await count(s)).toBe(0);
    expect(order).toEqual([]);
  });
});
