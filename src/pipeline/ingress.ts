/**
 * `/webhooks/meta`: Meta's verification handshake (GET) and webhook deliveries (POST).
 * A POST is checked against `X-Hub-Signature-256` on the exact bytes received, written durably
 * (group commit, `ingress-writer.ts`) and answered 200; nothing is parsed before the answer, so
 * Meta is acknowledged in about a commit's time and a body the parser chokes on is still kept.
 *
 * Deliveries reach `MetaIngress.accept` by two ways that answer alike:
 * - The server's request listener (`MetaIngress.listener`, installed by `ingressServerFactory`)
 *   takes an ordinary delivery (POST, a declared length within the limit, no transfer coding)
 *   before Fastify sees it. Webhooks are most of the gateway's requests, and Fastify's own work on
 *   one (request and reply objects, hooks, content-type parsing, reply serialisation) cost about
 *   a fifth of a bare handler's CPU on this path: measured, a Node request listener answered 1.29x
 *   the requests per second a bare Fastify handler did. What it leaves out is what a webhook POST
 *   does not need; anything unusual goes on to Fastify.
 * - A Fastify route in an encapsulated plugin with its own raw-body parser (the rest of the app keeps
 *   Fastify's JSON parsing), for everything else: chunked bodies, oversized ones (413 from Fastify's
 *   body limit), requests while the app closes (503), and `app.inject()`.
 */
import { createHash, createSecretKey, timingSafeEqual } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage, RequestListener, ServerOptions, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifyServerFactory } from 'fastify';
import type { Logger } from 'pino';
import { GatewayError, isGatewayError } from '../domain/errors.js';
import { verifyMetaSignature } from '../meta/signature.js';
import type { PipelineContext } from './context.js';
import { IngressWriter } from './ingress-writer.js';
import type { IngressWriterOptions } from './ingress-writer.js';

export interface IngressDeps {
  ctx: PipelineContext;
  appSecret: string;
  verifyToken: string;
  /** Group-commit tuning (tests and benchmarks). */
  writer?: Pick<IngressWriterOptions, 'windowMs' | 'maxGroup' | 'committer'>;
}

export const WEBHOOK_PATH = '/webhooks/meta';

// Meta puts up to 1000 entries in one POST; with attachments and ad referrals that passes Fastify's
// 1 MiB default, and a body refused for its size would be retried by Meta for ever.
const WEBHOOK_BODY_LIMIT = 16 * 1024 * 1024;

// Meta reads any 200; this is the body its documentation's examples return.
const ACK_BODY = 'EVENT_RECEIVED';
const TEXT = 'text/plain; charset=utf-8';
const JSON_TYPE = 'application/json; charset=utf-8';

/** What a delivery is answered: a status and a body of the given type. */
export interface IngressAnswer {
  status: number;
  type: string;
  body: string;
}

interface HandshakeQuery {
  'hub.mode'?: string;
  'hub.verify_token'?: string;
  'hub.challenge'?: string;
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/** Constant-time equality of two strings of any lengths (compared as SHA-256 digests). */
function sameSecret(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected)) && expected !== '';
}

function refusal(err: GatewayError): IngressAnswer {
  return { status: err.status, type: JSON_TYPE, body: JSON.stringify(err.toJSON()) };
}

const ACCEPTED: IngressAnswer = { status: 200, type: TEXT, body: ACK_BODY };

/** Whether a request target is the webhook path, with or without a query string. */
function isWebhookTarget(url: string | undefined): boolean {
  return url !== undefined && url.startsWith(WEBHOOK_PATH) && (url.length === WEBHOOK_PATH.length || url.charCodeAt(WEBHOOK_PATH.length) === 63 /* ? */);
}

/** Whether the listener takes the request itself: an ordinary webhook POST (see the top of this file). */
function takesItself(req: IncomingMessage): boolean {
  if (req.method !== 'POST' || !isWebhookTarget(req.url) || req.headers['transfer-encoding'] !== undefined) return false;
  const declared = req.headers['content-length'];
  if (declared === undefined) return false;
  const length = Number(declared);
  return Number.isSafeInteger(length) && length >= 0 && length <= WEBHOOK_BODY_LIMIT;
}

/** Checks, stores and answers Meta's webhook deliveries; see the top of this file. */
export class MetaIngress {
  readonly #writer: IngressWriter;
  readonly #appSecret: string | KeyObject;
  readonly #verifyToken: string;
  readonly #log: Logger;
  #closing = false;

  constructor(deps: IngressDeps) {
    const { ctx } = deps;
    this.#writer = new IngressWriter({ store: ctx.store, queue: ctx.queue, now: ctx.now, ...deps.writer });
    // Made into a key once: see `verifyMetaSignature`.
    this.#appSecret = deps.appSecret === '' ? '' : createSecretKey(Buffer.from(deps.appSecret, 'utf8'));
    this.#verifyToken = deps.verifyToken;
    this.#log = ctx.logger;
  }

  /** Meta's verification handshake: the challenge back for the right token, else a refusal. */
  handshake(q: HandshakeQuery): IngressAnswer {
    const token = typeof q['hub.verify_token'] === 'string' ? q['hub.verify_token'] : '';
    const challenge = typeof q['hub.challenge'] === 'string' ? q['hub.challenge'] : '';
    if (q['hub.mode'] !== 'subscribe' || !sameSecret(token, this.#verifyToken)) return refusal(new GatewayError('WEBHOOK_VERIFY_TOKEN_MISMATCH'));
    return { status: 200, type: TEXT, body: challenge };
  }

  /** Checks the signature on the raw bytes and stores the body durably; resolves with the answer. */
  async accept(body: Buffer, headers: IncomingHttpHeaders, log: Pick<Logger, 'error'> = this.#log): Promise<IngressAnswer> {
    if (!verifyMetaSignature(body, headers, this.#appSecret)) return refusal(new GatewayError('WEBHOOK_SIGNATURE_INVALID'));
    try {
      await this.#writer.write(body.toString('utf8'));
    } catch (err) {
      // A 5xx makes Meta retry the delivery later; nothing was acknowledged that is not stored.
      log.error({ err }, 'storing a webhook batch failed');
      return refusal(isGatewayError(err) && err.status >= 500 ? err : new GatewayError('INTERNAL'));
    }
    return ACCEPTED;
  }

  /**
   * A request listener that serves ordinary webhook POSTs and hands every other request (and every
   * request once closing has begun) to `next`, Fastify's handler.
   */
  listener(next: RequestListener): RequestListener {
    return (req, res) => {
      if (this.#closing || !takesItself(req)) {
        next(req, res);
        return;
      }
      this.#receive(req, res);
    };
  }

  /** Writes what is waiting and stops taking requests in the listener (Fastify answers them 503). */
  async close(): Promise<void> {
    this.#closing = true;
    await this.#writer.close();
  }

  #receive(req: IncomingMessage, res: ServerResponse): void {
    // Memory follows the bytes that arrive, not the length declared (a client could declare 16 MiB
    // and send nothing). A webhook usually arrives in one piece, which is used as it is. A request
    // that ends early never reaches 'end': nothing is stored and nothing answered, as when a
    // client goes away from Fastify's route.
    let first: Buffer | undefined;
    let pieces: Buffer[] | undefined;
    req.on('data', (chunk: Buffer) => {
      if (first === undefined) first = chunk;
      else (pieces ??= [first]).push(chunk);
    });
    req.on('end', () => {
      const body = pieces !== undefined ? Buffer.concat(pieces) : (first ?? Buffer.alloc(0));
      this.accept(body, req.headers).then(
        (answer) => send(res, answer),
        (err: unknown) => {
          this.#log.error({ err }, 'answering a webhook delivery failed');
          send(res, refusal(new GatewayError('INTERNAL')));
        },
      );
    });
  }
}

function send(res: ServerResponse, answer: IngressAnswer): void {
  if (res.destroyed) return;
  res.writeHead(answer.status, { 'content-type': answer.type, 'content-length': Buffer.byteLength(answer.body) });
  res.end(answer.body);
}

/**
 * A Fastify `serverFactory`: Node's HTTP server, configured as Fastify configures its own, whose
 * request listener lets the ingress take webhook deliveries before Fastify.
 */
export function ingressServerFactory(ingress: MetaIngress): FastifyServerFactory {
  return (handler, options) => {
    const number = (name: string): number | undefined => {
      const value = (options as Record<string, unknown>)[name];
      return typeof value === 'number' ? value : undefined;
    };
    const http = (options as { http?: ServerOptions }).http ?? {};
    const server = createServer(http, ingress.listener(handler as unknown as RequestListener));
    // What Fastify sets on the server it makes itself (`lib/server.js`), from its defaulted options.
    const keepAlive = number('keepAliveTimeout');
    const request = number('requestTimeout');
    const connection = number('connectionTimeout');
    const perSocket = number('maxRequestsPerSocket');
    if (keepAlive !== undefined) server.keepAliveTimeout = keepAlive;
    if (request !== undefined) server.requestTimeout = request;
    if (connection !== undefined) server.setTimeout(connection);
    if (perSocket !== undefined && perSocket > 0) server.maxRequestsPerSocket = perSocket;
    return server;
  };
}

function reply(r: FastifyReply, answer: IngressAnswer): FastifyReply {
  return r.code(answer.status).type(answer.type).send(answer.body);
}

/**
 * Registers GET and POST `/webhooks/meta` for the ingress (the same one given to
 * `ingressServerFactory`); it is closed (its writer flushed) when the app closes.
 */
export async function registerIngress(app: FastifyInstance, ingress: MetaIngress): Promise<void> {
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: WEBHOOK_BODY_LIMIT }, (_req, body, done) => {
      done(null, body);
    });
    scope.addHook('onClose', async () => {
      await ingress.close();
    });

    // Per-request logs at info would cost more than the write itself; failures still log at error.
    scope.get(WEBHOOK_PATH, { logLevel: 'warn', schema: { hide: true } }, async (request: FastifyRequest<{ Querystring: HandshakeQuery }>, r) => reply(r, ingress.handshake(request.query)));

    scope.post(WEBHOOK_PATH, { logLevel: 'warn', schema: { hide: true }, bodyLimit: WEBHOOK_BODY_LIMIT }, async (request, r) => {
      const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      return reply(r, await ingress.accept(body, request.headers, request.log));
    });
  });
}
