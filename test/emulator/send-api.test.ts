import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startEmulator, type RunningEmulator } from '../../emulator/index.js';
import { createWorld, http, send, type GraphErrorBody, type World } from './helpers.js';

// The Send API's rules answer Meta's codes and HTTP statuses.

const HOUR = 60 * 60 * 1000;
let emulator: RunningEmulator;
let files: Server;
let filesUrl: string;
let world: World;

beforeAll(async () => {
  emulator = await startEmulator({ deliveryDelayMs: null, readDelayMs: null, attachmentFetchTimeoutMs: 2_000 });
  files = createServer((req, res) => {
    if (req.url === '/cat.png') res.writeHead(200, { 'content-type': 'image/png' }).end(Buffer.from('89504e470d0a1a0a', 'hex'));
    else res.writeHead(404).end('missing');
  });
  await new Promise<void>((resolve) => files.listen(0, '127.0.0.1', resolve));
  filesUrl = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await emulator.close();
  await new Promise<void>((resolve) => files.close(() => resolve()));
});

beforeEach(async () => {
  await http('POST', `${emulator.url}/_emulator/reset`);
  world = await createWorld(emulator.url);
});

function expectError(result: { status: number; body: Partial<GraphErrorBody> }, status: number, code: number, subcode?: number, type = 'OAuthException'): void {
  expect(result.status).toBe(status);
  expect(result.body.error).toBeDefined();
  expect(result.body.error!.code).toBe(code);
  expect(result.body.error!.type).toBe(type);
  expect(typeof result.body.error!.fbtrace_id).toBe('string');
  expect(typeof result.body.error!.message).toBe('string');
  if (subcode !== undefined) expect(result.body.error!.error_subcode).toBe(subcode);
}

const text = (t: string, extra: Record<string, unknown> = {}) => ({ recipient: { id: world.psid }, messaging_type: 'RESPONSE', message: { text: t }, ...extra });

async function moveClock(body: Record<string, number>): Promise<void> {
  const result = await http('POST', `${emulator.url}/_emulator/clock`, { json: body });
  expect(result.status).toBe(200);
}

describe('Send API', () => {
  it('accepts a message inside the window and shows it in the thread', async () => {
    const result = await send(emulator.url, world.token, text('Hello there'), world.pageId);
    expect(result.status).toBe(200);
    expect(result.body.recipient_id).toBe(world.psid);
    expect(result.body.message_id).toMatch(/^m_[A-Za-z0-9_-]+$/);
    const thread = await http<{ messages: Array<Record<string, unknown>> }>('GET', `${emulator.url}/_emulator/pages/${world.pageId}/threads/${world.psid}`);
    expect(thread.body.messages.map((m) => [m.from, m.text])).toEqual([
      ['user', 'hello'],
      ['page', 'Hello there'],
    ]);
    expect(thread.body.messages[1]).toMatchObject({ mid: result.body.message_id, messaging_type: 'RESPONSE' });
  });

  it('takes the token from the query or an Authorization header and reports usage on every call', async () => {
    const viaHeader = await http<Record<string, unknown>>('POST', `${emulator.url}/v25.0/me/messages`, {
      json: text('via header'),
      headers: { authorization: `Bearer ${world.token}` },
    });
    expect(viaHeader.status).toBe(200);
    const appUsage = JSON.parse(viaHeader.headers.get('x-app-usage')!) as Record<string, number>;
    expect(Object.keys(appUsage).sort()).toEqual(['call_count', 'total_cputime', 'total_time']);
    expect(appUsage.call_count).toBeGreaterThan(0);
    const buc = JSON.parse(viaHeader.headers.get('x-business-use-case-usage')!) as Record<string, Array<Record<string, unknown>>>;
    expect(buc[world.pageId]![0]).toMatchObject({ type: 'messenger', estimated_time_to_regain_access: 0 });
    expect(buc[world.pageId]![0]!.call_count).toBeGreaterThan(0);
    const failing = await send(emulator.url, 'EAAnonsense', text('x'));
    expect(failing.headers.get('x-app-usage')).not.toBeNull();
    expect(failing.headers.get('x-business-use-case-usage')).not.toBeNull();
  });

  it('answers 104 without a token and 190 for unknown, revoked and other Pages\' tokens', async () => {
    expectError(await http('POST', `${emulator.url}/v25.0/me/messages`, { json: text('x') }), 400, 104);
    const unknown = await send(emulator.url, 'EAAunknown', text('x'));
    expectError(unknown, 400, 190);
    expect(unknown.headers.get('www-authenticate')).toContain('invalid_token');

    const other = await http<{ id: string; access_token: string }>('POST', `${emulator.url}/_emulator/pages`, { json: { app_id: world.appId } });
    expectError(await send(emulator.url, other.body.access_token, text('x'), world.pageId), 400, 190);

    await http('POST', `${emulator.url}/_emulator/pages/${world.pageId}/revoke_token`);
    expectError(await send(emulator.url, world.token, text('x')), 400, 190, 460);
    const fresh = await http<{ access_token: string }>('POST', `${emulator.url}/_emulator/pages/${world.pageId}/token`);
    expect((await send(emulator.url, fresh.body.access_token, text('back'))).status).toBe(200);
  });

  it('checks appsecret_proof when given, and requires it when the app says so', async () => {
    const proof = createHmac('sha256', world.secret).update(world.token).digest('hex');
    const good = await http('POST', `${emulator.url}/v25.0/me/messages?access_token=${world.token}&appsecret_proof=${proof}`, { json: text('proved') });
    expect(good.status).toBe(200);
    const bad = await http<Partial<GraphErrorBody>>('POST', `${emulator.url}/v25.0/me/messages?access_token=${world.token}&appsecret_proof=${'0'.repeat(64)}`, {
      json: text('x'),
    });
    expectError(bad, 400, 100);
    await http('PATCH', `${emulator.url}/_emulator/apps/${world.appId}`, { json: { require_appsecret_proof: true } });
    expectError(await send(emulator.url, world.token, text('x')), 400, 100);
  });

  it('answers 100/2018001 for a PSID that is not this Page\'s', async () => {
    expectError(await send(emulator.url, world.token, { recipient: { id: '1234567890123456' }, message: { text: 'x' } }), 400, 100, 2018001);
    const otherPage = await http<{ id: string; access_token: string }>('POST', `${emulator.url}/_emulator/pages`, { json: { app_id: world.appId } });
    const otherPsid = await http<{ psid: string }>('POST', `${emulator.url}/_emulator/pages/${otherPage.body.id}/inbound`, {
      json: { user: world.userId, text: 'hi other page' },
    });
    expect(otherPsid.body.psid).not.toBe(world.psid);
    expectError(await send(emulator.url, world.token, { recipient: { id: otherPsid.body.psid }, message: { text: 'x' } }), 400, 100, 2018001);
  });

  it('answers 551/1545041 when the person blocked the Page', async () => {
    await http('POST', `${emulator.url}/_emulator/pages/${world.pageId}/block`, { json: { user: world.userId } });
    const blocked = await send(emulator.url, world.token, text('x'));
    expectError(blocked, 400, 551, 1545041);
    expect(blocked.body.error!.message).toBe("(#551) This person isn't available right now.");
    await http('POST', `${emulator.url}/_emulator/pages/${world.pageId}/unblock`, { json: { user: world.psid } });
    expect((await send(emulator.url, world.token, text('x'))).status).toBe(200);
  });

  it('closes the 24-hour window: 10/2018278 for RESPONSE and UPDATE, reopened by a new message', async () => {
    await moveClock({ advance_ms: 25 * HOUR });
    expectError(await send(emulator.url, world.token, text('late')), 400, 10, 2018278);
    expectError(await send(emulator.url, world.token, { ...text('late'), messaging_type: 'UPDATE' }), 400, 10, 2018278);
    await http('POST', `${emulator.url}/_emulator/pages/${world.pageId}/inbound`, { json: { user: world.userId, text: 'again' } });
    expect((await send(emulator.url, world.token, text('in time'))).status).toBe(200);
  });

  it('honours an older inbound timestamp', async () => {
    const now = (await http<{ now: number }>('GET', `${emulator.url}/_emulator/clock`)).body.now;
    const user = await http<{ id: string }>('POST', `${emulator.url}/_emulator/users`, { json: {} });
    const old = await http<{ psid: string }>('POST', `${emulator.url}/_emulator/pages/${world.pageId}/inbound`, {
      json: { user: user.body.id, text: 'long ago', timestamp: now - 30 * HOUR },
    });
    expectError(await send(emulator.url, world.token, { recipient: { id: old.body.psid }, message: { text: 'x' } }), 400, 10, 2018278);
  });

  it('allows HUMAN_AGENT for 7 days only when the app has the permission', async () => {
    const human = { ...text('agent here'), messaging_type: 'MESSAGE_TAG', tag: 'HUMAN_AGENT' };
    await moveClock({ advance_ms: 25 * HOUR });
    expectError(await send(emulator.url, world.token, human), 400, 10, 2018278);
    await http('PATCH', `${emulator.url}/_emulator/apps/${world.appId}`, { json: { human_agent: true } });
    expect((await send(emulator.url, world.token, human)).status).toBe(200);
    await moveClock({ advance_ms: 7 * 24 * HOUR });
    expectError(await send(emulator.url, world.token, human), 400, 10, 2018278);
  });

  it('retires ACCOUNT_UPDATE, CONFIRMED_EVENT_UPDATE and POST_PURCHASE_UPDATE on 2026-04-27', async () => {
    for (const tag of ['ACCOUNT_UPDATE', 'CONFIRMED_EVENT_UPDATE', 'POST_PURCHASE_UPDATE']) {
      await moveClock({ now: Date.UTC(2026, 3, 26, 23, 0) });
      const before = await send(emulator.url, world.token, { ...text('update'), messaging_type: 'MESSAGE_TAG', tag });
      expect(before.status).toBe(200);
      await moveClock({ now: Date.UTC(2026, 3, 27, 0, 0) });
      expectError(await send(emulator.url, world.token, { ...text('update'), messaging_type: 'MESSAGE_TAG', tag }), 400, 100);
    }
  });

  it('refuses tags removed in 2020, unknown tags, and MESSAGE_TAG without a tag', async () => {
    expectError(await send(emulator.url, world.token, { ...text('x'), messaging_type: 'MESSAGE_TAG', tag: 'SHIPPING_UPDATE' }), 400, 100);
    expectError(await send(emulator.url, world.token, { ...text('x'), messaging_type: 'MESSAGE_TAG', tag: 'MADE_UP' }), 400, 100);
    expectError(await send(emulator.url, world.token, { ...text('x'), messaging_type: 'MESSAGE_TAG' }), 400, 100);
    expectError(await send(emulator.url, world.token, { ...text('x'), messaging_type: 'SOMETIMES' }), 400, 100);
  });

  it('answers Instagram window errors with HTTP 403, IGApiException and 10/2534022', async () => {
    await http('POST', `${emulator.url}/_emulator/reset`);
    world = await createWorld(emulator.url, { instagram: true });
    const ig = await http<{ psid: string }>('POST', `${emulator.url}/_emulator/pages/${world.instagramId}/inbound`, {
      json: { user: world.userId, text: 'hi on instagram' },
    });
    const igsid = ig.body.psid;
    expect((await send(emulator.url, world.token, { recipient: { id: igsid }, message: { text: 'ok' } })).status).toBe(200);
    expectError(await send(emulator.url, world.token, { recipient: { id: igsid }, message: { text: 'é'.repeat(501) } }), 400, 100, undefined, 'IGApiException');
    expectError(
      await send(emulator.url, world.token, { recipient: { id: igsid }, messaging_type: 'MESSAGE_TAG', tag: 'ACCOUNT_UPDATE', message: { text: 'x' } }),
      400,
      100,
      undefined,
      'IGApiException',
    );
    await moveClock({ advance_ms: 25 * HOUR });
    expectError(await send(emulator.url, world.token, { recipient: { id: igsid }, message: { text: 'late' } }), 403, 10, 2534022, 'IGApiException');
  });

  it('enforces content limits', async () => {
    expectError(await send(emulator.url, world.token, text('x'.repeat(2001))), 400, 100);
    expect((await send(emulator.url, world.token, text('x'.repeat(2000)))).status).toBe(200);
    expectError(await send(emulator.url, world.token, { recipient: { id: world.psid }, message: {} }), 400, 100, 2018034);
    const replies = (n: number) => Array.from({ length: n }, (_, i) => ({ content_type: 'text', title: `Option ${i}`, payload: `P${i}` }));
    expectError(await send(emulator.url, world.token, { recipient: { id: world.psid }, message: { text: 'pick', quick_replies: replies(14) } }), 400, 100);
    expect((await send(emulator.url, world.token, { recipient: { id: world.psid }, message: { text: 'pick', quick_replies: replies(13) } })).status).toBe(200);
    const button = { type: 'postback', title: 'Go', payload: 'GO' };
    const buttonTemplate = (buttons: unknown[]) => ({
      recipient: { id: world.psid },
      message: { attachment: { type: 'template', payload: { template_type: 'button', text: 'Choose', buttons } } },
    });
    expectError(await send(emulator.url, world.token, buttonTemplate([button, button, button, button])), 400, 100);
    expectError(await send(emulator.url, world.token, buttonTemplate([])), 400, 100);
    expectError(await send(emulator.url, world.token, buttonTemplate([{ type: 'postback', title: 'x'.repeat(21), payload: 'P' }])), 400, 100);
    expect((await send(emulator.url, world.token, buttonTemplate([button]))).status).toBe(200);
    const generic = (n: number) => ({
      recipient: { id: world.psid },
      message: { attachment: { type: 'template', payload: { template_type: 'generic', elements: Array.from({ length: n }, (_, i) => ({ title: `Item ${i}` })) } } },
    });
    expectError(await send(emulator.url, world.token, generic(11)), 400, 100);
    expect((await send(emulator.url, world.token, generic(10))).status).toBe(200);
    expectError(await send(emulator.url, world.token, { ...text('x'), message: { text: 'x', metadata: 'm'.repeat(1001) } }), 400, 100);
  });

  it('fetches attachment URLs, answers 100/2018047 when the fetch fails, and reuses attachment ids', async () => {
    const image = (payload: Record<string, unknown>) => ({ recipient: { id: world.psid }, message: { attachment: { type: 'image', payload } } });
    expectError(await send(emulator.url, world.token, image({ url: `${filesUrl}/missing.png` })), 400, 100, 2018047);
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/x.png`;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    expectError(await send(emulator.url, world.token, image({ url: closedUrl })), 400, 100, 2018047);

    const sent = await send(emulator.url, world.token, image({ url: `${filesUrl}/cat.png`, is_reusable: true }));
    expect(sent.status).toBe(200);
    expect(sent.body.attachment_id).toMatch(/^\d+$/);
    expect((await send(emulator.url, world.token, image({ attachment_id: sent.body.attachment_id }))).status).toBe(200);
    expectError(await send(emulator.url, world.token, image({ attachment_id: '999999' })), 400, 100);

    const thread = await http<{ messages: Array<{ attachment?: { payload: { url: string } } }> }>(
      'GET',
      `${emulator.url}/_emulator/pages/${world.pageId}/threads/${world.psid}`,
    );
    const copy = thread.body.messages.at(-1)!.attachment!.payload.url;
    expect(copy.startsWith(emulator.url)).toBe(true);
    const download = await fetch(copy);
    expect(Buffer.from(await download.arrayBuffer()).toString('hex')).toBe('89504e470d0a1a0a');
  });

  it('accepts form-encoded and multipart sends', async () => {
    const form = new URLSearchParams({
      recipient: JSON.stringify({ id: world.psid }),
      message: JSON.stringify({ text: 'from a form' }),
      messaging_type: 'RESPONSE',
      access_token: world.token,
    });
    const formSend = await http('POST', `${emulator.url}/v25.0/me/messages`, { body: form });
    expect(formSend.status).toBe(200);
    const multipart = new FormData();
    multipart.append('recipient', JSON.stringify({ id: world.psid }));
    multipart.append('message', JSON.stringify({ attachment: { type: 'file', payload: {} } }));
    multipart.append('filedata', new Blob([Buffer.from('%PDF-1.4 test')], { type: 'application/pdf' }), 'doc.pdf');
    const upload = await http('POST', `${emulator.url}/v25.0/me/messages?access_token=${world.token}`, { body: multipart });
    expect(upload.status).toBe(200);
  });

  it('answers 613 past the per-Page send rate', async () => {
    const limited = await startEmulator({ sendRateLimitPerSecond: 2, deliveryDelayMs: null, readDelayMs: null });
    try {
      const w = await createWorld(limited.url);
      const results = await Promise.all(Array.from({ length: 20 }, () => send(limited.url, w.token, { recipient: { id: w.psid }, message: { text: 'burst' } })));
      const refused = results.filter((r) => r.status !== 200);
      expect(refused.length).toBeGreaterThan(0);
      for (const r of refused) expectError(r, 400, 613);
    } finally {
      await limited.close();
    }
  });

  it('applies sender actions to the thread and refuses them mixed with a message', async () => {
    const typing = await send(emulator.url, world.token, { recipient: { id: world.psid }, sender_action: 'typing_on' });
    expect(typing.status).toBe(200);
    expect(typing.body).toEqual({ recipient_id: world.psid });
    const path = `${emulator.url}/_emulator/pages/${world.pageId}/threads/${world.psid}`;
    expect((await http<{ typing: boolean }>('GET', path)).body.typing).toBe(true);
    await send(emulator.url, world.token, { recipient: { id: world.psid }, sender_action: 'mark_seen' });
    const seen = await http<{ typing: boolean; seen_watermark: number; messages: Array<{ timestamp: number }> }>('GET', path);
    expect(seen.body.seen_watermark).toBe(seen.body.messages[0]!.timestamp);
    await send(emulator.url, world.token, text('typing stops when a message arrives'));
    expect((await http<{ typing: boolean }>('GET', path)).body.typing).toBe(false);
    expectError(await send(emulator.url, world.token, { recipient: { id: world.psid }, sender_action: 'typing_on', message: { text: 'x' } }), 400, 100);
    expectError(await send(emulator.url, world.token, { recipient: { id: world.psid }, sender_action: 'dance' }), 400, 100);
  });

  it('sends once to a checkbox user_ref, without recipient_id', async () => {
    await http('POST', `${emulator.url}/_emulator/pages/${world.pageId}/inbound`, { json: { optin: { ref: 'cart', user_ref: 'ur-1' } } });
    const first = await send(emulator.url, world.token, { recipient: { user_ref: 'ur-1' }, message: { text: 'thanks for opting in' } });
    expect(first.status).toBe(200);
    expect(first.body).not.toHaveProperty('recipient_id');
    expect(first.body.message_id).toMatch(/^m_/);
    expectError(await send(emulator.url, world.token, { recipient: { user_ref: 'ur-1' }, message: { text: 'again' } }), 400, 10, 2018278);
    expectError(await send(emulator.url, world.token, { recipient: { user_ref: 'unknown' }, message: { text: 'x' } }), 400, 100, 2018001);
  });
});
