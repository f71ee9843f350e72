/**
 * `/v1/contacts`: the people who wrote to a sender, each with the window the business has to
 * answer them (open until, HUMAN_AGENT until) and whether they blocked the Page or opted out.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { GatewayError } from '../../domain/errors.js';
import type { PipelineContext } from '../../pipeline/context.js';
import { contactResource } from '../../pipeline/inbound-resources.js';
import { getContact, listContacts } from '../../store/contacts.js';
import type { ContactRow } from '../../store/schema.js';
import { IdParams, NullableString, NullableTimestamp, PageQuery, Timestamp, commonErrors, iso, listOf, page } from './schemas.js';

export const ContactSchema = Type.Object(
  {
    id: Type.String(),
    account_id: Type.String(),
    sender_id: Type.String(),
    channel: Type.Union([Type.Literal('messenger'), Type.Literal('instagram')]),
    psid: Type.Union([Type.String(), Type.Null()], { description: 'PSID (Messenger) or IGSID (Instagram); null while only a checkbox user_ref is known.' }),
    user_ref: NullableString,
    name: NullableString,
    first_name: NullableString,
    last_name: NullableString,
    username: NullableString,
    profile_pic: NullableString,
    locale: NullableString,
    last_inbound_at: NullableTimestamp,
    window: Type.Object({
      open: Type.Boolean({ description: 'Whether a standard reply may be sent now.' }),
      open_until: Type.Union([Timestamp, Type.Null()], { description: 'When the standard window closes (or closed).' }),
      human_agent_until: Type.Union([Timestamp, Type.Null()], { description: 'When the 7-day HUMAN_AGENT window closes (or closed).' }),
      human_agent_allowed: Type.Boolean({ description: 'Whether this sender may use HUMAN_AGENT at all.' }),
    }),
    blocked: Type.Boolean(),
    blocked_at: NullableTimestamp,
    unreachable: Type.Boolean({ description: "Meta said the person isn't available right now; sends wait until they write again." }),
    unreachable_at: NullableTimestamp,
    opted_out: Type.Boolean(),
    opted_out_at: NullableTimestamp,
    created_at: Timestamp,
  },
  { description: 'A person as one sender sees them.' },
);

const ListQuery = Type.Object({ ...PageQuery.properties, sender_id: Type.Optional(Type.String({ maxLength: 64 })) }, { additionalProperties: false });

/** The contact as the API shows it; `humanAgent` per sender id. */
function present(row: ContactRow, now: number, humanAgent: Map<string, boolean>) {
  const base = contactResource(row, now);
  const window = base.window ?? { open: false, open_until: null, human_agent_until: null };
  return {
    ...base,
    window: { ...window, human_agent_allowed: humanAgent.get(row.sender_id) ?? false },
    // A later message from the person lifts a block Meta reported (they can be reached again).
    blocked: row.blocked_at !== null && (row.last_inbound_at === null || row.last_inbound_at <= row.blocked_at),
    blocked_at: base.blocked_at ?? null,
    unreachable: row.unreachable_at !== null && (row.last_inbound_at === null || row.last_inbound_at <= row.unreachable_at),
    unreachable_at: iso(row.unreachable_at),
    opted_out: row.opted_out_at !== null,
    opted_out_at: base.opted_out_at ?? null,
  };
}

async function humanAgentBySender(ctx: PipelineContext, rows: ContactRow[]): Promise<Map<string, boolean>> {
  const ids = [...new Set(rows.map((r) => r.sender_id))];
  const out = new Map<string, boolean>();
  if (ids.length === 0) return out;
  const senders = await ctx.store.db.selectFrom('senders').select(['id', 'human_agent']).where('id', 'in', ids).execute();
  for (const s of senders) out.set(s.id, s.human_agent === 1);
  return out;
}

export function contactRoutes(ctx: PipelineContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/contacts',
      { schema: { tags: ['contacts'], summary: 'List contacts', querystring: ListQuery, response: { 200: listOf(ContactSchema), ...commonErrors } } },
      async (req) => {
        const limit = req.query.limit ?? 50;
        const opts: Parameters<typeof listContacts>[2] = { limit: limit + 1 };
        if (req.query.sender_id !== undefined) opts.senderId = req.query.sender_id;
        if (req.query.after !== undefined) opts.after = req.query.after;
        const rows = await listContacts(ctx.store.db, req.account.id, opts);
        const p = page(rows, limit);
        const humanAgent = await humanAgentBySender(ctx, p.data);
        const now = ctx.now();
        return { data: p.data.map((r) => present(r, now, humanAgent)), next_cursor: p.next_cursor };
      },
    );

    app.get(
      '/contacts/:id',
      {
        schema: {
          tags: ['contacts'],
          summary: 'Get a contact with its messaging window',
          params: IdParams,
          response: { 200: ContactSchema, ...commonErrors },
        },
      },
      async (req) => {
        const row = await getContact(ctx.store.db, req.account.id, req.params.id);
        if (!row) throw new GatewayError('NOT_FOUND', { resource: 'contact' });
        return present(row, ctx.now(), await humanAgentBySender(ctx, [row]));
      },
    );
  };
}
