/** What a caller may tune when starting an emulator, and the defaults. */
export interface EmulatorOptions {
  /** TCP port; 0 picks a free one. */
  port?: number;
  /** Interface to listen on. */
  host?: string;
  /** Base URL the emulator puts in media links and shows in docs; defaults to the listening address. */
  publicUrl?: string;
  /** Graph API version shown in hints and the chat page (any `vNN.N` path is accepted). */
  graphVersion?: string;
  /** How long one webhook POST may take before it counts as failed. */
  webhookTimeoutMs?: number;
  /** Waits between webhook attempts; the last one repeats until `webhookGiveUpMs`. */
  webhookRetryDelaysMs?: number[];
  /** How long after the first attempt a failing webhook batch is dropped. */
  webhookGiveUpMs?: number;
  /** How long events for one app are collected into one webhook POST. */
  batchWindowMs?: number;
  /** Delay between a send and its delivery receipt; null sends no receipt. */
  deliveryDelayMs?: number | null;
  /** Delay between a send and its read receipt; null sends no receipt. */
  readDelayMs?: number | null;
  /** Send API calls per second per Page before error 613. */
  sendRateLimitPerSecond?: number;
  /** How long the emulator waits for an attachment URL it fetches. */
  attachmentFetchTimeoutMs?: number;
  /** Receives one line per notable event; silent when absent. */
  logger?: (line: string) => void;
}

export interface ResolvedOptions {
  port: number;
  host: string;
  publicUrl: string | undefined;
  graphVersion: string;
  webhookTimeoutMs: number;
  webhookRetryDelaysMs: number[];
  webhookGiveUpMs: number;
  batchWindowMs: number;
  deliveryDelayMs: number | null;
  readDelayMs: number | null;
  sendRateLimitPerSecond: number;
  attachmentFetchTimeoutMs: number;
  logger: (line: string) => void;
}

export const DEFAULTS = {
  port: 4000,
  host: '127.0.0.1',
  // The newest Graph API version at the time of writing (PLATFORM.md).
  graphVersion: 'v25.0',
  // Meta gives up on a webhook call after 20 s.
  webhookTimeoutMs: 20_000,
  // Development-friendly: the first retries come within seconds, then once a minute.
  webhookRetryDelaysMs: [1_000, 2_000, 5_000, 10_000, 30_000, 60_000],
  // Meta keeps retrying for hours; one hour is enough on a laptop and keeps memory bounded.
  webhookGiveUpMs: 60 * 60 * 1000,
  // A few milliseconds: enough to gather the events one action causes into one POST.
  batchWindowMs: 5,
  // Receipts come shortly after a send, as on a phone that is online.
  deliveryDelayMs: 300,
  readDelayMs: 1_000,
  // Meta's Send API allows 300 calls per second per Page for text.
  sendRateLimitPerSecond: 300,
  // Meta's fetcher gives up on slow attachment hosts; 10 s keeps a stuck send from hanging tests.
  attachmentFetchTimeoutMs: 10_000,
} as const;

export function resolveOptions(options: EmulatorOptions = {}): ResolvedOptions {
  const delays = options.webhookRetryDelaysMs ?? [...DEFAULTS.webhookRetryDelaysMs];
  if (delays.length === 0 || delays.some((d) => !Number.isFinite(d) || d < 0)) {
    throw new TypeError('webhookRetryDelaysMs must hold at least one non-negative number');
  }
  return {
    port: options.port ?? 0,
    host: options.host ?? DEFAULTS.host,
    publicUrl: options.publicUrl?.replace(/\/+$/, ''),
    graphVersion: options.graphVersion ?? DEFAULTS.graphVersion,
    webhookTimeoutMs: options.webhookTimeoutMs ?? DEFAULTS.webhookTimeoutMs,
    webhookRetryDelaysMs: delays,
    webhookGiveUpMs: options.webhookGiveUpMs ?? DEFAULTS.webhookGiveUpMs,
    batchWindowMs: options.batchWindowMs ?? DEFAULTS.batchWindowMs,
    deliveryDelayMs: options.deliveryDelayMs === undefined ? DEFAULTS.deliveryDelayMs : options.deliveryDelayMs,
    readDelayMs: options.readDelayMs === undefined ? DEFAULTS.readDelayMs : options.readDelayMs,
    sendRateLimitPerSecond: options.sendRateLimitPerSecond ?? DEFAULTS.sendRateLimitPerSecond,
    attachmentFetchTimeoutMs: options.attachmentFetchTimeoutMs ?? DEFAULTS.attachmentFetchTimeoutMs,
    logger: options.logger ?? (() => {}),
  };
}
