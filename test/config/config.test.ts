import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, semiSpaceSetting } from '../../src/config.js';

const base = {
  SWITCHBOARD_SECRET_KEY: 'a'.repeat(64),
  META_APP_ID: '123',
  META_APP_SECRET: 'shh',
  META_VERIFY_TOKEN: 'verify',
};

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig({ env });
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('configuration', () => {
  it('defaults to SQLite in the data directory and Meta’s Graph API', () => {
    const c = loadConfig({ env: { ...base, SWITCHBOARD_DATA_DIR: '/srv/sb' } });
    expect(c.databaseUrl).toBe('/srv/sb/switchboard.db');
    expect(c.meta.graphUrl).toBe('https://graph.facebook.com');
    expect(c.meta.graphVersion).toBe('v25.0');
    expect(c.port).toBe(3000);
    expect(c.publicUrlSet).toBe(false);
  });

  it('names every missing required setting, with what it is for', () => {
    const p = problems({});
    expect(p.join('\n')).toMatch(/SWITCHBOARD_SECRET_KEY is required/);
    expect(p.join('\n')).toMatch(/META_APP_ID is required/);
    expect(p.join('\n')).toMatch(/META_APP_SECRET is required/);
    expect(p.join('\n')).toMatch(/META_VERIFY_TOKEN is required/);
  });

  it('explains malformed values in words', () => {
    const p = problems({ ...base, PORT: 'eighty', META_GRAPH_URL: 'ftp://x', META_GRAPH_VERSION: '25', DATABASE_URL: 'mysql://db', LOG_LEVEL: 'loud', META_APP_ID: 'abc' });
    expect(p).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^PORT must be a whole number/),
        expect.stringMatching(/^META_GRAPH_URL must be an http\(s\) URL/),
        expect.stringMatching(/^META_GRAPH_VERSION must look like v25.0/),
        expect.stringMatching(/^DATABASE_URL must be a postgres:\/\/ URL or a SQLite file path/),
        expect.stringMatching(/^LOG_LEVEL must be one of/),
        expect.stringMatching(/^META_APP_ID must be digits only/),
      ]),
    );
  });

  it('caps V8 heap growth at 60 % unless told otherwise, 0 leaving V8 its own choice', () => {
    expect(loadConfig({ env: base }).heapGrowthPercent).toBe(60);
    expect(loadConfig({ env: { ...base, SWITCHBOARD_HEAP_GROWTH_PERCENT: '0' } }).heapGrowthPercent).toBe(0);
    expect(problems({ ...base, SWITCHBOARD_HEAP_GROWTH_PERCENT: 'lots' })).toEqual([
      'SWITCHBOARD_HEAP_GROWTH_PERCENT must be a whole number from 0 to 400; it is "lots"',
    ]);
    expect(problems({ ...base, SWITCHBOARD_HEAP_GROWTH_PERCENT: '-5' })).toHaveLength(1);
  });

  it('caps the young generation at 8 MB a semi-space unless told otherwise, only at sizes V8 can stop at', () => {
    expect(loadConfig({ env: base }).semiSpaceMb).toBe(8);
    expect(loadConfig({ env: { ...base, SWITCHBOARD_SEMI_SPACE_MB: '0' } }).semiSpaceMb).toBe(0);
    expect(loadConfig({ env: { ...base, SWITCHBOARD_SEMI_SPACE_MB: '32' } }).semiSpaceMb).toBe(32);
    for (const bad of ['6', '512', '-8', 'small']) {
      expect(problems({ ...base, SWITCHBOARD_SEMI_SPACE_MB: bad })).toEqual([
        `SWITCHBOARD_SEMI_SPACE_MB must be 0 (V8's own size) or a power of two from 1 to 256 (1, 2, 4, 8, …); it is "${bad}"`,
      ]);
    }
    // `dev` reads it alone, before the rest of its configuration exists.
    expect(semiSpaceSetting({ env: { SWITCHBOARD_SEMI_SPACE_MB: '4' } })).toBe(4);
    expect(() => semiSpaceSetting({ env: { SWITCHBOARD_SEMI_SPACE_MB: '3' } })).toThrow(ConfigError);
  });

  it('reads a JSON file, with the environment winning, and refuses unknown names', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-config-'));
    const file = join(dir, 'switchboard.json');
    writeFileSync(file, JSON.stringify({ ...base, PORT: 4100, META_GRAPH_VERSION: 'v24.0' }));
    const c = loadConfig({ env: { SWITCHBOARD_CONFIG: file, PORT: '4200' } });
    expect(c.port).toBe(4200);
    expect(c.meta.graphVersion).toBe('v24.0');
    writeFileSync(file, JSON.stringify({ ...base, PROT: 1 }));
    expect(() => loadConfig({ env: { SWITCHBOARD_CONFIG: file } })).toThrow(/unknown setting "PROT"/);
    writeFileSync(file, '{not json');
    expect(() => loadConfig({ env: { SWITCHBOARD_CONFIG: file } })).toThrow(/is not valid JSON/);
  });

  it('never puts a database password in its messages', () => {
    const p = problems({ ...base, DATABASE_URL: 'mysql://user:hunter2@db/x' });
    expect(p.join('\n')).not.toContain('hunter2');
  });
});
