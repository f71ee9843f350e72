/**
 * JSON request bodies, parsed by Fastify's own parser (prototype poisoning refused) after one check
 * of our own: how deeply the body nests. Within the 1 MiB body limit, a body of nested arrays can
 * be a hundred thousand levels deep; it parses, but every recursive walk after it (validation,
 * canonical JSON for idempotency keys, serialising it again) overflows the stack and would answer
 * 500. No request of the API needs more than a dozen levels (Meta's templates are the deepest), so
 * a body deeper than `MAX_JSON_DEPTH` is refused with 400 before it is parsed. The scan is one pass
 * over the text, skipping strings.
 */
import type { FastifyInstance } from 'fastify';
import { GatewayError } from '../domain/errors.js';

export const MAX_JSON_DEPTH = 64;

/** The deepest nesting of objects and arrays in a JSON text (brackets inside strings ignored). */
export function jsonDepth(text: string, stopAbove = Infinity): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: the next character is escaped
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b || c === 0x5b) {
      depth++;
      if (depth > deepest) {
        deepest = depth;
        if (deepest > stopAbove) return deepest;
      }
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
  return deepest;
}

/** Replaces the app's JSON parser with Fastify's default one behind the depth check. */
export function installJsonBodyParser(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (jsonDepth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) {
      done(new GatewayError('VALIDATION_FAILED', { reason: `the body nests deeper than ${MAX_JSON_DEPTH} levels`, field: 'body' }), undefined);
      return;
    }
    void parse(request, text, done);
  });
}
