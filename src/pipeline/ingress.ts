/**
 * `/webhooks/meta`: Meta's verification handshake (GET) and webhook deliveries (POST).
 * A POST is checked against `X-Hub-Signature-256` on the exact bytes received, written durably
 * (group commit, `ingress-writer.ts`) and answered 200; nothing is parsed before the answer, so
 * Meta is acknowledged in about a commit's time and a body the parser chokes on is still kept.
 * The routes live in an encapsulated plugin with its own raw-body parser, so the rest of the app
 * keeps Fastify's JSON parsing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError } from '../domain/errors.js';
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

function refuse(reply: FastifyReply, err: GatewayError): FastifyReply {
  return reply.code(err.status).type('application/json; charset=utf-8').send(err.toJSON());
}

/** Registers GET and POST `/webhooks/meta`; the writer is flushed when the app closes. */
export async function registerIngress(app: FastifyInstance, deps: IngressDeps): Promise<void> {
  const { ctx, appSecret, verifyToken } = deps;
  const writer = new IngressWriter({ store: ctx.store, queue: ctx.queue, now: ctx.now, ...deps.writer });

  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: WEBHOOK_BODY_LIMIT }, (_req, body, done) => {
      done(null, body);
    });
    scope.addHook('onClose', async () => {
      await writer.close();
    });

    // Per-request logs at info would cost more than the write itself; failures still log at error.
    scope.get(WEBHOOK_PATH, { logLevel: 'warn', schema: { hide: true } }, async (request: FastifyRequest<{ Querystring: HandshakeQuery }>, reply) => {
      const q = request.query;
      const token = typeof q['hub.verify_token'] === 'string' ? q['hub.verify_token'] : '';
      const challenge = typeof q['hub.challenge'] === 'string' ? q['hub.challenge'] : '';
      if (q['hub.mode'] !== 'subscribe' || !sameSecret(token, verifyToken)) {
        return refuse(reply, new GatewayError('WEBHOOK_VERIFY_TOKEN_MISMATCH'));
      }
      return reply.code(200).type('text/plain; charset=utf-8').send(challenge);
    });

    scope.post(WEBHOOK_PATH, { logLevel: 'warn', schema: { hide: true }, bodyLimit: WEBHOOK_BODY_LIMIT }, async (request, reply) => {
      const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      if (!verifyMetaSignature(body, request.headers, appSecret)) {
        return refuse(reply, new GatewayError('WEBHOOK_SIGNATURE_INVALID'));
      }
      try {
        await writer.write(body.toString('utf8'));
      } catch (err) {
        // A 500 makes Meta retry the delivery later; nothing was acknowledged that is not stored.
        request.log.error({ err }, 'storing a webhook batch failed');
        return refuse(reply, new GatewayError('INTERNAL'));
      }
      return reply.code(200).type('text/plain; charset=utf-8').send(ACK_BODY);
    });
  });
}
