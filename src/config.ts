/**
 * Configuration from the environment and an optional JSON file, validated at start with messages
 * a person understands. The environment wins over the file, so one file can serve several processes.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve, join } from 'node:path';
import { UrlGuard } from './net/url-guard.js';

export interface Config {
  port: number;
  host: string;
  /** Where the gateway is reached from outside (links in events, OAuth redirect). */
  publicUrl: string;
  /** False when PUBLIC_URL was not given: the gateway then uses the address it actually listens on. */
  publicUrlSet: boolean;
  databaseUrl: string;
  dataDir: string;
  secretKey: string;
  meta: {
    appId: string;
    appSecret: string;
    verifyToken: string;
    graphUrl: string;
    graphVersion: string;
    /** Base of the Facebook Login dialog (`https://www.facebook.com`; the emulator's URL in development). */
    dialogUrl: string;
    timeoutMs: number;
  };
  /** Callback and media URLs may point at these private ranges: 'loopback', 'all' or CIDRs. */
  allowPrivateUrls: string[];
  logLevel: string;
  /** How often each sender's token and subscription are checked, ms. */
  senderCheckIntervalMs: number;
  /** Job workers in this process. */
  concurrency: number;
  /** How far V8 lets its heap grow past the live data before collecting, percent; 0: V8's own choice. */
  heapGrowthPercent: number;
  /** V8's young generation cap, MB a semi-space (0: V8's own); see `src/runtime.ts`. */
  semiSpaceMb: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Switchboard cannot start; fix the configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

type Source = Record<string, string | undefined>;

const KEYS = [
  'PORT', 'HOST', 'PUBLIC_URL', 'DATABASE_URL', 'SWITCHBOARD_DATA_DIR', 'SWITCHBOARD_SECRET_KEY', 'META_APP_ID',
  'META_APP_SECRET', 'META_VERIFY_TOKEN', 'META_GRAPH_URL', 'META_GRAPH_VERSION', 'META_DIALOG_URL', 'META_TIMEOUT_MS',
  'SWITCHBOARD_ALLOW_PRIVATE_URLS', 'LOG_LEVEL', 'SENDER_CHECK_INTERVAL_MS', 'SWITCHBOARD_CONCURRENCY',
  'SWITCHBOARD_HEAP_GROWTH_PERCENT', 'SWITCHBOARD_SEMI_SPACE_MB',
] as const;

/** Reads `SWITCHBOARD_CONFIG` (or the given path): a JSON object with the same names as the environment. */
export function readConfigFile(path: string | undefined): Source {
  if (!path) return {};
  const full = resolve(path);
  if (!existsSync(full)) throw new ConfigError([`the configuration file ${full} does not exist`]);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(full, 'utf8'));
  } catch (err) {
    throw new ConfigError([`the configuration file ${full} is not valid JSON: ${(err as Error).message}`]);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError([`the configuration file ${full} must hold a JSON object`]);
  const out: Source = {};
  const problems: string[] = [];
  for (const [k, v] of Object.entries(parsed)) {
    if (!(KEYS as readonly string[]).includes(k)) problems.push(`unknown setting "${k}" in ${full} (known: ${KEYS.join(', ')})`);
    else if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[k] = String(v);
    else problems.push(`setting "${k}" in ${full} must be a string or a number`);
  }
  if (problems.length) throw new ConfigError(problems);
  return out;
}

export interface LoadConfigOptions {
  env?: Source;
  file?: string;
  /** Values a command supplies when nothing else does (e.g. `dev` fills in the emulator's URL). */
  defaults?: Source;
}

/** The settings from every place, later ones winning: a command's defaults, the file, the environment. */
function collectSource(options: LoadConfigOptions): Source {
  const env = options.env ?? process.env;
  const source: Source = { ...options.defaults, ...readConfigFile(options.file ?? env.SWITCHBOARD_CONFIG) };
  for (const k of KEYS) if (env[k] !== undefined && env[k] !== '') source[k] = env[k];
  return source;
}

// See `src/runtime.ts`: 8 MB a semi-space (V8's maximum on Node 20 and 22 is 16) peaked 15-20 MB lower
// at 500 messages/s with the same CPU a message. V8 doubles its young generation from 1 MB, so only a
// power of two is a size it can stop at.
const DEFAULT_SEMI_SPACE_MB = 8;

function semiSpaceIn(source: Source, problems: string[]): number {
  const raw = source['SWITCHBOARD_SEMI_SPACE_MB'];
  if (raw === undefined) return DEFAULT_SEMI_SPACE_MB;
  const n = Number(raw);
  if (Number.isInteger(n) && n >= 0 && n <= 256 && (n & (n - 1)) === 0) return n;
  problems.push(`SWITCHBOARD_SEMI_SPACE_MB must be 0 (V8's own size) or a power of two from 1 to 256 (1, 2, 4, 8, …); it is "${raw}"`);
  return DEFAULT_SEMI_SPACE_MB;
}

/**
 * `SWITCHBOARD_SEMI_SPACE_MB` alone, by the same rules as `loadConfig`: `dev` applies it before it
 * loads the gateway, and learns the rest of its configuration only once the emulator runs.
 */
export function semiSpaceSetting(options: LoadConfigOptions = {}): number {
  const problems: string[] = [];
  const mb = semiSpaceIn(collectSource(options), problems);
  if (problems.length) throw new ConfigError(problems);
  return mb;
}

/**
 * Where the database is, by the same rules as `loadConfig` (environment over file over defaults),
 * for commands that need only the database (`migrate`, `accounts`, `keys`): so they open the very
 * database `serve` would, without asking for the Meta settings only the server needs.
 */
export function databaseLocation(options: LoadConfigOptions = {}): { dataDir: string; databaseUrl: string } {
  return locationIn(collectSource(options));
}

function locationIn(source: Source): { dataDir: string; databaseUrl: string } {
  const dataDir = resolve(source['SWITCHBOARD_DATA_DIR'] ?? '.switchboard');
  return { dataDir, databaseUrl: source['DATABASE_URL'] ?? join(dataDir, 'switchboard.db') };
}

export function loadConfig(options: LoadConfigOptions = {}): Config {
  const source = collectSource(options);
  const problems: string[] = [];
  const get = (k: (typeof KEYS)[number]) => source[k];

  const int = (k: (typeof KEYS)[number], fallback: number, min: number, max: number): number => {
    const raw = get(k);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      problems.push(`${k} must be a whole number from ${min} to ${max}; it is "${raw}"`);
      return fallback;
    }
    return n;
  };
  const url = (k: (typeof KEYS)[number], fallback: string): string => {
    const raw = get(k) ?? fallback;
    try {
      const u = new URL(raw);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme');
    } catch {
      problems.push(`${k} must be an http(s) URL such as https://example.com; it is "${raw}"`);
    }
    return raw.replace(/\/+$/, '');
  };
  const required = (k: (typeof KEYS)[number], why: string): string => {
    const v = get(k);
    if (!v) {
      problems.push(`${k} is required: ${why}`);
      return '';
    }
    return v;
  };

  const port = int('PORT', 3000, 0, 65535);
  const host = get('HOST') ?? '0.0.0.0';
  const { dataDir, databaseUrl } = locationIn(source);
  if (/^[a-z]+:\/\//i.test(databaseUrl) && !/^postgres(ql)?:\/\//i.test(databaseUrl)) {
    problems.push(`DATABASE_URL must be a postgres:// URL or a SQLite file path; it is "${databaseUrl.replace(/:[^:@/]*@/, ':***@')}"`);
  }
  const secretKey = required('SWITCHBOARD_SECRET_KEY', 'it encrypts Page tokens at rest (32 random bytes as 64 hex characters; `switchboard dev` makes one)');
  if (secretKey && secretKey.length < 32) problems.push('SWITCHBOARD_SECRET_KEY is too short: use 32 random bytes (64 hex characters)');
  const appId = required('META_APP_ID', "your Meta app's id, from the app dashboard");
  if (appId && !/^\d+$/.test(appId)) problems.push(`META_APP_ID must be digits only; it is "${appId}"`);
  const appSecret = required('META_APP_SECRET', "your Meta app's secret: webhook signatures are checked with it");
  const verifyToken = required('META_VERIFY_TOKEN', 'the token you typed into the webhook settings of your Meta app');
  const graphVersion = get('META_GRAPH_VERSION') ?? 'v25.0';
  if (!/^v\d+\.\d+$/.test(graphVersion)) problems.push(`META_GRAPH_VERSION must look like v25.0; it is "${graphVersion}"`);
  const graphUrl = url('META_GRAPH_URL', 'https://graph.facebook.com');
  const dialogUrl = url('META_DIALOG_URL', 'https://www.facebook.com');
  const publicUrl = url('PUBLIC_URL', `http://127.0.0.1:${port}`);
  const allow = (get('SWITCHBOARD_ALLOW_PRIVATE_URLS') ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  try {
    new UrlGuard({ allowPrivate: allow });
  } catch (err) {
    problems.push(`SWITCHBOARD_ALLOW_PRIVATE_URLS: ${(err as Error).message}`);
  }
  const logLevel = get('LOG_LEVEL') ?? 'info';
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) problems.push(`LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent; it is "${logLevel}"`);

  const config: Config = {
    port,
    host,
    publicUrl,
    publicUrlSet: get('PUBLIC_URL') !== undefined,
    databaseUrl,
    dataDir,
    secretKey,
    meta: { appId, appSecret, verifyToken, graphUrl, graphVersion, dialogUrl, timeoutMs: int('META_TIMEOUT_MS', 20_000, 100, 120_000) },
    allowPrivateUrls: allow,
    logLevel,
    // Hourly: a revoked token is noticed within the hour even when nothing is being sent.
    senderCheckIntervalMs: int('SENDER_CHECK_INTERVAL_MS', 3_600_000, 1_000, 86_400_000),
    // Jobs are mostly waiting on a Send API or webhook round trip, so the number in flight bounds
    // throughput (16 at ~25 ms each capped the outbound benchmark at ~600 jobs/s); 64 reaches
    // Meta's 300 calls/s per Page across several Pages while one claim stays a small statement.
    concurrency: int('SWITCHBOARD_CONCURRENCY', 64, 1, 256),
    // See `src/runtime.ts`: 60 kept a gateway at 500 messages/s under 200 MB resident (V8's own
    // choice let it reach 245 MB) at no measured cost in throughput or latency.
    heapGrowthPercent: int('SWITCHBOARD_HEAP_GROWTH_PERCENT', 60, 0, 400),
    semiSpaceMb: semiSpaceIn(source, problems),
  };
  if (problems.length) throw new ConfigError(problems);
  return config;
}
