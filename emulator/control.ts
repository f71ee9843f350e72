import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { TypeBoxValidatorCompiler, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { EmulatorContext } from './context.js';
import { ControlError, controlErrors } from './errors.js';
import { FAULT_KINDS, type FaultInput } from './faults.js';
import { issueOAuthCode, redirectWithCode, DEFAULT_SCOPES } from './graph/oauth.js';
import { WEBHOOK_FIELDS } from './graph/subscriptions.js';
import { handleInbound, INBOUND_ATTACHMENT_TYPES, type InboundInput } from './inbound.js';
import { metaStringify } from './meta-json.js';
import { STANDARD_WINDOW_MS } from './policy.js';
import type { App, Page, Person, Thread } from './state.js';

/**
 * The control API under `/_emulator/`: JSON in and out, errors as `{error: {code, message}}`.
 * Scripts and tests use it to create apps, Pages and people, to act as a person, to read what a
 * person saw, to inject faults, to move the clock and to inspect webhook deliveries.
 */

const Id = Type.String({ minLength: 1, maxLength: 64 });
const NumericId = Type.String({ pattern: '^[0-9]{1,20}$' });
const Url = Type.String({ pattern: '^https?://', maxLength: 2048 });

const AppInput = Type.Object({
  id: Type.Optional(NumericId),
  name: Type.Optional(Type.String({ maxLength: 200 })),
  callback_url: Type.Optional(Type.Union([Url, Type.Null()])),
  verify_token: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  secret: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  human_agent: Type.Optional(Type.Boolean()),
  require_appsecret_proof: Type.Optional(Type.Boolean()),
});

const AppPatch = Type.Object({
  name: Type.Optional(Type.String({ maxLength: 200 })),
  callback_url: Type.Optional(Type.Union([Url, Type.Null()])),
  verify_token: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  secret: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  human_agent: Type.Optional(Type.Boolean()),
  require_appsecret_proof: Type.Optional(Type.Boolean()),
});

const PageInput = Type.Object({
  app_id: Id,
  id: Type.Optional(NumericId),
  // The permissions the Page's token carries (debug_token shows them); Meta's usual set by default.
  scopes: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 100 }), { maxItems: 50 })),
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  category: Type.Optional(Type.String({ maxLength: 100 })),
  instagram: Type.Optional(
    Type.Union([
      Type.Boolean(),
      Type.Object({
        id: Type.Optional(NumericId),
        username: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._]{1,30}$' })),
        name: Type.Optional(Type.String({ maxLength: 200 })),
      }),
    ]),
  ),
  subscribe: Type.Optional(Type.Union([Type.Boolean(), Type.Array(Type.String())])),
});

const PersonInput = Type.Object({
  id: Type.Optional(NumericId),
  first_name: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
  last_name: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
  username: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._]{1,30}$' })),
  hidden_profile: Type.Optional(Type.Boolean()),
  locale: Type.Optional(Type.String({ maxLength: 10 })),
  timezone: Type.Optional(Type.Number({ minimum: -12, maximum: 14 })),
  gender: Type.Optional(Type.String({ maxLength: 20 })),
});

const UserRefInput = Type.Object({ user: Id });

const AttachmentInput = Type.Union([
  Type.String({ enum: INBOUND_ATTACHMENT_TYPES }),
  Type.Object({
    type: Type.String({ enum: INBOUND_ATTACHMENT_TYPES }),
    url: Type.Optional(Url),
    title: Type.Optional(Type.String({ maxLength: 500 })),
    sticker_id: Type.Optional(Type.Union([Type.String({ pattern: '^[0-9]{1,20}$' }), Type.Integer({ minimum: 0 })])),
    lat: Type.Optional(Type.Number({ minimum: -90, maximum: 90 })),
    long: Type.Optional(Type.Number({ minimum: -180, maximum: 180 })),
  }),
]);

const Referral = Type.Object({
  ref: Type.Optional(Type.String({ maxLength: 1000 })),
  source: Type.Optional(Type.String({ maxLength: 50 })),
  type: Type.Optional(Type.String({ maxLength: 50 })),
  ad_id: Type.Optional(Type.String({ maxLength: 50 })),
  ads_context_data: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});

const InboundBody = Type.Object({
  user: Type.Optional(Id),
  channel: Type.Optional(Type.Union([Type.Literal('messenger'), Type.Literal('instagram')])),
  text: Type.Optional(Type.String({ maxLength: 20000 })),
  attachments: Type.Optional(Type.Array(AttachmentInput, { maxItems: 10 })),
  quick_reply: Type.Optional(Type.Union([Type.String({ maxLength: 1000 }), Type.Object({ payload: Type.String({ maxLength: 1000 }) })])),
  postback: Type.Optional(
    Type.Union([
      Type.String({ maxLength: 1000 }),
      Type.Object({ payload: Type.Optional(Type.String({ maxLength: 1000 })), title: Type.Optional(Type.String({ maxLength: 200 })) }),
    ]),
  ),
  referral: Type.Optional(Referral),
  optin: Type.Optional(
    Type.Object({
      ref: Type.Optional(Type.String({ maxLength: 1000 })),
      user_ref: Type.Optional(Type.String({ minLength: 1, maxLength: 250 })),
      type: Type.Optional(Type.Literal('notification_messages')),
      payload: Type.Optional(Type.String({ maxLength: 1000 })),
      title: Type.Optional(Type.String({ maxLength: 200 })),
      frequency: Type.Optional(Type.String({ maxLength: 20 })),
    }),
  ),
  reaction: Type.Optional(
    Type.Union([
      Type.String({ maxLength: 20 }),
      Type.Object({
        reaction: Type.Optional(Type.String({ maxLength: 20 })),
        emoji: Type.Optional(Type.String({ maxLength: 20 })),
        action: Type.Optional(Type.Union([Type.Literal('react'), Type.Literal('unreact')])),
        mid: Type.Optional(Type.String({ maxLength: 500 })),
      }),
    ]),
  ),
  read: Type.Optional(Type.Union([Type.Boolean(), Type.Object({ watermark: Type.Optional(Type.Number()) })])),
  delivery: Type.Optional(Type.Boolean()),
  edit: Type.Optional(Type.Object({ mid: Type.Optional(Type.String({ maxLength: 500 })), text: Type.String({ minLength: 1, maxLength: 20000 }) })),
  unsend: Type.Optional(Type.Union([Type.Boolean(), Type.Object({ mid: Type.Optional(Type.String({ maxLength: 500 })) })])),
  reply_to: Type.Optional(Type.Union([Type.String({ maxLength: 500 }), Type.Object({ mid: Type.String({ maxLength: 500 }) })])),
  timestamp: Type.Optional(Type.Integer({ minimum: 1 })),
  standby: Type.Optional(Type.Boolean()),
});

const FaultBody = Type.Object({
  kind: Type.String({ enum: [...FAULT_KINDS] }),
  page: Type.Optional(Id),
  path: Type.Optional(Type.String({ minLength: 1, maxLength: 500 })),
  count: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
  ms: Type.Optional(Type.Integer({ minimum: 0, maximum: 10 * 60 * 1000 })),
  status: Type.Optional(Type.Integer({ minimum: 400, maximum: 599 })),
  code: Type.Optional(Type.Integer({ minimum: 1 })),
  subcode: Type.Optional(Type.Integer({ minimum: 1 })),
  message: Type.Optional(Type.String({ maxLength: 1000 })),
});

const ClockBody = Type.Object({
  offset_ms: Type.Optional(Type.Integer()),
  advance_ms: Type.Optional(Type.Integer()),
  now: Type.Optional(Type.Integer({ minimum: 0 })),
});

const RawBody = Type.Object({
  app_id: Id,
  body: Type.Union([Type.String({ minLength: 1 }), Type.Record(Type.String(), Type.Unknown())]),
});

const AppRef = Type.Object({ app_id: Id });

const AuthorizeBody = Type.Object({
  app_id: Id,
  redirect_uri: Url,
  page_ids: Type.Optional(Type.Array(Id)),
  scope: Type.Optional(Type.String({ maxLength: 2000 })),
  state: Type.Optional(Type.String({ maxLength: 2000 })),
});

const PageParams = Type.Object({ page: Id });
const AppParams = Type.Object({ app: Id });
const ThreadParams = Type.Object({ page: Id, psid: Id });
const WebhookQuery = Type.Object({ app_id: Type.Optional(Id), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 5000 })) });

// SSE streams send a comment this often so proxies and browsers keep them open.
const STREAM_HEARTBEAT_MS = 15_000;

export function registerControl(root: FastifyInstance, ctx: EmulatorContext): void {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  app.setValidatorCompiler(TypeBoxValidatorCompiler);
  app.setErrorHandler((error: Error, request, reply) => {
    if (error instanceof ControlError) return reply.status(error.status).send(error.body());
    const status = (error as { statusCode?: number }).statusCode;
    if ((error as { validation?: unknown }).validation !== undefined || (status !== undefined && status >= 400 && status < 500)) {
      return reply.status(status === 413 ? 413 : 400).send({ error: { code: 'invalid_request', message: error.message } });
    }
    ctx.options.logger(`control: ${request.method} ${request.url} failed: ${error.stack ?? error.message}`);
    return reply.status(500).send({ error: { code: 'internal', message: 'the emulator failed to handle this request' } });
  });
  const { state, clock, webhooks, faults } = ctx;
  const streams = new Set<FastifyReply>();
  app.addHook('onClose', () => {
    for (const stream of streams) stream.raw.end();
    streams.clear();
  });

  const appById = (id: string): App => {
    const found = state.apps.get(id);
    if (!found) throw controlErrors.notFound('App', id);
    return found;
  };
  const pageById = (id: string): Page => {
    const found = state.pageForObjectId(id);
    if (!found) throw controlErrors.notFound('Page', id);
    return found;
  };
  const personFor = (page: Page, ref: string): Person => {
    const person = state.people.get(ref) ?? (() => {
      const scoped = state.scopedIds.get(ref);
      return scoped && scoped.pageId === page.id ? state.people.get(scoped.personId) : undefined;
    })();
    if (!person) throw controlErrors.notFound('Person', ref);
    return person;
  };

  app.get('/_emulator/health', () => ({ ok: true }));

  // Apps.
  app.post('/_emulator/apps', { schema: { body: AppInput } }, async (request, reply) => {
    const body = request.body;
    if (body.id !== undefined && (state.apps.has(body.id) || !ctx.ids.claim(body.id))) throw controlErrors.conflict(`id ${body.id} is taken`);
    const id = body.id ?? ctx.ids.appId();
    const created: App = {
      id,
      name: body.name ?? `Emulated app ${id.slice(-4)}`,
      secret: body.secret ?? ctx.ids.secret(),
      verifyToken: body.verify_token ?? ctx.ids.opaque(12),
      callbackUrl: body.callback_url ?? null,
      humanAgent: body.human_agent ?? false,
      requireAppsecretProof: body.require_appsecret_proof ?? false,
      verification: null,
      createdAt: clock.now(),
    };
    state.apps.set(id, created);
    if (created.callbackUrl) created.verification = await webhooks.verify(created);
    ctx.options.logger(`control: app ${id} created`);
    return reply.status(201).send(describeApp(created));
  });
  app.get('/_emulator/apps', () => ({ data: [...state.apps.values()].map(describeApp) }));
  app.get('/_emulator/apps/:app', { schema: { params: AppParams } }, (request) => describeApp(appById(request.params.app)));
  app.patch('/_emulator/apps/:app', { schema: { params: AppParams, body: AppPatch } }, async (request) => {
    const found = appById(request.params.app);
    const body = request.body;
    if (body.name !== undefined) found.name = body.name;
    if (body.verify_token !== undefined) found.verifyToken = body.verify_token;
    if (body.secret !== undefined) found.secret = body.secret;
    if (body.human_agent !== undefined) found.humanAgent = body.human_agent;
    if (body.require_appsecret_proof !== undefined) found.requireAppsecretProof = body.require_appsecret_proof;
    if (body.callback_url !== undefined) {
      found.callbackUrl = body.callback_url;
      found.verification = found.callbackUrl ? await webhooks.verify(found) : null;
    }
    return describeApp(found);
  });
  app.post('/_emulator/apps/:app/verify', { schema: { params: AppParams } }, async (request) => {
    const found = appById(request.params.app);
    found.verification = await webhooks.verify(found);
    return found.verification;
  });

  // Pages.
  app.post('/_emulator/pages', { schema: { body: PageInput } }, (request, reply) => {
    const body = request.body;
    const owner = appById(body.app_id);
    if (body.id !== undefined && (state.pages.has(body.id) || !ctx.ids.claim(body.id))) throw controlErrors.conflict(`id ${body.id} is taken`);
    const id = body.id ?? ctx.ids.pageId();
    const page: Page = {
      id,
      name: body.name ?? `Emulated Page ${id.slice(-4)}`,
      appId: owner.id,
      category: body.category ?? 'Local business',
      instagram: null,
      currentToken: '',
      subscriptions: new Map(),
      messengerProfile: { messenger: {}, instagram: {} },
      blocked: new Set(),
      createdAt: clock.now(),
    };
    if (body.instagram !== undefined && body.instagram !== false) {
      const wanted = typeof body.instagram === 'object' ? body.instagram : {};
      if (wanted.id !== undefined && (state.instagramAccounts.has(wanted.id) || !ctx.ids.claim(wanted.id))) {
        throw controlErrors.conflict(`Instagram id ${wanted.id} is taken`);
      }
      const igId = wanted.id ?? ctx.ids.instagramAccountId();
      page.instagram = {
        id: igId,
        username: wanted.username ?? page.name.toLowerCase().replace(/[^a-z0-9]+/g, '_').slice(0, 30),
        name: wanted.name ?? page.name,
        pageId: id,
      };
      state.instagramAccounts.set(igId, id);
    }
    page.currentToken = state.issuePageToken(owner.id, id, [...(body.scopes ?? DEFAULT_SCOPES)]).token;
    state.pages.set(id, page);
    if (body.subscribe !== undefined && body.subscribe !== false) {
      const fields = body.subscribe === true ? [...WEBHOOK_FIELDS] : body.subscribe;
      const unknown = fields.filter((f) => !(WEBHOOK_FIELDS as readonly string[]).includes(f));
      if (unknown.length > 0) throw controlErrors.invalid(`unknown webhook fields: ${unknown.join(', ')}`);
      page.subscriptions.set(owner.id, new Set(fields));
    }
    ctx.options.logger(`control: page ${id} created for app ${owner.id}${page.instagram ? ` with Instagram ${page.instagram.id}` : ''}`);
    return reply.status(201).send(describePage(page));
  });
  app.get('/_emulator/pages', () => ({ data: [...state.pages.values()].map(describePage) }));
  app.get('/_emulator/pages/:page', { schema: { params: PageParams } }, (request) => describePage(pageById(request.params.page)));
  app.post('/_emulator/pages/:page/revoke_token', { schema: { params: PageParams } }, (request) => {
    const page = pageById(request.params.page);
    let revoked = 0;
    for (const token of state.tokens.values()) {
      const grants = token.pageId === page.id || (token.kind === 'user' && (token.pageIds ?? []).includes(page.id));
      if (grants && token.valid) {
        token.valid = false;
        revoked++;
      }
    }
    ctx.options.logger(`control: ${revoked} tokens of page ${page.id} revoked`);
    return { revoked };
  });
  app.post('/_emulator/pages/:page/token', { schema: { params: PageParams } }, (request) => {
    const page = pageById(request.params.page);
    const issued = state.issuePageToken(page.appId, page.id, [...DEFAULT_SCOPES]);
    page.currentToken = issued.token;
    return { access_token: issued.token };
  });
  app.post('/_emulator/pages/:page/block', { schema: { params: PageParams, body: UserRefInput } }, (request) => {
    const page = pageById(request.params.page);
    const person = personFor(page, request.body.user);
    page.blocked.add(person.id);
    return { page_id: page.id, user: person.id, blocked: true };
  });
  app.post('/_emulator/pages/:page/unblock', { schema: { params: PageParams, body: UserRefInput } }, (request) => {
    const page = pageById(request.params.page);
    const person = personFor(page, request.body.user);
    page.blocked.delete(person.id);
    return { page_id: page.id, user: person.id, blocked: false };
  });
  app.post('/_emulator/pages/:page/inbound', { schema: { params: PageParams, body: InboundBody } }, (request) =>
    handleInbound(ctx, request.params.page, request.body as InboundInput),
  );
  app.get('/_emulator/pages/:page/threads', { schema: { params: PageParams } }, (request) => {
    const page = pageById(request.params.page);
    const data = [...state.threads.values()]
      .filter((thread) => thread.pageId === page.id)
      .map((thread) => {
        const { messages, ...summary } = describeThread(thread);
        return { ...summary, message_count: messages.length, last_message: messages.at(-1) ?? null };
      });
    return { data };
  });
  app.get('/_emulator/pages/:page/threads/:psid', { schema: { params: ThreadParams } }, (request) => {
    return describeThread(threadOf(request.params.page, request.params.psid));
  });
  app.get('/_emulator/pages/:page/threads/:psid/stream', { schema: { params: ThreadParams } }, (request, reply) => {
    const thread = threadOf(request.params.page, request.params.psid);
    openStream(request, reply, thread);
  });

  const threadOf = (pageRef: string, psid: string): Thread => {
    const page = pageById(pageRef);
    const scoped = state.scopedIds.get(psid);
    if (!scoped || scoped.pageId !== page.id) throw controlErrors.notFound('Thread', `${pageRef}/${psid}`);
    return state.threadFor(scoped);
  };

  const openStream = (request: FastifyRequest, reply: FastifyReply, thread: Thread): void => {
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    const send = () => raw.write(`event: thread\ndata: ${JSON.stringify(describeThread(thread))}\n\n`);
    send();
    const unsubscribe = state.onThreadChange((key) => {
      if (key === thread.key) send();
    });
    const heartbeat = setInterval(() => raw.write(': keep-alive\n\n'), STREAM_HEARTBEAT_MS);
    streams.add(reply);
    request.raw.on('close', () => {
      clearInterval(heartbeat);
      unsubscribe();
      streams.delete(reply);
    });
  };

  // People.
  app.post('/_emulator/users', { schema: { body: PersonInput } }, (request, reply) => {
    const body = request.body;
    if (body.id !== undefined && (state.people.has(body.id) || !ctx.ids.claim(body.id))) throw controlErrors.conflict(`id ${body.id} is taken`);
    const person = state.createPerson({
      ...(body.id !== undefined ? { id: body.id } : {}),
      ...(body.first_name !== undefined ? { firstName: body.first_name } : {}),
      ...(body.last_name !== undefined ? { lastName: body.last_name } : {}),
      ...(body.username !== undefined ? { username: body.username } : {}),
      ...(body.hidden_profile !== undefined ? { hiddenProfile: body.hidden_profile } : {}),
      ...(body.locale !== undefined ? { locale: body.locale } : {}),
      ...(body.timezone !== undefined ? { timezone: body.timezone } : {}),
      ...(body.gender !== undefined ? { gender: body.gender } : {}),
    });
    return reply.status(201).send(describePerson(person));
  });
  app.get('/_emulator/users', () => ({
    data: [...state.people.values()].filter((p) => p.id !== state.adminPersonId).map(describePerson),
  }));
  app.get('/_emulator/users/:user', { schema: { params: Type.Object({ user: Id }) } }, (request) => {
    const person = state.people.get(request.params.user);
    if (!person) throw controlErrors.notFound('Person', request.params.user);
    const scoped = [...state.scopedIds.values()]
      .filter((s) => s.personId === person.id)
      .map((s) => ({ page_id: s.pageId, channel: s.channel, id: s.id }));
    return { ...describePerson(person), scoped_ids: scoped };
  });

  // Faults.
  app.post('/_emulator/faults', { schema: { body: FaultBody } }, (request, reply) => {
    const fault = faults.add(request.body as FaultInput);
    ctx.options.logger(`control: fault ${fault.kind} added (${fault.id})`);
    return reply.status(201).send(fault);
  });
  app.get('/_emulator/faults', () => ({ data: faults.list() }));
  app.delete('/_emulator/faults', () => {
    faults.clear();
    return { cleared: true };
  });
  app.delete('/_emulator/faults/:id', { schema: { params: Type.Object({ id: Id }) } }, (request) => {
    if (!faults.remove(request.params.id)) throw controlErrors.notFound('Fault', request.params.id);
    return { removed: true };
  });

  // Clock.
  const describeClock = () => ({ now: clock.now(), iso: new Date(clock.now()).toISOString(), offset_ms: clock.offset });
  app.get('/_emulator/clock', describeClock);
  app.post('/_emulator/clock', { schema: { body: ClockBody } }, (request) => {
    const body = request.body;
    const given = [body.offset_ms, body.advance_ms, body.now].filter((v) => v !== undefined).length;
    if (given !== 1) throw controlErrors.invalid('give exactly one of offset_ms, advance_ms or now');
    if (body.offset_ms !== undefined) clock.setOffset(body.offset_ms);
    if (body.advance_ms !== undefined) clock.advance(body.advance_ms);
    if (body.now !== undefined) clock.setNow(body.now);
    return describeClock();
  });

  // Everything at once.
  app.post('/_emulator/reset', () => {
    webhooks.reset();
    ctx.timers.clear();
    faults.clear();
    ctx.usage.clear();
    state.clear();
    clock.reset();
    ctx.options.logger('control: reset');
    return { reset: true };
  });
  app.get('/_emulator/state', () => ({
    clock: describeClock(),
    apps: [...state.apps.values()].map((a) => ({ id: a.id, name: a.name, callback_url: a.callbackUrl, pending_webhooks: webhooks.pending(a.id) })),
    pages: [...state.pages.values()].map((p) => ({ id: p.id, name: p.name, app_id: p.appId, instagram_id: p.instagram?.id ?? null })),
    users: [...state.people.values()].filter((p) => p.id !== state.adminPersonId).length,
    threads: state.threads.size,
    faults: faults.list().length,
    webhook_attempts: webhooks.attempts().length,
  }));

  // Webhooks.
  app.get('/_emulator/webhooks', { schema: { querystring: WebhookQuery } }, (request) => ({
    data: webhooks.attempts({
      ...(request.query.app_id !== undefined ? { appId: request.query.app_id } : {}),
      ...(request.query.limit !== undefined ? { limit: request.query.limit } : {}),
    }),
  }));
  app.delete('/_emulator/webhooks', () => {
    webhooks.clearAttempts();
    return { cleared: true };
  });
  app.post('/_emulator/webhooks/raw', { schema: { body: RawBody } }, (request, reply) => {
    appById(request.body.app_id);
    const body = typeof request.body.body === 'string' ? request.body.body : metaStringify(request.body.body);
    return reply.status(202).send({ batch_id: webhooks.sendRaw(request.body.app_id, body) });
  });
  app.post('/_emulator/webhooks/pause', { schema: { body: AppRef } }, (request) => {
    appById(request.body.app_id);
    webhooks.pause(request.body.app_id);
    return { paused: true };
  });
  app.post('/_emulator/webhooks/resume', { schema: { body: AppRef } }, (request) => {
    appById(request.body.app_id);
    webhooks.resume(request.body.app_id);
    return { paused: false };
  });

  // Facebook Login without a browser.
  app.post('/_emulator/oauth/authorize', { schema: { body: AuthorizeBody } }, (request) => {
    const body = request.body;
    const owner = appById(body.app_id);
    const pageIds = body.page_ids ?? [...state.pages.values()].filter((p) => p.appId === owner.id).map((p) => p.id);
    const scopes = body.scope ? body.scope.split(',').map((s) => s.trim()).filter(Boolean) : [...DEFAULT_SCOPES];
    const code = issueOAuthCode(ctx, owner, body.redirect_uri, pageIds, scopes);
    return { code: code.code, page_ids: code.pageIds, redirect_url: redirectWithCode(body.redirect_uri, code.code, body.state) };
  });

  // Media the emulator serves, like Meta's CDN (links expire).
  app.get(
    '/_emulator/media/:id/:filename',
    { schema: { params: Type.Object({ id: Id, filename: Type.String() }), querystring: Type.Object({ oe: Type.Optional(Type.String()) }) } },
    (request, reply) => {
      const item = state.media.get(request.params.id);
      if (!item) throw controlErrors.notFound('Media', request.params.id);
      const expires = request.query.oe === undefined ? NaN : parseInt(request.query.oe, 16) * 1000;
      if (Number.isFinite(expires) && clock.now() > expires) {
        return reply.status(403).type('text/plain').send('URL signature expired');
      }
      return reply.header('content-type', item.contentType).header('cache-control', 'max-age=3600').send(item.bytes);
    },
  );

  function describeApp(found: App) {
    return {
      id: found.id,
      name: found.name,
      secret: found.secret,
      verify_token: found.verifyToken,
      callback_url: found.callbackUrl,
      human_agent: found.humanAgent,
      require_appsecret_proof: found.requireAppsecretProof,
      app_token: `${found.id}|${found.secret}`,
      verification: found.verification,
    };
  }

  function describePage(page: Page) {
    return {
      id: page.id,
      name: page.name,
      app_id: page.appId,
      category: page.category,
      access_token: page.currentToken,
      ...(page.instagram ? { instagram_id: page.instagram.id, instagram_username: page.instagram.username } : {}),
      subscribed_apps: [...page.subscriptions.entries()].map(([appId, fields]) => ({ app_id: appId, fields: [...fields] })),
      blocked_users: [...page.blocked],
      messenger_profile: page.messengerProfile,
      // Calls past the Send API's per-second limit, answered with 613: a gateway's pacing shows here.
      rate_limited_sends: ctx.usage.refusedSendsOf(page.id),
    };
  }

  function describePerson(person: Person) {
    return {
      id: person.id,
      first_name: person.firstName,
      last_name: person.lastName,
      username: person.username,
      hidden_profile: person.hiddenProfile,
    };
  }

  function describeThread(thread: Thread) {
    const now = clock.now();
    const windowClosesAt = thread.lastUserActivityAt === null ? null : thread.lastUserActivityAt + STANDARD_WINDOW_MS;
    return {
      page_id: thread.pageId,
      psid: thread.scopedId,
      channel: thread.channel,
      user_id: thread.personId,
      typing: thread.typing && Date.now() < thread.typingUntil,
      seen_watermark: thread.pageSeenWatermark,
      delivered_watermark: thread.deliveredWatermark,
      read_watermark: thread.readWatermark,
      last_user_activity_at: thread.lastUserActivityAt,
      window_open: windowClosesAt !== null && now <= Math.max(windowClosesAt, thread.adWindowUntil ?? 0),
      window_closes_at: windowClosesAt === null ? null : Math.max(windowClosesAt, thread.adWindowUntil ?? 0),
      messages: thread.messages,
    };
  }
}
