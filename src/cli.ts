#!/usr/bin/env node
/**
 * The `switchboard` command: serve, dev, migrate, accounts, keys, emulator.
 */
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { realpathSync } from 'node:fs';
import { ConfigError, databaseLocation, loadConfig, semiSpaceSetting } from './config.js';
import type { Store } from './store/db.js';
import { applyHeapGrowth, capYoungGeneration, youngGenerationBytes } from './runtime.js';

const USAGE = `Usage: switchboard <command> [options]

Commands:
  dev [--json]                     run the emulator and the gateway wired together, with demo data
  serve                            run the gateway (configuration from the environment, see README)
  migrate                          bring the database schema up to date
  accounts create --name N [--parent ID] [--json]
                                   create an account (and its first API key, shown once)
  accounts list                    list accounts
  keys create --account ID [--name N] [--json]
  keys list --account ID
  keys revoke --account ID --id KEY_ID
  unroutable [--entry ID] [--limit N]
                                   events Meta sent for Pages no account owns
  emulator [--port N] [--host H]   run the Messenger Platform emulator alone

Environment: PORT, HOST, PUBLIC_URL, DATABASE_URL, SWITCHBOARD_DATA_DIR, SWITCHBOARD_SECRET_KEY, META_APP_ID,
META_APP_SECRET, META_VERIFY_TOKEN, META_GRAPH_URL, META_GRAPH_VERSION, SWITCHBOARD_CONFIG (a JSON file).`;

function databaseUrl(): string {
  return databaseLocation().databaseUrl;
}

// The database and server modules are imported by the commands that use them: `serve` and `dev` cap
// V8's young generation before anything sizeable loads (`src/runtime.ts`), and `help` stays instant.
async function withStore<T>(fn: (store: Store) => Promise<T>): Promise<T> {
  const { openStore, migrate } = await import('./store/db.js');
  const store = await openStore({ url: databaseUrl() });
  try {
    await migrate(store);
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** A command used wrongly, or asked for something that does not exist: said in a line, exit code 2. */
export class UsageError extends Error {}

function fail(message: string): never {
  throw new UsageError(message);
}

/**
 * What a failure to start means, in a line, for the errors an operator causes and can fix (the
 * address in use, a data directory that cannot be written); null for anything else (a bug: the
 * stack then helps).
 */
function startupProblem(err: unknown): string | null {
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
  if (e.code === 'EADDRINUSE') return `the address ${e.address ?? ''}:${e.port ?? ''} is already in use: stop what listens there or set PORT`;
  if (e.code === 'EACCES' && e.syscall === 'listen') return `not allowed to listen on port ${e.port ?? ''}: choose a port above 1023 with PORT`;
  if ((e.code === 'EACCES' || e.code === 'EPERM' || e.code === 'ENOTDIR' || e.code === 'EROFS' || e.code === 'ENOSPC') && typeof e.path === 'string') {
    return `cannot use ${e.path} (${e.code}): check SWITCHBOARD_DATA_DIR or DATABASE_URL and their permissions`;
  }
  return null;
}

async function serve(): Promise<void> {
  const config = loadConfig();
  applyHeapGrowth(config.heapGrowthPercent);
  const young = capYoungGeneration(config.semiSpaceMb);
  const { buildServer } = await import('./server.js');
  const gateway = await buildServer(config);
  const url = await gateway.start();
  young?.release();
  gateway.ctx.logger.info({ url, database: gateway.ctx.store.location, engine: gateway.ctx.store.engine }, 'switchboard listening');
  const stop = (signal: string) => {
    gateway.ctx.logger.info({ signal }, 'shutting down');
    gateway.close().then(
      () => process.exit(0),
      (err: unknown) => {
        gateway.ctx.logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  // Started by a parent with an IPC channel (the benchmarks do): it may ask for this process's own
  // memory, CPU and event-loop use, which no outside tool reads the same way on every platform.
  if (process.send) {
    process.on('message', (m: { op?: string } | null) => {
      if (m?.op !== 'stats') return;
      process.send?.({ stats: { rss: process.memoryUsage.rss(), cpu: process.cpuUsage(), elu: performance.eventLoopUtilization(), young: youngGenerationBytes() } });
    });
  }
}

async function accounts(args: string[]): Promise<void> {
  const { createAccount, getAccount, listAccounts } = await import('./store/accounts.js');
  const { createApiKey } = await import('./store/api-keys.js');
  const [sub, ...rest] = args;
  const { values } = parseArgs({ args: rest, options: { name: { type: 'string' }, parent: { type: 'string' }, json: { type: 'boolean' } } });
  if (sub === 'create') {
    if (!values.name) fail('accounts create needs --name');
    await withStore(async (store) => {
      if (values.parent) {
        const parent = await getAccount(store.db, values.parent);
        if (!parent) fail(`no account ${values.parent}`);
        // As through the API: subaccounts are one level deep.
        if (parent.parent_id !== null) fail(`${values.parent} is itself a subaccount; subaccounts cannot have their own`);
      }
      const account = await createAccount(store.db, { name: values.name as string, parent_id: values.parent ?? null });
      const { key } = await createApiKey(store.db, account.id, 'default');
      // A key shown is a key kept: the durability barrier before the output.
      await store.sync?.();
      if (values.json) process.stdout.write(JSON.stringify({ account_id: account.id, name: account.name, parent_id: account.parent_id, api_key: key }) + '\n');
      else process.stdout.write(`account ${account.id} (${account.name}) created\nAPI key (shown once, store it now): ${key}\n`);
    });
  } else if (sub === 'list') {
    await withStore(async (store) => {
      for (const a of await listAccounts(store.db)) process.stdout.write(`${a.id}\t${a.status}\t${a.parent_id ?? '-'}\t${a.name}\n`);
    });
  } else fail(`unknown accounts command "${sub ?? ''}"\n${USAGE}`);
}

async function keys(args: string[]): Promise<void> {
  const { getAccount } = await import('./store/accounts.js');
  const { createApiKey, listApiKeys, revokeApiKey } = await import('./store/api-keys.js');
  const [sub, ...rest] = args;
  const { values } = parseArgs({ args: rest, options: { account: { type: 'string' }, name: { type: 'string' }, id: { type: 'string' }, json: { type: 'boolean' } } });
  if (!values.account) fail(`keys ${sub ?? ''} needs --account`);
  const accountId = values.account as string;
  await withStore(async (store) => {
    if (!(await getAccount(store.db, accountId))) fail(`no account ${accountId}`);
    if (sub === 'create') {
      const { key, row } = await createApiKey(store.db, accountId, values.name ?? 'cli');
      await store.sync?.();
      if (values.json) process.stdout.write(JSON.stringify({ id: row.id, account_id: accountId, name: row.name, api_key: key }) + '\n');
      else process.stdout.write(`key ${row.id} (${row.name}) created for ${accountId}\nAPI key (shown once, store it now): ${key}\n`);
    } else if (sub === 'list') {
      for (const k of await listApiKeys(store.db, accountId)) process.stdout.write(`${k.id}\t${k.prefix}…\t${k.revoked_at ? 'revoked' : 'live'}\t${k.name}\n`);
    } else if (sub === 'revoke') {
      if (!values.id) fail('keys revoke needs --id');
      if (!(await revokeApiKey(store.db, accountId, values.id as string))) fail(`no live key ${values.id} in ${accountId}`);
      await store.sync?.();
      process.stdout.write(`key ${values.id} revoked\n`);
    } else fail(`unknown keys command "${sub ?? ''}"\n${USAGE}`);
  });
}

async function unroutable(args: string[]): Promise<void> {
  const { listUnroutable } = await import('./store/unroutable.js');
  const { values } = parseArgs({ args, options: { entry: { type: 'string' }, limit: { type: 'string' } } });
  const limit = Number(values.limit ?? 50);
  if (!Number.isInteger(limit) || limit < 1) fail('--limit must be a positive whole number');
  await withStore(async (store) => {
    const rows = await listUnroutable(store.db, { ...(values.entry ? { entryId: values.entry } : {}), limit });
    if (rows.length === 0) process.stdout.write('no unroutable events\n');
    for (const r of rows) process.stdout.write(`${r.id}\t${new Date(r.received_at).toISOString()}\t${r.object}\t${r.entry_id}\t${r.item}\n`);
  });
}

export async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve();
    case 'dev': {
      // As for serve (the rest of dev's configuration exists only once its emulator runs).
      const young = capYoungGeneration(semiSpaceSetting());
      const { runDev } = await import('./dev.js');
      await runDev(rest);
      young?.release();
      return;
    }
    case 'migrate':
      return withStore(async (store) => {
        process.stdout.write(`database ${store.location} is up to date\n`);
      });
    case 'accounts':
      return accounts(rest);
    case 'keys':
      return keys(rest);
    case 'unroutable':
      return unroutable(rest);
    case 'emulator': {
      const { runEmulatorCli } = await import('../emulator/index.js');
      return runEmulatorCli(rest);
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE + '\n');
      return;
    default:
      fail(`unknown command "${command}"\n${USAGE}`);
  }
}

function isEntryPoint(): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(err.message + '\n');
      process.exit(2);
    }
    const problem = err instanceof UsageError ? err.message : startupProblem(err);
    if (problem !== null) {
      process.stderr.write(`switchboard: ${problem}\n`);
      process.exit(2);
    }
    process.stderr.write(`switchboard: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
