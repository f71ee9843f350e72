import SqliteDatabase from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { startCheckpointer } from '../../src/store/checkpoint.js';
import type { Checkpointer } from '../../src/store/checkpoint.js';
import { insertInboundBatches } from '../../src/store/inbound-batches.js';
import { openTestStore } from '../support/db.js';
import type { TestStore } from '../support/db.js';

/** True when another connection holds SQLite's write lock (a probe with no busy timeout cannot take it). */
function writeLockTaken(probe: SqliteDatabase.Database): boolean {
  try {
    probe.prepare('begin immediate').run();
  } catch (err) {
    if ((err as { code?: string }).code === 'SQLITE_BUSY') return true;
    throw err;
  }
  probe.prepare('rollback').run();
  return false;
}

async function waitFor(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('SQLite transactions and the checkpointer (one process, two connections)', () => {
  let store: TestStore | undefined;
  let checkpointer: Checkpointer | undefined;
  let probe: SqliteDatabase.Database | undefined;
  afterEach(async () => {
    probe?.close();
    await checkpointer?.stop();
    await store?.dispose();
    probe = undefined;
    checkpointer = undefined;
    store = undefined;
  });

  it('opens the file in WAL mode with its statement journals in memory', async () => {
    store = await openTestStore('sqlite');
    const sqlite = store.sqlite!;
    expect(sqlite.pragma('journal_mode', { simple: true })).toBe('wal');
    // 2 = MEMORY: a group commit's savepoints journal their pages without a temporary file.
    expect(sqlite.pragma('temp_store', { simple: true })).toBe(2);
    expect(sqlite.pragma('foreign_keys', { simple: true })).toBe(1);
  });

  it('take the write lock when the transaction begins', async () => {
    store = await openTestStore('sqlite');
    probe = new SqliteDatabase(store.sqlite!.name);
    probe.pragma('busy_timeout = 0');
    expect(writeLockTaken(probe)).toBe(false);
    const seen = await store.db.transaction().execute(async (trx) => {
      await trx.selectFrom('inbound_batches').select('id').execute();
      return writeLockTaken(probe!);
    });
    expect(seen).toBe(true);
    expect(writeLockTaken(probe)).toBe(false);
  });

  it('a transaction that reads, then writes while a RESTART checkpoint runs, commits', async () => {
    store = await openTestStore('sqlite');
    // RESTART on every tick: it holds the write lock while it waits for readers.
    checkpointer = startCheckpointer(store, { intervalMs: 60_000, restartAboveBytes: 1 });
    probe = new SqliteDatabase(store.sqlite!.name);
    probe.pragma('busy_timeout = 0');
    await insertInboundBatches(store.db, ['z'.repeat(10_000)], 1);
    let checkpoint: Promise<unknown> | undefined;
    await store.db.transaction().execute(async (trx) => {
      await trx.selectFrom('inbound_batches').select('id').execute();
      checkpoint = checkpointer!.checkpointNow();
      // Somebody holds the write lock now: the checkpointer (a deferred transaction, which then
      // failed its write with SQLITE_BUSY) or this transaction itself.
      await waitFor(() => writeLockTaken(probe!), 'the write lock to be taken');
      await trx.insertInto('inbound_batches').values({ received_at: 2, body: 'after', processed_at: null, error: null }).execute();
    });
    await checkpoint;
    const rows = await store.db.selectFrom('inbound_batches').select('body').orderBy('id').execute();
    expect(rows.map((r) => r.body)).toEqual(['z'.repeat(10_000), 'after']);
  });
});
