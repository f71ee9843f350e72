/** Connecting Pages and Instagram accounts against the emulator, and keeping their health. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkSender } from '../../src/pipeline/senders.js';
import { eventually, startStack } from '../support/stack.js';
import type { Stack } from '../support/stack.js';

interface Sender {
  id: string;
  channel: string;
  meta_id: string;
  health: string;
  inbound_url: string | null;
  human_agent: boolean;
}

describe('senders', () => {
  let s: Stack;
  beforeAll(async () => {
    s = await startStack();
  });
  afterAll(async () => {
    await s?.close();
  });

  it('connect a Page with a pasted token and subscribe it to every webhook field', async () => {
    const page = (await s.emu<{ id: string; access_token: string }>('POST', '/_emulator/pages', { app_id: s.app.id, name: 'Bakery' })).body;
    const res = await s.api<Sender>('POST', '/v1/senders', { access_token: page.access_token });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ channel: 'messenger', meta_id: page.id, health: 'active', human_agent: false });
    expect(JSON.stringify(res.body)).not.toContain(page.access_token);
    const subs = await s.emu<{ data: { id: string; subscribed_fields: string[] }[] }>('GET', `/v25.0/${page.id}/subscribed_apps?access_token=${page.access_token}`);
    const ours = subs.body.data.find((a) => a.id === s.app.id);
    expect(ours?.subscribed_fields).toEqual(expect.arrayContaining(['messages', 'message_echoes', 'message_deliveries', 'message_reads', 'messaging_postbacks', 'messaging_optins', 'messaging_referrals', 'message_reactions']));
    // The token is stored encrypted, never as given.
    const row = await s.store.db.selectFrom('senders').select('token_enc').where('id', '=', res.body.id).executeTakeFirstOrThrow();
    expect(row.token_enc).not.toContain(page.access_token);
  });

  it('connect the Instagram account linked to a Page', async () => {
    const page = (await s.emu<{ id: string; access_token: string; instagram_id: string }>('POST', '/_emulator/pages', { app_id: s.app.id, name: 'Shop', instagram: true })).body;
    const res = await s.api<Sender>('POST', '/v1/senders', { access_token: page.access_token, page_id: page.id, channel: 'instagram' });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ channel: 'instagram', meta_id: page.instagram_id });
  });

  it('refuse a Page already connected, to this account or another, with a clear code', async () => {
    const { page, sender } = await s.connectPage({ name: 'Twice' });
    const again = await s.api<{ error: { code: string; details: { sender_id?: string } } }>('POST', '/v1/senders', { access_token: page.access_token });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('SENDER_ALREADY_CONNECTED');
    expect(again.body.error.details.sender_id).toBe(sender.id);
    const other = await s.newAccount('Other business');
    const elsewhere = await s.api<{ error: { code: string; details: Record<string, unknown> } }>('POST', '/v1/senders', { access_token: page.access_token }, other.key);
    expect(elsewhere.status).toBe(409);
    expect(elsewhere.body.error.code).toBe('SENDER_ALREADY_CONNECTED');
    expect(elsewhere.body.error.details.sender_id).toBeUndefined();
  });

  it('show Meta refusing a token as an error, not a silent log line', async () => {
    const res = await s.api<{ error: { code: string; message: string } }>('POST', '/v1/senders', { access_token: 'EAAnot-a-real-token-at-all' });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(res.body.error.code).toBe('META_TOKEN_INVALID');
    expect(res.body.error.message).toMatch(/Meta refused/);
    // A paste that brought a line break or a control character along never reaches Meta.
    for (const access_token of ['EAAB\ntoken-with-a-break', 'EAAB\u0007token-with-a-bell', 'EAAB token with spaces']) {
      const bad = await s.api<{ error: { code: string; details: { field: string } } }>('POST', '/v1/senders', { access_token });
      expect(bad.status).toBe(400);
      expect(bad.body.error).toMatchObject({ code: 'VALIDATION_FAILED', details: { field: 'body.access_token' } });
    }
  });

  it('connect Pages through Facebook Login for Business', async () => {
    const page = (await s.emu<{ id: string; instagram_id: string }>('POST', '/_emulator/pages', { app_id: s.app.id, name: 'Login Page', instagram: true })).body;
    // Where the browser goes afterwards must be a web page.
    for (const return_url of ['not a url', 'javascript:alert(1)', 'data:text/html,hi']) {
      const refused = await s.api<{ error: { code: string; details: { field: string } } }>('POST', '/v1/senders/connect', { return_url });
      expect(refused.status, return_url).toBe(400);
      expect(refused.body.error).toMatchObject({ code: 'VALIDATION_FAILED', details: { field: 'body.return_url' } });
    }
    const start = await s.api<{ url: string; state: string }>('POST', '/v1/senders/connect', {});
    expect(start.status).toBe(201);
    const dialog = new URL(start.body.url);
    expect(dialog.origin).toBe(s.emulator.url);
    expect(dialog.searchParams.get('client_id')).toBe(s.app.id);
    // The person approves in the dialog; the emulator redirects to the gateway's callback with a code.
    dialog.searchParams.set('auto_approve', '1');
    dialog.searchParams.set('page_ids', page.id);
    const approved = await fetch(dialog, { redirect: 'manual' });
    expect(approved.status).toBeGreaterThanOrEqual(300);
    const callback = new URL(approved.headers.get('location') ?? '');
    expect(callback.pathname).toBe('/v1/senders/connect/callback');
    const offered = await fetch(callback, { headers: { accept: 'application/json' } });
    expect(offered.status).toBe(200);
    const list = (await offered.json()) as { state: string; pages: { id: string; instagram: { id: string } | null }[] };
    expect(list.pages.map((p) => p.id)).toEqual([page.id]);
    expect(list.pages[0]?.instagram?.id).toBe(page.instagram_id);
    // The HTML variant lists the same Pages for a person to pick.
    const html = await (await fetch(callback, { headers: { accept: 'text/html' } })).text();
    expect(html).toContain(page.id);
    const picked = await fetch(`${s.url}/v1/senders/connect/callback`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ state: list.state, pages: [page.id], instagram: [page.instagram_id] }),
    });
    expect(picked.status).toBe(200);
    const result = (await picked.json()) as { connected: Sender[]; failed: unknown[] };
    expect(result.failed).toEqual([]);
    expect(result.connected.map((c) => [c.channel, c.meta_id])).toEqual([
      ['messenger', page.id],
      ['instagram', page.instagram_id],
    ]);
    // Single use.
    const reused = await fetch(`${s.url}/v1/senders/connect/callback`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ state: list.state, pages: [page.id] }) });
    expect(reused.status).toBe(404);
  });

  it('change callback settings, refusing private addresses the operator did not allow', async () => {
    const { sender } = await s.connectPage({ name: 'Settings' });
    const ok = await s.api<Sender>('PATCH', `/v1/senders/${sender.id}`, { inbound_url: 'http://127.0.0.1:9/in', inbound_method: 'POST', human_agent: true, settings: { opt_out: { languages: ['en', 'es'] } } });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ inbound_url: 'http://127.0.0.1:9/in', human_agent: true });
    const priv = await s.api<{ error: { code: string } }>('PATCH', `/v1/senders/${sender.id}`, { status_url: 'http://10.1.2.3/status' });
    expect(priv.status).toBe(422);
    expect(priv.body.error.code).toBe('URL_NOT_ALLOWED');
    // Pacing below Meta's limits is the sender's own; a rate out of bounds is refused, not clamped in silence.
    const paced = await s.api<Sender & { settings: Record<string, unknown> }>('PATCH', `/v1/senders/${sender.id}`, { settings: { pacing: { text_per_second: 50 } } });
    expect(paced.status).toBe(200);
    expect(paced.body.settings).toMatchObject({ pacing: { text_per_second: 50 }, opt_out: { languages: ['en', 'es'] } });
    const tooFast = await s.api<{ error: { code: string; details: { field: string } } }>('PATCH', `/v1/senders/${sender.id}`, { settings: { pacing: { text_per_second: 0 } } });
    expect(tooFast.status).toBe(400);
    expect(tooFast.body.error.code).toBe('VALIDATION_FAILED');
    const unknown = await s.api<{ error: { code: string } }>('PATCH', `/v1/senders/${sender.id}`, { colour: 'blue' });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.code).toBe('VALIDATION_FAILED');
    const cleared = await s.api<Sender>('PATCH', `/v1/senders/${sender.id}`, { inbound_url: null });
    expect(cleared.body.inbound_url).toBeNull();
    // Delivery disabled the inbound endpoint after days of failures; setting the URL again enables it.
    await s.api<Sender>('PATCH', `/v1/senders/${sender.id}`, { inbound_url: 'http://127.0.0.1:9/in' });
    const endpointOf = () => s.store.db.selectFrom('endpoints').select(['enabled', 'disabled_at', 'failing_since']).where('sender_id', '=', sender.id).where('role', '=', 'inbound').where('deleted_at', 'is', null).executeTakeFirstOrThrow();
    await s.store.db.updateTable('endpoints').set({ enabled: 0, disabled_at: 1, disabled_reason: 'failing', failing_since: 1 }).where('sender_id', '=', sender.id).where('role', '=', 'inbound').execute();
    await s.api<Sender>('PATCH', `/v1/senders/${sender.id}`, { human_agent: false });
    expect((await endpointOf()).enabled).toBe(0);
    await s.api<Sender>('PATCH', `/v1/senders/${sender.id}`, { inbound_url: 'http://127.0.0.1:9/in' });
    expect(await endpointOf()).toEqual({ enabled: 1, disabled_at: null, failing_since: null });
    // Only formats a dialect provides: another would leave every event of the sender undeliverable.
    const format = await s.api<{ error: { code: string; details: { field: string } } }>('PATCH', `/v1/senders/${sender.id}`, { format: 'smoke-signals' });
    expect(format.status).toBe(400);
    expect(format.body.error).toMatchObject({ code: 'VALIDATION_FAILED', details: { field: 'body.format' } });
    expect((await s.api<Sender>('PATCH', `/v1/senders/${sender.id}`, { format: 'native' })).status).toBe(200);
  });

  it('move to reauth_required when the token is revoked, keep inbound flowing, and recover on reconnect', async () => {
    const { page, sender } = await s.connectPage({ name: 'Revoked' });
    const revoked = await s.emu('POST', `/_emulator/pages/${page.id}/revoke_token`, {});
    expect(revoked.status).toBe(200);
    const checked = await s.api<Sender>('POST', `/v1/senders/${sender.id}/check`);
    expect(checked.body.health).toBe('reauth_required');
    const events = await s.api<{ data: { type: string; data: { health: string; sender_id: string } }[] }>('GET', '/v1/events?type=sender.health_changed');
    expect(events.body.data.some((e) => e.data.sender_id === sender.id && e.data.health === 'reauth_required')).toBe(true);
    // Inbound keeps flowing while the sender awaits reauthorisation.
    const user = await s.emu<{ id: string }>('POST', '/_emulator/users', { first_name: 'Robin' });
    await s.emu('POST', `/_emulator/pages/${page.id}/inbound`, { user: user.body.id, text: 'still there?' });
    await eventually(async () => {
      const r = await s.api<{ data: { sender_id: string }[] }>('GET', `/v1/messages?sender_id=${sender.id}`);
      return r.body.data.length > 0;
    }, 15_000, 'the inbound message for a sender awaiting reauth');
    const fresh = await s.emu<{ access_token: string }>('POST', `/_emulator/pages/${page.id}/token`, {});
    const back = await s.api<Sender>('POST', `/v1/senders/${sender.id}/reconnect`, { access_token: fresh.body.access_token });
    expect(back.status).toBe(200);
    expect(back.body.health).toBe('active');
  });

  it('keep what arrived before the Page was connected as unroutable, and show it to the account that connects it', async () => {
    const page = (await s.emu<{ id: string; access_token: string }>('POST', '/_emulator/pages', { app_id: s.app.id, name: 'Early', subscribe: true })).body;
    const user = await s.emu<{ id: string }>('POST', '/_emulator/users', { first_name: 'Early bird' });
    await s.emu('POST', `/_emulator/pages/${page.id}/inbound`, { user: user.body.id, text: 'anyone there?' });
    await eventually(() => s.store.db.selectFrom('unroutable_events').select('id').where('entry_id', '=', page.id).executeTakeFirst(), 15_000, 'the unroutable row');
    const connected = await s.api<Sender>('POST', '/v1/senders', { access_token: page.access_token });
    const list = await s.api<{ data: { entry_id: string; item: { message?: { text?: string } } }[] }>('GET', `/v1/senders/${connected.body.id}/unroutable`);
    expect(list.status).toBe(200);
    expect(list.body.data.map((d) => d.item.message?.text)).toContain('anyone there?');
    const other = await s.newAccount('Nosy');
    expect((await s.api('GET', `/v1/senders/${connected.body.id}/unroutable`, undefined, other.key)).status).toBe(404);
  });

  it('disconnect: unsubscribe at Meta and free the Page for another account', async () => {
    const { page, sender } = await s.connectPage({ name: 'Leaving' });
    const gone = await s.api<Sender>('DELETE', `/v1/senders/${sender.id}`);
    expect(gone.status).toBe(200);
    expect(gone.body.health).toBe('disconnected');
    const subs = await s.emu<{ data: { id: string }[] }>('GET', `/v25.0/${page.id}/subscribed_apps?access_token=${page.access_token}`);
    expect(subs.body.data.find((a) => a.id === s.app.id)).toBeUndefined();
    const other = await s.newAccount('New owner');
    const taken = await s.api('POST', '/v1/senders', { access_token: page.access_token }, other.key);
    expect(taken.status).toBe(201);
  });

  it('periodic check: restores a lost subscription, and keeps a token without the messaging permission degraded', async () => {
    const { page, sender } = await s.connectPage({ name: 'Checked' });
    const graph = `${s.emulator.url}/v25.0/${page.id}/subscribed_apps?access_token=${encodeURIComponent(page.access_token)}`;
    expect((await fetch(graph, { method: 'DELETE' })).status).toBe(200);
    expect((await s.emu<{ subscribed_apps: unknown[] }>('GET', `/_emulator/pages/${page.id}`)).body.subscribed_apps).toEqual([]);
    const checked = await checkSender(s.gateway.ctx, sender.id);
    expect(checked?.health).toBe('active');
    expect((await s.emu<{ subscribed_apps: unknown[] }>('GET', `/_emulator/pages/${page.id}`)).body.subscribed_apps).toHaveLength(1);

    const limited = (await s.emu<{ id: string; access_token: string }>('POST', '/_emulator/pages', { app_id: s.app.id, name: 'No messaging', scopes: ['pages_show_list', 'pages_manage_metadata'] })).body;
    const connected = await s.api<Sender>('POST', '/v1/senders', { access_token: limited.access_token, page_id: limited.id });
    expect(connected.status).toBe(201);
    await checkSender(s.gateway.ctx, connected.body.id);
    const row = await s.store.db.selectFrom('senders').select(['health', 'health_reason']).where('id', '=', connected.body.id).executeTakeFirstOrThrow();
    expect(row).toEqual({ health: 'degraded', health_reason: 'the Page token lacks the pages_messaging permission' });
    // Checked again, it stays degraded: no back and forth.
    await checkSender(s.gateway.ctx, connected.body.id);
    expect((await s.store.db.selectFrom('senders').select('health').where('id', '=', connected.body.id).executeTakeFirstOrThrow()).health).toBe('degraded');
  });
});
