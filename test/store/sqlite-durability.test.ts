import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GroupCommit } from '../../src/jobs/group-commit.js';
import { JobQueue } from '../../src/jobs/queue.js';
import { IngressWriter } from '../../src/pipeline/ingress-writer.js';
import { openStore } from '../../src/store/db.js';
import { openTestStore } from '../support/db.js';
import type { TestStore } from '../support/db.js';
import { settlesWithin, watchFlushes } from '../support/flushes.js';
import type { FlushWatch } from '../support/flushes.js';

/**
 * Commits on a SQLite file run at `synchronous=NORMAL`: a commit is answered inside the process at
 * once and made durable by an `fdatasync` of the WAL at the next durability barrier (`Store.sync`),
 * which everything that leaves the process waits for (`src/store/sqlite-driver.ts`; the barriers
 * themselves are tested end to end in `test/e2e/durability.test.ts`). Node's own
 * `FileHandle.datasync` is watched (and still called): each flush and each answer is written down in
 * the order they happen.
 */
describe('SQLite commits and the durability barrier', () => {
  let store: TestStore | undefined;
  let flushes: FlushWatch;

  beforeEach(async () => {
    store = await openTestStore('sqlite');
    await sql`create table probe (n integer)`.execute(store.db);
    await store.sync?.();
    flushes = await watchFlushes();
  });

  afterEach(async () => {
    await flushes.stop();
    await store?.dispose();
    store = undefined;
  });

  const count = async (s: TestStore) => Number((await sql<{ n: number }>`select count(*) as n from probe`.execute(s.db)).rows[0]?.n);

  it('a transaction is answered at once and on disk once the store is synced', async () => {
    const s = store as TestStore;
    await s.db.transaction().execute(async (trx) => {
      await sql`insert into probe (n) values (1)`.execute(trx);
      await sql`insert into probe (n) values (2)`.execute(trx);
    });
    flushes.note('answered');
    await s.sync?.();
    flushes.note('synced');
    expect(flushes.log).toEqual(['answered', 'flushed', 'synced']);
  });

  it('a write outside a transaction, and a controlled transaction, the same', async () => {
    const s = store as TestStore;
    await sql`insert into probe (n) values (1)`.execute(s.db);
    const trx = await s.db.startTransaction().execute();
    await sql`insert into probe (n) values (2)`.execute(trx);
    await trx.commit().execute();
    flushes.note('answered');
    await s.sync?.();
    flushes.note('synced');
    expect(flushes.log).toEqual(['answered', 'flushed', 'synced']);
  });

  it('the barrier waits for a flush that covers every commit before it, and no longer', async () => {
    const s = store as TestStore;
    flushes.hold();
    await sql`insert into probe (n) values (1)`.execute(s.db);
    const first = s.sync?.() as Promise<void>;
    await flushes.waiting();
    // Committed while the first flush is on its way: the first flush may not cover it.
    await sql`insert into probe (n) values (2)`.execute(s.db);
    const second = s.sync?.() as Promise<void>;
    expect(await settlesWithin(first, 30)).toBe(false);
    flushes.release();
    await first;
    expect(flushes.count).toBe(1);
    expect(await settlesWithin(second, 30)).toBe(false);
    await flushes.waiting();
    flushes.release();
    await second;
    expect(flushes.count).toBe(2);
    // Nothing committed since: nothing to flush.
    await s.sync?.();
    expect(flushes.count).toBe(2);
  });

  it('the job queue group commit answers at once; the barrier flushes the group', async () => {
    const s = store as TestStore;
    const commit = new GroupCommit(s, new JobQueue(s));
    const answers = await Promise.all([1, 2, 3].map((n) => commit.run(async (trx) => (await sql`insert into probe (n) values (${n})`.execute(trx), n))));
    flushes.note('answered');
    await s.sync?.();
    expect(answers).toEqual([1, 2, 3]);
    expect(flushes.log).toEqual(['answered', 'flushed']);
    expect(await count(s)).toBe(3);
  });

  it('an ingress acknowledgement waits for its group on disk', async () => {
    const s = store as TestStore;
    const writer = new IngressWriter({ store: s, queue: new JobQueue(s), now: Date.now });
    flushes.hold();
    const written = writer.write('{"object":"page","entry":[]}').then(() => flushes.note('acknowledged'));
    await flushes.waiting();
    expect(await settlesWithin(written, 50)).toBe(false);
    flushes.release();
    await written;
    await writer.close();
    expect(flushes.log).toEqual(['flushed', 'acknowledged']);
  });

  it('a failed flush is final: nothing is reported durable again', async () => {
    const s = store as TestStore;
    await sql`insert into probe (n) values (1)`.execute(s.db);
    flushes.fail();
    await expect(s.sync?.()).rejects.toMatchObject({ code: 'STORAGE_FAILED', status: 503, details: { reason: expect.stringContaining('EIO') } });
    // The disk answers again, but what the failed flush held may be gone: no flush is trusted.
    await flushes.stop();
    const asked = flushes.asked;
    await sql`insert into probe (n) values (2)`.execute(s.db);
    await expect(s.sync?.()).rejects.toMatchObject({ code: 'STORAGE_FAILED' });
    expect(flushes.asked).toBe(asked);
    // Closing still lets the file go, and says the flush failed.
    await expect(s.close()).rejects.toMatchObject({ code: 'STORAGE_FAILED' });
    store = undefined;
    rmSync(dirname(s.location), { recursive: true, force: true });
  });

  it('closing the store flushes what was committed', async () => {
    const s = store as TestStore;
    await sql`insert into probe (n) values (1)`.execute(s.db);
    expect(flushes.log).toEqual([]);
    await s.close();
    expect(flushes.log).toEqual(['flushed']);
    const again = await openStore({ url: s.location });
    try {
      expect(Number((await sql<{ n: number }>`select count(*) as n from probe`.execute(again.db)).rows[0]?.n)).toBe(1);
    } finally {
      await again.close();
    }
  });

  it('but a rolled-back transaction has nothing to flush', async () => {
    const s = store as TestStore;
    await expect(
      s.db.transaction().execute(async (trx) => {
        await sql`insert into probe (n) values (1)`.execute(trx);
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    await s.sync?.();
    expect(flushes.log).toEqual([]);
    expect(await count(s)).toBe(0);
  });

  it('nor a read outside a transaction', async () => {
    const s = store as TestStore;
    expect(await count(s)).toBe(0);
    await s.sync?.();
    expect(flushes.log).toEqual([]);
  });
});
