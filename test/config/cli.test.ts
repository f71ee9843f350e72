/**
 * The CLI's database commands open the database `serve` would: the configuration file and the
 * environment by the same rules. Usage mistakes are refused with a line, not a stack.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UsageError, main } from '../../src/cli.js';
import { databaseLocation, loadConfig } from '../../src/config.js';
import { openStore } from '../../src/store/db.js';
import { settlesWithin, watchFlushes } from '../support/flushes.js';

describe('the CLI and the configuration file', () => {
  let dir: string;
  const saved = { ...process.env };
  let out: string[];
  const write = process.stdout.write.bind(process.stdout);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sb-cli-'));
    out = [];
    // What the commands print, kept for the assertions instead of shown.
    process.stdout.write = ((chunk: string) => (out.push(String(chunk)), true)) as typeof process.stdout.write;
  });
  afterEach(() => {
    process.stdout.write = write;
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates accounts and keys in the database the file names, the one serve opens', async () => {
    const dataDir = join(dir, 'data');
    const file = join(dir, 'switchboard.json');
    writeFileSync(file, JSON.stringify({ SWITCHBOARD_DATA_DIR: dataDir, SWITCHBOARD_SECRET_KEY: 'b'.repeat(64), META_APP_ID: '1', META_APP_SECRET: 's', META_VERIFY_TOKEN: 'v' }));
    delete process.env.DATABASE_URL;
    delete process.env.SWITCHBOARD_DATA_DIR;
    process.env.SWITCHBOARD_CONFIG = file;

    await main(['migrate']);
    await main(['accounts', 'create', '--name', 'From the file', '--json']);
    const created = JSON.parse(out.find((l) => l.startsWith('{')) ?? '{}') as { account_id: string; api_key: string };
    expect(created.api_key).toMatch(/^sk_/);
    await main(['keys', 'create', '--account', created.account_id, '--name', 'second', '--json']);

    const location = databaseLocation();
    expect(location.databaseUrl).toBe(join(dataDir, 'switchboard.db'));
    expect(loadConfig().databaseUrl).toBe(location.databaseUrl);
    const store = await openStore({ url: location.databaseUrl });
    try {
      const account = await store.db.selectFrom('accounts').selectAll().where('id', '=', created.account_id).executeTakeFirst();
      expect(account?.name).toBe('From the file');
      expect(await store.db.selectFrom('api_keys').select('name').where('account_id', '=', created.account_id).orderBy('name').execute()).toEqual([{ name: 'default' }, { name: 'second' }]);
    } finally {
      await store.close();
    }

    // The environment still wins over the file.
    process.env.SWITCHBOARD_DATA_DIR = join(dir, 'other');
    expect(databaseLocation().databaseUrl).toBe(join(dir, 'other', 'switchboard.db'));
  });

  it('refuses a subaccount of a subaccount, as the API does, and an unknown parent', async () => {
    process.env.SWITCHBOARD_DATA_DIR = dir;
    delete process.env.DATABASE_URL;
    delete process.env.SWITCHBOARD_CONFIG;
    await main(['accounts', 'create', '--name', 'Parent', '--json']);
    const parent = JSON.parse(out.pop() ?? '{}') as { account_id: string };
    await main(['accounts', 'create', '--name', 'Child', '--parent', parent.account_id, '--json']);
    const child = JSON.parse(out.pop() ?? '{}') as { account_id: string; parent_id: string };
    expect(child.parent_id).toBe(parent.account_id);
    await expect(main(['accounts', 'create', '--name', 'Grandchild', '--parent', child.account_id])).rejects.toThrow(UsageError);
    await expect(main(['accounts', 'create', '--name', 'Orphan', '--parent', 'acc_nope'])).rejects.toThrow('no account acc_nope');
  });

  it('prints a new API key only once it is on disk', async () => {
    process.env.SWITCHBOARD_DATA_DIR = dir;
    delete process.env.DATABASE_URL;
    delete process.env.SWITCHBOARD_CONFIG;
    await main(['migrate']);
    out = [];
    const flushes = await watchFlushes();
    try {
      flushes.hold();
      const created = main(['accounts', 'create', '--name', 'Durable', '--json']);
      await flushes.waiting();
      expect(await settlesWithin(created, 100)).toBe(false);
      expect(out).toEqual([]);
      flushes.release();
      await created;
      expect(JSON.parse(out.pop() ?? '{}')).toMatchObject({ name: 'Durable', api_key: expect.stringMatching(/^sk_/) });
    } finally {
      await flushes.stop();
    }
  });

  it('names a bad list of allowed private addresses among the configuration problems', () => {
    expect(() => loadConfig({ env: { SWITCHBOARD_SECRET_KEY: 'a'.repeat(64), META_APP_ID: '1', META_APP_SECRET: 's', META_VERIFY_TOKEN: 'v', SWITCHBOARD_ALLOW_PRIVATE_URLS: 'loopback,not-a-range' } })).toThrow(/SWITCHBOARD_ALLOW_PRIVATE_URLS: .*not-a-range/);
  });
});
