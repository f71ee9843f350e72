import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startEmulator, type RunningEmulator } from '../../emulator/index.js';
import { createWorld, http, items, send, startReceiver, waitFor, type Receiver, type World } from './helpers.js';

// Faults on demand: each kind does what docs/emulator.md says.

let emulator: RunningEmulator;
let receiver: Receiver;
let world: World;

beforeAll(async () => {
  emulator = await startEmulator({ deliveryDelayMs: null, readDelayMs: null, batchWindowMs: 1 });
  receiver = await startReceiver();
});

afterAll(async () => {
  await emulator.close();
  await receiver.close();
});

beforeEach(async () => {
  await http('POST', `${emulator.url}/_emulator/reset`);
  world = await createWorld(emulator.url, { callbackUrl: receiver.url });
});

const message = (text: string) => ({ recipient: { id: world.psid }, message: { text } });

async function fault(body: Record<string, unknown>): Promise<{ id: string }> {
  const created = await http<{ id: string }>('POST', `${emulator.url}/_emulator/faults`, { json: body });
  expect(created.status).toBe(201);
  return created.body;
}

async function threadTexts(): Promise<string[]> {
  const thread = await http<{ messages: Array<{ text?: string }> }>('GET', `${emulator.url}/_emulator/pages/${world.pageId}/threads/${world.psid}`);
  return thread.body.messages.map((m) => m.text ?? '');
}

describe('faults', () => {
  it('http_500 answers a transient error once, then calls succeed', async () => {
    await fault({ kind: 'http_500' });
    const failed = await send(emulator.url, world.token, message('first try'));
    expect(failed.status).toBe(500);
    expect(failed.body.error).toMatchObject({ code: 2, is_transient: true });
    expect(await threadTexts()).not.toContain('first try');
    expect((await send(emulator.url, world.token, message('second try'))).status).toBe(200);
  });

  it('drop destroys the connection before anything happens', async () => {
    await fault({ kind: 'drop', path: '/messages' });
    await expect(send(emulator.url, world.token, message('lost'))).rejects.toThrow();
    expect(await threadTexts()).not.toContain('lost');
    expect((await send(emulator.url, world.token, message('after'))).status).toBe(200);
  });

  it('accept_then_drop carries the send out but never answers', async () => {
    await fault({ kind: 'accept_then_drop' });
    await expect(send(emulator.url, world.token, message('ambiguous'))).rejects.toThrow();
    expect(await threadTexts()).toContain('ambiguous');
    const echo = await waitFor(() => items(receiver).find((i) => (i.message as { text?: string; is_echo?: boolean } | undefined)?.text === 'ambiguous'), 'the echo');
    expect((echo.message as { is_echo: boolean }).is_echo).toBe(true);
  });

  it('rate_limit answers 613 and the usage header shows the limit reached', async () => {
    await fault({ kind: 'rate_limit', ms: 120_000 });
    const limited = await send(emulator.url, world.token, message('too fast'));
    expect(limited.status).toBe(400);
    expect(limited.body.error).toMatchObject({ code: 613 });
    const usage = JSON.parse(limited.headers.get('x-business-use-case-usage')!) as Record<string, Array<{ call_count: number; estimated_time_to_regain_access: number }>>;
    expect(usage[world.pageId]![0]).toMatchObject({ call_count: 100, estimated_time_to_regain_access: 2 });
    await fault({ kind: 'rate_limit', code: 80006 });
    expect((await send(emulator.url, world.token, message('again'))).body.error).toMatchObject({ code: 80006 });
  });

  it('graph_error answers exactly the error asked for', async () => {
    await fault({ kind: 'graph_error', code: 368, subcode: 1390008, status: 400, message: '(#368) The action attempted has been deemed abusive' });
    const refused = await send(emulator.url, world.token, message('x'));
    expect(refused.status).toBe(400);
    expect(refused.body.error).toMatchObject({ code: 368, error_subcode: 1390008, type: 'OAuthException', message: '(#368) The action attempted has been deemed abusive' });
  });

  it('latency delays calls past a short client timeout, and counts its firings', async () => {
    await fault({ kind: 'latency', ms: 1_500, count: 2 });
    const aborted = fetch(`${emulator.url}/v25.0/me/messages?access_token=${world.token}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(message('slow')),
      signal: AbortSignal.timeout(100),
    });
    await expect(aborted).rejects.toThrow();
    const listed = await http<{ data: Array<{ kind: string; fired: number; remaining: number }> }>('GET', `${emulator.url}/_emulator/faults`);
    expect(listed.body.data).toMatchObject([{ kind: 'latency', fired: 1, remaining: 1 }]);
    await http('DELETE', `${emulator.url}/_emulator/faults`);
    expect((await http<{ data: unknown[] }>('GET', `${emulator.url}/_emulator/faults`)).body.data).toEqual([]);
  });

  it('targets one Page when asked, and lasts until cleared with count 0', async () => {
    const other = await createWorld(emulator.url);
    const created = await fault({ kind: 'http_500', page: other.pageId, count: 0 });
    expect((await send(emulator.url, world.token, message('unaffected'))).status).toBe(200);
    for (let i = 0; i < 3; i++) {
      expect((await send(emulator.url, other.token, { recipient: { id: other.psid }, message: { text: 'x' } })).status).toBe(500);
    }
    expect((await http('DELETE', `${emulator.url}/_emulator/faults/${created.id}`)).status).toBe(200);
    expect((await send(emulator.url, other.token, { recipient: { id: other.psid }, message: { text: 'x' } })).status).toBe(200);
  });
});
