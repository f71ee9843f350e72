/**
 * Outbound: messages accepted by `POST /v1/messages` and carried through the emulator's Send API,
 * across 10 Pages and 1,000 customers; beside the emulator's own ceiling (a client posting straight
 * to its Send API). With BENCH_SOAK_SECONDS the same load runs longer at a fixed rate and resident
 * memory is sampled to show whether it grows.
 *
 * BENCH_CUSTOMERS (a multiple of 10) sets the customers: the emulator holds each Page to Meta's
 * Messenger limit of 200 Send API calls per engaged person per 24 hours, and the gateway slows a
 * Page down from 75 % of it, as it should. 1,000 customers allow 20,000 calls a Page, so a
 * five-minute run at 1,000/s (30,000 a Page) needs at least 2,000 customers to measure the
 * gateway rather than the limit.
 */
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../src/store/db.js';
import { gatewayInChild, pollUntil } from './gateway.js';
import type { EmulatorStats } from './gateway.js';
import type { LoadResult, LoadSpec } from './load.js';
import { percentile } from './load.js';

interface Deps {
  seconds: number;
  /** At a steady rate: the first seconds of load after the start, left out of the API's latencies. */
  warmupSeconds: number;
  loadInChild(spec: LoadSpec): Promise<LoadResult>;
  gatewayForEmulator(): Promise<{ emulator: { url: string; child: ChildProcess; stats(): Promise<EmulatorStats>; stop(): Promise<void> }; dir: string; env: Record<string, string>; appId: string; apiKey: string }>;
  api<T>(method: string, url: string, body?: unknown, headers?: Record<string, string>): Promise<T>;
}

const PAGES = 10;
const CUSTOMERS = Math.max(PAGES, Math.round(Number(process.env['BENCH_CUSTOMERS'] ?? 1000) / PAGES) * PAGES);

export async function outboundScenario(d: Deps): Promise<Record<string, unknown>> {
  const { emulator, dir, env, appId, apiKey } = await d.gatewayForEmulator();
  const gateway = await gatewayInChild(env);
  const gatewayUrl = gateway.url;
  await d.api('PATCH', `${emulator.url}/_emulator/apps/${appId}`, { callback_url: `${gatewayUrl}/webhooks/meta` });
  const auth = { authorization: `Bearer ${apiKey}` };
  // The harness reads the gateway's database through a connection of its own (WAL readers do not
  // block the writer), to know when the customers are contacts and when every message has left.
  const store = await openStore({ url: join(dir, 'switchboard.db') });

  const targets: { sender: string; psid: string; page: string; token: string }[] = [];
  for (let p = 0; p < PAGES; p++) {
    const page = await d.api<{ id: string; access_token: string }>('POST', `${emulator.url}/_emulator/pages`, { app_id: appId, name: `Bench Page ${p}` });
    const sender = await d.api<{ id: string }>('POST', `${gatewayUrl}/v1/senders`, { access_token: page.access_token, page_id: page.id }, auth);
    for (let c = 0; c < CUSTOMERS / PAGES; c++) {
      const user = await d.api<{ id: string }>('POST', `${emulator.url}/_emulator/users`, { first_name: `C${p}-${c}` });
      const { psid } = await d.api<{ psid: string }>('POST', `${emulator.url}/_emulator/pages/${page.id}/inbound`, { user: user.id, text: 'hello' });
      targets.push({ sender: sender.id, psid, page: page.id, token: page.access_token });
    }
  }
  // The customers wrote first; wait until every one of them is a contact with an open window.
  await pollUntil(
    async () => Number((await store.db.selectFrom('contacts').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n) >= CUSTOMERS,
    60_000 + CUSTOMERS * 20,
    200,
  );

  // Interleaved (Page 0, 1, ..., 9, 0, ...): with the targets in Page order the 32 requests in
  // flight all went to one Page, which the pacer then held to Meta's 300 calls/s per Page.
  const spread = targets.map((_, i) => targets[(i % PAGES) * (CUSTOMERS / PAGES) + Math.floor(i / PAGES)] ?? targets[0]!);
  const bodies = spread.map((t, i) => JSON.stringify({ sender_id: t.sender, to: { psid: t.psid }, text: `reply ${i}` }));
  const soak = Number(process.env.BENCH_SOAK_SECONDS ?? 0);
  const seconds = soak || d.seconds;
  let peak = 0;
  let peakYoung = 0;
  const samples: number[] = [];
  const sampler = setInterval(() => {
    void gateway.stats().then(({ rss, young }) => {
      peak = Math.max(peak, rss);
      peakYoung = Math.max(peakYoung, young);
      samples.push(rss);
    });
  }, 1000);
  const started = Date.now();
  const [before, emulatorBefore] = await Promise.all([gateway.stats(), emulator.stats()]);
  const accepted = await d.loadInChild({
    url: gatewayUrl,
    path: '/v1/messages',
    method: 'POST',
    headers: { 'content-type': 'application/json', ...auth },
    bodies,
    connections: 32,
    durationMs: seconds * 1000,
    maxRequests: 5_000_000,
    // At a steady rate the first seconds after the gateway's start are left out of the API's
    // latencies, as in the inbound scenario (its code warming to the load); every message counts
    // towards carried and time to `sent`.
    ...(soak ? { rate: Number(process.env.BENCH_RATE ?? 1000), warmupMs: d.warmupSeconds * 1000 } : {}),
  });
  // Carried: until every accepted message has left (sent or failed).
  const drainDeadline = Date.now() + 120_000;
  let left = 0;
  for (;;) {
    // Live send jobs, one per message still to leave: counting the messages themselves scanned the
    // whole table every 100 ms, which at 300,000 rows took most of the gateway's time.
    const r = await store.db
      .selectFrom('jobs')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('kind', '=', 'send')
      .where('state', 'in', ['pending', 'running', 'waiting'])
      .executeTakeFirstOrThrow();
    left = Number(r.n);
    if (left === 0 || Date.now() > drainDeadline) break;
    await new Promise((r2) => setTimeout(r2, 100));
  }
  const carriedSeconds = (Date.now() - started) / 1000;
  const [after, emulatorAfter] = await Promise.all([gateway.stats(), emulator.stats()]);
  const cpu = { user: after.cpu.user - before.cpu.user, system: after.cpu.system - before.cpu.system };
  const elu = performance.eventLoopUtilization(after.elu, before.elu);
  const emulatorCpuMs = (emulatorAfter.cpu.user - emulatorBefore.cpu.user + emulatorAfter.cpu.system - emulatorBefore.cpu.system) / 1000;
  clearInterval(sampler);
  const rows = await store.db.selectFrom('messages').select(['created_at', 'sent_at', 'status']).where('direction', '=', 'outbound').execute();
  const sent = rows.filter((r) => r.sent_at !== null);
  const toSent = sent.map((r) => (r.sent_at as number) - r.created_at).sort((a, b) => a - b);
  const failed = rows.filter((r) => r.status === 'failed').length;
  // Receipts the gateway had processed when the last message left: the emulator sends a delivery
  // and a read for every message, and those still queued then are work the run did not measure.
  const receipted = rows.filter((r) => r.status === 'delivered' || r.status === 'read').length;
  await store.close();
  await gateway.stop();

  // The emulator's own ceiling: the same Send API calls straight from a client, across the same 10
  // Pages (the emulator limits each Page to 300 calls/s, so one Page would measure that limit).
  const direct = await d.loadInChild({
    url: emulator.url,
    path: '/',
    paths: spread.map((t) => `/v25.0/${t.page}/messages?access_token=${encodeURIComponent(t.token)}`),
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    bodies: spread.map((t, i) => JSON.stringify({ recipient: { id: t.psid }, messaging_type: 'RESPONSE', message: { text: `direct ${i}` } })),
    connections: 32,
    durationMs: Math.min(seconds, 10) * 1000,
    maxRequests: 5_000_000,
  });
  await emulator.stop();
  rmSync(dir, { recursive: true, force: true });
  const carried = sent.length / carriedSeconds;
  // What each process spent on a message over the run (CPU, every thread), and what that allows on
  // this machine: the three share its cores, and the gateway's event loop is one thread. The
  // lower bound says how far any run could go at this hour's speed, whatever the gateway's code.
  const perMsg = (ms: number) => ms / Math.max(1, sent.length);
  const gatewayMs = perMsg((cpu.user + cpu.system) / 1000);
  const loopMs = perMsg(elu.active);
  const emulatorMs = perMsg(emulatorCpuMs);
  const loadMs = perMsg(accepted.cpuMs);
  const machineMs = gatewayMs + emulatorMs + loadMs;
  return {
    scenario: soak ? 'outbound soak' : 'outbound',
    pages: PAGES,
    customers: CUSTOMERS,
    seconds,
    accepted_per_s: Math.round(accepted.rps),
    api_p50_ms: Number(accepted.p50.toFixed(2)),
    api_p99_ms: Number(accepted.p99.toFixed(2)),
    api_errors: accepted.errors,
    carried_per_s: Math.round(carried),
    sent: sent.length,
    failed,
    not_drained: left,
    to_sent_p50_ms: percentile(toSent, 50),
    to_sent_p99_ms: percentile(toSent, 99),
    receipted_at_end: Number((receipted / Math.max(1, sent.length)).toFixed(2)),
    emulator_ceiling_per_s: Math.round(direct.rps),
    emulator_errors: direct.errors,
    ratio: Number((carried / direct.rps).toFixed(2)),
    // The gateway process's CPU (every thread) from the first request until the last message left.
    cpu_ms_per_msg: Number(gatewayMs.toFixed(3)),
    // Its event loop's busy time (the main thread) over the same span.
    loop_ms_per_msg: Number(loopMs.toFixed(3)),
    // The emulator's and the load generator's CPU over the same span, a message.
    emulator_cpu_ms_per_msg: Number(emulatorMs.toFixed(3)),
    load_cpu_ms_per_msg: Number(loadMs.toFixed(3)),
    // The most this machine could carry with this much work a message: its cores over the three
    // processes' CPU a message, and the gateway's loop over its own share.
    machine_bound_per_s: Math.round((availableParallelism() * 1000) / Math.max(1e-6, machineMs)),
    loop_bound_per_s: Math.round(1000 / Math.max(1e-6, loopMs)),
    cpu_busy: Number(((cpu.user + cpu.system) / 1e6 / carriedSeconds).toFixed(2)),
    // How busy the event loop was over the same time (1: never idle).
    loop_busy: Number(elu.utilization.toFixed(2)),
    peak_rss_mb: Math.round(peak / 1048576),
    young_generation_mb: Math.round(peakYoung / 1048576),
    rss_first_mb: Math.round((samples[0] ?? 0) / 1048576),
    rss_last_mb: Math.round((samples[samples.length - 1] ?? 0) / 1048576),
    // Over a longer run, resident memory every 30 s (one sample a second): a rise that levels off
    // is the heap sizing itself to the load; one that keeps climbing is growth.
    ...(soak ? { rss_every_30s_mb: samples.filter((_, i) => i % 30 === 0).map((b) => Math.round(b / 1048576)) } : {}),
  };
}
