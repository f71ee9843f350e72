import { setMaxListeners } from 'node:events';
import { EmulatorClock } from './clock.js';
import type { EmulatorContext } from './context.js';
import { FaultRegistry } from './faults.js';
import { IdFactory } from './ids.js';
import { MediaLibrary } from './media.js';
import { resolveOptions, type EmulatorOptions } from './options.js';
import { buildServer } from './server.js';
import { EmulatorState } from './state.js';
import { TimerSet } from './timers.js';
import { UsageMeter } from './usage.js';
import { WebhookDispatcher } from './webhooks.js';

/**
 * The Messenger Platform emulator: a stand-in for Meta's Graph API, webhooks and login that a
 * gateway can be run, shown and tested against with no Meta app and no internet. It imports
 * nothing from the gateway and speaks only HTTP.
 */

export type { EmulatorOptions } from './options.js';
export { runEmulatorCli } from './cli.js';

export interface RunningEmulator {
  /** Base URL, e.g. http://127.0.0.1:4000; Graph calls go to `${url}/v25.0/...`. */
  url: string;
  port: number;
  /** The emulator's clock (epoch ms): moved with `POST /_emulator/clock`. A gateway run beside it follows it. */
  now(): number;
  close(): Promise<void>;
}

export async function startEmulator(options: EmulatorOptions = {}): Promise<RunningEmulator> {
  const resolved = resolveOptions(options);
  const clock = new EmulatorClock();
  const ids = new IdFactory();
  const state = new EmulatorState(ids, clock);
  const closing = new AbortController();
  // Every call slowed by a latency fault waits on it: any number of them at once is expected.
  setMaxListeners(0, closing.signal);
  let baseUrl = resolved.publicUrl ?? `http://${hostForUrl(resolved.host)}:${resolved.port}`;
  const ctx: EmulatorContext = {
    options: resolved,
    clock,
    ids,
    state,
    webhooks: new WebhookDispatcher(state, clock, ids, resolved),
    faults: new FaultRegistry(ids),
    usage: new UsageMeter(state),
    media: new MediaLibrary(state, ids, () => baseUrl),
    timers: new TimerSet(),
    closing: closing.signal,
    baseUrl: () => baseUrl,
  };
  const server = await buildServer(ctx);
  await server.listen({ port: resolved.port, host: resolved.host });
  const address = server.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : resolved.port;
  if (resolved.publicUrl === undefined) baseUrl = `http://${hostForUrl(resolved.host)}:${port}`;
  resolved.logger(`emulator listening on ${baseUrl}`);

  let shutdown: Promise<void> | null = null;
  return {
    url: baseUrl,
    port,
    now: () => clock.now(),
    close() {
      shutdown ??= (async () => {
        closing.abort();
        ctx.timers.clear();
        await ctx.webhooks.close();
        await server.close();
      })();
      return shutdown;
    },
  };
}

function hostForUrl(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}
