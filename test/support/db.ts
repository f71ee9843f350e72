/**
 * Real databases for tests: a fresh SQLite file, or a fresh schema in the local PostgreSQL, per call.
 * The storage and job suites run on both engines through `describeEachEngine`.
 * PostgreSQL must answer under CI=true; elsewhere its suites skip with a printed reason.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { describe } from 'vitest';
import { MIGRATION_LOCK_KEY, migrate, openStore } from '../../src/store/db.js';
import type { Engine, Store } from '../../src/store/db.js';

export const POSTGRES_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

let postgresCheck: Promise<string | null> | undefined;

/** null when PostgreSQL answers, otherwise the reason it cannot be used. */
export function postgresUnavailable(): Promise<string | null> {
  postgresCheck ??= (async () => {
    const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 3000 });
    try {
      await client.connect();
      await client.query('select 1');
      return null;
    } catch (err) {
      return `PostgreSQL at ${POSTGRES_URL} did not answer: ${(err as Error).message}`;
    } finally {
      await client.end().catch(() => undefined);
    }
  })();
  return postgresCheck;
}

export interface TestStore extends Store {
  /** Closes the store and removes its file or schema. */
  dispose(): Promise<void>;
}

/** A fresh store on `engine`, migrated to the latest schema (or, `migrateTo`, up to one migration). */
export async function openTestStore(engine: Engine, options: { migrateTo?: string } = {}): Promise<TestStore> {
  const to = options.migrateTo === undefined ? {} : { to: options.migrateTo };
  if (engine === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'switchboard-test-'));
    const store = await openStore({ url: join(dir, 'test.db') });
    await migrate(store, to);
    return {
      ...store,
      async dispose() {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const reason = await postgresUnavailable();
  if (reason) throw new Error(reason);
  const schema = `t_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  const store = await openStore({ url: POSTGRES_URL, schema, poolSize: 12 });
  await migrate(store, to);
  return {
    ...store,
    async dispose() {
      await store.close();
      const client = new pg.Client({ connectionString: POSTGRES_URL });
      await client.connect();
      try {
        // A connection a failed test left open would hold locks the drop waits for: end those first.
        await client.query('select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1 and pid <> pg_backend_pid()', [schema]);
        await client.query("set lock_timeout = '10s'");
        // Never while another store migrates: its catalogue scan would trip over the vanishing schema.
        await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
        try {
          await client.query(`drop schema if exists ${schema} cascade`);
        } finally {
          await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
        }
      } finally {
        await client.end();
      }
    },
  };
}

const postgresReason = await postgresUnavailable();
if (postgresReason && process.env.CI === 'true') {
  throw new Error(`CI=true requires PostgreSQL for the storage suites. ${postgresReason}`);
}
if (postgresReason) console.warn(`[skip] PostgreSQL suites skipped: ${postgresReason}`);

/** Runs the same suite on SQLite and on PostgreSQL (skipped with a reason outside CI when it is down). */
export function describeEachEngine(name: string, body: (engine: Engine) => void): void {
  describe(`${name} [sqlite]`, () => body('sqlite'));
  (postgresReason ? describe.skip : describe)(`${name} [postgres]`, () => body('postgres'));
}
