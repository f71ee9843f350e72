/**
 * Kysely's SQLite dialect with three changes that matter under load:
 * 1. Transactions begin `IMMEDIATE`. Kysely's own driver says plain `BEGIN` (deferred): such a
 *    transaction reads first and takes the write lock at its first write. If another connection
 *    holds the write lock at that moment (the checkpointer's RESTART safety valve in
 *    `checkpoint.ts` holds it while it waits for readers, and this very transaction is one of
 *    those readers), SQLite cannot wait without a deadlock and fails the write at once with
 *    SQLITE_BUSY ("database is locked"), skipping the busy timeout. `BEGIN IMMEDIATE` takes the write
 *    lock before reading anything, so it waits (busy timeout) like any other writer instead. In one
 *    process all queries share one connection behind Kysely's mutex, so taking the lock early
 *    costs nothing.
 * 2. Commits run at `synchronous=NORMAL` and are made durable by `fdatasync` of the WAL file on
 *    libuv's thread pool (`WalSync`), not on the event loop: at FULL every commit held the loop
 *    for its fsync, 12% of the gateway's main-thread time in the outbound benchmark. A commit is
 *    answered inside the process at once; it is flushed before anything that depends on it leaves
 *    the process (`Store.sync`, the durability barrier: see "Durability" in
 *    docs/architecture.md). A flush covers the whole WAL file, every earlier commit too, and the
 *    WAL is a log: after a machine crash the database is as it was at some earlier commit, every
 *    commit that anyone outside had heard of included.
 * 3. Prepared statements are cached by their text. Kysely's driver prepares every query again;
 *    preparing is a large part of a small query's cost (parse + plan), and the gateway runs the
 *    same few hundred statement texts over and over.
 * 4. Reads made while no one holds the connection share one read transaction per turn of the event
 *    loop (`SharedReads`) instead of each being a transaction of its own.
 * 5. Rows come back from SQLite as arrays and become objects in one step (`PreparedRows`).
 */
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import type SqliteDatabase from 'better-sqlite3';
import { CompiledQuery, SelectQueryNode, SqliteDialect } from 'kysely';
import type { DatabaseConnection, Driver, QueryResult } from 'kysely';
import { GatewayError } from '../domain/errors.js';

type Row = Record<string, unknown>;

/**
 * Rows of a prepared statement, as objects, made cheaply. better-sqlite3 builds a row object one
 * column at a time through V8's C++ API: each column's name is looked up in V8's string table and
 * the object changes shape once per column. For a 28-column message row that took 11 µs on the
 * benchmark machine; the same row read as an array and turned into an object by a function written
 * for those columns took 6 µs, because an object literal is created with its final shape at once.
 * That function is generated (`new Function`) from the column names SQLite reports for the
 * statement, names from our own schema and queries, each written as a JSON string literal. Two
 * columns of one name keep the last value, as better-sqlite3 does. A column named `__proto__`
 * becomes an own property (a computed key), never the object's prototype.
 */
export class PreparedRows {
  readonly statement: SqliteDatabase.Statement;
  #names: string[] = [];
  #make: (values: unknown[]) => Row = () => ({});

  constructor(statement: SqliteDatabase.Statement) {
    this.statement = statement;
    if (statement.reader) this.#build();
  }

  #build(): void {
    const names = this.statement.columns().map((c) => c.name);
    this.#names = names;
    this.statement.raw(true);
    // A quoted `__proto__` key in a literal would set the prototype; a computed one defines a property.
    const key = (n: string): string => (n === '__proto__' ? `[${JSON.stringify(n)}]` : JSON.stringify(n));
    this.#make = new Function('v', `return {${names.map((n, i) => `${key(n)}: v[${i}]`).join(', ')}};`) as (values: unknown[]) => Row;
  }

  /** Every row the statement returns for these parameters (a reader statement). */
  all(parameters: readonly unknown[]): Row[] {
    const rows = this.statement.all(parameters) as unknown[][];
    // A schema change re-prepares the statement inside SQLite and may change its columns.
    if (rows.length > 0 && rows[0]!.length !== this.#names.length) this.#build();
    const make = this.#make;
    const out = new Array<Row>(rows.length);
    for (let i = 0; i < rows.length; i++) out[i] = make(rows[i]!);
    return out;
  }
}

// Distinct statement texts kept prepared. The gateway's queries are a few hundred texts; texts
// that vary with the number of values (long `in (...)` lists) would otherwise grow without bound.
const MAX_CACHED_STATEMENTS = 1000;

const RESOLVED = Promise.resolve();

// A statement that ends a transaction without writing it (see `#noteCommit`).
const ROLLBACK = /^\s*rollback\b/i;

/**
 * Makes commits durable off the event loop: `sync()` resolves once an `fdatasync` of the WAL file
 * that started after the latest `committed()` has finished. Counting commits lets every caller
 * since the last flush share one.
 *
 * A failed flush is final: every later `sync()` fails with `STORAGE_FAILED`. After a failed
 * `fdatasync` Linux may already have dropped the pages it could not write and marked them clean, so a
 * later flush can succeed without them ever reaching the disk (PostgreSQL stops for the same
 * reason). Nothing is reported durable again; a restart recovers from what the disk holds.
 */
export class WalSync {
  readonly #path: string;
  #handle: Promise<FileHandle> | undefined;
  #committed = 0;
  #flushed = 0;
  #running: Promise<void> | null = null;
  #failed: GatewayError | undefined;

  constructor(walPath: string) {
    this.#path = walPath;
  }

  committed(): void {
    this.#committed += 1;
  }

  /** Resolves once every commit counted so far is on disk: the durability barrier. */
  sync(): Promise<void> {
    if (this.#failed !== undefined) return Promise.reject(this.#failed);
    // Called before every HTTP answer and outgoing request: nothing to wait for is the common case.
    return this.#flushed < this.#committed ? this.#syncTo(this.#committed) : RESOLVED;
  }

  async #syncTo(target: number): Promise<void> {
    while (this.#flushed < target) {
      this.#running ??= this.#flush();
      await this.#running;
    }
  }

  #flush(): Promise<void> {
    const upTo = this.#committed;
    const run = (async () => {
      try {
        this.#handle ??= open(this.#path, 'r+');
        await (await this.#handle).datasync();
      } catch (err) {
        this.#failed ??= new GatewayError('STORAGE_FAILED', { reason: (err as Error).message });
        throw this.#failed;
      }
      this.#flushed = Math.max(this.#flushed, upTo);
    })();
    const clear = (): void => {
      this.#running = null;
    };
    run.then(clear, clear);
    return run;
  }

  async close(): Promise<void> {
    await this.#running?.catch(() => undefined);
    const handle = this.#handle;
    this.#handle = undefined;
    if (handle) await (await handle).close();
  }
}

/**
 * In WAL mode every statement outside a transaction is a read transaction of its own, and starting
 * and ending one takes and drops a lock on the WAL index with two `fcntl` calls. On a virtual
 * machine those cost 3-10 µs each, more than a small indexed read: a sender row read alone took
 * 6.7 µs against 1.0 µs inside a transaction. So reads made while the connection is free (see
 * `compiled.ts`) open a plain deferred `begin` on the first one and share it until the event loop's
 * next check phase (`setImmediate`), or until anyone takes the connection (`acquireConnection`),
 * whichever comes first: the connection's own writes are always seen by the reads after them, and
 * another process's commit is seen from the next turn, as if those reads had run a moment earlier.
 * A snapshot held for one turn keeps a checkpoint from passing it for that long, no more.
 * Only reads run in it; every write takes the connection, which ends the shared transaction first.
 */
export class SharedReads {
  readonly #db: SqliteDatabase.Database;
  readonly #begin: SqliteDatabase.Statement;
  readonly #commit: SqliteDatabase.Statement;
  #open = false;
  #scheduled = false;

  constructor(db: SqliteDatabase.Database) {
    this.#db = db;
    this.#begin = db.prepare('begin');
    this.#commit = db.prepare('commit');
  }

  /** Before a read on the free connection: joins the turn's read transaction, opening it if needed. */
  enter(): void {
    // Someone else's transaction (never expected while the connection is free): read inside it.
    if (this.#open || this.#db.inTransaction) return;
    this.#begin.run();
    this.#open = true;
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#endOfTurn);
    }
  }

  /** Ends the shared read transaction, if one is open. */
  leave(): void {
    if (!this.#open) return;
    this.#open = false;
    if (!this.#db.open || !this.#db.inTransaction) return;
    try {
      this.#commit.run();
    } catch {
      // A read-only transaction has nothing to lose; make sure it is gone.
      if (this.#db.inTransaction) this.#db.exec('rollback');
    }
  }

  readonly #endOfTurn = (): void => {
    this.#scheduled = false;
    this.leave();
  };
}

class CachingSqliteConnection implements DatabaseConnection {
  readonly #db: SqliteDatabase.Database;
  readonly #cache = new Map<string, PreparedRows>();
  readonly #wal: WalSync | undefined;

  constructor(db: SqliteDatabase.Database, wal: WalSync | undefined) {
    this.#db = db;
    this.#wal = wal;
  }

  #prepare(text: string): PreparedRows {
    let stmt = this.#cache.get(text);
    if (stmt === undefined) {
      stmt = new PreparedRows(this.#db.prepare(text));
      // Oldest first out (Map keeps insertion order): cheap, and the hot texts come back at once.
      if (this.#cache.size >= MAX_CACHED_STATEMENTS) {
        const oldest = this.#cache.keys().next().value;
        if (oldest !== undefined) this.#cache.delete(oldest);
      }
      this.#cache.set(text, stmt);
    }
    return stmt;
  }

  executeQuery<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    const { sql, parameters } = compiledQuery;
    const prepared = this.#prepare(sql);
    const stmt = prepared.statement;
    const inTransaction = this.#db.inTransaction;
    if (stmt.reader) {
      const rows = prepared.all(parameters) as R[];
      // `insert ... returning` reads and writes; outside a transaction it committed.
      this.#noteCommit(sql, stmt, inTransaction);
      return Promise.resolve({ rows });
    }
    const { changes, lastInsertRowid } = stmt.run(parameters);
    this.#noteCommit(sql, stmt, inTransaction);
    return Promise.resolve({
      numAffectedRows: BigInt(changes),
      insertId: BigInt(lastInsertRowid),
      rows: [],
    });
  }

  /**
   * Counts a commit for the WAL flush: a write outside a transaction, or the statement that ended
   * one (`commit`, `end`, the outermost `release`). SQLite calls transaction control statements
   * read-only (`sqlite3_stmt_readonly`), so the end of a transaction is told by the connection
   * leaving it, not by the statement; a `rollback` wrote nothing to flush.
   */
  #noteCommit(sql: string, stmt: SqliteDatabase.Statement, wasInTransaction: boolean): void {
    if (this.#wal === undefined || this.#db.inTransaction) return;
    if (wasInTransaction ? !ROLLBACK.test(sql) : !stmt.readonly) this.#wal.committed();
  }

  async *streamQuery<R>(compiledQuery: CompiledQuery): AsyncIterableIterator<QueryResult<R>> {
    const { sql, parameters, query } = compiledQuery;
    if (!SelectQueryNode.is(query)) throw new Error('Sqlite driver only supports streaming of select queries');
    // A statement being iterated is busy until the loop ends, so a stream gets one of its own.
    const stmt = this.#db.prepare(sql);
    for (const row of stmt.iterate(parameters)) yield { rows: [row as R] };
  }
}

/** One connection, handed out to one holder at a time (SQLite has one writer anyway). */
class ConnectionMutex {
  #promise: Promise<void> | undefined;
  #resolve: (() => void) | undefined;

  get locked(): boolean {
    return this.#promise !== undefined;
  }

  /**
   * Settles once the holder at the time of the call has let go (someone else may hold it by then).
   * The lock's own promise, not a wrapper: a callback chained on it runs in turn with the waiters of
   * `lock()`, so a reader that asked before them finds the connection free.
   */
  released(): Promise<void> {
    return this.#promise ?? RESOLVED;
  }

  async lock(): Promise<void> {
    while (this.#promise) await this.#promise;
    this.#promise = new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }

  unlock(): void {
    const resolve = this.#resolve;
    this.#promise = undefined;
    this.#resolve = undefined;
    resolve?.();
  }
}

class ImmediateSqliteDriver implements Driver {
  readonly #mutex = new ConnectionMutex();
  readonly #db: SqliteDatabase.Database;
  readonly #connection: CachingSqliteConnection;
  readonly #wal: WalSync | undefined;
  readonly #reads: SharedReads;

  constructor(db: SqliteDatabase.Database, wal: WalSync | undefined, reads: SharedReads) {
    this.#db = db;
    this.#wal = wal;
    this.#reads = reads;
    this.#connection = new CachingSqliteConnection(db, wal);
  }

  async init(): Promise<void> {}

  /** No one holds the connection: no transaction is open on it. */
  idle(): boolean {
    return !this.#mutex.locked;
  }

  /** Resolves when the current holder lets go of the connection (at once when no one holds it). */
  released(): Promise<void> {
    return this.#mutex.released();
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    await this.#mutex.lock();
    // The holder may begin a transaction or write: the turn's shared reads end here.
    this.#reads.leave();
    return this.#connection;
  }

  async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('commit'));
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('rollback'));
  }

  async savepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`savepoint ${quoteName(name)}`));
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`rollback to ${quoteName(name)}`));
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`release ${quoteName(name)}`));
  }

  async releaseConnection(): Promise<void> {
    // Not flushed here: the commit is flushed at the next durability barrier (`Store.sync`).
    this.#mutex.unlock();
  }

  async destroy(): Promise<void> {
    this.#reads.leave();
    // Whatever was committed is on disk before the file is let go (SQLite's own checkpoint at close
    // would flush it too; this does not depend on there being no other connection).
    try {
      await this.#wal?.sync();
    } finally {
      await this.#wal?.close();
      this.#db.close();
    }
  }
}

function quoteName(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** `new SqliteDialect(...)` with immediate transactions and cached statements (see above). */
export class ImmediateSqliteDialect extends SqliteDialect {
  readonly #db: SqliteDatabase.Database;
  readonly #wal: WalSync | undefined;
  /** Reads on the free connection share a transaction per event-loop turn (see `SharedReads`). */
  readonly reads: SharedReads;

  /** `wal`: flushes commits made at `synchronous=NORMAL`; absent for in-memory databases. */
  constructor(db: SqliteDatabase.Database, wal?: WalSync) {
    super({ database: db });
    this.#db = db;
    this.#wal = wal;
    this.reads = new SharedReads(db);
  }

  #driver: ImmediateSqliteDriver | undefined;

  override createDriver(): Driver {
    this.#driver = new ImmediateSqliteDriver(this.#db, this.#wal, this.reads);
    return this.#driver;
  }

  /** No one holds the connection (see `compiled.ts`, which reads directly then). */
  connectionIdle(): boolean {
    return this.#driver?.idle() ?? false;
  }

  /** Resolves when the current holder of the connection lets go of it. */
  connectionReleased(): Promise<void> {
    return this.#driver?.released() ?? Promise.resolve();
  }
}
