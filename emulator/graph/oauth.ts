import type { EmulatorContext } from '../context.js';
import { graphErrors } from '../errors.js';
import type { App, OAuthCode, Page, TokenRecord } from '../state.js';
import { authenticate } from './auth.js';
import { pageTokenFor } from './profile.js';
import { json, type GraphAnswer, type GraphCall } from './route.js';

/**
 * Facebook Login for Business: the dialog where a person approves the app and picks Pages, the
 * code exchange, long-lived user tokens, `/me/accounts` with Page tokens, and `debug_token`.
 */

// Meta's authorization codes are single-use and expire after 10 minutes.
const CODE_LIFETIME_MS = 10 * 60 * 1000;
// A token from a code exchange is short-lived: about an hour.
const SHORT_USER_TOKEN_MS = 60 * 60 * 1000;
// fb_exchange_token yields a 60-day user token.
const LONG_USER_TOKEN_MS = 60 * 24 * 60 * 60 * 1000;

export const DEFAULT_SCOPES = [
  'pages_messaging',
  'pages_manage_metadata',
  'pages_show_list',
  'pages_read_engagement',
  'business_management',
  'instagram_basic',
  'instagram_manage_messages',
];

export function pagesOfApp(ctx: EmulatorContext, appId: string): Page[] {
  return [...ctx.state.pages.values()].filter((page) => page.appId === appId);
}

function scopesFrom(value: unknown): string[] {
  if (typeof value !== 'string' || value.trim() === '') return [...DEFAULT_SCOPES];
  return value.split(',').map((s) => s.trim()).filter(Boolean);
}

export function issueOAuthCode(ctx: EmulatorContext, app: App, redirectUri: string, pageIds: string[], scopes: string[]): OAuthCode {
  const known = new Set(pagesOfApp(ctx, app.id).map((page) => page.id));
  const code: OAuthCode = {
    code: ctx.ids.oauthCode(),
    appId: app.id,
    redirectUri,
    personId: ctx.state.adminPerson().id,
    pageIds: pageIds.filter((id) => known.has(id)),
    scopes,
    createdAt: ctx.clock.now(),
    used: false,
  };
  ctx.state.oauthCodes.set(code.code, code);
  return code;
}

export function redirectWithCode(redirectUri: string, code: string, state: string | undefined): string {
  const url = new URL(redirectUri);
  url.searchParams.set('code', code);
  if (state !== undefined) url.searchParams.set('state', state);
  // Meta appends this fragment to every login redirect.
  url.hash = '_=_';
  return url.toString();
}

interface DialogRequest {
  app: App;
  redirectUri: string;
  state: string | undefined;
  scope: string | undefined;
}

function dialogRequest(ctx: EmulatorContext, params: Record<string, unknown>): DialogRequest | string {
  const clientId = params.client_id;
  const redirectUri = params.redirect_uri;
  if (typeof clientId !== 'string' || clientId === '') return 'The parameter client_id is required.';
  const app = ctx.state.apps.get(clientId);
  if (!app) return `Invalid App ID: ${clientId}`;
  if (typeof redirectUri !== 'string' || !/^https?:\/\//i.test(redirectUri)) return 'The parameter redirect_uri is required and must be an absolute URL.';
  try {
    new URL(redirectUri);
  } catch {
    return 'The parameter redirect_uri must be a valid URL.';
  }
  return {
    app,
    redirectUri,
    state: typeof params.state === 'string' ? params.state : undefined,
    scope: typeof params.scope === 'string' ? params.scope : undefined,
  };
}

/** `GET /dialog/oauth`: the consent page, or an immediate redirect with `auto_approve=1`. */
export function handleDialog(call: GraphCall): GraphAnswer {
  const { ctx } = call;
  const parsed = dialogRequest(ctx, call.params);
  if (typeof parsed === 'string') return { kind: 'html', status: 400, html: errorPage(parsed) };
  const pages = pagesOfApp(ctx, parsed.app.id);
  if (call.params.auto_approve === '1' || call.params.auto_approve === 'true') {
    const chosen = typeof call.params.page_ids === 'string' ? call.params.page_ids.split(',') : pages.map((p) => p.id);
    const code = issueOAuthCode(ctx, parsed.app, parsed.redirectUri, chosen, scopesFrom(parsed.scope));
    return { kind: 'redirect', location: redirectWithCode(parsed.redirectUri, code.code, parsed.state) };
  }
  return { kind: 'html', html: consentPage(parsed, pages, scopesFrom(parsed.scope)) };
}

/** `POST /dialog/oauth/approve`: the consent form's answer. */
export function handleDialogDecision(call: GraphCall): GraphAnswer {
  const { ctx } = call;
  const parsed = dialogRequest(ctx, call.params);
  if (typeof parsed === 'string') return { kind: 'html', status: 400, html: errorPage(parsed) };
  if (call.params.decision === 'deny') {
    const url = new URL(parsed.redirectUri);
    url.searchParams.set('error', 'access_denied');
    url.searchParams.set('error_code', '200');
    url.searchParams.set('error_description', 'Permissions error');
    url.searchParams.set('error_reason', 'user_denied');
    if (parsed.state !== undefined) url.searchParams.set('state', parsed.state);
    url.hash = '_=_';
    return { kind: 'redirect', location: url.toString() };
  }
  const raw = call.params.page_ids;
  const chosen = Array.isArray(raw) ? raw.map(String) : typeof raw === 'string' ? [raw] : [];
  const code = issueOAuthCode(ctx, parsed.app, parsed.redirectUri, chosen, scopesFrom(parsed.scope));
  return { kind: 'redirect', location: redirectWithCode(parsed.redirectUri, code.code, parsed.state) };
}

/** `GET /oauth/access_token`: code exchange, fb_exchange_token and client_credentials. */
export function handleAccessToken(call: GraphCall): GraphAnswer {
  const { ctx } = call;
  const { state, clock } = ctx;
  const params = call.params;
  const clientId = params.client_id;
  if (typeof clientId !== 'string' || clientId === '') throw graphErrors.requiredParam('client_id');
  const app = state.apps.get(clientId);
  if (!app) throw graphErrors.unknownApp();
  call.account.appId = app.id;
  if (params.client_secret !== app.secret) throw graphErrors.badClientSecret();
  const grantType = params.grant_type;

  if (grantType === 'client_credentials') {
    return json({ access_token: `${app.id}|${app.secret}`, token_type: 'bearer' });
  }
  if (grantType === 'fb_exchange_token') {
    const short = typeof params.fb_exchange_token === 'string' ? state.tokens.get(params.fb_exchange_token) : undefined;
    if (!short || short.kind !== 'user' || short.appId !== app.id) throw graphErrors.unparsableToken();
    if (!short.valid) throw graphErrors.revokedToken();
    if (short.expiresAt > 0 && clock.now() > short.expiresAt) throw graphErrors.expiredToken(new Date(short.expiresAt).toUTCString());
    const long = state.issueToken({
      kind: 'user',
      appId: app.id,
      ...(short.personId !== undefined ? { personId: short.personId } : {}),
      pageIds: [...(short.pageIds ?? [])],
      scopes: [...short.scopes],
      expiresAt: clock.now() + LONG_USER_TOKEN_MS,
    });
    return json({ access_token: long.token, token_type: 'bearer', expires_in: Math.floor(LONG_USER_TOKEN_MS / 1000) });
  }
  const codeParam = params.code;
  if (typeof codeParam !== 'string' || codeParam === '') throw graphErrors.requiredParam('code');
  const code = state.oauthCodes.get(codeParam);
  if (!code || code.appId !== app.id) throw graphErrors.oauthCodeInvalid();
  if (code.used) throw graphErrors.oauthCodeUsed();
  if (clock.now() - code.createdAt > CODE_LIFETIME_MS) throw graphErrors.oauthCodeExpired();
  if (params.redirect_uri !== code.redirectUri) throw graphErrors.oauthRedirectMismatch();
  code.used = true;
  const token = state.issueToken({
    kind: 'user',
    appId: app.id,
    personId: code.personId,
    pageIds: [...code.pageIds],
    scopes: [...code.scopes],
    expiresAt: clock.now() + SHORT_USER_TOKEN_MS,
  });
  return json({ access_token: token.token, token_type: 'bearer', expires_in: Math.floor(SHORT_USER_TOKEN_MS / 1000) });
}

/** `GET /me/accounts` with a user token: the Pages the person granted, with Page tokens. */
export function handleAccounts(call: GraphCall): GraphAnswer {
  const { state } = call.ctx;
  const caller = authenticate(call);
  const token = caller.token;
  if (!token || token.kind !== 'user') {
    throw graphErrors.nonexistingField('accounts', caller.isAppToken ? 'Application' : 'Page');
  }
  if (call.pathId !== 'me' && call.pathId !== token.personId) throw graphErrors.unsupportedGet(call.pathId ?? '');
  const data = (token.pageIds ?? [])
    .map((id) => state.pages.get(id))
    .filter((page): page is Page => page !== undefined)
    .map((page) => ({
      access_token: pageTokenFor(call, token.appId, page, token.scopes),
      category: page.category,
      category_list: [{ id: '2200', name: page.category }],
      name: page.name,
      id: page.id,
      tasks: ['ADVERTISE', 'ANALYZE', 'CREATE_CONTENT', 'MESSAGING', 'MODERATE', 'MANAGE'],
    }));
  const first = data[0]?.id;
  const last = data.at(-1)?.id;
  const cursors = {
    before: Buffer.from(first ?? '').toString('base64url'),
    after: Buffer.from(last ?? '').toString('base64url'),
  };
  return json({ data, paging: { cursors } });
}

/** `GET /debug_token?input_token=...`: what a token is and whether it still works. */
export function handleDebugToken(call: GraphCall): GraphAnswer {
  const { state, clock } = call.ctx;
  authenticate(call);
  const input = call.params.input_token;
  if (typeof input !== 'string' || input === '') throw graphErrors.requiredParam('input_token');
  if (input.includes('|')) {
    const [appId, secret] = input.split('|');
    const app = appId === undefined ? undefined : state.apps.get(appId);
    if (app && secret === app.secret) {
      return json({ data: { app_id: app.id, type: 'APP', application: app.name, is_valid: true, scopes: [] } });
    }
  }
  const record = state.tokens.get(input);
  if (!record) {
    return json({ data: { error: { code: 190, message: 'Invalid OAuth access token - Cannot parse access token' }, is_valid: false, scopes: [] } });
  }
  return json({ data: describeToken(call, record, clock.now()) });
}

function describeToken(call: GraphCall, record: TokenRecord, now: number): Record<string, unknown> {
  const { state } = call.ctx;
  const app = state.apps.get(record.appId);
  const seconds = (ms: number) => Math.floor(ms / 1000);
  const data: Record<string, unknown> = {
    app_id: record.appId,
    type: record.kind === 'page' ? 'PAGE' : 'USER',
    application: app?.name ?? record.appId,
    // Data access lasts 90 days after the person last used the app.
    data_access_expires_at: seconds(record.issuedAt + 90 * 24 * 60 * 60 * 1000),
    expires_at: record.expiresAt === 0 ? 0 : seconds(record.expiresAt),
    is_valid: record.valid && (record.expiresAt === 0 || now <= record.expiresAt),
    issued_at: seconds(record.issuedAt),
    scopes: record.scopes,
    granular_scopes: record.scopes.map((scope) => ({
      scope,
      ...(scope.startsWith('pages_') || scope.startsWith('instagram_')
        ? { target_ids: record.pageId !== undefined ? [record.pageId] : [...(record.pageIds ?? [])] }
        : {}),
    })),
    user_id: record.personId ?? state.adminPerson().id,
  };
  if (record.pageId !== undefined) data.profile_id = record.pageId;
  if (!record.valid) {
    data.error = {
      code: 190,
      message: 'The session has been invalidated because the user changed their password or Facebook has changed the session for security reasons.',
      subcode: 460,
    };
  } else if (data.is_valid === false) {
    data.error = { code: 190, message: 'Session has expired.', subcode: 463 };
  }
  return data;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function errorPage(message: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>Error</title></head><body><h1>Sorry, something went wrong.</h1><p>${escapeHtml(message)}</p></body></html>`;
}

function consentPage(request: DialogRequest, pages: Page[], scopes: string[]): string {
  const hidden = (name: string, value: string | undefined) =>
    value === undefined ? '' : `<input type="hidden" name="${name}" value="${escapeHtml(value)}">`;
  const list =
    pages.length === 0
      ? '<p>This app has no Pages in the emulator yet. Create one with <code>POST /_emulator/pages</code>.</p>'
      : pages
          .map(
            (page) =>
              `<label class="page"><input type="checkbox" name="page_ids" value="${page.id}" checked> <b>${escapeHtml(page.name)}</b> <small>${page.id}${page.instagram ? ` &middot; Instagram @${escapeHtml(page.instagram.username)}` : ''}</small></label>`,
          )
          .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Log in with Facebook (emulator)</title>
<style>
body{font-family:system-ui,sans-serif;background:#f0f2f5;margin:0;display:flex;justify-content:center}
main{background:#fff;margin:40px 16px;padding:24px 28px;border-radius:8px;box-shadow:0 1px 3px #0003;max-width:480px;width:100%}
.page{display:block;padding:10px;border:1px solid #ddd;border-radius:6px;margin:8px 0}
small{color:#65676b}.scopes{color:#65676b;font-size:13px}
button{font-size:15px;padding:8px 18px;border-radius:6px;border:0;cursor:pointer;margin-right:8px}
.approve{background:#1877f2;color:#fff}.deny{background:#e4e6eb}
</style></head>
<body><main>
<h1>${escapeHtml(request.app.name)} wants to manage your Pages</h1>
<p>Choose the Pages this app may message from.</p>
<form method="post" action="/dialog/oauth/approve">
${hidden('client_id', request.app.id)}${hidden('redirect_uri', request.redirectUri)}${hidden('state', request.state)}${hidden('scope', scopes.join(','))}
${list}
<p class="scopes">Permissions: ${scopes.map(escapeHtml).join(', ')}</p>
<button class="approve" type="submit" name="decision" value="approve">Approve</button>
<button class="deny" type="submit" name="decision" value="deny">Cancel</button>
</form>
</main></body></html>`;
}
