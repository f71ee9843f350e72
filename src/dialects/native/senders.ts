/** `/v1/senders`: connect Pages and Instagram accounts (pasted token or Facebook Login for Business), settings, health. */
import { randomBytes } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { GatewayError } from '../../domain/errors.js';
import { KEYWORD_LANGUAGES, isKeywordLanguage } from '../../domain/opt-out.js';
import type { PipelineContext } from '../../pipeline/context.js';
import { checkSender, connectSender, disconnectSender, presentSender, reconnectSender } from '../../pipeline/senders.js';
import { checkFormatName, syncSenderEndpoints } from '../../pipeline/events.js';
import { senderSettings } from '../../pipeline/outbound-policy.js';
import { getSender, listSenders } from '../../store/senders.js';
import { listUnroutable } from '../../store/unroutable.js';
import type { SenderRow, SenderUpdate } from '../../store/schema.js';
import { IdParams, NullableString, NullableTimestamp, PageQuery, Timestamp, commonErrors, listOf, page } from './schemas.js';

const Method = Type.Union([Type.Literal('POST'), Type.Literal('GET')]);
// Checked against the registered delivery formats (`checkFormatName`): a name no dialect provides
// would leave every event of the sender undeliverable.
const Format = Type.String({ minLength: 1, maxLength: 32, description: 'The format of the callbacks: native (the Twilio and Vonage dialects add theirs)' });
const Channel = Type.Union([Type.Literal('messenger'), Type.Literal('instagram')]);

export const SenderSchema = Type.Object(
  {
    id: Type.String(),
    account_id: Type.String(),
    channel: Channel,
    meta_id: Type.String({ description: 'Page id or Instagram professional account id' }),
    page_id: Type.String({ description: 'The Page through which the sender is reached' }),
    name: NullableString,
    username: NullableString,
    health: Type.Union([Type.Literal('active'), Type.Literal('degraded'), Type.Literal('reauth_required'), Type.Literal('disconnected')]),
    health_reason: NullableString,
    health_changed_at: Timestamp,
    inbound_url: NullableString,
    inbound_method: Type.String(),
    fallback_url: NullableString,
    fallback_method: Type.String(),
    status_url: NullableString,
    status_method: Type.String(),
    format: Type.String(),
    human_agent: Type.Boolean({ description: 'Whether the HUMAN_AGENT tag may be used (needs the permission from Meta)' }),
    settings: Type.Record(Type.String(), Type.Unknown()),
    last_checked_at: NullableTimestamp,
    created_at: Timestamp,
    updated_at: Timestamp,
  },
  { $id: 'Sender' },
);

const OptOutSettings = Type.Object(
  {
    enabled: Type.Optional(Type.Boolean({ description: 'false turns stop and start words off for this sender' })),
    languages: Type.Optional(Type.Array(Type.String({ minLength: 2, maxLength: 8 }), { maxItems: 20 })),
    stop_words: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 40 }), { maxItems: 50 })),
    start_words: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 40 }), { maxItems: 50 })),
    confirm_text: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 640 }), Type.Null()])),
  },
  { additionalProperties: false },
);

// Meta's per-Page Send API limits, lowered (or raised, where Meta granted more) per sender; see `pipeline/pacing.ts`.
const PacingSettings = Type.Object(
  {
    text_per_second: Type.Optional(Type.Number({ minimum: 0.1, maximum: 1000, description: 'Send API calls a second for text, links, reactions and stickers (Meta: 300)' })),
    audio_video_per_second: Type.Optional(Type.Number({ minimum: 0.1, maximum: 1000, description: 'Send API calls a second for audio and video (Meta: 10)' })),
  },
  { additionalProperties: false },
);

// Meta's tokens are visible ASCII; anything else (spaces, control characters) is a paste gone wrong.
const PageToken = Type.String({ minLength: 10, maxLength: 1000, pattern: '^[\\x21-\\x7e]+$', description: 'A Page access token' });

// Null first: with type coercion on, a union that lists the string first turns null into "".
const UrlOrNull = Type.Union([Type.Null(), Type.String({ minLength: 1, maxLength: 2048 })]);

const SenderPatch = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    inbound_url: Type.Optional(UrlOrNull),
    inbound_method: Type.Optional(Method),
    fallback_url: Type.Optional(UrlOrNull),
    fallback_method: Type.Optional(Method),
    status_url: Type.Optional(UrlOrNull),
    status_method: Type.Optional(Method),
    format: Type.Optional(Format),
    human_agent: Type.Optional(Type.Boolean()),
    settings: Type.Optional(
      Type.Object(
        {
          opt_out: Type.Optional(OptOutSettings),
          pacing: Type.Optional(PacingSettings),
          paused: Type.Optional(Type.Boolean({ description: 'true stops sending from this sender (SENDER_PAUSED); false resumes it after a policy block from Meta' })),
        },
        { additionalProperties: true },
      ),
    ),
  },
  { additionalProperties: false },
);

// Permissions a Page connection asks for (PLATFORM.md); Instagram adds its two.
const LOGIN_SCOPES = ['pages_messaging', 'pages_manage_metadata', 'pages_show_list', 'pages_read_engagement', 'business_management', 'instagram_basic', 'instagram_manage_messages'];
// A person finishes the Login dialog within minutes; a state older than this is refused.
const OAUTH_STATE_TTL_MS = 15 * 60_000;

interface OfferedPage {
  id: string;
  name: string | null;
  token_enc: string;
  instagram: { id: string; username: string | null } | null;
}

/**
 * A settings patch over the stored settings: keys given replace theirs, and `opt_out` merges one
 * level deeper (changing its words keeps its languages). Opt-out languages must be ones the gateway
 * has default words for: an unknown one would silently leave customers with no stop word. Resuming
 * (`paused: false`) drops the reason a pause was recorded with; pausing records who did it.
 */
function mergeSettings(current: Record<string, unknown>, patch: Record<string, unknown>, now: number): Record<string, unknown> {
  const next: Record<string, unknown> = { ...current, ...patch };
  const optOut = patch['opt_out'] as Record<string, unknown> | undefined;
  if (optOut !== undefined) {
    const before = current['opt_out'];
    next['opt_out'] = { ...(typeof before === 'object' && before !== null && !Array.isArray(before) ? before : {}), ...optOut };
    const languages = optOut['languages'] as string[] | undefined;
    const unknown = (languages ?? []).filter((l) => !isKeywordLanguage(l));
    if (unknown.length > 0) {
      throw new GatewayError('VALIDATION_FAILED', {
        reason: `body.settings.opt_out.languages: no default stop words for ${unknown.join(', ')}; supported are ${KEYWORD_LANGUAGES.join(', ')} (add your own words with stop_words and start_words)`,
        field: 'body.settings.opt_out.languages',
      });
    }
  }
  if (patch['paused'] === false && current['paused'] === true) {
    delete next['paused_reason'];
    delete next['paused_at'];
  } else if (patch['paused'] === true && current['paused'] !== true) {
    next['paused_reason'] = 'paused through the API';
    next['paused_at'] = new Date(now).toISOString();
  }
  return next;
}

/** Where a person's browser may be sent after Facebook Login: a web page, never `javascript:` or `data:`. */
function isWebUrl(value: string): boolean {
  try {
    const u = new URL(value);
    return u.protocol === 'https:' || u.protocol === 'http:';
  } catch {
    return false;
  }
}

async function requireSender(ctx: PipelineContext, accountId: string, id: string): Promise<SenderRow> {
  const s = await getSender(ctx.store.db, accountId, id);
  if (!s) throw new GatewayError('NOT_FOUND', { resource: 'sender' });
  return s;
}

export function senderRoutes(ctx: PipelineContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.post(
      '/senders',
      {
        schema: {
          tags: ['senders'],
          summary: 'Connect a Page (or its linked Instagram account) with a pasted Page access token',
          body: Type.Object(
            {
              access_token: PageToken,
              page_id: Type.Optional(Type.String({ pattern: '^[0-9]{1,32}$' })),
              channel: Type.Optional(Channel),
              name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
            },
            { additionalProperties: false },
          ),
          response: { 201: Type.Ref('Sender'), ...commonErrors, 409: Type.Ref('Error'), 422: Type.Ref('Error'), 502: Type.Ref('Error') },
        },
      },
      async (req, reply) => {
        const row = await connectSender(ctx, req.account.id, req.body);
        return reply.status(201).send(presentSender(row));
      },
    );

    app.get('/senders', { schema: { tags: ['senders'], summary: 'List senders', querystring: Type.Object({ ...PageQuery.properties, include_disconnected: Type.Optional(Type.Boolean()) }, { additionalProperties: false }), response: { 200: listOf(Type.Ref('Sender')), ...commonErrors } } }, async (req) => {
      const limit = req.query.limit ?? 50;
      const rows = await listSenders(ctx.store.db, req.account.id, { after: req.query.after, limit: limit + 1, includeDisconnected: req.query.include_disconnected ?? false });
      const p = page(rows, limit);
      return { data: p.data.map(presentSender), next_cursor: p.next_cursor };
    });

    app.get('/senders/:id', { schema: { tags: ['senders'], summary: 'Get a sender', params: IdParams, response: { 200: Type.Ref('Sender'), ...commonErrors } } }, async (req) => {
      return presentSender(await requireSender(ctx, req.account.id, req.params.id));
    });

    app.patch(
      '/senders/:id',
      { schema: { tags: ['senders'], summary: 'Change callback URLs, their format, HUMAN_AGENT use and opt-out words', params: IdParams, body: SenderPatch, response: { 200: Type.Ref('Sender'), ...commonErrors, 422: Type.Ref('Error') } } },
      async (req) => {
        const sender = await requireSender(ctx, req.account.id, req.params.id);
        if (sender.health === 'disconnected') throw new GatewayError('SENDER_DISCONNECTED');
        const b = req.body;
        for (const field of ['inbound_url', 'fallback_url', 'status_url'] as const) {
          const url = b[field];
          if (typeof url === 'string') {
            try {
              await ctx.urlGuard.check(url);
            } catch (err) {
              if (err instanceof GatewayError) throw new GatewayError(err.code, { ...err.details, field: `body.${field}` }, `${field}: ${err.message}`);
              throw err;
            }
          }
        }
        checkFormatName(b.format, 'body.format');
        const changes: SenderUpdate = { updated_at: ctx.now() };
        if (b.name !== undefined) changes.name = b.name;
        if (b.inbound_url !== undefined) changes.inbound_url = b.inbound_url;
        if (b.inbound_method !== undefined) changes.inbound_method = b.inbound_method;
        if (b.fallback_url !== undefined) changes.fallback_url = b.fallback_url;
        if (b.fallback_method !== undefined) changes.fallback_method = b.fallback_method;
        if (b.status_url !== undefined) changes.status_url = b.status_url;
        if (b.status_method !== undefined) changes.status_method = b.status_method;
        if (b.format !== undefined) changes.format = b.format;
        if (b.human_agent !== undefined) changes.human_agent = b.human_agent ? 1 : 0;
        if (b.settings !== undefined) changes.settings = JSON.stringify(mergeSettings(senderSettings(sender), b.settings, ctx.now()));
        await ctx.queue.transaction(async (trx) => {
          await trx.updateTable('senders').set(changes).where('account_id', '=', req.account.id).where('id', '=', sender.id).execute();
          const updated = await trx.selectFrom('senders').selectAll().where('id', '=', sender.id).executeTakeFirstOrThrow();
          // Setting a callback URL again (the same or another) is how a business says its server works again.
          const reenable = new Set<'inbound' | 'status'>();
          if (b.inbound_url !== undefined || b.fallback_url !== undefined) reenable.add('inbound');
          if (b.status_url !== undefined) reenable.add('status');
          await syncSenderEndpoints(trx, ctx.secrets, updated, ctx.now(), reenable);
        });
        return presentSender(await requireSender(ctx, req.account.id, sender.id));
      },
    );

    app.delete('/senders/:id', { schema: { tags: ['senders'], summary: 'Disconnect a sender (unsubscribes the app from the Page)', params: IdParams, response: { 200: Type.Ref('Sender'), ...commonErrors } } }, async (req) => {
      const row = await disconnectSender(ctx, req.account.id, req.params.id);
      await ctx.queue.transaction(async (trx) => syncSenderEndpoints(trx, ctx.secrets, row));
      return presentSender(row);
    });

    app.post(
      '/senders/:id/reconnect',
      {
        schema: {
          tags: ['senders'],
          summary: 'Give a sender a new Page access token (after reauth_required)',
          params: IdParams,
          body: Type.Object({ access_token: PageToken }, { additionalProperties: false }),
          response: { 200: Type.Ref('Sender'), ...commonErrors, 422: Type.Ref('Error'), 502: Type.Ref('Error') },
        },
      },
      async (req) => presentSender(await reconnectSender(ctx, req.account.id, req.params.id, req.body.access_token)),
    );

    app.post('/senders/:id/check', { schema: { tags: ['senders'], summary: "Check the sender's token and subscription now", params: IdParams, response: { 200: Type.Ref('Sender'), ...commonErrors } } }, async (req) => {
      const sender = await requireSender(ctx, req.account.id, req.params.id);
      const checked = await checkSender(ctx, sender.id);
      return presentSender(checked ?? sender);
    });

    app.get(
      '/senders/:id/unroutable',
      {
        schema: {
          tags: ['senders'],
          summary: "Events Meta sent for this sender's Page or Instagram account while no account owned it",
          params: IdParams,
          querystring: Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })), after: Type.Optional(Type.Integer({ minimum: 0 })) }, { additionalProperties: false }),
          response: {
            200: Type.Object({
              data: Type.Array(Type.Object({ id: Type.Integer(), object: Type.String(), entry_id: Type.String(), item: Type.Unknown(), received_at: Timestamp })),
              next_cursor: Type.Union([Type.Null(), Type.Integer()]),
            }),
            ...commonErrors,
          },
        },
      },
      async (req) => {
        const sender = await requireSender(ctx, req.account.id, req.params.id);
        const limit = req.query.limit ?? 50;
        const rows = await listUnroutable(ctx.store.db, { entryId: sender.meta_id, after: req.query.after, limit: limit + 1 });
        const data = rows.slice(0, limit).map((r) => ({ id: r.id, object: r.object, entry_id: r.entry_id, item: JSON.parse(r.item) as unknown, received_at: new Date(r.received_at).toISOString() }));
        return { data, next_cursor: rows.length > limit ? (data[data.length - 1]?.id ?? null) : null };
      },
    );

    app.post(
      '/senders/connect',
      {
        schema: {
          tags: ['senders'],
          summary: 'Start Facebook Login for Business: returns the URL to open in a browser',
          body: Type.Optional(Type.Object({ return_url: Type.Optional(Type.String({ maxLength: 2048 })) }, { additionalProperties: false })),
          response: { 201: Type.Object({ url: Type.String(), state: Type.String(), expires_at: Timestamp }), ...commonErrors },
        },
      },
      async (req, reply) => {
        const returnUrl = req.body?.return_url;
        if (returnUrl !== undefined && !isWebUrl(returnUrl)) {
          throw new GatewayError('VALIDATION_FAILED', { reason: 'body.return_url must be an http or https URL', field: 'body.return_url' });
        }
        const state = randomBytes(24).toString('base64url');
        const now = ctx.now();
        await ctx.store.db
          .insertInto('oauth_states')
          .values({ state, account_id: req.account.id, data: JSON.stringify({ return_url: req.body?.return_url ?? null }), created_at: now, expires_at: now + OAUTH_STATE_TTL_MS })
          .execute();
        const url = ctx.graph.oauthDialogUrl({ redirectUri: `${ctx.publicUrl}/v1/senders/connect/callback`, state, scopes: LOGIN_SCOPES, dialogBaseUrl: ctx.dialogUrl });
        return reply.status(201).send({ url, state, expires_at: new Date(now + OAUTH_STATE_TTL_MS).toISOString() });
      },
    );
  };
}

/**
 * The browser side of Facebook Login: Meta redirects the person here (no API key: the `state`
 * issued to an authenticated account is the capability, single-use and short-lived).
 */
export function senderConnectCallbackRoutes(ctx: PipelineContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    const loadState = async (state: string) => {
      const row = await ctx.store.db.selectFrom('oauth_states').selectAll().where('state', '=', state).executeTakeFirst();
      if (!row || row.expires_at < ctx.now()) throw new GatewayError('NOT_FOUND', { resource: 'login session' }, 'This login session is unknown or has expired; start again with POST /v1/senders/connect.');
      return { row, data: JSON.parse(row.data) as { return_url: string | null; pages?: OfferedPage[] } };
    };

    app.get(
      '/senders/connect/callback',
      {
        schema: {
          tags: ['senders'],
          summary: 'Facebook Login redirect target: lists the Pages the person granted, to pick from',
          querystring: Type.Object({ state: Type.String({ minLength: 8, maxLength: 200 }), code: Type.Optional(Type.String({ maxLength: 2000 })), error: Type.Optional(Type.String()), error_description: Type.Optional(Type.String()) }),
        },
      },
      async (req, reply) => {
        const { row, data } = await loadState(req.query.state);
        if (req.query.error || !req.query.code) {
          throw new GatewayError('VALIDATION_FAILED', { field: 'query.code', reason: req.query.error_description ?? req.query.error ?? 'the login was not approved' });
        }
        let pages: OfferedPage[];
        // A refreshed page must not spend the code twice (Meta's codes are single use): show what was offered.
        if (data.pages) {
          const offered = data.pages.map((p) => ({ id: p.id, name: p.name, instagram: p.instagram }));
          if (!String(req.headers.accept ?? '').includes('text/html')) return { state: row.state, pages: offered };
          return reply.type('text/html; charset=utf-8').send(pickPage(row.state, offered));
        }
        try {
          const short = await ctx.graph.exchangeCode(req.query.code, `${ctx.publicUrl}/v1/senders/connect/callback`);
          const long = await ctx.graph.exchangeLongLived(short.access_token);
          const listed = await ctx.graph.listPages(long.access_token);
          // A Page listed without a token is one the person may see but not message for.
          const usable = listed.filter((p): p is typeof p & { access_token: string } => typeof p.access_token === 'string');
          pages = await Promise.all(
            usable.map(async (p) => {
              const info = (await ctx.graph.getPage(p.id, p.access_token, ['id', 'name', 'instagram_business_account'])) as unknown as {
                instagram_business_account?: { id: string; username?: string };
              };
              const ig = info.instagram_business_account;
              return { id: p.id, name: p.name ?? null, token_enc: ctx.secrets.seal(p.access_token), instagram: ig?.id ? { id: ig.id, username: ig.username ?? null } : null };
            }),
          );
        } catch (err) {
          if (err instanceof GatewayError) throw err;
          throw new GatewayError('UPSTREAM_UNAVAILABLE', { step: 'login code exchange', reason: (err as Error).message }, `Meta refused the login code exchange: ${(err as Error).message}`);
        }
        await ctx.store.db.updateTable('oauth_states').set({ data: JSON.stringify({ ...data, pages }) }).where('state', '=', row.state).execute();
        const offered = pages.map((p) => ({ id: p.id, name: p.name, instagram: p.instagram }));
        if (!String(req.headers.accept ?? '').includes('text/html')) return { state: row.state, pages: offered };
        return reply.type('text/html; charset=utf-8').send(pickPage(row.state, offered));
      },
    );

    app.post(
      '/senders/connect/callback',
      {
        schema: {
          tags: ['senders'],
          summary: 'Connect the Pages and Instagram accounts picked after Facebook Login',
          body: Type.Object({
            state: Type.String({ minLength: 8, maxLength: 200 }),
            pages: Type.Optional(Type.Union([Type.Array(Type.String()), Type.String()])),
            instagram: Type.Optional(Type.Union([Type.Array(Type.String()), Type.String()])),
          }),
        },
      },
      async (req, reply) => {
        const { row, data } = await loadState(req.body.state);
        if (!data.pages) throw new GatewayError('CONFLICT', { reason: 'the login has not been completed for this session' });
        const list = (v: string | string[] | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
        const wantPages = new Set(list(req.body.pages));
        const wantIg = new Set(list(req.body.instagram));
        const connected: ReturnType<typeof presentSender>[] = [];
        const failed: { meta_id: string; channel: string; code: string; message: string }[] = [];
        for (const p of data.pages) {
          const token = ctx.secrets.open(p.token_enc);
          const attempts: { channel: 'messenger' | 'instagram'; metaId: string }[] = [];
          if (wantPages.has(p.id)) attempts.push({ channel: 'messenger', metaId: p.id });
          if (p.instagram && wantIg.has(p.instagram.id)) attempts.push({ channel: 'instagram', metaId: p.instagram.id });
          for (const a of attempts) {
            try {
              connected.push(presentSender(await connectSender(ctx, row.account_id, { access_token: token, page_id: p.id, channel: a.channel })));
            } catch (err) {
              const e = err instanceof GatewayError ? err : new GatewayError('INTERNAL');
              failed.push({ meta_id: a.metaId, channel: a.channel, code: e.code, message: e.message });
            }
          }
        }
        // Single use: the Page tokens it holds are not kept once the choice is made.
        await ctx.store.db.deleteFrom('oauth_states').where('state', '=', row.state).execute();
        if (data.return_url && isWebUrl(data.return_url) && String(req.headers.accept ?? '').includes('text/html')) {
          const u = new URL(data.return_url);
          u.searchParams.set('connected', connected.map((c) => c.id).join(','));
          return reply.redirect(u.toString(), 303);
        }
        if (!String(req.headers.accept ?? '').includes('text/html')) return { connected, failed };
        return reply.type('text/html; charset=utf-8').send(doneHtml(connected, failed));
      },
    );
  };
}

function esc(s: string | null | undefined): string {
  return String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function pickPage(state: string, pages: { id: string; name: string | null; instagram: { id: string; username: string | null } | null }[]): string {
  const rows = pages
    .map(
      (p) => `<li><label><input type="checkbox" name="pages" value="${esc(p.id)}" checked> Page <b>${esc(p.name ?? p.id)}</b> (${esc(p.id)})</label>${
        p.instagram ? `<br><label><input type="checkbox" name="instagram" value="${esc(p.instagram.id)}"> Instagram <b>@${esc(p.instagram.username ?? p.instagram.id)}</b> linked to it</label>` : ''
      }</li>`,
    )
    .join('');
  return `<!doctype html><html><head><meta charset="utf-8"><title>Switchboard: connect Pages</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}li{margin:.8rem 0;list-style:none}button{font-size:1rem;padding:.5rem 1.2rem}</style></head>
<body><h1>Connect to Switchboard</h1><p>Pick the Pages and Instagram accounts whose messages Switchboard should handle.</p>
<form method="post" action="callback"><input type="hidden" name="state" value="${esc(state)}"><ul>${rows || '<li>No Pages were granted.</li>'}</ul><button type="submit">Connect</button></form></body></html>`;
}

function doneHtml(connected: { id: string; name: string | null; channel: string }[], failed: { meta_id: string; message: string }[]): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>Switchboard: connected</title><style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto}</style></head><body>
<h1>${connected.length} connected</h1><ul>${connected.map((c) => `<li>${esc(c.channel)}: ${esc(c.name)} (${esc(c.id)})</li>`).join('')}</ul>
${failed.length ? `<h2>Not connected</h2><ul>${failed.map((f) => `<li>${esc(f.meta_id)}: ${esc(f.message)}</li>`).join('')}</ul>` : ''}</body></html>`;
}
