/**
 * Hot-path statements compiled once. Kysely builds an operation tree and compiles it to SQL text
 * on every call: 15–30 µs of CPU a statement, which the outbound benchmark measured at 17 % of the
 * main thread (a message runs about forty statements on its way through). Kysely has no prepared
 * statement of its own, so the statements the pipeline runs thousands of times a second are
 * built here once per dialect with marker values in place of their arguments; a run copies the
 * compiled parameters with the arguments put in the markers' places and hands that straight to
 * the executor (`db.executeQuery`), inside whatever transaction `db` is.
 *
 * On SQLite the statement goes straight to the connection's prepared statement inside a
 * transaction (which already holds SQLite's one connection), and for a read outside one when
 * no one holds the connection (it runs at once, synchronously, so nothing can interleave): that
 * is the call Kysely's executor would end in, without its four asynchronous hops (measured as a
 * sizeable share of the loop's time at forty statements a message). Otherwise (PostgreSQL, a
 * write outside a transaction, or a connection in use) the executor runs it and waits its turn.
 *
 * The SQL text is still written with the query builder, so it is type-checked against the schema
 * like every other query. Arguments must be plain values: an array would compile to a list of
 * its own length, so `in (…)` lists are built per call or, when their length is fixed, as
 * constants.
 */
import type SqliteDatabase from 'better-sqlite3';
import { sql } from 'kysely';
import type { CompiledQuery, OnConflictBuilder, OnConflictDoNothingBuilder, QueryResult } from 'kysely';
import type { Db } from './db.js';
import type { Database } from './schema.js';
import { PreparedRows } from './sqlite-driver.js';

/** A builder's `compile()`: select, insert, update and delete builders, and `sql` templates. */
interface Compilable<O> {
  compile(): CompiledQuery<O>;
}

/** Stands for argument `index` while the statement is built. */
class Marker {
  constructor(readonly index: number) {}
}

interface Template {
  sql: string;
  query: CompiledQuery['query'];
  queryId: CompiledQuery['queryId'];
  /** Constants as compiled, markers where an argument goes. */
  parameters: readonly unknown[];
  /** SQLite: the statement prepared on the store's connection, and that store's handle. */
  direct: { rows: PreparedRows; sqlite: SqliteHandle } | undefined;
}

interface SqliteHandle {
  handle: SqliteDatabase.Database;
  /** Whether no one holds the connection. */
  idle: () => boolean;
  /** Called before a read on the free connection (joins the turn's read transaction). */
  beforeRead: () => void;
  /** The store's own Kysely instance. */
  root: Db;
  /** Settles when the connection's current holder lets go of it. */
  released: () => Promise<void>;
}

// The better-sqlite3 handle behind each SQLite store, by its dialect adapter (see `registerSqlite`).
const sqliteHandles = new WeakMap<object, SqliteHandle>();
const nothing = (): void => undefined;
const alreadyFree = (): Promise<void> => Promise.resolve();

export interface SqliteAccess {
  /** Whether no one holds the connection. */
  idle: () => boolean;
  /** Runs before each read made while the connection is free (`SharedReads`). */
  beforeRead?: () => void;
  /** Resolves when the connection's current holder lets go of it. */
  released?: () => Promise<void>;
}

/** Called by the store that opens a SQLite database: compiled statements may run on it directly. */
export function registerSqlite(db: Db, handle: SqliteDatabase.Database, access: SqliteAccess): void {
  sqliteHandles.set(db.getExecutor().adapter, { handle, idle: access.idle, beforeRead: access.beforeRead ?? nothing, root: db, released: access.released ?? alreadyFree });
}

export interface CompiledStatement<A extends unknown[], O> {
  /** Every row. */
  all(db: Db, ...args: A): Promise<O[]>;
  /** The first row, if any. */
  first(db: Db, ...args: A): Promise<O | undefined>;
  /** The raw result (`numAffectedRows` for writes). */
  run(db: Db, ...args: A): Promise<QueryResult<O>>;
}

/**
 * A statement built by `build` from its arguments, compiled on first use per dialect. `arity`
 * counts the arguments; by default `build` names each of them (no defaults, no rest: its `length`
 * counts them). Each must be used: that is checked when it compiles.
 */
export function compiled<A extends unknown[], O>(build: (db: Db, ...args: A) => Compilable<O>, arity: number = build.length - 1): CompiledStatement<A, O> {
  // Per dialect adapter: a store's transactions share its adapter, and each dialect compiles
  // its own text (`?` for SQLite, `$1` for PostgreSQL).
  const templates = new WeakMap<object, Template>();
  const templateFor = (db: Db): Template => {
    const adapter = db.getExecutor().adapter;
    let template = templates.get(adapter);
    if (template === undefined) {
      const markers = Array.from({ length: arity }, (_, i) => new Marker(i)) as unknown as A;
      const c = build(db, ...markers).compile();
      const used = new Set(c.parameters.filter((p): p is Marker => p instanceof Marker).map((p) => p.index));
      if (used.size !== markers.length) throw new Error(`compiled statement uses ${used.size} of its ${markers.length} arguments: ${c.sql}`);
      const sqlite = sqliteHandles.get(adapter);
      const direct = sqlite ? { rows: new PreparedRows(sqlite.handle.prepare(c.sql)), sqlite } : undefined;
      template = { sql: c.sql, query: c.query, queryId: c.queryId, parameters: c.parameters, direct };
      templates.set(adapter, template);
    }
    return template;
  };
  const run = (db: Db, args: A): Promise<QueryResult<O>> => {
    const t = templateFor(db);
    const parameters = t.parameters.map((p) => (p instanceof Marker ? args[p.index] : p));
    const direct = t.direct;
    if (direct !== undefined && (db.isTransaction || (direct.rows.statement.readonly && direct.sqlite.idle()))) {
      const prepared = direct.rows;
      try {
        if (!db.isTransaction) direct.sqlite.beforeRead();
        if (prepared.statement.reader) return Promise.resolve({ rows: prepared.all(parameters) as O[] });
        const { changes, lastInsertRowid } = prepared.statement.run(parameters);
        return Promise.resolve({ rows: [], numAffectedRows: BigInt(changes), insertId: BigInt(lastInsertRowid) });
      } catch (err) {
        return Promise.reject(err as Error);
      }
    }
    // A read on the store's own handle while a transaction holds the connection: waiting for it to
    // be free and reading then is what Kysely's executor would do, without its hops per statement
    // and without waiting, as a holder's release does, for the holder's commit to reach the disk.
    // (A Kysely bound to one connection, `db.connection()`, is not the root: it runs through Kysely.)
    if (direct !== undefined && direct.rows.statement.readonly && db === direct.sqlite.root) return direct.sqlite.released().then(() => run(db, args));
    return db.executeQuery<O>({ sql: t.sql, query: t.query, queryId: t.queryId, parameters });
  };
  return {
    all: async (db, ...args) => (await run(db, args)).rows,
    first: async (db, ...args) => (await run(db, args)).rows[0],
    run: (db, ...args) => run(db, args),
  };
}

/**
 * Statements whose shape varies with a few choices (the columns an update sets): one compiled
 * statement per `shape`, built on first use. Shapes must be few: they are kept for good, or, with
 * `maxShapes`, the least recently used beyond that many are dropped with their prepared statements.
 */
export function compiledByShape<A extends unknown[], O>(
  build: (shape: string) => { arity: number; build: (db: Db, ...args: A) => Compilable<O> },
  options: { maxShapes?: number } = {},
): (shape: string) => CompiledStatement<A, O> {
  const byShape = new Map<string, CompiledStatement<A, O>>();
  const max = options.maxShapes ?? Number.POSITIVE_INFINITY;
  return (shape) => {
    let statement = byShape.get(shape);
    if (statement === undefined) {
      const made = build(shape);
      statement = compiled(made.build, made.arity);
      if (byShape.size >= max) {
        const oldest = byShape.keys().next().value;
        if (oldest !== undefined) byShape.delete(oldest);
      }
      byShape.set(shape, statement);
    } else if (max !== Number.POSITIVE_INFINITY) {
      // Most recently used last (a Map keeps insertion order).
      byShape.delete(shape);
      byShape.set(shape, statement);
    }
    return statement;
  };
}

/** Every column of a table, listed once: the compiler refuses a list that misses or invents one. */
export function allColumns<T>(columns: Record<keyof T & string, true>): (keyof T & string)[] {
  return Object.keys(columns) as (keyof T & string)[];
}

/**
 * A one-row insert into `table` of exactly `columns`, compiled once; `run` takes the row object
 * (every column present; `null` where empty). `onConflict` adds a conflict clause (for example
 * `do nothing` on a unique key); `numAffectedRows` then tells whether the row went in.
 */
export function compiledInsert<T extends keyof Database & string, C extends keyof Database[T] & string>(
  table: T,
  columns: readonly C[],
  onConflict?: (oc: OnConflictBuilder<Database, T>) => OnConflictDoNothingBuilder<Database, T>,
): { run(db: Db, row: Record<C, unknown>): Promise<QueryResult<unknown>> } {
  const statement = compiled((db: Db, ...args: unknown[]) => {
    const insert = db.insertInto(table).values(Object.fromEntries(columns.map((c, i) => [c, sql.val(args[i])])) as never);
    return onConflict ? insert.onConflict(onConflict) : insert;
  }, columns.length);
  return { run: (db, row) => statement.run(db, ...columns.map((c) => row[c])) };
}
