/**
 * `/v1/events`: the account's events, each with its deliveries and every attempt, and
 * redelivery of one event.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { GatewayError } from '../../domain/errors.js';
import { EVENT_TYPES } from '../../domain/glossary.js';
import type { PipelineContext } from '../../pipeline/context.js';
import { redeliverEvent } from '../../pipeline/events.js';
import { getEvent, listEvents } from '../../store/events.js';
import { listAttemptsForDeliveries, listDeliveriesForEvent } from '../../store/deliveries.js';
import type { DeliveryAttemptRow } from '../../store/deliveries.js';
import type { DeliveryRow, EventRow } from '../../store/schema.js';
import { IdParams, NullableString, NullableTimestamp, PageQuery, Timestamp, commonErrors, iso, listOf, page } from './schemas.js';

export type EventRouteDeps = Pick<PipelineContext, 'store' | 'queue' | 'now'>;

const EventSchema = Type.Object({
  id: Type.String({ description: 'Also the webhook-id header of its deliveries: receivers dedupe on it.' }),
  type: Type.String(),
  created_at: Timestamp,
  account_id: Type.String(),
  sender_id: NullableString,
  conversation_id: NullableString,
  message_id: NullableString,
  data: Type.Unknown({ description: 'What endpoints receive as data.' }),
});

const AttemptSchema = Type.Object({
  id: Type.Integer(),
  url: Type.String(),
  target: Type.Union([Type.Literal('primary'), Type.Literal('fallback'), Type.Literal('callback')]),
  status_code: Type.Union([Type.Integer(), Type.Null()]),
  latency_ms: Type.Integer(),
  response_excerpt: NullableString,
  error: NullableString,
  at: Timestamp,
});

const DeliverySchema = Type.Object({
  id: Type.String(),
  endpoint_id: Type.String(),
  url: Type.Union([Type.String(), Type.Null()], { description: "A per-message callback's URL; null for an endpoint's delivery." }),
  status: Type.Union([Type.Literal('pending'), Type.Literal('delivered'), Type.Literal('failed'), Type.Literal('dead')], {
    description: 'failed: retrying at next_attempt_at; dead: no more tries (replay to send again).',
  }),
  attempts: Type.Integer(),
  last_status_code: Type.Union([Type.Integer(), Type.Null()]),
  last_error: NullableString,
  next_attempt_at: NullableTimestamp,
  delivered_at: NullableTimestamp,
  created_at: Timestamp,
  attempt_log: Type.Array(AttemptSchema),
});

const EventWithDeliveries = Type.Intersect([EventSchema, Type.Object({ deliveries: Type.Array(DeliverySchema) })]);

const EventQuery = Type.Object(
  {
    ...PageQuery.properties,
    type: Type.Optional(Type.Union(EVENT_TYPES.map((t) => Type.Literal(t)))),
    since: Type.Optional(Type.String({ format: 'date-time', description: 'Events created at or after this time.' })),
    until: Type.Optional(Type.String({ format: 'date-time', description: 'Events created before this time.' })),
    sender_id: Type.Optional(Type.String({ maxLength: 64 })),
    conversation_id: Type.Optional(Type.String({ maxLength: 64 })),
  },
  { additionalProperties: false },
);

function presentEvent(e: EventRow) {
  return {
    id: e.id,
    type: e.type,
    created_at: new Date(e.created_at).toISOString(),
    account_id: e.account_id,
    sender_id: e.sender_id,
    conversation_id: e.conversation_id,
    message_id: e.message_id,
    data: JSON.parse(e.payload) as unknown,
  };
}

function presentDelivery(d: DeliveryRow, attempts: DeliveryAttemptRow[]) {
  return {
    id: d.id,
    endpoint_id: d.endpoint_id,
    url: d.url,
    status: d.status as 'pending' | 'delivered' | 'failed' | 'dead',
    attempts: d.attempts,
    last_status_code: d.last_status_code,
    last_error: d.last_error,
    next_attempt_at: d.status === 'failed' || d.status === 'pending' ? iso(d.next_attempt_at) : null,
    delivered_at: iso(d.delivered_at),
    created_at: new Date(d.created_at).toISOString(),
    attempt_log: attempts.map((a) => ({
      id: Number(a.id),
      url: a.url,
      target: a.target as 'primary' | 'fallback' | 'callback',
      status_code: a.status_code,
      latency_ms: a.latency_ms,
      response_excerpt: a.response_excerpt,
      error: a.error,
      at: new Date(a.at).toISOString(),
    })),
  };
}

function parseTime(value: string | undefined, field: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new GatewayError('VALIDATION_FAILED', { reason: `${field} is not a date-time`, field });
  return ms;
}

export function eventRoutes(deps: EventRouteDeps): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get('/events', { schema: { tags: ['events'], summary: 'List events, oldest first', querystring: EventQuery, response: { 200: listOf(EventSchema), ...commonErrors } } }, async (req) => {
      const q = req.query;
      const limit = q.limit ?? 50;
      const since = parseTime(q.since, 'querystring.since');
      const until = parseTime(q.until, 'querystring.until');
      const rows = await listEvents(deps.store.db, req.account.id, {
        limit: limit + 1,
        ...(q.after ? { after: q.after } : {}),
        ...(q.type ? { type: q.type } : {}),
        ...(q.sender_id ? { senderId: q.sender_id } : {}),
        ...(q.conversation_id ? { conversationId: q.conversation_id } : {}),
        ...(since !== undefined ? { since } : {}),
        ...(until !== undefined ? { until } : {}),
      });
      const p = page(rows, limit);
      return { data: p.data.map(presentEvent), next_cursor: p.next_cursor };
    });

    app.get(
      '/events/:id',
      { schema: { tags: ['events'], summary: 'Get an event with its deliveries and every attempt', params: IdParams, response: { 200: EventWithDeliveries, ...commonErrors } } },
      async (req) => {
        const event = await getEvent(deps.store.db, req.account.id, req.params.id);
        if (!event) throw new GatewayError('NOT_FOUND', { resource: 'event' });
        const deliveries = await listDeliveriesForEvent(deps.store.db, req.account.id, event.id);
        const attempts = await listAttemptsForDeliveries(deps.store.db, req.account.id, deliveries.map((d) => d.id));
        const byDelivery = new Map<string, DeliveryAttemptRow[]>();
        for (const a of attempts) byDelivery.set(a.delivery_id, [...(byDelivery.get(a.delivery_id) ?? []), a]);
        return { ...presentEvent(event), deliveries: deliveries.map((d) => presentDelivery(d, byDelivery.get(d.id) ?? [])) };
      },
    );

    app.post(
      '/events/:id/redeliver',
      {
        schema: {
          tags: ['events'],
          summary: 'Deliver an event again: to one endpoint, or to every endpoint and callback it went to',
          params: IdParams,
          querystring: Type.Object({ endpoint_id: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'Only to this endpoint (it need not have had the event before).' })) }, { additionalProperties: false }),
          response: { 202: Type.Object({ event_id: Type.String(), delivery_ids: Type.Array(Type.String()) }), ...commonErrors, 409: Type.Ref('Error') },
        },
      },
      async (req, reply) => {
        const endpointId = req.query.endpoint_id;
        const ids = await deps.queue.transaction((trx) =>
          redeliverEvent(trx, deps.queue, req.account.id, req.params.id, { ...(endpointId !== undefined ? { endpointId } : {}), now: deps.now() }),
        );
        req.log.info({ account: req.account.id, event: req.params.id, deliveries: ids.length }, 'event redelivered');
        return reply.status(202).send({ event_id: req.params.id, delivery_ids: ids });
      },
    );
  };
}
