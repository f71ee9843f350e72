import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type RunningEmulator } from '../../emulator/index.js';
import { createWorld, http, items, send, startReceiver, validSignature, waitFor, type Receiver, type World } from './helpers.js';

// Every event type the emulator emits reaches a real receiver, signed over the exact bytes sent.

let emulator: RunningEmulator;
let receiver: Receiver;
let world: World;

beforeAll(async () => {
  emulator = await startEmulator({ deliveryDelayMs: 10, readDelayMs: 30, batchWindowMs: 2, webhookRetryDelaysMs: [50] });
  receiver = await startReceiver();
  world = await createWorld(emulator.url, { callbackUrl: receiver.url, instagram: true });
});

afterAll(async () => {
  await emulator.close();
  await receiver.close();
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- webhook items are arbitrary JSON, read by key in assertions
type Item = Record<string, any>;

async function itemWhere(what: string, match: (item: Item) => boolean): Promise<Item> {
  return waitFor(() => items(receiver).find(match), what);
}

async function inbound(body: Record<string, unknown>, page = world.pageId) {
  const result = await http<{ psid?: string; mid?: string; user_ref?: string; notification_messages_token?: string }>(
    'POST',
    `${emulator.url}/_emulator/pages/${page}/inbound`,
    { json: body },
  );
  expect(result.status).toBe(200);
  return result.body;
}

describe('webhook events', () => {
  it('delivers a text message in the messages shape, signed with the app secret', async () => {
    const { mid } = await inbound({ user: world.userId, text: 'first question' });
    const item = await itemWhere('text message', (i) => i.message?.mid === mid);
    expect(item).toMatchObject({ sender: { id: world.psid }, recipient: { id: world.pageId }, message: { mid, text: 'first question' } });
    expect(typeof item.timestamp).toBe('number');
    const posts = receiver.posts();
    expect(posts.length).toBeGreaterThan(0);
    for (const post of posts) {
      expect(validSignature(post, world.secret)).toBe(true);
      expect(post.headers['content-type']).toBe('application/json');
      expect((post.json as { object: string }).object).toMatch(/^(page|instagram)$/);
    }
  });

  it('escapes slashes and non-ASCII like Meta, so only the raw bytes verify', async () => {
    const { mid } = await inbound({ user: world.userId, text: 'café / ☕ ok' });
    await itemWhere('unicode message', (i) => i.message?.mid === mid);
    const post = receiver.posts().find((p) => p.raw.toString('utf8').includes(mid as string));
    expect(post).toBeDefined();
    const raw = post!.raw.toString('utf8');
    expect(raw).toContain('caf\\u00e9 \\/ \\u2615 ok');
    expect(raw).not.toContain('café');
    expect(validSignature(post!, world.secret)).toBe(true);
    expect(JSON.stringify(post!.json)).not.toBe(raw);
  });

  it('delivers every attachment type with downloadable media', async () => {
    const types = ['image', 'audio', 'video', 'file', 'sticker', 'reel', 'ig_reel', 'fallback', 'location'];
    const { mid } = await inbound({ user: world.userId, attachments: types });
    const item = await itemWhere('attachments', (i) => i.message?.mid === mid);
    const attachments = item.message.attachments as Item[];
    const kinds = attachments.map((a) => a.type);
    for (const type of types) expect(kinds).toContain(type);
    const image = attachments.find((a) => a.type === 'image')!;
    const download = await fetch(image.payload.url as string);
    expect(download.status).toBe(200);
    expect(download.headers.get('content-type')).toBe('image/png');
    const bytes = Buffer.from(await download.arrayBuffer());
    expect(bytes.subarray(1, 4).toString('ascii')).toBe('PNG');
    const sticker = attachments.find((a) => a.type === 'sticker')!;
    expect(typeof sticker.payload.sticker_id).toBe('number');
    expect(attachments.find((a) => a.type === 'location')!.payload.coordinates).toHaveProperty('lat');
  });

  it('delivers quick replies and replies', async () => {
    const { mid } = await inbound({ user: world.userId, text: 'Yes', quick_reply: 'YES_PAYLOAD', reply_to: 'm_previous' });
    const item = await itemWhere('quick reply', (i) => i.message?.mid === mid);
    expect(item.message).toMatchObject({ text: 'Yes', quick_reply: { payload: 'YES_PAYLOAD' }, reply_to: { mid: 'm_previous' } });
  });

  it('delivers postbacks, referrals on existing threads and Get Started postbacks with referral on new ones', async () => {
    const postback = await inbound({ user: world.userId, postback: { title: 'Buy', payload: 'BUY_1' } });
    const tapped = await itemWhere('postback', (i) => i.postback?.mid === postback.mid);
    expect(tapped.postback).toMatchObject({ title: 'Buy', payload: 'BUY_1' });

    await inbound({ user: world.userId, referral: { ref: 'spring_sale' } });
    const referral = await itemWhere('referral', (i) => i.referral?.ref === 'spring_sale');
    expect(referral.referral).toEqual({ ref: 'spring_sale', source: 'SHORTLINK', type: 'OPEN_THREAD' });
    expect(referral.sender).toEqual({ id: world.psid });

    const stranger = await http<{ id: string }>('POST', `${emulator.url}/_emulator/users`, { json: { first_name: 'Grace' } });
    const opened = await inbound({ user: stranger.body.id, referral: { ref: 'new_thread_ref' } });
    const getStarted = await itemWhere('postback with referral', (i) => i.postback?.referral?.ref === 'new_thread_ref');
    expect(getStarted.sender).toEqual({ id: opened.psid });
    expect(getStarted.postback).toMatchObject({ title: 'Get Started', referral: { ref: 'new_thread_ref', source: 'SHORTLINK', type: 'OPEN_THREAD' } });
  });

  it('delivers opt-ins: Send to Messenger with a PSID, checkbox with user_ref and no sender, marketing tokens', async () => {
    await inbound({ user: world.userId, optin: { ref: 'plugin_ref' } });
    const plugin = await itemWhere('send-to-messenger optin', (i) => i.optin?.ref === 'plugin_ref');
    expect(plugin.sender).toEqual({ id: world.psid });

    const checkbox = await inbound({ optin: { ref: 'checkout', user_ref: 'ref-123' } });
    expect(checkbox.user_ref).toBe('ref-123');
    const box = await itemWhere('checkbox optin', (i) => i.optin?.user_ref === 'ref-123');
    expect(box).not.toHaveProperty('sender');
    expect(box.recipient).toEqual({ id: world.pageId });
    expect(box.optin).toEqual({ ref: 'checkout', user_ref: 'ref-123' });

    const marketing = await inbound({ user: world.userId, optin: { type: 'notification_messages', payload: 'DEALS' } });
    const token = await itemWhere('notification optin', (i) => i.optin?.type === 'notification_messages');
    expect(token.optin.notification_messages_token).toBe(marketing.notification_messages_token);
    expect(token.optin.payload).toBe('DEALS');
  });

  it('delivers reactions and edits', async () => {
    const sent = await send(emulator.url, world.token, { recipient: { id: world.psid }, message: { text: 'react to me' } });
    expect(sent.status).toBe(200);
    await inbound({ user: world.userId, reaction: 'love' });
    const reaction = await itemWhere('reaction', (i) => i.reaction?.mid === sent.body.message_id);
    expect(reaction.reaction).toMatchObject({ action: 'react', reaction: 'love' });
    expect(typeof reaction.reaction.emoji).toBe('string');

    const original = await inbound({ user: world.userId, text: 'typo' });
    await inbound({ user: world.userId, edit: { mid: original.mid as string, text: 'fixed' } });
    const edit = await itemWhere('edit', (i) => i.message_edit?.mid === original.mid);
    expect(edit.message_edit).toEqual({ mid: original.mid, text: 'fixed', num_edit: 1 });
  });

  it('sends an echo with app_id and metadata, then delivery and read watermarks', async () => {
    const sent = await send(emulator.url, world.token, {
      recipient: { id: world.psid },
      messaging_type: 'RESPONSE',
      message: { text: 'echo me', metadata: 'order-42' },
    });
    expect(sent.status).toBe(200);
    const mid = sent.body.message_id as string;
    const echo = await itemWhere('echo', (i) => i.message?.mid === mid && i.message?.is_echo === true);
    expect(echo.sender).toEqual({ id: world.pageId });
    expect(echo.recipient).toEqual({ id: world.psid });
    expect(echo.message).toMatchObject({ is_echo: true, app_id: Number(world.appId), metadata: 'order-42', text: 'echo me' });
    const delivery = await itemWhere('delivery', (i) => (i.delivery?.mids as string[] | undefined)?.includes(mid) === true);
    expect(delivery.delivery.watermark).toBeGreaterThanOrEqual(echo.timestamp as number);
    expect(delivery.sender).toEqual({ id: world.psid });
    const read = await itemWhere('read', (i) => typeof i.read?.watermark === 'number' && i.read.watermark >= (echo.timestamp as number));
    expect(read.recipient).toEqual({ id: world.pageId });
  });

  it('puts standby items under standby[] and drops the payload of standby postbacks', async () => {
    const { mid } = await inbound({ user: world.userId, text: 'for the other app', standby: true });
    await waitFor(() => receiver.posts().find((p) => JSON.stringify(p.json).includes(mid as string)), 'standby post');
    const post = receiver.posts().find((p) => JSON.stringify(p.json).includes(mid as string))!;
    const entry = (post.json as { entry: Item[] }).entry.find((e) => JSON.stringify(e).includes(mid as string))!;
    expect(entry.standby[0].message.mid).toBe(mid);
    expect(entry.messaging).toBeUndefined();

    const postback = await inbound({ user: world.userId, postback: { title: 'Menu', payload: 'SECRET' }, standby: true });
    const standbyPostback = await itemWhere('standby postback', (i) => i.postback?.mid === postback.mid);
    expect(standbyPostback.postback).toEqual({ mid: postback.mid, title: 'Menu' });
  });

  it('sends Instagram events with object "instagram", IGSIDs and read.mid', async () => {
    const { psid: igsid, mid } = await inbound({ user: world.userId, channel: 'instagram', text: 'hi on insta' });
    expect(igsid).not.toBe(world.psid);
    expect(igsid!.length).toBeGreaterThanOrEqual(17);
    const message = await itemWhere('instagram message', (i) => i.message?.mid === mid);
    expect(message.recipient).toEqual({ id: world.instagramId });
    const post = receiver.posts().find((p) => JSON.stringify(p.json).includes(mid as string))!;
    expect((post.json as { object: string }).object).toBe('instagram');
    // IGSIDs exceed 2^53: they must travel as strings.
    expect(post.raw.toString()).toContain(`"id":"${igsid}"`);

    const sent = await send(emulator.url, world.token, { recipient: { id: igsid }, message: { text: 'reply on insta' } }, world.instagramId!);
    expect(sent.status).toBe(200);
    const echo = await itemWhere('instagram echo', (i) => i.message?.mid === sent.body.message_id && i.message?.is_echo === true);
    expect(echo.sender).toEqual({ id: world.instagramId });
    const seen = await itemWhere('instagram seen', (i) => i.read?.mid === sent.body.message_id);
    expect(seen.sender).toEqual({ id: igsid });

    await inbound({ user: world.userId, channel: 'instagram', unsend: { mid } });
    const deleted = await itemWhere('unsend', (i) => i.message?.mid === mid && i.message?.is_deleted === true);
    expect(deleted.sender).toEqual({ id: igsid });
  });

  it('forwards a raw envelope byte for byte', async () => {
    const body = '{"object":"page","entry":[{"id":"0","time":1,"changes":[{"field":"test","value":{"x":"\\u00e9"}}]}]}';
    const sent = await http('POST', `${emulator.url}/_emulator/webhooks/raw`, { json: { app_id: world.appId, body } });
    expect(sent.status).toBe(202);
    const post = await waitFor(() => receiver.posts().find((p) => p.raw.toString() === body), 'raw envelope');
    expect(validSignature(post, world.secret)).toBe(true);
  });

  it('every POST so far carried valid signatures', () => {
    const posts = receiver.posts();
    expect(posts.length).toBeGreaterThan(10);
    for (const post of posts) expect(validSignature(post, world.secret)).toBe(true);
  });
});
