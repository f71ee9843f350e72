/**
 * `/v1/conversations`: the thread between one sender and one contact. List and read them (a
 * conversation comes with its messages, oldest first, one page at a time), close one when it is
 * handled and reopen it. A customer's new message reopens a closed conversation by itself.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { GatewayError } from '../../domain/errors.js';
import type { PipelineContext } from '../../pipeline/context.js';
import { conversationResource, messageResource } from '../../pipeline/inbound-resources.js';
import { closeConversation, getConversation, listConversations } from '../../store/conversations.js';
import { listConversationMessages } from '../../store/messages.js';
import type { ConversationRow } from '../../store/schema.js';
import { MessageSchema } from './messages.js';
import { IdParams, NullableString, NullableTimestamp, PageQuery, Timestamp, commonErrors, listOf, page } from './schemas.js';

const conversationFields = {
  id: Type.String(),
  account_id: Type.String(),
  sender_id: Type.String(),
  contact_id: Type.String(),
  status: Type.Union([Type.Literal('open'), Type.Literal('closed')]),
  assigned_to: Type.Optional(NullableString),
  created_at: Timestamp,
  last_message_at: Type.Optional(NullableTimestamp),
  closed_at: NullableTimestamp,
};

export const ConversationSchema = Type.Object(conversationFields, { description: 'The thread between one sender and one contact.' });

const ConversationWithMessages = Type.Object({
  ...conversationFields,
  messages: listOf(MessageSchema),
});

const ListQuery = Type.Object(
  {
    ...PageQuery.properties,
    sender_id: Type.Optional(Type.String({ maxLength: 64 })),
    contact_id: Type.Optional(Type.String({ maxLength: 64 })),
    status: Type.Optional(Type.Union([Type.Literal('open'), Type.Literal('closed')])),
  },
  { additionalProperties: false },
);

const MessagesQuery = Type.Object(
  {
    messages_limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
    messages_after: Type.Optional(Type.String({ maxLength: 64, description: "Cursor: the messages' next_cursor of the previous page." })),
  },
  { additionalProperties: false },
);

function present(row: ConversationRow) {
  return { ...conversationResource(row), closed_at: row.closed_at === null ? null : new Date(row.closed_at).toISOString() };
}

async function requireConversation(ctx: PipelineContext, accountId: string, id: string): Promise<ConversationRow> {
  const row = await getConversation(ctx.store.db, accountId, id);
  if (!row) throw new GatewayError('NOT_FOUND', { resource: 'conversation' });
  return row;
}

async function channelOf(ctx: PipelineContext, senderId: string): Promise<'messenger' | 'instagram'> {
  const sender = await ctx.store.db.selectFrom('senders').select('channel').where('id', '=', senderId).executeTakeFirst();
  return sender?.channel === 'instagram' ? 'instagram' : 'messenger';
}

export function conversationRoutes(ctx: PipelineContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/conversations',
      { schema: { tags: ['conversations'], summary: 'List conversations', querystring: ListQuery, response: { 200: listOf(ConversationSchema), ...commonErrors } } },
      async (req) => {
        const q = req.query;
        const limit = q.limit ?? 50;
        const opts: Parameters<typeof listConversations>[2] = { limit: limit + 1 };
        if (q.sender_id !== undefined) opts.senderId = q.sender_id;
        if (q.contact_id !== undefined) opts.contactId = q.contact_id;
        if (q.status !== undefined) opts.status = q.status;
        if (q.after !== undefined) opts.after = q.after;
        const p = page(await listConversations(ctx.store.db, req.account.id, opts), limit);
        return { data: p.data.map(present), next_cursor: p.next_cursor };
      },
    );

    app.get(
      '/conversations/:id',
      {
        schema: {
          tags: ['conversations'],
          summary: 'Get a conversation with its messages (oldest first, paged)',
          params: IdParams,
          querystring: MessagesQuery,
          response: { 200: ConversationWithMessages, ...commonErrors },
        },
      },
      async (req) => {
        const row = await requireConversation(ctx, req.account.id, req.params.id);
        const limit = req.query.messages_limit ?? 50;
        const opts: Parameters<typeof listConversationMessages>[3] = { limit: limit + 1 };
        if (req.query.messages_after !== undefined) opts.after = req.query.messages_after;
        const p = page(await listConversationMessages(ctx.store.db, req.account.id, row.id, opts), limit);
        const channel = await channelOf(ctx, row.sender_id);
        return { ...present(row), messages: { data: p.data.map((m) => messageResource(m, channel)), next_cursor: p.next_cursor } };
      },
    );

    app.post(
      '/conversations/:id/close',
      { schema: { tags: ['conversations'], summary: 'Close a conversation', params: IdParams, response: { 200: ConversationSchema, ...commonErrors } } },
      async (req) => {
        const row = await requireConversation(ctx, req.account.id, req.params.id);
        if (row.status !== 'closed') await closeConversation(ctx.store.db, req.account.id, row.id, ctx.now());
        return present(await requireConversation(ctx, req.account.id, row.id));
      },
    );

    app.post(
      '/conversations/:id/reopen',
      { schema: { tags: ['conversations'], summary: 'Reopen a closed conversation', params: IdParams, response: { 200: ConversationSchema, ...commonErrors } } },
      async (req) => {
        const row = await requireConversation(ctx, req.account.id, req.params.id);
        if (row.status === 'closed') {
          const now = ctx.now();
          await ctx.store.db
            .updateTable('conversations')
            .set({ status: 'open', closed_at: null, updated_at: now })
            .where('account_id', '=', req.account.id)
            .where('id', '=', row.id)
            .execute();
        }
        return present(await requireConversation(ctx, req.account.id, row.id));
      },
    );
  };
}
