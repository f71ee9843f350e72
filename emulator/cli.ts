import { parseArgs } from 'node:util';
import { DEFAULTS } from './options.js';

/**
 * `switchboard emulator [--port N] [--host H]`: runs the emulator until SIGINT or SIGTERM
 * (or until `signal` aborts, for callers that embed it).
 */
export async function runEmulatorCli(
  argv: string[],
  io: { signal?: AbortSignal; out?: (line: string) => void } = {},
): Promise<void> {
  const out = io.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string', short: 'p' },
      host: { type: 'string' },
      quiet: { type: 'boolean', short: 'q' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: false,
    strict: true,
  });
  if (values.help) {
    out('Usage: switchboard emulator [--port N] [--host H] [--quiet]');
    out(`  --port  TCP port (default ${DEFAULTS.port}; 0 picks a free one)`);
    out(`  --host  interface to listen on (default ${DEFAULTS.host})`);
    out('  --quiet do not log webhook deliveries and control calls');
    return;
  }
  const port = values.port === undefined ? DEFAULTS.port : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be a number from 0 to 65535, got ${values.port}`);
  // The import waits until here so `--help` works without loading the server.
  const { startEmulator } = await import('./index.js');
  const emulator = await startEmulator({
    port,
    host: values.host ?? DEFAULTS.host,
    ...(values.quiet ? {} : { logger: (line: string) => out(`[emulator] ${line}`) }),
  });
  out(`Messenger Platform emulator on ${emulator.url} (chat page: ${emulator.url}/, Graph API: ${emulator.url}/${DEFAULTS.graphVersion})`);
  out(`Try: curl -s -X POST ${emulator.url}/_emulator/apps -H 'content-type: application/json' -d '{"callback_url":"http://127.0.0.1:3000/webhooks/meta"}'`);

  // Started by a parent with an IPC channel (the gateway's benchmarks do): it may ask for this
  // process's CPU, memory and event-loop use, to tell what the emulator's share of a run was.
  const stats = (m: { op?: string } | null) => {
    if (m?.op === 'stats') process.send?.({ stats: { rss: process.memoryUsage.rss(), cpu: process.cpuUsage(), elu: performance.eventLoopUtilization() } });
  };
  if (process.send) process.on('message', stats);

  let stop = () => {};
  await new Promise<void>((resolve) => {
    stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    io.signal?.addEventListener('abort', stop, { once: true });
    if (io.signal?.aborted) stop();
  });
  process.off('SIGINT', stop);
  process.off('SIGTERM', stop);
  process.off('message', stats);
  await emulator.close();
  out('emulator stopped');
}
