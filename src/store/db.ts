/**
 * Opening the database: SQLite (better-sqlite3, WAL) by default, PostgreSQL when the URL says so.
 * Both engines get the same tables, the same migrations and the same repositories.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, sql } from 'kysely';
import type { Migration, MigrationProvider } from 'kysely';
import pg from 'pg';
import type { Database } from './schema.js';
import { registerSqlite } from './compiled.js';
import { ImmediateSqliteDialect, WalSync } from './sqlite-driver.js';
import * as m001 from './migrations/001_core.js';
import * as m002 from './migrations/002_jobs.js';
import * as m003 from './migrations/003_delivery.js';
import * as m004 from './migrations/004_hot_paths.js';
import * as m005 from './migrations/005_event_indexes.js';
import * as m006 from './migrations/006_expiry_indexes.js';
import * as m007 from './migrations/007_inbound_item_keys.js';
import * as m008 from './migrations/008_contact_unreachable.js';
import * as m009 from './migrations/009_jobs_ready_by_kind.js';
import * as m010 from './migrations/010_jobs_fair_key.js';

export type Engine = 'sqlite' | 'postgres';
export type Db = Kysely<Database>;

export interface Store {
  db: Db;
  engine: Engine;
  /** The raw better-sqlite3 handle (SQLite only), for pragmas and checkpoints. */
  sqlite?: SqliteDatabase.Database;
  /** The pg pool (PostgreSQL only), for LISTEN/NOTIFY. */
  pool?: pg.Pool;
  /** PostgreSQL schema in use, when one was named. */
  schema?: string;
  /**
   * The durability barrier: resolves once every commit made so far is on disk (SQLite files: an
   * `fdatasync` of the WAL off the event loop, see `sqlite-driver.ts`; absent where commits are
   * durable when they return, as on PostgreSQL). A SQLite commit is answered inside the process
   * before it is flushed, so this is awaited before anything that depends on a commit leaves the
   * process: every HTTP answer, every Graph API call that changes something, every event delivery,
   * the ingress acknowledgement, the CLI's output (see "Durability" in docs/architecture.md).
   */
  sync?: () => Promise<void>;
  /**
   * Counts a commit made on the raw SQLite handle (outside Kysely), so the next barrier flushes it
   * like any other commit.
   */
  noteCommit?: () => void;
  /** Where the database lives, for logs: a file path or the URL without its password. */
  location: string;
  close(): Promise<void>;
}

export interface OpenStoreOptions {
  /** `postgres://…` / `postgresql://…`, or a SQLite file path (`sqlite:` prefix optional), or `:memory:`. */
  url: string;
  /** PostgreSQL: the schema to use (created when missing); tests give each file its own. */
  schema?: string;
  /** PostgreSQL pool size. */
  poolSize?: number;
}

export function engineOf(url: string): Engine {
  return /^postgres(ql)?:\/\//i.test(url) ? 'postgres' : 'sqlite';
}

const INT8_OID = 20;
const NUMERIC_OID = 1700;

export async function openStore(options: OpenStoreOptions): Promise<Store> {
  if (engineOf(options.url) === 'postgres') return openPostgres(options);
  return openSqlite(options.url.replace(/^sqlite:(\/\/)?/i, ''));
}

function openSqlite(path: string): Store {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const sqlite = new SqliteDatabase(path);
  sqlite.pragma('journal_mode = WAL');
  const memory = path === ':memory:';
  // NORMAL: commits hand their WAL frames to the OS and `WalSync` flushes them off the event loop
  // before anything that depends on them leaves the process (`sync`), so what anyone outside was
  // told survives power loss as at FULL, without holding the loop.
  sqlite.pragma(memory ? 'synchronous = FULL' : 'synchronous = NORMAL');
  sqlite.pragma('foreign_keys = ON');
  // Group commit runs each transaction in a savepoint, and SQLite keeps the pages a savepoint
  // changes in a statement journal so it can roll back only that one. By default that journal
  // spills to a temporary file past 64 KiB: thousands of small writes a second, each a system
  // call on the event loop. In memory it is a copy, released with the savepoint.
  sqlite.pragma('temp_store = MEMORY');
  // A second process (the CLI while the server runs) waits for the lock instead of failing at once.
  sqlite.pragma('busy_timeout = 5000');
  // 16 MiB of page cache instead of SQLite's 2 MiB: every message writes at a random place in half a
  // dozen indexes, and with the default cache those pages were read back from the file again and
  // again (a `pread` each). Inbound at 500/s: 4–9 % less CPU a message in four alternating pairs,
  // resident memory the same; 64 MiB added 20 MB and saved nothing more.
  sqlite.pragma('cache_size = -16384');
  const wal = memory ? undefined : new WalSync(`${sqlite.name}-wal`);
  // Immediate transactions, flushes off the loop and cached statements: see `sqlite-driver.ts`.
  const dialect = new ImmediateSqliteDialect(sqlite, wal);
  const db = new Kysely<Database>({ dialect });
  registerSqlite(db, sqlite, { idle: () => dialect.connectionIdle(), beforeRead: () => dialect.reads.enter(), released: () => dialect.connectionReleased() });
  return {
    db,
    engine: 'sqlite',
    sqlite,
    ...(wal ? { sync: () => wal.sync(), noteCommit: () => wal.committed() } : {}),
    location: path,
    async close() {
      await db.destroy();
    },
  };
}

async function openPostgres(options: OpenStoreOptions): Promise<Store> {
  const schema = options.schema;
  if (schema !== undefined && !/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error(`invalid schema name: ${schema}`);
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolSize ?? 10,
    // Times and sequence ids are int8; every value we store fits in a double, so read them as numbers.
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID || oid === NUMERIC_OID ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
    // Named after the schema (tests) so an operator, or a test's cleanup, can tell the connections apart.
    application_name: schema ?? 'switchboard',
    ...(schema ? { options: `-c search_path=${schema}` } : {}),
  });
  // A broken idle connection must not crash the process; the pool replaces it.
  pool.on('error', () => undefined);
  if (schema) await pool.query(`create schema if not exists ${schema}`);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return {
    db,
    engine: 'postgres',
    pool,
    ...(schema ? { schema } : {}),
    location: redactUrl(options.url) + (schema ? ` (schema ${schema})` : ''),
    async close() {
      await db.destroy();
    },
  };
}

export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}

/** Every migration, in order. Imported statically so the same list works from sources and from the build. */
function migrations(engine: Engine): Record<string, Migration> {
  return {
    '001_core': { up: (db) => m001.up(db, engine) },
    '002_jobs': { up: (db) => m002.up(db, engine) },
    '003_delivery': { up: (db) => m003.up(db, engine) },
    '004_hot_paths': { up: (db) => m004.up(db, engine) },
    '005_event_indexes': { up: (db) => m005.up(db) },
    '006_expiry_indexes': { up: (db) => m006.up(db) },
    '007_inbound_item_keys': { up: (db) => m007.up(db) },
    '008_contact_unreachable': { up: (db) => m008.up(db) },
    '009_jobs_ready_by_kind': { up: (db) => m009.up(db) },
    '010_jobs_fair_key': { up: (db) => m010.up(db) },
  };
}

/** The advisory lock that serialises migrations (any 64-bit number unique to Switchboard). */
export const MIGRATION_LOCK_KEY = 7_350_412_201;

/** Runs the migrations not yet applied, all of them or (`to`, for tests of a migration) up to one. */
export async function migrate(store: Store, options: { to?: string } = {}): Promise<string[]> {
  const provider: MigrationProvider = { getMigrations: async () => migrations(store.engine) };
  // The migration bookkeeping tables live in the store's own schema: without this, Kysely finds
  // another schema's lock table through the catalogue and fails when schemas share a database.
  let tableSchema = store.schema;
  if (store.engine === 'postgres' && !tableSchema) {
    const r = await sql<{ s: string }>`select current_schema() as s`.execute(store.db);
    tableSchema = r.rows[0]?.s;
  }
  const migrator = new Migrator({ db: store.db, provider, ...(tableSchema ? { migrationTableSchema: tableSchema } : {}) });
  // Kysely looks for its tables by reading the whole catalogue, which fails when another schema is
  // dropped at that moment; migrations and schema drops (tests) take this advisory lock in turn.
  const lock = store.pool ? await store.pool.connect() : undefined;
  let outcome: Awaited<ReturnType<Migrator['migrateToLatest']>>;
  try {
    await lock?.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    outcome = options.to === undefined ? await migrator.migrateToLatest() : await migrator.migrateTo(options.to);
  } finally {
    await lock?.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
    lock?.release();
  }
  const { error, results } = outcome;
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
