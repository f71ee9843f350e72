/** Structured logs (pino). Tokens, secrets and keys are redacted wherever they appear in a logged object. */
import { pino } from 'pino';
import type { DestinationStream, Logger } from 'pino';

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
