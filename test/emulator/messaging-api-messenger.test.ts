import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MessengerClient } from 'messaging-api-messenger';
import { startEmulator, type RunningEmulator } from '../../emulator/index.js';
import { createWorld, http, type World } from './helpers.js';

// A published Messenger client nobody here wrote, pointed at the emulator with its `origin`
// option, works end to end, and gets Meta's error when it sends outside the window.

let emulator: RunningEmulator;
let world: World;
let client: MessengerClient;

beforeAll(async () => {
  emulator = await startEmulator({ deliveryDelayMs: null, readDelayMs: null });
  world = await createWorld(emulator.url, { userFields: { first_name: 'Katherine', last_name: 'Johnson' } });
  // The client adds appsecret_proof to every call when it knows the app secret.
  client = new MessengerClient({ accessToken: world.token, appId: world.appId, appSecret: world.secret, version: '25.0', origin: emulator.url });
});

afterAll(async () => {
  await emulator.close();
});

async function thread(): Promise<{ typing: boolean; messages: Array<Record<string, unknown>> }> {
  return (await http<{ typing: boolean; messages: Array<Record<string, unknown>> }>('GET', `${emulator.url}/_emulator/pages/${world.pageId}/threads/${world.psid}`)).body;
}

describe('messaging-api-messenger against the emulator', () => {
  it('sends text', async () => {
    const result = await client.sendText(world.psid, 'Hello from the client');
    expect(result.recipientId).toBe(world.psid);
    expect(result.messageId).toMatch(/^m_/);
    expect((await thread()).messages.at(-1)).toMatchObject({ from: 'page', text: 'Hello from the client', messaging_type: 'UPDATE' });
  });

  it('sends an image by URL and by upload', async () => {
    const sample = await http<{ mid: string }>('POST', `${emulator.url}/_emulator/pages/${world.pageId}/inbound`, { json: { user: world.userId, attachments: ['image'] } });
    expect(sample.status).toBe(200);
    const imageUrl = ((await thread()).messages.at(-1)!.attachments as Array<{ payload: { url: string } }>)[0]!.payload.url;
    const byUrl = await client.sendImage(world.psid, imageUrl);
    expect(byUrl.messageId).toMatch(/^m_/);
    expect((await thread()).messages.at(-1)).toMatchObject({ attachment: { type: 'image' } });
    const png = Buffer.from(await (await fetch(imageUrl)).arrayBuffer());
    // The client passes `filename` on to form-data; its published types leave the option out.
    const uploadOptions = { filename: 'photo.png' } as NonNullable<Parameters<MessengerClient['sendImage']>[2]>;
    const uploaded = await client.sendImage(world.psid, png, uploadOptions);
    expect(uploaded.recipientId).toBe(world.psid);
  });

  it('sends quick replies', async () => {
    await client.sendText(world.psid, 'Pick a size', {
      quickReplies: [
        { contentType: 'text', title: 'Small', payload: 'SIZE_S' },
        { contentType: 'text', title: 'Large', payload: 'SIZE_L' },
      ],
    });
    const last = (await thread()).messages.at(-1)!;
    expect(last.quick_replies).toEqual([
      { content_type: 'text', title: 'Small', payload: 'SIZE_S' },
      { content_type: 'text', title: 'Large', payload: 'SIZE_L' },
    ]);
  });

  it('sends a button template', async () => {
    const result = await client.sendButtonTemplate(world.psid, 'What next?', [
      { type: 'web_url', url: 'https://example.com/track', title: 'Track order' },
      { type: 'postback', title: 'Talk to us', payload: 'TALK' },
    ]);
    expect(result.messageId).toMatch(/^m_/);
    expect((await thread()).messages.at(-1)).toMatchObject({ attachment: { type: 'template', payload: { template_type: 'button', text: 'What next?' } } });
  });

  it('sends a sender action', async () => {
    const result = await client.typingOn(world.psid);
    expect(result).toEqual({ recipientId: world.psid });
    expect((await thread()).typing).toBe(true);
    await client.markSeen(world.psid);
  });

  it('reads a user profile', async () => {
    const profile = await client.getUserProfile(world.psid);
    expect(profile).toMatchObject({ id: world.psid, firstName: 'Katherine', lastName: 'Johnson', name: 'Katherine Johnson' });
    expect(profile.profilePic).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/_emulator\/media\//);
  });

  it('sets a Get Started button', async () => {
    const set = await client.setGetStarted('GET_STARTED_PAYLOAD');
    expect(set).toEqual({ result: 'success' });
    expect(await client.getGetStarted()).toEqual({ payload: 'GET_STARTED_PAYLOAD' });
  });

  it('raises Meta\'s error for a send outside the 24-hour window', async () => {
    await http('POST', `${emulator.url}/_emulator/clock`, { json: { advance_ms: 25 * 60 * 60 * 1000 } });
    const failure = await client.sendText(world.psid, 'Too late').then(
      () => null,
      (error: unknown) => error as { message: string; response?: { status: number; data: { error: { code: number; errorSubcode: number } } } },
    );
    expect(failure).not.toBeNull();
    expect(failure!.message).toContain('Messenger API - 10 OAuthException');
    expect(failure!.response!.status).toBe(400);
    expect(failure!.response!.data.error).toMatchObject({ code: 10, errorSubcode: 2018278 });
  });
});
