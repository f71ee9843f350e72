/** Every error leaves as `{error: {code, message, details}}` with the catalogue's status; never a stack. */
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyServerOptions } from 'fastify';
import { GatewayError, isGatewayError } from '../domain/errors.js';

function fromFastify(err: FastifyError): GatewayError | undefined {
  if (err.validation) {
    const first = err.validation[0];
    const field = first ? `${err.validationContext ?? 'body'}${first.instancePath.replace(/\//g, '.')}` : err.validationContext ?? 'body';
    const missing = first?.keyword === 'required' ? String((first.params as { missingProperty?: string }).missingProperty ?? '') : '';
    const extra = first?.keyword === 'additionalProperties' ? String((first.params as { additionalProperty?: string }).additionalProperty ?? '') : '';
    const at = missing ? `${field}.${missing}` : extra ? `${field}.${extra}` : field;
    const reason = missing ? `${at} is required` : extra ? `${at} is not a known field` : `${at} ${first?.message ?? 'is invalid'}`;
    return new GatewayError('VALIDATION_FAILED', { reason, field: at });
  }
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new GatewayError('PAYLOAD_TOO_LARGE');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new GatewayError('UNSUPPORTED_CONTENT_TYPE');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new GatewayError('VALIDATION_FAILED', { reason: 'the body is empty; send a JSON object', field: 'body' });
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new GatewayError('VALIDATION_FAILED', { reason: 'the body is not valid JSON', field: 'body' });
  }
  if (err instanceof SyntaxError || (err as { type?: string }).type === 'entity.parse.failed') {
    return new GatewayError('VALIDATION_FAILED', { reason: 'the body is not valid JSON', field: 'body' });
  }
  if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
    return new GatewayError('VALIDATION_FAILED', { reason: err.message, field: 'request' });
  }
  return undefined;
}

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const known = isGatewayError(err) ? err : fromFastify(err);
    if (known) {
      if (known.status >= 500) request.log.error({ err }, 'request failed');
      // The standard header for "come back later", in whole seconds, wherever the error says when.
      const retryAfter = known.details['retry_after_ms'];
      if (typeof retryAfter === 'number' && retryAfter > 0) void reply.header('retry-after', String(Math.ceil(retryAfter / 1000)));
      return reply.status(known.status).send(known.toJSON());
    }
    request.log.error({ err }, 'unexpected error');
    const internal = new GatewayError('INTERNAL');
    return reply.status(500).send(internal.toJSON());
  });
  // Every route's path as a pattern, so a path that exists under other methods answers 405 with
  // the methods it takes (Fastify's router answers 404 for both).
  const routes: { pattern: RegExp; methods: Set<string> }[] = [];
  app.addHook('onRoute', (route) => {
    const pattern = new RegExp(`^${route.url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/:[A-Za-z0-9_]+/g, '[^/]+')}/?$`);
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const known = routes.find((r) => r.pattern.source === pattern.source);
    if (known) for (const m of methods) known.methods.add(m);
    else routes.push({ pattern, methods: new Set(methods) });
  });
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '/';
    const allowed = new Set<string>();
    for (const r of routes) if (r.pattern.test(path)) for (const m of r.methods) allowed.add(m);
    allowed.delete('HEAD');
    if (allowed.size > 0 && !allowed.has(request.method)) {
      const list = [...allowed].sort();
      const err = new GatewayError('METHOD_NOT_ALLOWED', { method: request.method, allowed: list }, `${path} does not take ${request.method}; it takes ${list.join(', ')}.`);
      return reply.status(405).header('allow', list.join(', ')).send(err.toJSON());
    }
    const err = new GatewayError('NOT_FOUND', { resource: 'route' }, `There is no route ${request.method} ${path}.`);
    return reply.status(404).send(err.toJSON());
  });
}

/**
 * Requests refused before any route runs answer in the same shape. Fastify's router refuses a path
 * with a broken percent-escape (`frameworkErrors`); Node's HTTP parser refuses what is not valid
 * HTTP (a bad Content-Length, broken chunked encoding, headers past their limit), and Fastify's own
 * answer to those is a body of another shape (`clientErrorHandler`). Both go into the server's options.
 */
export const frameworkErrorOptions: Pick<FastifyServerOptions, 'frameworkErrors' | 'clientErrorHandler'> = {
  frameworkErrors: (error, _request, reply) => {
    const err = new GatewayError('VALIDATION_FAILED', { reason: `the request is not valid: ${error.message}`, field: 'url' });
    // The reply's types follow the route's schema, which a request that matched no route lacks.
    void (reply as unknown as { code(n: number): { send(body: unknown): unknown } }).code(err.status).send(err.toJSON());
  },
  clientErrorHandler: (error: Error & { code?: string }, socket: Socket) => {
    // A connection reset or timed out has no one left to answer.
    if (error.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const err =
      error.code === 'HPE_HEADER_OVERFLOW'
        ? new GatewayError('HEADERS_TOO_LARGE')
        : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? new GatewayError('VALIDATION_FAILED', { reason: 'the request did not arrive in time', field: 'request' })
          : new GatewayError('VALIDATION_FAILED', { reason: 'the request is not valid HTTP', field: 'request' });
    const body = JSON.stringify(err.toJSON());
    const reason = err.status === 431 ? 'Request Header Fields Too Large' : 'Bad Request';
    socket.end(`HTTP/1.1 ${err.status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  },
};
