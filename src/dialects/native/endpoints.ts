/**
 * `/v1/endpoints`: where an account's events go. Create, list, read, change, delete; rotate the
 * signing secret (shown at creation and on rotation only); enable again after the gateway disabled
 * an endpoint; replay events since a time. The account's signing secret (for sender callback URLs
 * and per-message status callbacks) is at `/v1/endpoints/signing-secret`.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { GatewayError, isGatewayError } from '../../domain/errors.js';
import { EVENT_TYPES } from '../../domain/glossary.js';
import type { PipelineContext } from '../../pipeline/context.js';
import { accountSigningEndpoint, checkFormatName, createEndpoint, replayEndpoint, rotateSecret } from '../../pipeline/events.js';
import { getEndpoint, listEndpoints, updateEndpoint } from '../../store/endpoints.js';
import type { Endpoint, EndpointChanges } from '../../store/endpoints.js';
import { IdParams, NullableString, NullableTimestamp, PageQuery, Timestamp, commonErrors, iso, listOf, page } from './schemas.js';

export type EndpointRouteDeps = Pick<PipelineContext, 'store' | 'queue' | 'secrets' | 'urlGuard' | 'now'>;

const Method = Type.Union([Type.Literal('POST'), Type.Literal('GET')], { description: 'GET sends the event as query parameters (see docs/api.md).' });
const EventName = Type.Union([...EVENT_TYPES.map((t) => Type.Literal(t)), Type.Literal('*')]);
// Every event type once, plus the wildcard.
const MAX_FILTER = EVENT_TYPES.length + 1;
// Null comes first in the body unions below: Fastify coerces types, and a null tried against a
// string schema first would become "".
const Url = Type.String({ minLength: 1, maxLength: 2048, description: 'http(s) URL; private, loopback and link-local addresses are refused unless the operator allows them.' });

const EndpointSchema = Type.Object(
  {
    id: Type.String(),
    account_id: Type.String(),
    url: Type.String(),
    method: Type.String(),
    fallback_url: NullableString,
    fallback_method: Type.String(),
    events: Type.Union([Type.Array(Type.String()), Type.Null()], { description: 'Event types delivered; null means all.' }),
    format: Type.String(),
    description: NullableString,
    sender_id: Type.Union([Type.String(), Type.Null()], { description: "Set for endpoints made from a sender's callback settings." }),
    role: Type.Union([Type.Literal('account'), Type.Literal('inbound'), Type.Literal('status')], {
      description: "account: made here; inbound / status: mirror a sender's inbound_url / status_url (change those on the sender).",
    }),
    uses_account_secret: Type.Boolean({ description: "Signed with the account's signing secret (GET /v1/endpoints/signing-secret) rather than a secret of its own." }),
    enabled: Type.Boolean(),
    disabled_at: NullableTimestamp,
    disabled_reason: NullableString,
    failing_since: Type.Union([Timestamp, Type.Null()], { description: 'First failure of the current run of failures; cleared by a success.' }),
    created_at: Timestamp,
    updated_at: Timestamp,
  },
  { description: 'An endpoint (events are delivered to url, or to fallback_url when url fails).' },
);

const SecretFields = Type.Object({
  secret: Type.String({ description: 'Standard Webhooks signing secret (whsec_…). Shown now and never again.' }),
  previous_secret_valid_until: Type.Optional(Type.Union([Timestamp, Type.Null()], { description: 'After a rotation the old secret also signs until then.' })),
});
const EndpointWithSecret = Type.Intersect([EndpointSchema, SecretFields]);

const CreateBody = Type.Object(
  {
    url: Url,
    method: Type.Optional(Method),
    fallback_url: Type.Optional(Type.Union([Type.Null(), Url])),
    fallback_method: Type.Optional(Method),
    events: Type.Optional(Type.Union([Type.Null(), Type.Array(EventName, { maxItems: MAX_FILTER, uniqueItems: true })])),
    description: Type.Optional(Type.Union([Type.Null(), Type.String({ maxLength: 500 })])),
    format: Type.Optional(Type.String({ minLength: 1, maxLength: 32, description: 'native (default); the Twilio and Vonage dialects add theirs.' })),
  },
  { additionalProperties: false },
);
const PatchBody = Type.Object(
  {
    url: Type.Optional(Url),
    method: Type.Optional(Method),
    fallback_url: Type.Optional(Type.Union([Type.Null(), Url])),
    fallback_method: Type.Optional(Method),
    events: Type.Optional(Type.Union([Type.Null(), Type.Array(EventName, { maxItems: MAX_FILTER, uniqueItems: true })])),
    description: Type.Optional(Type.Union([Type.Null(), Type.String({ maxLength: 500 })])),
    format: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })),
  },
  { additionalProperties: false },
);

const ReplayBody = Type.Object(
  {
    since: Type.String({ format: 'date-time', description: 'Replay events created at or after this time.' }),
    until: Type.Optional(Type.String({ format: 'date-time', description: 'And before this time (default: now).' })),
    only_failed: Type.Optional(Type.Boolean({ description: 'Only events this endpoint never received (their deliveries died, or it was disabled).' })),
    after: Type.Optional(Type.String({ maxLength: 64, description: 'Continue a replay: the next_after of the previous answer.' })),
  },
  { additionalProperties: false },
);

const SigningSecretSchema = Type.Object({
  secret: Type.String({ description: 'Signs sender callback URLs and per-message status callbacks (Standard Webhooks, whsec_…).' }),
  previous_secret_valid_until: Type.Union([Timestamp, Type.Null()]),
});

export function presentEndpoint(e: Endpoint) {
  return {
    id: e.id,
    account_id: e.account_id,
    url: e.url,
    method: e.method,
    fallback_url: e.fallback_url,
    fallback_method: e.fallback_method,
    events: e.events === null ? null : (JSON.parse(e.events) as string[]),
    format: e.format,
    description: e.description,
    sender_id: e.sender_id,
    role: e.role as 'account' | 'inbound' | 'status',
    uses_account_secret: e.secret_enc === '',
    enabled: e.enabled === 1,
    disabled_at: iso(e.disabled_at),
    disabled_reason: e.disabled_reason,
    failing_since: iso(e.failing_since),
    created_at: new Date(e.created_at).toISOString(),
    updated_at: new Date(e.updated_at).toISOString(),
  };
}

/** Checks a URL with the guard; the error names the field. */
async function checkUrl(deps: EndpointRouteDeps, url: string, field: string): Promise<void> {
  try {
    await deps.urlGuard.check(url);
  } catch (err) {
    if (isGatewayError(err)) throw new GatewayError(err.code, { ...err.details, field: `body.${field}` }, `${field}: ${err.message}`);
    throw err;
  }
}


function parseTime(value: string, field: string): number {
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new GatewayError('VALIDATION_FAILED', { reason: `${field} is not a date-time`, field });
  return ms;
}

async function requireEndpoint(deps: EndpointRouteDeps, accountId: string, id: string): Promise<Endpoint> {
  const e = await getEndpoint(deps.store.db, accountId, id);
  if (!e) throw new GatewayError('NOT_FOUND', { resource: 'endpoint' });
  return e;
}

function refuseSenderManaged(e: Endpoint): void {
  if (e.sender_id !== null) {
    throw new GatewayError('CONFLICT', {
      reason: `this endpoint mirrors the ${e.role}_url of sender ${e.sender_id}; change it with PATCH /v1/senders/${e.sender_id}`,
      sender_id: e.sender_id,
    });
  }
}

export function endpointRoutes(deps: EndpointRouteDeps): FastifyPluginAsyncTypebox {
  return async (app) => {
    const errors = { ...commonErrors, 409: Type.Ref('Error'), 422: Type.Ref('Error') };

    app.post(
      '/endpoints',
      { schema: { tags: ['endpoints'], summary: 'Create an endpoint (returns its signing secret, shown once)', body: CreateBody, response: { 201: EndpointWithSecret, ...errors } } },
      async (req, reply) => {
        const b = req.body;
        checkFormatName(b.format, 'body.format');
        await checkUrl(deps, b.url, 'url');
        if (b.fallback_url) await checkUrl(deps, b.fallback_url, 'fallback_url');
        const { endpoint, secret } = await createEndpoint(deps.store.db, deps.secrets, req.account.id, { ...b, events: b.events ?? null }, deps.now());
        req.log.info({ account: req.account.id, endpoint: endpoint.id }, 'endpoint created');
        return reply.status(201).send({ ...presentEndpoint(endpoint), secret });
      },
    );

    app.get(
      '/endpoints',
      {
        schema: {
          tags: ['endpoints'],
          summary: 'List endpoints',
          querystring: Type.Object({ ...PageQuery.properties, sender_id: Type.Optional(Type.String({ maxLength: 64 })) }, { additionalProperties: false }),
          response: { 200: listOf(EndpointSchema), ...commonErrors },
        },
      },
      async (req) => {
        const limit = req.query.limit ?? 50;
        const rows = await listEndpoints(deps.store.db, req.account.id, { after: req.query.after, limit: limit + 1, ...(req.query.sender_id ? { senderId: req.query.sender_id } : {}) });
        const p = page(rows, limit);
        return { data: p.data.map(presentEndpoint), next_cursor: p.next_cursor };
      },
    );

    app.get(
      '/endpoints/signing-secret',
      { schema: { tags: ['endpoints'], summary: "The account's signing secret for sender callback URLs and per-message status callbacks", response: { 200: SigningSecretSchema, ...commonErrors } } },
      async (req) => {
        const now = deps.now();
        const row = await accountSigningEndpoint(deps.store.db, deps.secrets, req.account.id, now);
        const previousValid = row.previous_secret_until !== null && row.previous_secret_until > now;
        return { secret: deps.secrets.open(row.secret_enc), previous_secret_valid_until: previousValid ? iso(row.previous_secret_until) : null };
      },
    );

    app.post(
      '/endpoints/signing-secret/rotate',
      { schema: { tags: ['endpoints'], summary: "Rotate the account's signing secret (the old one also signs for 24 hours)", response: { 200: SigningSecretSchema, ...commonErrors } } },
      async (req) => {
        const now = deps.now();
        const row = await accountSigningEndpoint(deps.store.db, deps.secrets, req.account.id, now);
        const rotated = await rotateSecret(deps.store.db, deps.secrets, row, now);
        req.log.info({ account: req.account.id }, 'account signing secret rotated');
        return { secret: rotated.secret, previous_secret_valid_until: iso(rotated.previous_valid_until) };
      },
    );

    app.get('/endpoints/:id', { schema: { tags: ['endpoints'], summary: 'Get an endpoint', params: IdParams, response: { 200: EndpointSchema, ...commonErrors } } }, async (req) => {
      return presentEndpoint(await requireEndpoint(deps, req.account.id, req.params.id));
    });

    app.patch(
      '/endpoints/:id',
      { schema: { tags: ['endpoints'], summary: 'Change an endpoint', params: IdParams, body: PatchBody, response: { 200: EndpointSchema, ...errors } } },
      async (req) => {
        const current = await requireEndpoint(deps, req.account.id, req.params.id);
        refuseSenderManaged(current);
        const b = req.body;
        checkFormatName(b.format, 'body.format');
        if (b.url !== undefined) await checkUrl(deps, b.url, 'url');
        if (typeof b.fallback_url === 'string') await checkUrl(deps, b.fallback_url, 'fallback_url');
        const changes: EndpointChanges = { updated_at: deps.now() };
        if (b.url !== undefined) changes.url = b.url;
        if (b.method !== undefined) changes.method = b.method;
        if (b.fallback_url !== undefined) changes.fallback_url = b.fallback_url;
        if (b.fallback_method !== undefined) changes.fallback_method = b.fallback_method;
        if (b.events !== undefined) changes.events = b.events && b.events.length > 0 ? JSON.stringify(b.events) : null;
        if (b.description !== undefined) changes.description = b.description;
        if (b.format !== undefined) changes.format = b.format;
        await updateEndpoint(deps.store.db, req.account.id, current.id, changes);
        return presentEndpoint(await requireEndpoint(deps, req.account.id, current.id));
      },
    );

    app.delete(
      '/endpoints/:id',
      { schema: { tags: ['endpoints'], summary: 'Delete an endpoint (its delivery history stays readable through its events)', params: IdParams, response: { 204: Type.Null(), ...errors } } },
      async (req, reply) => {
        const current = await requireEndpoint(deps, req.account.id, req.params.id);
        refuseSenderManaged(current);
        const now = deps.now();
        await updateEndpoint(deps.store.db, req.account.id, current.id, { deleted_at: now, enabled: 0, updated_at: now });
        req.log.info({ account: req.account.id, endpoint: current.id }, 'endpoint deleted');
        return reply.status(204).send(null);
      },
    );

    app.post(
      '/endpoints/:id/rotate-secret',
      { schema: { tags: ['endpoints'], summary: 'Give the endpoint a new signing secret (the old one also signs for 24 hours)', params: IdParams, response: { 200: EndpointWithSecret, ...commonErrors } } },
      async (req) => {
        const current = await requireEndpoint(deps, req.account.id, req.params.id);
        const rotated = await rotateSecret(deps.store.db, deps.secrets, current, deps.now());
        req.log.info({ account: req.account.id, endpoint: current.id }, 'endpoint secret rotated');
        const updated = await requireEndpoint(deps, req.account.id, current.id);
        return { ...presentEndpoint(updated), secret: rotated.secret, previous_secret_valid_until: iso(rotated.previous_valid_until) };
      },
    );

    app.post(
      '/endpoints/:id/enable',
      { schema: { tags: ['endpoints'], summary: 'Enable an endpoint again (after the gateway disabled it)', params: IdParams, response: { 200: EndpointSchema, ...commonErrors } } },
      async (req) => {
        const current = await requireEndpoint(deps, req.account.id, req.params.id);
        const now = deps.now();
        await updateEndpoint(deps.store.db, req.account.id, current.id, { enabled: 1, disabled_at: null, disabled_reason: null, failing_since: null, updated_at: now });
        req.log.info({ account: req.account.id, endpoint: current.id }, 'endpoint enabled');
        return presentEndpoint(await requireEndpoint(deps, req.account.id, current.id));
      },
    );

    app.post(
      '/endpoints/:id/replay',
      {
        schema: {
          tags: ['endpoints'],
          summary: 'Send the events since a time to this endpoint again',
          params: IdParams,
          body: ReplayBody,
          response: {
            202: Type.Object({
              replayed: Type.Integer({ description: 'Events given a new delivery.' }),
              next_after: Type.Union([Type.String(), Type.Null()], { description: 'Set when more events remain: send the same request with `after` set to it.' }),
            }),
            ...errors,
          },
        },
      },
      async (req, reply) => {
        const now = deps.now();
        const since = parseTime(req.body.since, 'body.since');
        const until = req.body.until === undefined ? now + 1 : parseTime(req.body.until, 'body.until');
        if (until <= since) throw new GatewayError('VALIDATION_FAILED', { reason: 'body.until must be after body.since', field: 'body.until' });
        const result = await replayEndpoint(deps.queue, req.account.id, req.params.id, { since, until, onlyFailed: req.body.only_failed === true, after: req.body.after, now });
        req.log.info({ account: req.account.id, endpoint: req.params.id, replayed: result.replayed }, 'endpoint replay');
        return reply.status(202).send(result);
      },
    );
  };
}
