/**
 * `switchboard dev`: the emulator and the gateway wired together on this machine, with a demo
 * account, API key, Page, Instagram account and customer, connected through the gateway's own API
 * (the same path a real business takes). The emulator keeps its state in memory, so the dev
 * database is started afresh each time to match it.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { loadConfig } from './config.js';
import { buildServer } from './server.js';
import { applyHeapGrowth } from './runtime.js';
import type { Gateway } from './server.js';
import { createAccount } from './store/accounts.js';
import { createApiKey } from './store/api-keys.js';
import { SecretBox } from './store/secrets.js';
import { createLogger } from './logger.js';
import { startEmulator } from '../emulator/index.js';

export interface DevInfo {
  gateway_url: string;
  emulator_url: string;
  api_key: string;
  account_id: string;
  app_id: string;
  app_secret: string;
  verify_token: string;
  page_id: string;
  page_name: string;
  instagram_id: string;
  sender_id: string;
  instagram_sender_id: string;
  customer: { user_id: string; psid: string; igsid: string; name: string };
  database: string;
  data_dir: string;
}

export interface RunningDev {
  info: DevInfo;
  gateway: Gateway;
  close(): Promise<void>;
}

async function call<T>(method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
  const res = await fetch(url, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${url} answered ${res.status}: ${text}`);
  return (text ? JSON.parse(text) : {}) as T;
}

/** Reads the dev secret key from the data directory, or makes one there (said once, on creation). */
function devSecretKey(dataDir: string, say: (line: string) => void): string {
  if (process.env.SWITCHBOARD_SECRET_KEY) return process.env.SWITCHBOARD_SECRET_KEY;
  const file = join(dataDir, 'secret.key');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  const key = SecretBox.generateKey();
  writeFileSync(file, key + '\n', { mode: 0o600 });
  say(`generated a secret key for tokens at rest in ${file}`);
  return key;
}

export async function startDev(options: { env?: NodeJS.ProcessEnv; say?: (line: string) => void; logLevel?: string } = {}): Promise<RunningDev> {
  const env = options.env ?? process.env;
  const say = options.say ?? (() => undefined);
  const dataDir = resolve(env.SWITCHBOARD_DATA_DIR || '.switchboard');
  mkdirSync(dataDir, { recursive: true });
  const databaseUrl = env.DATABASE_URL || join(dataDir, 'dev.db');
  if (!env.DATABASE_URL) for (const suffix of ['', '-wal', '-shm']) rmSync(databaseUrl + suffix, { force: true });
  const secretKey = devSecretKey(dataDir, say);
  const appSecret = env.META_APP_SECRET || randomBytes(16).toString('hex');
  const verifyToken = env.META_VERIFY_TOKEN || randomBytes(12).toString('hex');
  const port = Number(env.PORT ?? 3000);
  const emulatorPort = Number(env.EMULATOR_PORT ?? 4000);

  const emulator = await startEmulator({ port: emulatorPort, host: '127.0.0.1' });
  let gateway: Gateway | undefined;
  try {
    const app = await call<{ id: string; secret: string; verify_token: string }>('POST', `${emulator.url}/_emulator/apps`, {
      ...(env.META_APP_ID ? { id: env.META_APP_ID } : {}),
      secret: appSecret,
      verify_token: verifyToken,
      human_agent: true,
    });
    const config = loadConfig({
      env: {},
      defaults: {
        PORT: String(port),
        HOST: env.HOST || '127.0.0.1',
        ...(env.PUBLIC_URL ? { PUBLIC_URL: env.PUBLIC_URL } : {}),
        DATABASE_URL: databaseUrl,
        SWITCHBOARD_DATA_DIR: dataDir,
        SWITCHBOARD_SECRET_KEY: secretKey,
        META_APP_ID: app.id,
        META_APP_SECRET: app.secret,
        META_VERIFY_TOKEN: app.verify_token,
        META_GRAPH_URL: emulator.url,
        META_DIALOG_URL: emulator.url,
        META_GRAPH_VERSION: env.META_GRAPH_VERSION || 'v25.0',
        // The emulator, the demo endpoints and the media it serves all live on loopback.
        SWITCHBOARD_ALLOW_PRIVATE_URLS: 'loopback',
        LOG_LEVEL: options.logLevel ?? env.LOG_LEVEL ?? 'warn',
      },
    });
    applyHeapGrowth(config.heapGrowthPercent);
    // The gateway keeps the emulator's time: moving the emulator's clock (to show a window closing)
    // moves the gateway's policy checks with it, as it would with Meta's real time.
    gateway = await buildServer(config, { logger: createLogger(config.logLevel, process.stderr), now: emulator.now });
    const gatewayUrl = await gateway.start();
    // Setting the callback makes the emulator run Meta's GET handshake against the gateway.
    await call('PATCH', `${emulator.url}/_emulator/apps/${app.id}`, { callback_url: `${gatewayUrl}/webhooks/meta`, verify_token: app.verify_token });

    const account = await createAccount(gateway.ctx.store.db, { name: 'Demo business' });
    const { key } = await createApiKey(gateway.ctx.store.db, account.id, 'dev');
    const page = await call<{ id: string; access_token: string; instagram_id?: string; name?: string }>('POST', `${emulator.url}/_emulator/pages`, {
      app_id: app.id,
      name: 'Demo Coffee Roasters',
      instagram: true,
    });
    const auth = { authorization: `Bearer ${key}` };
    const sender = await call<{ id: string }>('POST', `${gatewayUrl}/v1/senders`, { access_token: page.access_token, page_id: page.id }, auth);
    const igSender = await call<{ id: string }>('POST', `${gatewayUrl}/v1/senders`, { access_token: page.access_token, page_id: page.id, channel: 'instagram' }, auth);
    await call('PATCH', `${gatewayUrl}/v1/senders/${sender.id}`, { human_agent: true }, auth);
    await call('PATCH', `${gatewayUrl}/v1/senders/${igSender.id}`, { human_agent: true }, auth);
    const user = await call<{ id: string }>('POST', `${emulator.url}/_emulator/users`, { first_name: 'Alex', last_name: 'Rivera' });
    // The customer writes first (Meta's rule), on both channels, so the demo can reply at once.
    const hello = await call<{ psid: string }>('POST', `${emulator.url}/_emulator/pages/${page.id}/inbound`, { user: user.id, text: 'Hi! Is my order on its way?' });
    const igHello = await call<{ psid: string }>('POST', `${emulator.url}/_emulator/pages/${page.id}/inbound`, { user: user.id, channel: 'instagram', text: 'Hello from Instagram' });

    const info: DevInfo = {
      gateway_url: gatewayUrl,
      emulator_url: emulator.url,
      api_key: key,
      account_id: account.id,
      app_id: app.id,
      app_secret: app.secret,
      verify_token: app.verify_token,
      page_id: page.id,
      page_name: page.name ?? 'Demo Coffee Roasters',
      instagram_id: page.instagram_id ?? '',
      sender_id: sender.id,
      instagram_sender_id: igSender.id,
      customer: { user_id: user.id, psid: hello.psid, igsid: igHello.psid, name: 'Alex Rivera' },
      database: gateway.ctx.store.location,
      data_dir: dataDir,
    };
    const running = gateway;
    return {
      info,
      gateway: running,
      async close() {
        await running.close();
        await emulator.close();
      },
    };
  } catch (err) {
    await gateway?.close().catch(() => undefined);
    await emulator.close();
    throw err;
  }
}

function banner(i: DevInfo): string {
  return `
Switchboard is running with the Messenger Platform emulator (no Meta app, no internet needed).

  Gateway        ${i.gateway_url}          API reference: ${i.gateway_url}/v1/openapi.json
  Emulator       ${i.emulator_url}          open it to chat as the customer
  Account        ${i.account_id}
  API key        ${i.api_key}
  Page           ${i.page_name} (${i.page_id}) -> sender ${i.sender_id}
  Instagram      ${i.instagram_id} -> sender ${i.instagram_sender_id}
  Customer       ${i.customer.name}: PSID ${i.customer.psid}, IGSID ${i.customer.igsid}
  Database       ${i.database} (SQLite, fresh each dev run)

Try it:
  # receive every event at your own URL (any HTTP server)
  curl -s ${i.gateway_url}/v1/endpoints -H 'Authorization: Bearer ${i.api_key}' \\
    -H 'content-type: application/json' -d '{"url":"http://127.0.0.1:9000/events"}'

  # the customer's messages so far
  curl -s '${i.gateway_url}/v1/messages?sender_id=${i.sender_id}' -H 'Authorization: Bearer ${i.api_key}'

  # reply to the customer (appears in the emulator's chat page)
  curl -s ${i.gateway_url}/v1/messages -H 'Authorization: Bearer ${i.api_key}' -H 'content-type: application/json' \\
    -d '{"sender_id":"${i.sender_id}","to":{"psid":"${i.customer.psid}"},"text":"Yes, it ships today!"}'

Press Ctrl+C to stop.
`;
}

export async function runDev(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean' } } });
  const dev = await startDev({ say: (line) => process.stderr.write(line + '\n') });
  // The demo key printed is on disk (the durability barrier before output).
  await dev.gateway.ctx.store.sync?.();
  if (values.json) process.stdout.write(JSON.stringify(dev.info) + '\n');
  else process.stdout.write(banner(dev.info));
  const stop = () => {
    dev.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
