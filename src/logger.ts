/** Structured logs (pino). Tokens, secrets and keys are redacted wherever they appear in a logged object. */
import { pino } from 'pino';
import type { Bindings, ChildLoggerOptions, DestinationStream, Logger } from 'pino';

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-hub-signature-256"]',
  'req.headers["x-hub-signature"]',
  '*.access_token',
  '*.token',
  '*.secret',
  '*.app_secret',
  '*.api_key',
  '*.key',
  'access_token',
  'token',
  'secret',
  'api_key',
];

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino({ level, base: { service: 'switchboard' }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, destination as DestinationStream | undefined);
}

type LevelName = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

/**
 * What Fastify gives each request as `request.log`. Fastify binds a child logger to every request
 * (its id), and a pino child with redaction costs a few microseconds to make: its bindings are
 * serialised and its redaction and level set up. Requests log nothing unless something goes wrong,
 * so that was paid for nothing on every webhook and API call (measured at 3-4 % of the gateway's
 * time under webhook load). This one makes the child on the first line written at its level.
 */
class RequestLogger {
  readonly #parent: Logger;
  readonly #bindings: Bindings;
  readonly #options: ChildLoggerOptions;
  readonly #level: string;
  #child: Logger | undefined;

  constructor(parent: Logger, bindings: Bindings, options: ChildLoggerOptions) {
    this.#parent = parent;
    this.#bindings = bindings;
    this.#options = options;
    this.#level = options.level ?? parent.level;
  }

  get level(): string {
    return this.#child?.level ?? this.#level;
  }

  set level(level: string) {
    this.#real().level = level;
  }

  isLevelEnabled(level: string): boolean {
    if (this.#child !== undefined) return this.#child.isLevelEnabled(level);
    const values = this.#parent.levels.values;
    const wanted = values[level];
    const threshold = this.#level === 'silent' ? Infinity : values[this.#level];
    return wanted !== undefined && threshold !== undefined && wanted >= threshold;
  }

  fatal(...args: unknown[]): void {
    this.#write('fatal', args);
  }
  error(...args: unknown[]): void {
    this.#write('error', args);
  }
  warn(...args: unknown[]): void {
    this.#write('warn', args);
  }
  info(...args: unknown[]): void {
    this.#write('info', args);
  }
  debug(...args: unknown[]): void {
    this.#write('debug', args);
  }
  trace(...args: unknown[]): void {
    this.#write('trace', args);
  }
  silent(): void {}

  child(bindings: Bindings, options?: ChildLoggerOptions): Logger {
    return this.#real().child(bindings, options);
  }

  #real(): Logger {
    this.#child ??= this.#parent.child(this.#bindings, this.#options);
    return this.#child;
  }

  #write(level: LevelName, args: unknown[]): void {
    if (!this.isLevelEnabled(level)) return;
    const real = this.#real();
    (real[level] as (...a: unknown[]) => void).apply(real, args);
  }
}

/** Fastify's `childLoggerFactory`: request loggers made only when they write (see `RequestLogger`). */
export function requestLoggerFactory(logger: Logger, bindings: Bindings, options: ChildLoggerOptions): Logger {
  return new RequestLogger(logger, bindings, options) as unknown as Logger;
}
