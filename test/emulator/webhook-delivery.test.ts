import { afterEach, describe, expect, it } from 'vitest';
import { startEmulator, type RunningEmulator } from '../../emulator/index.js';
import { createWorld, http, startReceiver, validSignature, waitFor, type Receiver } from './helpers.js';

// Batching, retries, ordering per Page, give-up, timeouts and the verification handshake.

interface Attempt {
  batch_id: string;
  attempt: number;
  status: number | null;
  error: string | null;
  ok: boolean;
  gave_up: boolean;
  entries: number;
  items: number;
  body: string;
}

const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function setup(options: Parameters<typeof startEmulator>[0] = {}): Promise<{ emulator: RunningEmulator; receiver: Receiver }> {
  const emulator = await startEmulator({ deliveryDelayMs: null, readDelayMs: null, webhookRetryDelaysMs: [50], ...options });
  const receiver = await startReceiver();
  cleanups.push(() => emulator.close(), () => receiver.close());
  return { emulator, receiver };
}

async function attempts(emulator: RunningEmulator, appId: string): Promise<Attempt[]> {
  const result = await http<{ data: Attempt[] }>('GET', `${emulator.url}/_emulator/webhooks?app_id=${appId}`);
  return result.body.data;
}

async function say(emulator: RunningEmulator, pageId: string, user: string, text: string): Promise<void> {
  const result = await http('POST', `${emulator.url}/_emulator/pages/${pageId}/inbound`, { json: { user, text } });
  expect(result.status).toBe(200);
}

describe('webhook delivery', () => {
  it('batches pending events into one POST: one entry per Page, several items per entry', async () => {
    const { emulator, receiver } = await setup();
    const world = await createWorld(emulator.url, { callbackUrl: receiver.url });
    await waitFor(() => receiver.posts().length === 1, 'the first message');
    const second = await http<{ id: string }>('POST', `${emulator.url}/_emulator/pages`, { json: { app_id: world.appId, subscribe: true } });

    await http('POST', `${emulator.url}/_emulator/webhooks/pause`, { json: { app_id: world.appId } });
    await say(emulator, world.pageId, world.userId, 'one');
    await say(emulator, world.pageId, world.userId, 'two');
    await say(emulator, second.body.id, world.userId, 'three');
    expect(receiver.posts()).toHaveLength(1);
    await http('POST', `${emulator.url}/_emulator/webhooks/resume`, { json: { app_id: world.appId } });

    const post = await waitFor(() => receiver.posts()[1], 'the batch');
    const body = post.json as { object: string; entry: Array<{ id: string; time: number; messaging: Array<{ message: { text: string } }> }> };
    expect(body.object).toBe('page');
    expect(body.entry.map((e) => e.id)).toEqual([world.pageId, second.body.id]);
    expect(body.entry[0]!.messaging.map((m) => m.message.text)).toEqual(['one', 'two']);
    expect(body.entry[1]!.messaging.map((m) => m.message.text)).toEqual(['three']);
    expect(validSignature(post, world.secret)).toBe(true);
    const log = await attempts(emulator, world.appId);
    expect(log.at(-1)).toMatchObject({ ok: true, status: 200, entries: 2, items: 3 });
  });

  it('retries a batch the receiver answers with 500, resending the same signed bytes', async () => {
    const { emulator, receiver } = await setup();
    let failures = 0;
    receiver.respondWith(() => (failures++ < 2 ? { status: 500, body: 'down' } : { status: 200 }));
    const world = await createWorld(emulator.url, { callbackUrl: receiver.url });
    await waitFor(() => receiver.posts().length === 3, 'three attempts');
    const log = await attempts(emulator, world.appId);
    expect(log.map((a) => [a.attempt, a.status, a.ok])).toEqual([
      [1, 500, false],
      [2, 500, false],
      [3, 200, true],
    ]);
    expect(new Set(log.map((a) => a.batch_id)).size).toBe(1);
    const posts = receiver.posts();
    expect(posts[1]!.raw.equals(posts[0]!.raw)).toBe(true);
    expect(posts[2]!.raw.equals(posts[0]!.raw)).toBe(true);
    for (const post of posts) expect(validSignature(post, world.secret)).toBe(true);
  });

  it("keeps a Page's later events behind its failing batch while other Pages flow", async () => {
    const { emulator, receiver } = await setup();
    let blockA = false;
    receiver.respondWith((request) => (blockA && request.raw.toString().includes('"A1"') ? { status: 503 } : { status: 200 }));
    const world = await createWorld(emulator.url, { callbackUrl: receiver.url });
    await waitFor(() => receiver.posts().length === 1, 'the first message');
    const pageB = await http<{ id: string }>('POST', `${emulator.url}/_emulator/pages`, { json: { app_id: world.appId, subscribe: true } });

    blockA = true;
    await say(emulator, world.pageId, world.userId, 'A1');
    await waitFor(async () => (await attempts(emulator, world.appId)).some((a) => a.status === 503), 'a refused attempt');
    await say(emulator, world.pageId, world.userId, 'A2');
    await say(emulator, pageB.body.id, world.userId, 'B1');
    await waitFor(() => receiver.posts().some((p) => p.raw.toString().includes('"B1"')), 'page B flowing');
    expect(receiver.posts().some((p) => p.raw.toString().includes('"A2"'))).toBe(false);

    blockA = false;
    await waitFor(() => receiver.posts().some((p) => p.raw.toString().includes('"A2"')), 'A2 after A1');
    const posts = receiver.posts().map((p) => p.raw.toString());
    const firstA1Accepted = (await attempts(emulator, world.appId)).find((a) => a.ok && a.body.includes('"A1"'))!;
    // The accepted attempt is the last POST of that batch's bytes.
    const acceptedIndex = posts.lastIndexOf(firstA1Accepted.body);
    const a2Index = posts.findIndex((p) => p.includes('"A2"'));
    expect(acceptedIndex).toBeGreaterThanOrEqual(0);
    expect(a2Index).toBeGreaterThanOrEqual(acceptedIndex);
    if (a2Index === acceptedIndex) {
      // Batched together: A1 still comes first within the entry.
      expect(posts[a2Index]!.indexOf('"A1"')).toBeLessThan(posts[a2Index]!.indexOf('"A2"'));
    }
  });

  it('gives up after webhookGiveUpMs, then delivers the next events for that Page', async () => {
    const { emulator, receiver } = await setup({ webhookGiveUpMs: 200 });
    let up = false;
    receiver.respondWith(() => (up ? { status: 200 } : { status: 500 }));
    const world = await createWorld(emulator.url, { callbackUrl: receiver.url });
    await waitFor(async () => (await attempts(emulator, world.appId)).some((a) => a.gave_up), 'give-up');
    up = true;
    await say(emulator, world.pageId, world.userId, 'after the outage');
    await waitFor(async () => (await attempts(emulator, world.appId)).some((a) => a.ok && a.body.includes('after the outage')), 'a delivery');
  });

  it('counts a call slower than webhookTimeoutMs as failed and retries it', async () => {
    const { emulator, receiver } = await setup({ webhookTimeoutMs: 500 });
    let calls = 0;
    receiver.respondWith(() => (calls++ === 0 ? { status: 200, hang: true } : { status: 200 }));
    const world = await createWorld(emulator.url, { callbackUrl: receiver.url });
    await waitFor(async () => (await attempts(emulator, world.appId)).some((a) => a.ok), 'the retry');
    const log = await attempts(emulator, world.appId);
    expect(log[0]).toMatchObject({ attempt: 1, ok: false, status: null });
    expect(log[0]!.error).toContain('no answer within 500 ms');
    const delivered = log.findIndex((a) => a.ok);
    expect(delivered).toBeGreaterThan(0);
    expect(log[delivered]!.batch_id).toBe(log[0]!.batch_id);
  });

  it('retries refused connections and follows a callback URL changed with PATCH', async () => {
    const { emulator, receiver } = await setup();
    const closed = await startReceiver();
    const deadUrl = closed.url;
    await closed.close();
    const world = await createWorld(emulator.url, { callbackUrl: deadUrl });
    await waitFor(async () => (await attempts(emulator, world.appId)).length >= 2, 'refused attempts');
    const refused = await attempts(emulator, world.appId);
    expect(refused[0]!.error).toMatch(/ECONNREFUSED/);
    const patched = await http<{ callback_url: string; verification: { ok: boolean } }>('PATCH', `${emulator.url}/_emulator/apps/${world.appId}`, {
      json: { callback_url: receiver.url },
    });
    expect(patched.body.verification.ok).toBe(true);
    await waitFor(() => receiver.posts().length > 0, 'delivery to the new URL');
    expect(validSignature(receiver.posts()[0]!, world.secret)).toBe(true);
  });

  it('runs the verification handshake when a callback is set', async () => {
    const { emulator } = await setup();
    const strict = await startReceiver('the-right-token');
    cleanups.push(() => strict.close());
    const good = await http<{ verification: { ok: boolean; status: number } }>('POST', `${emulator.url}/_emulator/apps`, {
      json: { callback_url: strict.url, verify_token: 'the-right-token' },
    });
    expect(good.body.verification).toMatchObject({ ok: true, status: 200 });
    const handshake = strict.requests.find((r) => r.method === 'GET')!;
    const url = new URL(handshake.url, 'http://127.0.0.1');
    expect(url.searchParams.get('hub.mode')).toBe('subscribe');
    expect(url.searchParams.get('hub.verify_token')).toBe('the-right-token');
    expect(url.searchParams.get('hub.challenge')).toMatch(/^\d+$/);

    const bad = await http<{ verification: { ok: boolean; status: number } }>('POST', `${emulator.url}/_emulator/apps`, {
      json: { callback_url: strict.url, verify_token: 'wrong' },
    });
    expect(bad.body.verification).toMatchObject({ ok: false, status: 403 });
  });

  it('sends nothing for a Page the app has not subscribed to', async () => {
    const { emulator, receiver } = await setup();
    const app = await http<{ id: string }>('POST', `${emulator.url}/_emulator/apps`, { json: { callback_url: receiver.url } });
    const page = await http<{ id: string; access_token: string }>('POST', `${emulator.url}/_emulator/pages`, { json: { app_id: app.body.id } });
    const user = await http<{ id: string }>('POST', `${emulator.url}/_emulator/users`, { json: {} });
    const first = await http<{ webhooks: number }>('POST', `${emulator.url}/_emulator/pages/${page.body.id}/inbound`, {
      json: { user: user.body.id, text: 'nobody listens' },
    });
    expect(first.body.webhooks).toBe(0);
    const subscribed = await http('POST', `${emulator.url}/v25.0/${page.body.id}/subscribed_apps?subscribed_fields=messages&access_token=${page.body.access_token}`);
    expect(subscribed.body).toEqual({ success: true });
    await say(emulator, page.body.id, user.body.id, 'now you hear me');
    await waitFor(() => receiver.posts().length === 1, 'the subscribed delivery');
    expect(receiver.posts()[0]!.raw.toString()).toContain('now you hear me');
    expect(receiver.posts()[0]!.raw.toString()).not.toContain('nobody listens');
  });
});
