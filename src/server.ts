/**
 * Assembly: one process with the HTTP surfaces, the job runner and the periodic checks.
 * `buildServer` wires everything from a `Config`; `start()` listens, `close()` drains and stops.
 */
import Fastify, { LogController } from 'fastify';
import type { FastifyBaseLogger, FastifyInstance, FastifyServerOptions } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import swagger from '@fastify/swagger';
import formbody from '@fastify/formbody';
import type { Logger } from 'pino';
import { sql } from 'kysely';
import type { Config } from './config.js';
import { createLogger, requestLoggerFactory } from './logger.js';
import { openStore, migrate } from './store/db.js';
import type { Store } from './store/db.js';
import { SecretBox } from './store/secrets.js';
import { MediaFiles } from './store/media-files.js';
import { startCheckpointer } from './store/checkpoint.js';
import { listLiveSenders } from './store/senders.js';
import { GraphClient } from './meta/graph.js';
import { JobQueue } from './jobs/queue.js';
import { JobRunner } from './jobs/runner.js';
import type { JobHandler, RunnerLane } from './jobs/runner.js';
import { UrlGuard } from './net/url-guard.js';
import type { PipelineContext } from './pipeline/context.js';
import { checkSender } from './pipeline/senders.js';
import { purgeExpired } from './pipeline/housekeeping.js';
import { MetaIngress, ingressServerFactory, registerIngress } from './pipeline/ingress.js';
import { INBOUND_BATCH_JOB, MEDIA_DOWNLOAD_JOB, PROFILE_FETCH_JOB, inboundJobHandlers } from './pipeline/inbound.js';
import { SEND_JOB, outboundJobHandlers } from './pipeline/outbound.js';
import { DELIVER_JOB, deliveryJobHandlers } from './delivery/index.js';
import { frameworkErrorOptions, installErrorHandling } from './http/errors.js';
import { installJsonBodyParser } from './http/json-body.js';
import { validationOptions } from './http/validation.js';
import { bearerAuth } from './http/auth.js';
import { ErrorSchema } from './dialects/native/schemas.js';
import { SenderSchema, senderConnectCallbackRoutes, senderRoutes } from './dialects/native/senders.js';
import { accountRoutes } from './dialects/native/accounts.js';
import { endpointRoutes } from './dialects/native/endpoints.js';
import { eventRoutes } from './dialects/native/events.js';
import { mediaRoutes } from './dialects/native/media.js';
import { mediaUploadRoutes } from './dialects/native/media-upload.js';
import { messageRoutes } from './dialects/native/messages.js';
import { contactRoutes } from './dialects/native/contacts.js';
import { conversationRoutes } from './dialects/native/conversations.js';
import { actionRoutes } from './dialects/native/actions.js';

export interface BuildOptions {
  /** Use this store instead of opening `config.databaseUrl` (tests). */
  store?: Store;
  logger?: Logger;
  /** The clock (tests move it with the emulator's). */
  now?: () => number;
  /** Start the job runner (default true). */
  runJobs?: boolean;
  /** Extra job handlers or overrides (tests). */
  handlers?: Record<string, JobHandler>;
}

export interface Gateway {
  app: FastifyInstance;
  ctx: PipelineContext;
  runner: JobRunner;
  config: Config;
  /** Listens on config.port/host; resolves with the bound URL. */
  start(): Promise<string>;
  close(): Promise<void>;
}

export const VERSION = '0.1.0';

const SENDER_CHECK_JOB = 'sender.check';

/**
 * The order in which free job slots are filled, and how many each lane may hold (see
 * `RunnerLane`): a backlog of sends (a business replying to thousands at once) must not hold back
 * what customers write or what the business is told, and a slow endpoint must not take every slot.
 * - received webhooks first: local work of a few milliseconds, the customers' messages and the
 *   receipts that move sent messages on;
 * - then background work (profiles, inbound media before Meta's links expire, token checks),
 *   an eighth of the slots at most;
 * - then event deliveries, half the slots at most: an endpoint that answers slowly holds its
 *   slots for up to the delivery timeout;
 * - sends last, in every slot the others leave; a send job waits on Meta's answer, a few hundred
 *   milliseconds in production.
 */
function jobLanes(concurrency: number): RunnerLane[] {
  return [
    { name: 'inbound', kinds: [INBOUND_BATCH_JOB] },
    { name: 'background', kinds: [PROFILE_FETCH_JOB, MEDIA_DOWNLOAD_JOB, SENDER_CHECK_JOB], max: Math.max(1, Math.floor(concurrency / 8)) },
    { name: 'deliver', kinds: [DELIVER_JOB], max: Math.max(1, Math.floor(concurrency / 2)) },
    { name: 'send', kinds: [SEND_JOB] },
  ];
}

const HOUSEKEEPING_INTERVAL_MS = 10 * 60_000;
const HOUSEKEEPING_FIRST_RUN_MS = 30_000;

// PostgreSQL's default max_connections is 100; several gateway processes must fit under it.
const MAX_POOL = 40;

export async function buildServer(config: Config, options: BuildOptions = {}): Promise<Gateway> {
  const logger = options.logger ?? createLogger(config.logLevel);
  // PostgreSQL: a job may hold one connection for its transaction and need a second one meanwhile
  // (a nested read, an event fan-out), so a pool smaller than twice the jobs in flight can starve
  // itself; the pool is sized for that, within what one server usually allows a process.
  const store = options.store ?? (await openStore({ url: config.databaseUrl, poolSize: Math.min(config.concurrency * 2 + 2, MAX_POOL) }));
  const ownsStore = options.store === undefined;
  await migrate(store);
  const now = options.now ?? Date.now;
  const secrets = SecretBox.fromString(config.secretKey);
  const graph = new GraphClient({
    baseUrl: config.meta.graphUrl,
    version: config.meta.graphVersion,
    appId: config.meta.appId,
    appSecret: config.meta.appSecret,
    timeoutMs: config.meta.timeoutMs,
    // What a send or a subscription follows from is on disk before Meta acts on it.
    ...(store.sync ? { beforeWrite: store.sync } : {}),
  });
  // Sends and event deliveries are claimed fairly between accounts (`src/jobs/claim.ts`): a backlog
  // of one account's does not hold back the others'.
  const queue = new JobQueue(store, { fairKinds: [SEND_JOB, DELIVER_JOB] });
  const ctx: PipelineContext = {
    store,
    queue,
    graph,
    secrets,
    logger,
    urlGuard: new UrlGuard({ allowPrivate: config.allowPrivateUrls }),
    media: new MediaFiles(config.dataDir),
    now,
    publicUrl: config.publicUrl,
    dialogUrl: config.meta.dialogUrl,
  };

  const handlers: Record<string, JobHandler> = {
    ...inboundJobHandlers(ctx),
    ...deliveryJobHandlers(ctx),
    ...outboundJobHandlers(ctx),
    [SENDER_CHECK_JOB]: async (job) => {
      await checkSender(ctx, (job.payload as { sender_id: string }).sender_id);
    },
    ...options.handlers,
  };
  const poolMax = store.pool?.options.max;
  const concurrency = poolMax === undefined ? config.concurrency : Math.max(1, Math.min(config.concurrency, Math.floor((poolMax - 2) / 2)));
  if (concurrency < config.concurrency) logger.info({ concurrency, pool: poolMax }, 'job concurrency limited to what the database pool can serve');
  const runner = new JobRunner({ store, queue, handlers, concurrency, logger, lanes: jobLanes(concurrency) });

  // Webhook deliveries are taken by the server's request listener before Fastify (`pipeline/ingress.ts`).
  const ingress = new MetaIngress({ ctx, appSecret: config.meta.appSecret, verifyToken: config.meta.verifyToken });
  const base = Fastify({
    serverFactory: ingressServerFactory(ingress),
    loggerInstance: logger as FastifyBaseLogger,
    // Per-request info logs would cost more CPU than the ingress write itself; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: requestLoggerFactory as unknown as NonNullable<FastifyServerOptions['childLoggerFactory']>,
    bodyLimit: 1024 * 1024,
    return503OnClosing: true,
    // A request whose body stops arriving is ended after five minutes (Node's own default, which
    // Fastify turns off): long enough for a 25 MB upload on a slow link.
    requestTimeout: 300_000,
    ...frameworkErrorOptions,
    trustProxy: true,
    // Unknown body fields are refused (additionalProperties: false means it), not silently dropped;
    // query strings coerce ("50" -> 50), JSON bodies never do (`validationOptions`).
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true } },
    ...validationOptions,
  });
  installErrorHandling(base);
  installJsonBodyParser(base);
  // The durability barrier before every answer: whatever the request committed (or read that
  // another had committed) is on disk before the caller hears of it. A callback hook: most answers
  // find nothing to wait for, and an async hook would cost every one of them a promise more. A
  // server error promises nothing, so it does not wait (and the answer to a failed flush, 503
  // STORAGE_FAILED, can still be sent).
  const sync = store.sync;
  if (sync) {
    base.addHook('onSend', (_request, reply, payload, done) => {
      if (reply.statusCode >= 500) return done(null, payload);
      sync().then(() => done(null, payload), done);
    });
  }
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  app.addSchema(ErrorSchema);
  app.addSchema(SenderSchema);
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Switchboard API', version: VERSION, description: 'Self-hosted gateway for Messenger and Instagram Direct. Errors: see docs/errors.md.' },
      servers: [{ url: config.publicUrl }],
      components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'An API key (`sk_…`).' } } },
      security: [{ apiKey: [] }],
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  });

  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok', version: VERSION }));
  app.get('/readyz', { schema: { hide: true } }, async (_req, reply) => {
    try {
      await sql`select 1`.execute(store.db);
      // A failed disk flush is final (`STORAGE_FAILED`): not ready until restarted.
      await store.sync?.();
    } catch (err) {
      return reply.status(503).send({ status: 'unavailable', reason: `database: ${(err as Error).message}` });
    }
    return { status: 'ready', database: store.engine, jobs: runner.isRunning() ? 'running' : 'stopped' };
  });

  await registerIngress(base, ingress);

  await app.register(
    async (v1) => {
      v1.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
      await v1.register(async (pub) => {
        await pub.register(formbody);
        await pub.register(senderConnectCallbackRoutes(ctx));
      });
      await v1.register(async (api) => {
        api.addHook('onRequest', bearerAuth(store.db, now));
        await api.register(accountRoutes(ctx));
        await api.register(senderRoutes(ctx));
        await api.register(endpointRoutes(ctx));
        await api.register(eventRoutes(ctx));
        await api.register(mediaRoutes(ctx));
        await api.register(mediaUploadRoutes(ctx));
        await api.register(messageRoutes(ctx));
        await api.register(contactRoutes(ctx));
        await api.register(conversationRoutes(ctx));
        await api.register(actionRoutes(ctx));
      });
    },
    { prefix: '/v1' },
  );

  const checkpointer =
    store.engine === 'sqlite'
      ? startCheckpointer(store, {
          // Holding Kysely's connection pauses every transaction and read (they wait, the loop does not).
          exclusive: (fn) => store.db.connection().execute(() => fn()),
          onError: (err) => logger.warn({ err }, 'WAL checkpoint failed; the next one will try again'),
        })
      : undefined;
  // See `Checkpointer.online`: until the thread is up, nothing else runs here.
  await checkpointer?.online;
  let checkTimer: NodeJS.Timeout | undefined;
  const scheduleChecks = async () => {
    const due = now() - config.senderCheckIntervalMs;
    const senders = await listLiveSenders(store.db);
    const stale = senders.filter((s) => (s.last_checked_at ?? 0) < due);
    if (stale.length === 0) return;
    await queue.transaction(async (trx) => {
      for (const s of stale) await queue.enqueue(trx, { kind: SENDER_CHECK_JOB, key: `check:${s.id}`, payload: { sender_id: s.id }, maxAttempts: 1 });
    });
  };

  // Expired idempotency keys and login states go every ten minutes, and once soon after a start.
  let housekeepingTimer: NodeJS.Timeout | undefined;
  let firstHousekeeping: NodeJS.Timeout | undefined;
  let housekeeping: Promise<void> | undefined;
  const runHousekeeping = () => {
    housekeeping ??= purgeExpired(store.db, now())
      .then((removed) => {
        if (Object.values(removed).some((n) => n > 0)) logger.info({ removed }, 'expired records removed');
      })
      .catch((err: unknown) => logger.error({ err }, 'housekeeping failed; the next run will try again'))
      .finally(() => (housekeeping = undefined));
  };

  let closed = false;
  return {
    app: base,
    ctx,
    runner,
    config,
    async start() {
      if (options.runJobs !== false) await runner.start();
      const url = await app.listen({ port: config.port, host: config.host });
      // Checks are spread over the interval: a tenth of it between scans keeps each sender within 1.1x.
      checkTimer = setInterval(() => {
        scheduleChecks().catch((err: unknown) => logger.error({ err }, 'scheduling sender checks failed'));
      }, Math.max(1000, Math.floor(config.senderCheckIntervalMs / 10)));
      checkTimer.unref();
      firstHousekeeping = setTimeout(runHousekeeping, HOUSEKEEPING_FIRST_RUN_MS);
      firstHousekeeping.unref();
      housekeepingTimer = setInterval(runHousekeeping, HOUSEKEEPING_INTERVAL_MS);
      housekeepingTimer.unref();
      const bound = url.replace('0.0.0.0', '127.0.0.1').replace('[::]', '127.0.0.1');
      if (!config.publicUrlSet) ctx.publicUrl = bound;
      return bound;
    },
    async close() {
      if (closed) return;
      closed = true;
      if (checkTimer) clearInterval(checkTimer);
      if (housekeepingTimer) clearInterval(housekeepingTimer);
      if (firstHousekeeping) clearTimeout(firstHousekeeping);
      // A step that takes long says so, so a stuck shutdown names its culprit in the logs.
      const step = async (what: string, run: () => Promise<unknown>) => {
        const slow = setTimeout(() => logger.warn({ step: what }, 'shutdown step is slow'), 5_000);
        try {
          await run();
        } finally {
          clearTimeout(slow);
        }
      };
      await step('http', () => app.close());
      await step('jobs', () => runner.stop());
      await step('housekeeping', async () => housekeeping);
      await step('checkpointer', async () => checkpointer?.stop());
      await step('graph', () => graph.close());
      if (ownsStore) await step('store', () => store.close());
    },
  };
}
