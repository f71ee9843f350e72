/**
 * `/v1/messages`: send a message (checked against Meta's rules before it is accepted, then sent in
 * conversation order), read one with its status history, list them. Translation only: the rules
 * live in `src/pipeline/outbound*.ts`.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { GatewayError } from '../../domain/errors.js';
import { MESSAGE_STATUSES, MESSAGING_TYPES, NOTIFICATION_TYPES } from '../../domain/glossary.js';
import type { MessageContent } from '../../domain/glossary.js';
import { idFloor } from '../../domain/ids.js';
import type { PipelineContext } from '../../pipeline/context.js';
import { messageResource } from '../../pipeline/inbound-resources.js';
import { statusHistory } from '../../pipeline/message-status.js';
import { acceptOutboundMessage } from '../../pipeline/outbound.js';
import type { OutboundMessageInput } from '../../pipeline/outbound.js';
import { getMessage, listMessages } from '../../store/messages.js';
import type { MessageRow } from '../../store/schema.js';
import { IdParams, NullableString, NullableTimestamp, PageQuery, Timestamp, commonErrors, listOf, page } from './schemas.js';

const Literals = <T extends string>(values: readonly T[], description?: string) => Type.Enum([...values], description === undefined ? {} : { description });

const Recipient = Type.Object(
  {
    contact_id: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'A contact of this sender.' })),
    psid: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'The PSID (Messenger) or IGSID (Instagram) of a person who wrote to this sender.' })),
    user_ref: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'A checkbox opt-in: one message within 24 hours of it.' })),
  },
  { additionalProperties: false, description: 'Exactly one of contact_id, psid or user_ref.' },
);

const Attachment = Type.Object(
  {
    type: Literals(['image', 'audio', 'video', 'file']),
    url: Type.Optional(Type.String({ maxLength: 2048, description: 'A public http(s) URL Meta fetches.' })),
    media_id: Type.Optional(Type.String({ maxLength: 64, description: 'Media uploaded with POST /v1/media.' })),
    attachment_id: Type.Optional(Type.Union([Type.String({ maxLength: 64 }), Type.Integer()], { description: "A reusable Meta attachment id of the sender's Page." })),
    is_reusable: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false, description: 'Exactly one of url, media_id or attachment_id. Each attachment is its own Send API call.' },
);

const SendBody = Type.Object(
  {
    sender_id: Type.String({ minLength: 1, maxLength: 64 }),
    to: Recipient,
    // No schema maximum on text, metadata or the lists: the content checks refuse what is over Meta's
    // limits with CONTENT_TOO_LONG or TOO_MANY_QUICK_REPLIES (422) however far over, and the body limit bounds them.
    text: Type.Optional(Type.String({ description: 'Messenger: fewer than 2000 characters; Instagram: at most 1000 bytes (CONTENT_TOO_LONG beyond).' })),
    attachments: Type.Optional(Type.Array(Attachment, { description: 'Up to 10, each its own Send API call.' })),
    quick_replies: Type.Optional(Type.Array(Type.Record(Type.String(), Type.Unknown()), { description: 'Up to 13 (TOO_MANY_QUICK_REPLIES beyond): {content_type?, title, payload, image_url?}.' })),
    template: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'A button, generic, media or receipt template: {type, …} (Meta field names).' })),
    message: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'A Meta `message` object sent as it is (its own metadata travels inside the gateway’s).' })),
    messaging_type: Type.Optional(Literals(MESSAGING_TYPES, 'RESPONSE unless told; MESSAGE_TAG with a tag.')),
    tag: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'A Meta message tag (HUMAN_AGENT where the sender allows it).' })),
    notification_type: Type.Optional(Literals(NOTIFICATION_TYPES)),
    reply_to: Type.Optional(Type.Union([Type.Object({ mid: Type.String({ minLength: 1, maxLength: 256 }) }, { additionalProperties: false }), Type.String({ minLength: 1, maxLength: 256 })])),
    metadata: Type.Optional(Type.String({ description: 'Returned in echo events; at most 999 characters (CONTENT_TOO_LONG beyond).' })),
    client_ref: Type.Optional(Type.String({ maxLength: 255, description: 'Your reference, stored and shown on the message.' })),
    status_callback: Type.Optional(Type.String({ minLength: 1, maxLength: 2048, description: 'Receives every message.status event of this message.' })),
  },
  { additionalProperties: false },
);

const Failure = Type.Object({
  code: Type.String(),
  message: Type.String(),
  meta_code: Type.Optional(Type.Union([Type.Integer(), Type.Null()])),
  meta_subcode: Type.Optional(Type.Union([Type.Integer(), Type.Null()])),
  meta_message: Type.Optional(NullableString),
  fbtrace_id: Type.Optional(NullableString),
});

const messageFields = {
  id: Type.String(),
  account_id: Type.String(),
  sender_id: Type.String(),
  contact_id: Type.String(),
  conversation_id: NullableString,
  channel: Literals(['messenger', 'instagram']),
  direction: Literals(['inbound', 'outbound']),
  status: Literals(MESSAGE_STATUSES),
  mid: NullableString,
  content: Type.Unsafe<MessageContent>(Type.Object({}, { additionalProperties: true, description: 'Canonical content: text, attachments, quick_replies, template, message, reply_to, … (see docs).' })),
  origin: Type.Optional(Type.String()),
  client_ref: Type.Optional(NullableString),
  metadata: Type.Optional(NullableString),
  messaging_type: Type.Optional(NullableString),
  tag: Type.Optional(NullableString),
  error: Type.Optional(Type.Union([Failure, Type.Null()])),
  created_at: Timestamp,
  updated_at: Type.Optional(Timestamp),
  sent_at: Type.Optional(NullableTimestamp),
  delivered_at: Type.Optional(NullableTimestamp),
  read_at: Type.Optional(NullableTimestamp),
};

export const MessageSchema = Type.Object(messageFields, { description: 'A message, inbound or outbound.' });

const HistoryEntry = Type.Object({ status: Type.String(), at: Timestamp, detail: Type.Unknown() });
const MessageWithHistory = Type.Object({ ...messageFields, status_history: Type.Array(HistoryEntry) });

const ListQuery = Type.Object(
  {
    ...PageQuery.properties,
    sender_id: Type.Optional(Type.String({ maxLength: 64 })),
    contact_id: Type.Optional(Type.String({ maxLength: 64 })),
    conversation_id: Type.Optional(Type.String({ maxLength: 64 })),
    status: Type.Optional(Literals(MESSAGE_STATUSES)),
    direction: Type.Optional(Literals(['inbound', 'outbound'])),
    since: Type.Optional(Type.String({ format: 'date-time', description: 'Created at or after.' })),
    until: Type.Optional(Type.String({ format: 'date-time', description: 'Created at or before.' })),
  },
  { additionalProperties: false },
);

/** Every message's channel is its sender's; one lookup per distinct sender in a page. */
async function channels(ctx: PipelineContext, rows: MessageRow[]): Promise<Map<string, 'messenger' | 'instagram'>> {
  const ids = [...new Set(rows.map((r) => r.sender_id))];
  const out = new Map<string, 'messenger' | 'instagram'>();
  if (ids.length === 0) return out;
  const senders = await ctx.store.db.selectFrom('senders').select(['id', 'channel']).where('id', 'in', ids).execute();
  for (const s of senders) out.set(s.id, s.channel === 'instagram' ? 'instagram' : 'messenger');
  return out;
}

function timeOf(value: string, name: string): number {
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new GatewayError('VALIDATION_FAILED', { field: `query.${name}`, reason: `query.${name} must be an ISO 8601 date-time` });
  return ms;
}

export function messageRoutes(ctx: PipelineContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.post(
      '/messages',
      {
        schema: {
          tags: ['messages'],
          summary: 'Send a message',
          description:
            "Checked against Meta's rules first (window, tags, blocked and opted-out contacts, sender health, content limits): a refusal is a 422 with a stable code. " +
            'Accepted messages are sent in conversation order; every status change is a message.status event (and goes to status_callback). ' +
            'With an Idempotency-Key header, repeating the same body within 24 hours returns the first answer and sends nothing new.',
          headers: Type.Object({ 'idempotency-key': Type.Optional(Type.String({ minLength: 1, maxLength: 255 })) }),
          body: SendBody,
          response: { 202: MessageSchema, ...commonErrors, 409: Type.Ref('Error'), 422: Type.Ref('Error') },
        },
      },
      async (req, reply) => {
        const key = req.headers['idempotency-key'];
        const result = await acceptOutboundMessage(ctx, req.account.id, req.body as OutboundMessageInput, key === undefined ? {} : { idempotencyKey: key });
        if (result.replayed) reply.header('idempotent-replayed', 'true');
        return reply.status(202).send(result.body);
      },
    );

    app.get(
      '/messages/:id',
      {
        schema: {
          tags: ['messages'],
          summary: 'Get a message with its status history',
          params: IdParams,
          response: { 200: MessageWithHistory, ...commonErrors },
        },
      },
      async (req) => {
        const row = await getMessage(ctx.store.db, req.account.id, req.params.id);
        if (!row) throw new GatewayError('NOT_FOUND', { resource: 'message' });
        const channel = (await channels(ctx, [row])).get(row.sender_id) ?? 'messenger';
        return { ...messageResource(row, channel), status_history: statusHistory(row) };
      },
    );

    app.get(
      '/messages',
      {
        schema: {
          tags: ['messages'],
          summary: 'List messages, oldest first, filtered',
          querystring: ListQuery,
          response: { 200: listOf(MessageSchema), ...commonErrors },
        },
      },
      async (req) => {
        const q = req.query;
        const limit = q.limit ?? 50;
        const filter: Parameters<typeof listMessages>[2] = { limit: limit + 1 };
        if (q.sender_id !== undefined) filter.senderId = q.sender_id;
        if (q.contact_id !== undefined) filter.contactId = q.contact_id;
        if (q.conversation_id !== undefined) filter.conversationId = q.conversation_id;
        if (q.status !== undefined) filter.status = q.status;
        if (q.direction !== undefined) filter.direction = q.direction;
        if (q.since !== undefined) filter.fromId = idFloor('msg', timeOf(q.since, 'since'));
        // Ids sort by creation time: "until T" is every id made before T + 1 ms.
        if (q.until !== undefined) filter.beforeId = idFloor('msg', timeOf(q.until, 'until') + 1);
        if (q.after !== undefined) filter.after = q.after;
        const rows = await listMessages(ctx.store.db, req.account.id, filter);
        const p = page(rows, limit);
        const byId = await channels(ctx, p.data);
        return { data: p.data.map((r) => messageResource(r, byId.get(r.sender_id) ?? 'messenger')), next_cursor: p.next_cursor };
      },
    );
  };
}
