/**
 * `npm run bench`: measured scenarios, printed as a table and as JSON lines.
 *   ingress   signed webhook POSTs acknowledged after a durable write, beside a bare Fastify handler
 *             (the two take turns in BENCH_ROUNDS slices, so the machine's drift falls on both)
 *   inbound   customer sends (emulator) -> endpoint receives, latency at a steady rate, and memory
 *   outbound  messages accepted by /v1/messages and carried through the emulator's Send API
 * Everything talks to 127.0.0.1 only; every scenario is bounded in time and count and stops by itself.
 * `node dist/bench/run.js ingress inbound` runs a subset; BENCH_SECONDS shortens or lengthens runs.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import { loadConfig } from '../src/config.js';
import { buildServer } from '../src/server.js';
import { createLogger } from '../src/logger.js';
import { SecretBox } from '../src/store/secrets.js';
import { openStore } from '../src/store/db.js';
import type { LoadResult, LoadSpec } from './load.js';
import { percentile } from './load.js';
import { outboundScenario } from './outbound.js';
import { cliJson, gatewayInChild, pollUntil, statsOf } from './gateway.js';
import type { EmulatorStats, ProcessStats } from './gateway.js';

const here = dirname(fileURLToPath(import.meta.url));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
// Seconds of steady load after the gateway's start reported apart from the measured run (inbound,
// and outbound at a steady rate). A process's first seconds under load (its code compiled for it,
// its heap sized) had p99s of 100-450 ms where the seconds after had 15-80; at two seconds those
// first seconds still fell into the measured run, after six they did not (p99 51 and 60 ms).
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 6);

export interface LoadWorker {
  run(spec: LoadSpec): Promise<LoadResult>;
  stop(): Promise<void>;
}

/**
 * A load generator process kept for several runs. A fresh Node process spends its first second
 * compiling its own code on the same two cores as the gateway, so a measured run that starts a new
 * one measures that too; a warm-up run on the same worker leaves it warm.
 */
export function loadWorker(): LoadWorker {
  const child = fork(join(here, 'load.js'), ['--load-worker'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));
  return {
    run: (spec) =>
      new Promise<LoadResult>((resolve, reject) => {
        if (exited) return reject(new Error('load worker has exited'));
        const onExit = (code: number | null) => reject(new Error(`load worker exited with ${code} before its result`));
        child.once('exit', onExit);
        child.once('message', (m: { result?: LoadResult; error?: string }) => {
          child.off('exit', onExit);
          if (m.result) resolve(m.result);
          else reject(new Error(m.error));
        });
        child.send(spec);
      }),
    stop: async () => {
      if (!exited && child.connected) child.send({ op: 'exit' });
      await exit;
    },
  };
}

/** One run in a load generator process of its own. */
export async function loadInChild(spec: LoadSpec): Promise<LoadResult> {
  const worker = loadWorker();
  try {
    return await worker.run(spec);
  } finally {
    await worker.stop();
  }
}

/** Runs the emulator in its own process so it does not share the gateway's event loop. */
export async function emulatorInChild(): Promise<{ url: string; child: ChildProcess; stats(): Promise<EmulatorStats>; stop(): Promise<void> }> {
  // Quiet: a log line per request costs the emulator CPU that the ceiling measurement needs.
  const child = fork(join(here, '..', 'src', 'cli.js'), ['emulator', '--port', '0', '--host', '127.0.0.1', '--quiet'], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer): void => {
      out += d.toString();
      const m = /(http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m?.[1]) {
        // Stop collecting: scanning an ever-growing string cost this (the gateway's) process
        // seconds of CPU per run when the emulator logged every request.
        child.stdout?.off('data', onData);
        child.stdout?.resume();
        resolve(m[1]);
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`emulator exited with ${code}: ${out}`)));
  });
  return {
    url,
    child,
    stats: statsOf<EmulatorStats>(child),
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

async function api<T>(method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
  const res = await fetch(url, { method, headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${text}`);
  return (text ? JSON.parse(text) : {}) as T;
}

/** A fresh data directory and the whole configuration of a gateway, as environment variables. */
function tempEnv(extra: Record<string, string> = {}): { dir: string; env: Record<string, string> } {
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-bench-'));
  const env = {
    PORT: '0',
    HOST: '127.0.0.1',
    SWITCHBOARD_DATA_DIR: dir,
    SWITCHBOARD_SECRET_KEY: SecretBox.generateKey(),
    META_APP_ID: '100000000000001',
    META_APP_SECRET: 'bench-secret',
    META_VERIFY_TOKEN: 'bench-verify',
    META_GRAPH_URL: 'http://127.0.0.1:9',
    SWITCHBOARD_ALLOW_PRIVATE_URLS: 'loopback',
    LOG_LEVEL: 'error',
    ...extra,
  };
  return { dir, env };
}

/**
 * Starts the emulator, registers an app with it and configures (but does not start) a gateway for
 * that app, with an account and API key made by the CLI as an operator would.
 */
export async function gatewayForEmulator(): Promise<{ emulator: Awaited<ReturnType<typeof emulatorInChild>>; dir: string; env: Record<string, string>; appId: string; apiKey: string }> {
  const emulator = await emulatorInChild();
  const app = await api<{ id: string; secret: string; verify_token: string }>('POST', `${emulator.url}/_emulator/apps`, {});
  const { dir, env } = tempEnv({ META_GRAPH_URL: emulator.url, META_DIALOG_URL: emulator.url, META_APP_ID: app.id, META_APP_SECRET: app.secret, META_VERIFY_TOKEN: app.verify_token });
  const { api_key } = await cliJson<{ api_key: string }>(env, ['accounts', 'create', '--name', 'bench']);
  return { emulator, dir, env, appId: app.id, apiKey: api_key };
}

function webhookBodies(n: number, secret: string): { bodies: string[]; headers: Record<string, string>[] } {
  const bodies: string[] = [];
  const headers: Record<string, string>[] = [];
  const t = Date.now();
  for (let i = 0; i < n; i++) {
    const body = JSON.stringify({
      object: 'page',
      entry: [{ id: '200000000000001', time: t + i, messaging: [{ sender: { id: String(3000000000000000 + (i % 1000)) }, recipient: { id: '200000000000001' }, timestamp: t + i, message: { mid: `m_bench_${i}_${randomBytes(6).toString('hex')}`, text: `message number ${i}` } }] }],
    });
    bodies.push(body);
    headers.push({ 'x-hub-signature-256': 'sha256=' + createHmac('sha256', secret).update(body).digest('hex') });
  }
  return { bodies, headers };
}

async function ingressScenario() {
  const connections = Number(process.env.BENCH_CONNECTIONS ?? 32);
  // The two servers take turns, slice by slice, instead of one whole run after the other: this
  // machine's speed drifts by 10-20 % within a minute, and a ratio of two runs made minutes apart
  // measured that drift as much as the gateway (0.45x and 0.64x in two runs of the same code).
  const rounds = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 4));
  const sliceMs = Math.max(1000, Math.round((SECONDS * 1000) / rounds));
  const { bodies, headers } = webhookBodies(2000, 'bench-secret');
  const spec = (url: string): LoadSpec => ({
    url,
    path: '/webhooks/meta',
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    bodies,
    bodyHeaders: headers,
    connections,
    durationMs: sliceMs,
    maxRequests: 2_000_000,
    warmupMs: 1000,
  });

  const bare = Fastify();
  let bareAnswered = 0;
  bare.post('/webhooks/meta', async () => {
    bareAnswered++;
    return 'EVENT_RECEIVED';
  });
  const bareUrl = await bare.listen({ port: 0, host: '127.0.0.1' });
  const { dir, env } = tempEnv();
  const config = loadConfig({ env: {}, defaults: env });
  // Ingress alone: the inbound jobs it enqueues are not run, so only the durable write is measured.
  const gateway = await buildServer(config, { runJobs: false, logger: createLogger('error') });
  const url = await gateway.start();

  const bareRuns: LoadResult[] = [];
  const gwRuns: LoadResult[] = [];
  let rss = process.memoryUsage().rss;
  // CPU of this process (the server being measured; the load runs in a child) per answered request,
  // warm-up included: steadier from run to run than the rates, which follow the machine's drift.
  const cpu = { bare: 0, gateway: 0 };
  const timed = async (side: 'bare' | 'gateway', target: string): Promise<LoadResult> => {
    const before = process.cpuUsage();
    const result = await loadInChild(spec(target));
    const used = process.cpuUsage(before);
    cpu[side] += used.user + used.system;
    return result;
  };
  for (let r = 0; r < rounds; r++) {
    bareRuns.push(await timed('bare', bareUrl));
    gwRuns.push(await timed('gateway', url));
    rss = Math.max(rss, process.memoryUsage().rss);
  }
  const stored = await gateway.ctx.store.db.selectFrom('inbound_batches').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  await gateway.close();
  await bare.close();
  rmSync(dir, { recursive: true, force: true });
  const rate = (runs: LoadResult[]) => runs.reduce((n, x) => n + x.ok, 0) / runs.reduce((t, x) => t + x.seconds, 0);
  const roundRatios = gwRuns.map((g, i) => Number((g.rps / (bareRuns[i]?.rps ?? 1)).toFixed(2)));
  return {
    scenario: 'ingress',
    connections,
    rounds,
    slice_seconds: sliceMs / 1000,
    bare_rps: Math.round(rate(bareRuns)),
    gateway_rps: Math.round(rate(gwRuns)),
    ratio: Number((rate(gwRuns) / rate(bareRuns)).toFixed(2)),
    round_ratios: roundRatios,
    gateway_p50_ms: Number(percentile(gwRuns.map((g) => g.p50).sort((a, b) => a - b), 50).toFixed(2)),
    gateway_p99_ms: Number(Math.max(...gwRuns.map((g) => g.p99)).toFixed(2)),
    bare_p99_ms: Number(Math.max(...bareRuns.map((b) => b.p99)).toFixed(2)),
    errors: gwRuns.reduce((n, g) => n + g.errors, 0),
    bare_cpu_us_per_req: Number((cpu.bare / bareAnswered).toFixed(1)),
    gateway_cpu_us_per_req: Number((cpu.gateway / Number(stored.n)).toFixed(1)),
    batches_stored: Number(stored.n),
    rss_mb: Math.round(rss / 1048576),
  };
}

async function inboundScenario() {
  const rate = Number(process.env.BENCH_RATE ?? 500);
  const { emulator, dir, env, appId, apiKey } = await gatewayForEmulator();
  const gateway = await gatewayInChild(env);
  const gatewayUrl = gateway.url;
  await api('PATCH', `${emulator.url}/_emulator/apps/${appId}`, { callback_url: `${gatewayUrl}/webhooks/meta` });

  const latencies: number[] = [];
  let received = 0;
  let onLatency = (_sentAt: number, _ms: number): void => undefined;
  const receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const at = Date.now();
      try {
        const evt = JSON.parse(Buffer.concat(chunks).toString()) as { type: string; data: { message?: { content?: { text?: string } } } };
        const m = evt.type === 'message.received' ? /^t=(\d+)/.exec(evt.data.message?.content?.text ?? '') : null;
        if (m?.[1]) {
          received++;
          onLatency(Number(m[1]), at - Number(m[1]));
        }
      } catch {
        // not an event of this run
      }
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
  const receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/events`;

  const auth = { authorization: `Bearer ${apiKey}` };
  const page = await api<{ id: string; access_token: string }>('POST', `${emulator.url}/_emulator/pages`, { app_id: appId, name: 'Bench Page' });
  await api('POST', `${gatewayUrl}/v1/senders`, { access_token: page.access_token, page_id: page.id }, auth);
  await api('POST', `${gatewayUrl}/v1/endpoints`, { url: receiverUrl, events: ['message.received'] }, auth);
  const users: string[] = [];
  for (let i = 0; i < 200; i++) users.push((await api<{ id: string }>('POST', `${emulator.url}/_emulator/users`, { first_name: `User${i}` })).id);

  // The load child posts to the emulator's control API: the customer "sends" at a steady rate.
  // Each text carries the send time; the receiver subtracts it (same machine, same clock).
  const bodies = users.map((u) => JSON.stringify({ user: u, text: 't=__NOW__' }));
  let peakRss = 0;
  let peakYoung = 0;
  // The gateway process's own resident memory (not this harness's, which also runs the receiver).
  const sampler = setInterval(
    () =>
      void gateway.stats().then((st) => {
        peakRss = Math.max(peakRss, st.rss);
        peakYoung = Math.max(peakYoung, st.young);
      }),
    200,
  );
  // Each customer writes once first (contacts, conversations and profiles exist, the process is warm),
  // so the measured run is the steady state the scenario is about, not first-contact set-up.
  for (const u of users) await api('POST', `${emulator.url}/_emulator/pages/${page.id}/inbound`, { user: u, text: 't=0 hello' });
  const settle = async (expected: number) => {
    const until = Date.now() + 30_000;
    while (received < expected && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  };
  await settle(users.length);
  // And their profiles are fetched (one Graph call at a time per Page, so 200 take a few seconds):
  // otherwise the fetches run during the first measured seconds, which then measure set-up.
  const store = await openStore({ url: join(dir, 'switchboard.db') });
  await pollUntil(
    async () => Number((await store.db.selectFrom('contacts').select((eb) => eb.fn.countAll<number>().as('n')).where('profile_status', '=', 'pending').executeTakeFirstOrThrow()).n) === 0,
    60_000,
    100,
  );
  await store.close();
  // One load generator for the warm-up and the measured run (see `loadWorker`).
  const loader = loadWorker();
  const load = (seconds: number) =>
    loader.run({
      url: emulator.url,
      path: `/_emulator/pages/${page.id}/inbound`,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      bodies,
      connections: 64,
      durationMs: seconds * 1000,
      maxRequests: rate * seconds,
      rate,
    });
  // One steady load: its first WARMUP_SECONDS are reported apart (the three processes warming to the
  // load), the rest is the measured run. A separate warm-up run left a pause before the measured
  // one, which then measured the gateway resuming from idle, not holding a rate.
  received = 0;
  let measured = 0;
  let measureFrom = Infinity;
  const perSecond = new Map<number, number[]>();
  const warmup: number[] = [];
  onLatency = (sentAt, ms) => {
    if (sentAt < measureFrom) {
      warmup.push(ms);
      return;
    }
    measured++;
    latencies.push(ms);
    const second = Math.floor(sentAt / 1000);
    const list = perSecond.get(second) ?? [];
    list.push(ms);
    perSecond.set(second, list);
  };
  let before: ProcessStats | undefined;
  const warm = setTimeout(() => {
    measureFrom = Date.now();
    void gateway.stats().then((st) => (before = st));
  }, WARMUP_SECONDS * 1000);
  const loadResult = await load(WARMUP_SECONDS + SECONDS);
  clearTimeout(warm);
  await settle(loadResult.ok);
  const after = await gateway.stats();
  await loader.stop();
  clearInterval(sampler);
  latencies.sort((a, b) => a - b);
  await gateway.stop();
  await emulator.stop();
  receiver.close();
  rmSync(dir, { recursive: true, force: true });
  return {
    scenario: 'inbound end to end',
    rate_per_s: rate,
    seconds: SECONDS,
    // Sent and received over the whole run (warm-up included); the latencies are the measured part's.
    sent: loadResult.ok,
    received,
    measured,
    p50_ms: percentile(latencies, 50),
    p99_ms: percentile(latencies, 99),
    max_ms: latencies[latencies.length - 1] ?? 0,
    // The gateway process over the measured run: CPU per message (every thread) and how busy its
    // event loop was (1: never idle). A tail with the loop near 1 is queueing, not a slow step.
    cpu_ms_per_msg: before ? Number(((after.cpu.user - before.cpu.user + after.cpu.system - before.cpu.system) / 1000 / Math.max(1, measured)).toFixed(3)) : null,
    loop_busy: before ? Number(performance.eventLoopUtilization(after.elu, before.elu).utilization.toFixed(2)) : null,
    peak_rss_mb: Math.round(peakRss / 1048576),
    young_generation_mb: Math.round(peakYoung / 1048576),
    // The warm-up's own latencies: what the first seconds of load after a start look like.
    warmup_seconds: WARMUP_SECONDS,
    warmup_p99_ms: percentile(warmup.sort((x, y) => x - y), 99),
    // p99 of the messages sent in each second of the run, in order.
    p99_by_second_ms: [...perSecond.keys()].sort((x, y) => x - y).map((k) => percentile((perSecond.get(k) ?? []).sort((x, y) => x - y), 99)),
  };
}

async function main() {
  const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const all: Record<string, () => Promise<Record<string, unknown>>> = { ingress: ingressScenario, inbound: inboundScenario, outbound: () => outboundScenario({ seconds: SECONDS, warmupSeconds: WARMUP_SECONDS, loadInChild, gatewayForEmulator, api }) };
  const names = wanted.length ? wanted : Object.keys(all);
  process.stdout.write(`# switchboard bench ${new Date().toISOString()} node ${process.version}\n`);
  for (const name of names) {
    const run = all[name];
    if (!run) throw new Error(`unknown scenario ${name}; known: ${Object.keys(all).join(', ')}`);
    const result = await run();
    process.stdout.write(JSON.stringify(result) + '\n');
  }
  process.exit(0);
}

await main();
