import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type RunningEmulator } from '../../emulator/index.js';
import { http, send, type GraphErrorBody } from './helpers.js';

// Facebook Login for Business: dialog, code exchange, long-lived tokens, /me/accounts.

let emulator: RunningEmulator;
let appId: string;
let secret: string;
const pages: Array<{ id: string; name: string }> = [];
const redirectUri = 'http://127.0.0.1:9/oauth/callback';

beforeAll(async () => {
  emulator = await startEmulator({ deliveryDelayMs: null, readDelayMs: null });
  const app = await http<{ id: string; secret: string }>('POST', `${emulator.url}/_emulator/apps`, { json: { id: '123456789012345', name: 'Switchboard Test' } });
  expect(app.status).toBe(201);
  appId = app.body.id;
  secret = app.body.secret;
  for (const name of ['Bakery', 'Bike Shop']) {
    const page = await http<{ id: string }>('POST', `${emulator.url}/_emulator/pages`, { json: { app_id: appId, name, instagram: name === 'Bakery' } });
    pages.push({ id: page.body.id, name });
  }
});

afterAll(async () => {
  await emulator.close();
});

const graph = <T = Record<string, unknown>>(path: string) => http<T & Partial<GraphErrorBody>>('GET', `${emulator.url}/v25.0/${path}`);

function codeFrom(location: string): { code: string; state: string | null } {
  const url = new URL(location);
  expect(`${url.origin}${url.pathname}`).toBe(redirectUri);
  return { code: url.searchParams.get('code')!, state: url.searchParams.get('state') };
}

async function exchange(code: string): Promise<string> {
  const query = new URLSearchParams({ client_id: appId, client_secret: secret, redirect_uri: redirectUri, code });
  const token = await graph<{ access_token: string; token_type: string; expires_in: number }>(`oauth/access_token?${query}`);
  expect(token.status).toBe(200);
  expect(token.body.token_type).toBe('bearer');
  return token.body.access_token;
}

describe('OAuth', () => {
  it('renders the consent page listing the app\'s Pages', async () => {
    const query = new URLSearchParams({ client_id: appId, redirect_uri: redirectUri, state: 'xyz', scope: 'pages_messaging,pages_show_list' });
    const page = await http('GET', `${emulator.url}/v25.0/dialog/oauth?${query}`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    for (const { id, name } of pages) {
      expect(page.text).toContain(name);
      expect(page.text).toContain(`value="${id}"`);
    }
    expect(page.text).toContain('action="/dialog/oauth/approve"');
    const unknown = await http('GET', `${emulator.url}/dialog/oauth?client_id=999&redirect_uri=${encodeURIComponent(redirectUri)}`);
    expect(unknown.status).toBe(400);
  });

  it('turns an approval into a code, a user token, a long-lived token and Page tokens that send', async () => {
    const form = new URLSearchParams({ client_id: appId, redirect_uri: redirectUri, state: 'st-1', scope: 'pages_messaging', decision: 'approve' });
    form.append('page_ids', pages[0]!.id);
    const approved = await http('POST', `${emulator.url}/dialog/oauth/approve`, { body: form, redirect: 'manual' });
    expect(approved.status).toBe(302);
    const { code, state } = codeFrom(approved.headers.get('location')!);
    expect(state).toBe('st-1');

    const userToken = await exchange(code);
    const reused = await graph(`oauth/access_token?${new URLSearchParams({ client_id: appId, client_secret: secret, redirect_uri: redirectUri, code })}`);
    expect(reused.body.error).toMatchObject({ code: 100, error_subcode: 36009 });

    const long = await graph<{ access_token: string; expires_in: number }>(
      `oauth/access_token?${new URLSearchParams({ grant_type: 'fb_exchange_token', client_id: appId, client_secret: secret, fb_exchange_token: userToken })}`,
    );
    expect(long.body.expires_in).toBeGreaterThan(50 * 24 * 3600);

    const accounts = await graph<{ data: Array<{ id: string; name: string; access_token: string; tasks: string[]; category: string }>; paging: unknown }>(
      `me/accounts?fields=id,name,access_token,tasks&access_token=${long.body.access_token}`,
    );
    expect(accounts.status).toBe(200);
    expect(accounts.body.data.map((p) => p.id)).toEqual([pages[0]!.id]);
    expect(accounts.body.data[0]!.tasks).toContain('MESSAGING');
    expect(accounts.body.paging).toHaveProperty('cursors');
    const pageToken = accounts.body.data[0]!.access_token;

    const fields = await graph(`${pages[0]!.id}?fields=instagram_business_account,name&access_token=${long.body.access_token}`);
    expect(fields.body).toMatchObject({ name: 'Bakery', instagram_business_account: { id: expect.stringMatching(/^1784\d{13}$/) } });

    const debug = await graph<{ data: Record<string, unknown> }>(`debug_token?input_token=${pageToken}&access_token=${encodeURIComponent(`${appId}|${secret}`)}`);
    expect(debug.body.data).toMatchObject({ app_id: appId, type: 'PAGE', is_valid: true, profile_id: pages[0]!.id });

    const user = await http<{ id: string }>('POST', `${emulator.url}/_emulator/users`, { json: {} });
    const inbound = await http<{ psid: string }>('POST', `${emulator.url}/_emulator/pages/${pages[0]!.id}/inbound`, { json: { user: user.body.id, text: 'hi' } });
    const sent = await send(emulator.url, pageToken, { recipient: { id: inbound.body.psid }, message: { text: 'connected!' } });
    expect(sent.status).toBe(200);
    const subscribed = await http('POST', `${emulator.url}/v25.0/${pages[0]!.id}/subscribed_apps?subscribed_fields=messages&access_token=${pageToken}`);
    expect(subscribed.body).toEqual({ success: true });
  });

  it('redirects at once with auto_approve, and with an error on cancel', async () => {
    const query = new URLSearchParams({ client_id: appId, redirect_uri: redirectUri, state: 'auto', auto_approve: '1' });
    const auto = await http('GET', `${emulator.url}/dialog/oauth?${query}`, { redirect: 'manual' });
    expect(auto.status).toBe(302);
    const token = await exchange(codeFrom(auto.headers.get('location')!).code);
    const accounts = await graph<{ data: Array<{ id: string }> }>(`me/accounts?access_token=${token}`);
    expect(accounts.body.data.map((p) => p.id).sort()).toEqual(pages.map((p) => p.id).sort());

    const cancel = new URLSearchParams({ client_id: appId, redirect_uri: redirectUri, state: 'c', decision: 'deny' });
    const denied = await http('POST', `${emulator.url}/dialog/oauth/approve`, { body: cancel, redirect: 'manual' });
    const url = new URL(denied.headers.get('location')!);
    expect(url.searchParams.get('error')).toBe('access_denied');
    expect(url.searchParams.get('state')).toBe('c');
  });

  it('issues codes through the control API and checks secret and redirect_uri on exchange', async () => {
    const authorized = await http<{ code: string; page_ids: string[] }>('POST', `${emulator.url}/_emulator/oauth/authorize`, {
      json: { app_id: appId, redirect_uri: redirectUri, page_ids: [pages[1]!.id] },
    });
    expect(authorized.body.page_ids).toEqual([pages[1]!.id]);
    const wrongSecret = await graph(`oauth/access_token?${new URLSearchParams({ client_id: appId, client_secret: 'nope', redirect_uri: redirectUri, code: authorized.body.code })}`);
    expect(wrongSecret.body.error).toMatchObject({ code: 1 });
    const wrongRedirect = await graph(
      `oauth/access_token?${new URLSearchParams({ client_id: appId, client_secret: secret, redirect_uri: 'http://127.0.0.1:9/other', code: authorized.body.code })}`,
    );
    expect(wrongRedirect.body.error).toMatchObject({ code: 100, error_subcode: 36008 });
    const token = await exchange(authorized.body.code);
    const accounts = await graph<{ data: Array<{ id: string; name: string }> }>(`me/accounts?access_token=${token}`);
    expect(accounts.body.data).toMatchObject([{ id: pages[1]!.id, name: 'Bike Shop' }]);
  });
});
