import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator } from '../../emulator/index.js';
import type { RunningEmulator } from '../../emulator/index.js';
import { classifyError } from '../../src/meta/errors.js';
import { GraphClient, MetaApiError, MetaTransportError, PAGE_SUBSCRIBED_FIELDS } from '../../src/meta/graph.js';

/**
 * The Graph client against the Messenger Platform emulator over real sockets: every method once,
 * and Meta's errors (190, 551, 613, window, hidden profile) classified through the one table.
 */

let emulator: RunningEmulator;
let graph: GraphClient;
let mediaServer: Server;
let mediaUrl: string;
let appId: string;
let appSecret: string;
let pageId: string;
let pageToken: string;
let instagramId: string;
let customer: string;
let psid: string;

async function control<T>(method: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method, headers: body === undefined ? {} : { 'content-type': 'application/json' } };
  if (body !== undefined) init.body = JSON.stringify(body);
  const res = await fetch(`${emulator.url}${path}`, init);
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path} answered ${res.status}: ${text}`);
  return (text === '' ? undefined : JSON.parse(text)) as T;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to fail');
}

/** A person writes to the Page, which opens (or reopens) the window; returns their PSID. */
async function customerWrites(user: string, text = 'hello'): Promise<string> {
  const result = await control<{ psid: string }>('POST', `/_emulator/pages/${pageId}/inbound`, { user, text });
  return result.psid;
}

const send = (to: string, text: string) =>
  graph.sendMessage(pageId, pageToken, { recipient: { id: to }, messaging_type: 'RESPONSE', message: { text } });

beforeAll(async () => {
  emulator = await startEmulator({ port: 0 });
  const app = await control<{ id: string; secret: string }>('POST', '/_emulator/apps', { human_agent: false });
  appId = app.id;
  appSecret = app.secret;
  const page = await control<{ id: string; access_token: string; instagram_id: string }>('POST', '/_emulator/pages', {
    app_id: appId,
    name: 'Graph Test Page',
    instagram: true,
  });
  pageId = page.id;
  pageToken = page.access_token;
  instagramId = page.instagram_id;
  const person = await control<{ id: string }>('POST', '/_emulator/users', { first_name: 'Ada', last_name: 'Lovelace' });
  customer = person.id;
  psid = await customerWrites(customer);
  graph = new GraphClient({ baseUrl: emulator.url, version: 'v25.0', appId, appSecret, timeoutMs: 5_000, appsecretProof: true });

  mediaServer = createServer((_req, res) => {
    // A 1x1 PNG.
    const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');
    res.writeHead(200, { 'content-type': 'image/png', 'content-length': String(png.length) });
    res.end(png);
  });
  await new Promise<void>((resolve) => mediaServer.listen(0, '127.0.0.1', resolve));
  mediaUrl = `http://127.0.0.1:${(mediaServer.address() as AddressInfo).port}/pixel.png`;
});

afterAll(async () => {
  await graph?.close();
  await emulator?.close();
  await new Promise<void>((resolve) => mediaServer?.close(() => resolve()));
});

describe('GraphClient against the emulator', () => {
  it('sends a text message and gets the mid and the usage headers back', async () => {
    const result = await send(psid, 'Hi from the Graph client');
    expect(result.recipient_id).toBe(psid);
    expect(result.message_id).toMatch(/^m_/);
    expect(graph.usageFor(pageId)?.app).not.toBeNull();
    const thread = await control<{ messages: { mid: string; text?: string }[] }>('GET', `/_emulator/pages/${pageId}/threads/${psid}`);
    expect(thread.messages.some((m) => m.mid === result.message_id)).toBe(true);
  });

  it('sends a sender action', async () => {
    await expect(graph.senderAction(pageId, pageToken, { id: psid }, 'typing_on')).resolves.toBeDefined();
  });

  it("reads a person's profile, and classifies a hidden profile as normal", async () => {
    const profile = await graph.getProfile(psid, pageToken, ['first_name', 'last_name']);
    expect(profile).toMatchObject({ id: psid, first_name: 'Ada', last_name: 'Lovelace' });

    const hidden = await control<{ id: string }>('POST', '/_emulator/users', { first_name: 'Hidden', hidden_profile: true });
    const hiddenPsid = await customerWrites(hidden.id);
    const err = await rejection(graph.getProfile(hiddenPsid, pageToken, ['first_name']));
    expect(err).toBeInstanceOf(MetaApiError);
    expect(classifyError(err)).toMatchObject({ gatewayCode: 'META_PROFILE_UNAVAILABLE', retryable: false });
  });

  it('uploads an attachment by bytes and by URL, and sends it by attachment_id', async () => {
    const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');
    const byBytes = await graph.uploadAttachment(pageId, pageToken, { type: 'image', data: png, filename: 'pixel.png', contentType: 'image/png' });
    expect(byBytes.attachment_id).toMatch(/^\d+$/);
    const byUrl = await graph.uploadAttachment(pageId, pageToken, { type: 'image', url: mediaUrl });
    expect(byUrl.attachment_id).toMatch(/^\d+$/);
    const sent = await graph.sendMessage(pageId, pageToken, {
      recipient: { id: psid },
      message: { attachment: { type: 'image', payload: { attachment_id: byBytes.attachment_id } } },
    });
    expect(sent.message_id).toMatch(/^m_/);
  });

  it('subscribes the app to the Page with every field, lists it, and unsubscribes', async () => {
    await graph.subscribeApp(pageId, pageToken);
    const apps = await graph.getSubscribedApps(pageId, pageToken);
    const ours = apps.find((a) => a.id === appId);
    expect(ours?.subscribed_fields).toEqual(expect.arrayContaining([...PAGE_SUBSCRIBED_FIELDS]));
    await graph.unsubscribeApp(pageId, pageToken);
    expect((await graph.getSubscribedApps(pageId, pageToken)).find((a) => a.id === appId)).toBeUndefined();
  });

  it('reads the Page with its linked Instagram account', async () => {
    const page = await graph.getPage(pageId, pageToken, ['id', 'name', 'instagram_business_account']);
    expect(page).toMatchObject({ id: pageId, name: 'Graph Test Page', instagram_business_account: { id: instagramId } });
  });

  it('checks a token with debug_token', async () => {
    expect(await graph.debugToken(pageToken)).toMatchObject({ is_valid: true, app_id: appId });
  });

  it('goes through Facebook Login: code, long-lived token, Pages with their tokens', async () => {
    const redirectUri = 'http://127.0.0.1:1/callback';
    const { code } = await control<{ code: string }>('POST', '/_emulator/oauth/authorize', { app_id: appId, redirect_uri: redirectUri, state: 's' });
    const short = await graph.exchangeCode(code, redirectUri);
    const long = await graph.exchangeLongLived(short.access_token);
    const pages = await graph.listPages(long.access_token);
    const ours = pages.find((p) => p.id === pageId);
    expect(ours?.access_token).toMatch(/^EAA/);
  });

  it("builds a dialog URL the emulator's Facebook Login answers", async () => {
    const redirectUri = 'http://127.0.0.1:1/callback';
    const url = graph.oauthDialogUrl({ redirectUri, state: 'st8', scopes: ['pages_messaging', 'pages_show_list'], dialogBaseUrl: emulator.url });
    const res = await fetch(`${url}&auto_approve=1`, { redirect: 'manual' });
    expect(res.status).toBeGreaterThanOrEqual(300);
    expect(res.status).toBeLessThan(400);
    const location = new URL(res.headers.get('location') ?? '');
    expect(location.origin + location.pathname).toBe(redirectUri);
    expect(location.searchParams.get('state')).toBe('st8');
    const code = location.searchParams.get('code') ?? '';
    expect((await graph.exchangeCode(code, redirectUri)).access_token.length).toBeGreaterThan(10);
  });

  it('maps a blocked person (551/1545041) to an unavailable contact', async () => {
    const other = await control<{ id: string }>('POST', '/_emulator/users', { first_name: 'Blocky' });
    const otherPsid = await customerWrites(other.id);
    await control('POST', `/_emulator/pages/${pageId}/block`, { user: other.id });
    const err = await rejection(send(otherPsid, 'are you there?'));
    expect(err).toMatchObject({ code: 551, subcode: 1545041 });
    expect(classifyError(err)).toMatchObject({ gatewayCode: 'META_USER_UNAVAILABLE', contactEffect: 'unavailable', retryable: false });
  });

  it('maps a rate limit (613) to a retryable rate limit that slows the sender', async () => {
    await control('POST', '/_emulator/faults', { kind: 'rate_limit', page: pageId, count: 1 });
    const err = await rejection(send(psid, 'too fast'));
    expect(err).toMatchObject({ code: 613 });
    expect(classifyError(err)).toMatchObject({ gatewayCode: 'META_RATE_LIMITED', retryable: true, senderEffect: 'rate_limited' });
  });

  it('maps a send outside the window to WINDOW_CLOSED', async () => {
    const late = await control<{ id: string }>('POST', '/_emulator/users', { first_name: 'Late' });
    const latePsid = await customerWrites(late.id);
    await control('POST', '/_emulator/clock', { advance_ms: 25 * 60 * 60 * 1000 });
    try {
      const err = await rejection(send(latePsid, 'too late'));
      expect(classifyError(err)).toMatchObject({ gatewayCode: 'WINDOW_CLOSED', retryable: false });
    } finally {
      await control('POST', '/_emulator/clock', { offset_ms: 0 });
    }
  });

  it('reports a send whose answer never comes as a timeout that may have been delivered', async () => {
    const impatient = new GraphClient({ baseUrl: emulator.url, version: 'v25.0', appId, appSecret, timeoutMs: 300 });
    try {
      await control('POST', '/_emulator/faults', { kind: 'accept_then_drop', page: pageId, count: 1, ms: 5_000 });
      const err = await rejection(impatient.sendMessage(pageId, pageToken, { recipient: { id: psid }, message: { text: 'did it go?' } }));
      expect(err).toBeInstanceOf(MetaTransportError);
      expect((err as MetaTransportError).maybeDelivered).toBe(true);
      expect(classifyError(err)).toMatchObject({ retryable: true, reconcile: true });
      const thread = await control<{ messages: { text?: string }[] }>('GET', `/_emulator/pages/${pageId}/threads/${psid}`);
      expect(thread.messages.some((m) => m.text === 'did it go?')).toBe(true);
    } finally {
      await control('DELETE', '/_emulator/faults');
      await impatient.close();
    }
  });

  it('maps a revoked token (190) to reauthorisation, and debug_token then says invalid', async () => {
    await control('POST', `/_emulator/pages/${pageId}/revoke_token`);
    const err = await rejection(send(psid, 'still there?'));
    expect(err).toMatchObject({ code: 190 });
    expect(classifyError(err)).toMatchObject({ gatewayCode: 'META_TOKEN_INVALID', senderEffect: 'reauth_required', retryable: false });
    // debug_token answers about a dead token with is_valid false, as Meta does.
    expect(await graph.debugToken(pageToken)).toMatchObject({ is_valid: false });
  });
});
