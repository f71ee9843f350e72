import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startEmulator, type RunningEmulator } from '../../emulator/index.js';
import { createWorld, http, startReceiver, type GraphErrorBody, type World } from './helpers.js';

// Profiles, attachment upload, subscriptions, the Messenger Profile, Page fields and debug_token.

let emulator: RunningEmulator;
let world: World;
const v = 'v25.0';

beforeAll(async () => {
  emulator = await startEmulator({ deliveryDelayMs: null, readDelayMs: null });
});

afterAll(async () => {
  await emulator.close();
});

beforeEach(async () => {
  await http('POST', `${emulator.url}/_emulator/reset`);
  world = await createWorld(emulator.url, { instagram: true });
});

const graph = <T = Record<string, unknown>>(method: string, path: string, options: Parameters<typeof http>[2] = {}) =>
  http<T & Partial<GraphErrorBody>>(method, `${emulator.url}/${v}/${path}`, options);

describe('Graph objects', () => {
  it('reads a profile by PSID with the Page token', async () => {
    const profile = await graph(`GET`, `${world.psid}?fields=first_name,last_name,profile_pic,name&access_token=${world.token}`);
    expect(profile.status).toBe(200);
    expect(profile.body).toMatchObject({ id: world.psid, first_name: 'Ada', last_name: 'Lovelace', name: 'Ada Lovelace' });
    const picture = await fetch(profile.body.profile_pic as string);
    expect(picture.headers.get('content-type')).toBe('image/png');
    const unknownField = await graph('GET', `${world.psid}?fields=shoe_size&access_token=${world.token}`);
    expect(unknownField.body.error).toMatchObject({ code: 100 });
  });

  it('answers 100/2018218 for a hidden profile and 100/33 for another Page\'s token', async () => {
    const hidden = await createWorld(emulator.url, { userFields: { hidden_profile: true } });
    const refused = await graph('GET', `${hidden.psid}?fields=first_name&access_token=${hidden.token}`);
    expect(refused.status).toBe(400);
    expect(refused.body.error).toMatchObject({ code: 100, error_subcode: 2018218 });
    const foreign = await graph('GET', `${world.psid}?fields=first_name&access_token=${hidden.token}`);
    expect(foreign.body.error).toMatchObject({ code: 100, error_subcode: 33 });
  });

  it('reads Instagram profiles only after the person wrote', async () => {
    const user = await http<{ id: string }>('POST', `${emulator.url}/_emulator/users`, { json: { first_name: 'Linus', username: 'linus.t' } });
    const ig = await http<{ psid: string }>('POST', `${emulator.url}/_emulator/pages/${world.pageId}/inbound`, {
      json: { user: user.body.id, channel: 'instagram', reaction: { emoji: '🔥', mid: 'aWdfZAG1' } },
    });
    const noConsent = await graph('GET', `${ig.body.psid}?fields=name,username&access_token=${world.token}`);
    expect(noConsent.body.error).toMatchObject({ code: 230, type: 'IGApiException' });
    await http('POST', `${emulator.url}/_emulator/pages/${world.pageId}/inbound`, { json: { user: user.body.id, channel: 'instagram', text: 'hi' } });
    const profile = await graph('GET', `${ig.body.psid}?fields=name,username,profile_pic&access_token=${world.token}`);
    expect(profile.body).toMatchObject({ username: 'linus.t', id: ig.body.psid });
  });

  it('reads Page fields, including the linked Instagram account', async () => {
    const page = await graph('GET', `${world.pageId}?fields=instagram_business_account,name&access_token=${world.token}`);
    expect(page.body).toEqual({ instagram_business_account: { id: world.instagramId }, name: 'Test Page', id: world.pageId });
    const me = await graph('GET', `me?access_token=${world.token}`);
    expect(me.body).toEqual({ name: 'Test Page', id: world.pageId });
    const account = await graph('GET', `${world.instagramId}?fields=username&access_token=${world.token}`);
    expect(account.body).toMatchObject({ id: world.instagramId });
  });

  it('uploads attachments by multipart and by URL and returns reusable ids', async () => {
    const form = new FormData();
    form.append('message', JSON.stringify({ attachment: { type: 'image', payload: { is_reusable: true } } }));
    form.append('filedata', new Blob([Buffer.from('89504e470d0a1a0a', 'hex')], { type: 'image/png' }), 'dot.png');
    const uploaded = await graph<{ attachment_id: string }>('POST', `${world.pageId}/message_attachments?access_token=${world.token}`, { body: form });
    expect(uploaded.status).toBe(200);
    expect(uploaded.body.attachment_id).toMatch(/^\d+$/);

    // A sample image the emulator serves itself, uploaded again by URL.
    const inbound = await http('POST', `${emulator.url}/_emulator/pages/${world.pageId}/inbound`, { json: { user: world.userId, attachments: ['image'] } });
    expect(inbound.status).toBe(200);
    const thread = await http<{ messages: Array<{ attachments?: Array<{ payload: { url: string } }> }> }>(
      'GET',
      `${emulator.url}/_emulator/pages/${world.pageId}/threads/${world.psid}`,
    );
    const sampleUrl = thread.body.messages.at(-1)!.attachments![0]!.payload.url;
    const byUrl = await graph<{ attachment_id: string }>('POST', `${world.pageId}/message_attachments?access_token=${world.token}`, {
      json: { message: { attachment: { type: 'image', payload: { url: sampleUrl, is_reusable: true } } } },
    });
    expect(byUrl.body.attachment_id).toMatch(/^\d+$/);
    const send = await graph('POST', `me/messages?access_token=${world.token}`, {
      json: { recipient: { id: world.psid }, message: { attachment: { type: 'image', payload: { attachment_id: uploaded.body.attachment_id } } } },
    });
    expect(send.status).toBe(200);
    const other = await http<{ access_token: string }>('POST', `${emulator.url}/_emulator/pages`, { json: { app_id: world.appId } });
    const foreign = await graph('POST', `me/messages?access_token=${other.body.access_token}`, {
      json: { recipient: { id: world.psid }, message: { attachment: { type: 'image', payload: { attachment_id: uploaded.body.attachment_id } } } },
    });
    expect(foreign.body.error).toMatchObject({ code: 100 });
  });

  it('manages subscribed_apps with subscribed_fields', async () => {
    const listed = await graph<{ data: Array<{ id: string; subscribed_fields: string[] }> }>('GET', `${world.pageId}/subscribed_apps?access_token=${world.token}`);
    expect(listed.body.data[0]!.id).toBe(world.appId);
    const set = await graph('POST', `${world.pageId}/subscribed_apps?access_token=${world.token}`, {
      json: { subscribed_fields: 'messages,message_echoes' },
    });
    expect(set.body).toEqual({ success: true });
    const again = await graph<{ data: Array<{ subscribed_fields: string[] }> }>('GET', `${world.pageId}/subscribed_apps?access_token=${world.token}`);
    expect(again.body.data[0]!.subscribed_fields).toEqual(['messages', 'message_echoes']);
    const missing = await graph('POST', `${world.pageId}/subscribed_apps?access_token=${world.token}`);
    expect(missing.body.error).toMatchObject({ code: 100 });
    const unknown = await graph('POST', `${world.pageId}/subscribed_apps?subscribed_fields=gossip&access_token=${world.token}`);
    expect(unknown.body.error).toMatchObject({ code: 100 });
    const removed = await graph('DELETE', `${world.pageId}/subscribed_apps?access_token=${world.token}`);
    expect(removed.body).toEqual({ success: true });
    const empty = await graph<{ data: unknown[] }>('GET', `${world.pageId}/subscribed_apps?access_token=${world.token}`);
    expect(empty.body.data).toEqual([]);
  });

  it('sets, reads and deletes the Messenger Profile', async () => {
    const menu = await graph('POST', `me/messenger_profile?access_token=${world.token}`, {
      json: { persistent_menu: [{ locale: 'default', call_to_actions: [] }] },
    });
    expect(menu.body.error).toMatchObject({ code: 100 });
    const set = await graph('POST', `me/messenger_profile?access_token=${world.token}`, {
      json: { get_started: { payload: 'START' }, greeting: [{ locale: 'default', text: 'Hi {{user_first_name}}!' }] },
    });
    expect(set.body).toEqual({ result: 'success' });
    const read = await graph<{ data: Array<Record<string, unknown>> }>('GET', `me/messenger_profile?fields=get_started,greeting&access_token=${world.token}`);
    expect(read.body.data).toEqual([{ get_started: { payload: 'START' }, greeting: [{ locale: 'default', text: 'Hi {{user_first_name}}!' }] }]);
    const removed = await graph('DELETE', `me/messenger_profile?access_token=${world.token}`, { json: { fields: ['greeting'] } });
    expect(removed.body).toEqual({ result: 'success' });
    const after = await graph<{ data: Array<Record<string, unknown>> }>('GET', `me/messenger_profile?fields=greeting&access_token=${world.token}`);
    expect(after.body.data).toEqual([]);
    const bad = await graph('POST', `me/messenger_profile?access_token=${world.token}`, { json: { favourite_colour: 'blue' } });
    expect(bad.body.error).toMatchObject({ code: 100 });
  });

  it('uses the Get Started payload for new threads opened by a link', async () => {
    await graph('POST', `me/messenger_profile?access_token=${world.token}`, { json: { get_started: { payload: 'WELCOME' } } });
    const stranger = await http<{ id: string }>('POST', `${emulator.url}/_emulator/users`, { json: {} });
    await http('POST', `${emulator.url}/_emulator/pages/${world.pageId}/inbound`, { json: { user: stranger.body.id, referral: { ref: 'ad' } } });
    const threads = await http<{ data: Array<{ user_id: string; last_message: { postback: { payload: string } } }> }>(
      'GET',
      `${emulator.url}/_emulator/pages/${world.pageId}/threads`,
    );
    expect(threads.body.data.find((t) => t.user_id === stranger.body.id)!.last_message.postback.payload).toBe('WELCOME');
  });

  it('describes tokens with debug_token', async () => {
    const appToken = `${world.appId}|${world.secret}`;
    const page = await graph<{ data: Record<string, unknown> }>('GET', `debug_token?input_token=${world.token}&access_token=${encodeURIComponent(appToken)}`);
    expect(page.body.data).toMatchObject({ app_id: world.appId, type: 'PAGE', is_valid: true, expires_at: 0, profile_id: world.pageId });
    expect(page.body.data.scopes).toContain('pages_messaging');
    await http('POST', `${emulator.url}/_emulator/pages/${world.pageId}/revoke_token`);
    const revoked = await graph<{ data: Record<string, unknown> }>('GET', `debug_token?input_token=${world.token}&access_token=${encodeURIComponent(appToken)}`);
    expect(revoked.body.data).toMatchObject({ is_valid: false, error: { code: 190, subcode: 460 } });
    const garbage = await graph<{ data: Record<string, unknown> }>('GET', `debug_token?input_token=nonsense&access_token=${encodeURIComponent(appToken)}`);
    expect(garbage.body.data).toMatchObject({ is_valid: false, error: { code: 190 } });
  });

  it('sets the app callback through /{app-id}/subscriptions after a successful handshake', async () => {
    const receiver = await startReceiver('tok');
    try {
      const appToken = encodeURIComponent(`${world.appId}|${world.secret}`);
      const ok = await graph('POST', `${world.appId}/subscriptions?access_token=${appToken}`, {
        json: { object: 'page', callback_url: receiver.url, verify_token: 'tok', fields: 'messages' },
      });
      expect(ok.body).toEqual({ success: true });
      const listed = await graph<{ data: Array<{ callback_url: string }> }>('GET', `${world.appId}/subscriptions?access_token=${appToken}`);
      expect(listed.body.data[0]!.callback_url).toBe(receiver.url);
      const failing = await graph('POST', `${world.appId}/subscriptions?access_token=${appToken}`, {
        json: { object: 'page', callback_url: receiver.url, verify_token: 'not-tok' },
      });
      expect(failing.body.error).toMatchObject({ code: 2200 });
      const withPageToken = await graph('GET', `${world.appId}/subscriptions?access_token=${world.token}`);
      expect(withPageToken.body.error).toMatchObject({ code: 15 });
    } finally {
      await receiver.close();
    }
  });
});
