import { createHmac, timingSafeEqual } from 'node:crypto';
import { type GraphError, graphErrors } from '../errors.js';
import type { App, Page, TokenRecord } from '../state.js';
import type { GraphCall } from './route.js';
import { tokenOf } from './route.js';

/** Who is calling: the token, its app, and for Page tokens the Page. */
export interface Caller {
  token: TokenRecord | null;
  app: App;
  /** Set for app access tokens (`{app-id}|{app-secret}`). */
  isAppToken: boolean;
  page: Page | null;
}

/**
 * Checks the access token like Meta: missing (104), unknown (190), revoked (190/460), expired
 * (190/463), and `appsecret_proof` when given or when the app requires it (100).
 */
export function authenticate(call: GraphCall): Caller {
  const { state, clock } = call.ctx;
  const token = tokenOf(call.params, call.request);
  if (token === undefined) throw graphErrors.missingToken();
  if (token.includes('|')) {
    const [appId, secret] = token.split('|');
    const app = appId === undefined ? undefined : state.apps.get(appId);
    if (!app || secret === undefined || !safeEqual(secret, app.secret)) throw graphErrors.unparsableToken();
    call.account.appId = app.id;
    return { token: null, app, isAppToken: true, page: null };
  }
  const record = state.tokens.get(token);
  if (!record) throw graphErrors.unparsableToken();
  const app = state.apps.get(record.appId);
  if (!app) throw graphErrors.unparsableToken();
  call.account.appId = app.id;
  if (!record.valid) throw graphErrors.revokedToken();
  if (record.expiresAt > 0 && clock.now() > record.expiresAt) {
    throw graphErrors.expiredToken(new Date(record.expiresAt).toUTCString());
  }
  const proof = call.params.appsecret_proof;
  if (typeof proof === 'string' && proof.length > 0) {
    const expected = createHmac('sha256', app.secret).update(token).digest('hex');
    if (!safeEqual(proof.toLowerCase(), expected)) throw graphErrors.badAppsecretProof();
  } else if (app.requireAppsecretProof) {
    throw graphErrors.missingAppsecretProof();
  }
  const page = record.pageId === undefined ? null : (state.pages.get(record.pageId) ?? null);
  if (page) call.account.pageId = page.id;
  return { token: record, app, isAppToken: false, page };
}

/**
 * The Page a `/{id}/...` call acts on with a Page token: `me` is the token's Page; a Page id or
 * its Instagram account id must belong to the token's Page (190 otherwise); an unknown id is
 * Meta's "unsupported request" (100/33); app and user tokens get 210.
 */
export function pageFromPath(call: GraphCall, caller: Caller, method: 'GET' | 'POST' | 'DELETE'): Page {
  const id = call.pathId ?? 'me';
  // Made only when answered: an Error captures its stack trace, a cost every good call would pay.
  const unsupported = (): GraphError => (method === 'GET' ? graphErrors.unsupportedGet(id) : graphErrors.unsupportedPost(id));
  if (caller.isAppToken || caller.token?.kind === 'user') {
    if (id !== 'me' && !call.ctx.state.pageForObjectId(id)) throw unsupported();
    throw graphErrors.pageTokenRequired();
  }
  if (id === 'me') {
    if (!caller.page) throw unsupported();
    return caller.page;
  }
  const page = call.ctx.state.pageForObjectId(id);
  if (!page) throw unsupported();
  if (!caller.page || caller.page.id !== page.id) throw graphErrors.tokenForOtherPage();
  call.account.pageId = page.id;
  return page;
}

function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}
