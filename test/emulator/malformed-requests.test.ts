import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type RunningEmulator } from '../../emulator/index.js';
import { createWorld, http, type GraphErrorBody, type World } from './helpers.js';

// Malformed requests get Meta-shaped (Graph) or {error: {code, message}} (control) 4xx, never a crash.

let emulator: RunningEmulator;
let world: World;

beforeAll(async () => {
  emulator = await startEmulator({ deliveryDelayMs: null, readDelayMs: null });
  world = await createWorld(emulator.url);
});

afterAll(async () => {
  await emulator.close();
});

function expectGraphError(result: { status: number; body: Partial<GraphErrorBody> }): void {
  expect(result.status).toBeGreaterThanOrEqual(400);
  expect(result.status).toBeLessThan(500);
  expect(result.body.error).toMatchObject({ type: expect.any(String), code: expect.any(Number), message: expect.any(String), fbtrace_id: expect.any(String) });
}

function expectControlError(result: { status: number; body: { error?: { code?: unknown; message?: unknown } } }, status = 400): void {
  expect(result.status).toBe(status);
  expect(typeof result.body.error?.code).toBe('string');
  expect(typeof result.body.error?.message).toBe('string');
}

describe('malformed requests', () => {
  it('answers broken Graph bodies in Meta\'s shape', async () => {
    const url = `${emulator.url}/v25.0/me/messages?access_token=${world.token}`;
    const cases: Array<{ body: string; type: string }> = [
      { body: '{"recipient":', type: 'application/json' },
      { body: '', type: 'application/json' },
      { body: '[1,2,3]', type: 'application/json' },
      { body: 'null', type: 'application/json' },
      { body: 'recipient=%7Bnot-json&message=x', type: 'application/x-www-form-urlencoded' },
      { body: '\u0000\u0001binary', type: 'application/octet-stream' },
      { body: 'just text', type: 'text/plain' },
      { body: '{"recipient":"1234","message":"hello"}', type: 'application/json' },
      { body: '{"recipient":{"id":["a"]},"message":{"text":5}}', type: 'application/json' },
      { body: `{"recipient":{"id":"${world.psid}"},"message":{"attachment":{"type":"image","payload":{"url":"ftp://x"}}}}`, type: 'application/json' },
      { body: `{"recipient":{"id":"${world.psid}"},"message":{"quick_replies":"many","text":"x"}}`, type: 'application/json' },
      { body: `{"recipient":{"id":"${world.psid}"},"message":{"attachment":{"type":"template","payload":{"template_type":"mystery"}}}}`, type: 'application/json' },
    ];
    for (const c of cases) {
      const result = await http<Partial<GraphErrorBody>>('POST', url, { body: c.body, headers: { 'content-type': c.type } });
      expectGraphError(result);
    }
  });

  it('answers unknown Graph paths and ids in Meta\'s shape', async () => {
    expectGraphError(await http('GET', `${emulator.url}/v25.0/me/feed/comments?access_token=${world.token}`));
    const unknownId = await http<Partial<GraphErrorBody>>('GET', `${emulator.url}/v25.0/424242?access_token=${world.token}`);
    expectGraphError(unknownId);
    expect(unknownId.body.error!.error_subcode).toBe(33);
    expectGraphError(await http('POST', `${emulator.url}/v25.0/424242/messages?access_token=${world.token}`, { json: {} }));
    expectGraphError(await http('GET', `${emulator.url}/vX/me?access_token=${world.token}`));
    expectGraphError(await http('GET', `${emulator.url}/v25.0/oauth/access_token`));
    expectGraphError(await http('GET', `${emulator.url}/v25.0/debug_token?access_token=${world.token}`));
  });

  it('refuses bad control input with a stable code', async () => {
    expectControlError(await http('POST', `${emulator.url}/_emulator/apps`, { body: '{oops', headers: { 'content-type': 'application/json' } }));
    expectControlError(await http('POST', `${emulator.url}/_emulator/apps`, { json: { human_agent: 'yes' } }));
    expectControlError(await http('POST', `${emulator.url}/_emulator/pages`, { json: {} }));
    expectControlError(await http('POST', `${emulator.url}/_emulator/pages`, { json: { app_id: '000' } }), 404);
    expectControlError(await http('POST', `${emulator.url}/_emulator/pages/${world.pageId}/inbound`, { json: {} }));
    expectControlError(await http('POST', `${emulator.url}/_emulator/pages/${world.pageId}/inbound`, { json: { user: world.userId, text: 'a', postback: 'b' } }));
    expectControlError(await http('POST', `${emulator.url}/_emulator/pages/${world.pageId}/inbound`, { json: { user: 'nobody', text: 'a' } }), 404);
    expectControlError(await http('POST', `${emulator.url}/_emulator/pages/${world.pageId}/inbound`, { json: { user: world.userId, attachments: ['hologram'] } }));
    expectControlError(await http('POST', `${emulator.url}/_emulator/pages/${world.pageId}/inbound`, { json: { user: world.userId, channel: 'instagram', text: 'x' } }));
    expectControlError(await http('POST', `${emulator.url}/_emulator/faults`, { json: { kind: 'meteor' } }));
    expectControlError(await http('POST', `${emulator.url}/_emulator/clock`, { json: { advance_ms: 1, offset_ms: 2 } }));
    expectControlError(await http('POST', `${emulator.url}/_emulator/apps`, { json: { id: world.appId } }), 409);
    expectControlError(await http('GET', `${emulator.url}/_emulator/pages/1/threads/2`), 404);
    expectControlError(await http('GET', `${emulator.url}/_emulator/nothing-here`), 404);
    expectControlError(await http('GET', `${emulator.url}/_emulator/media/nope/file.png`), 404);
  });

  it('still serves normal traffic afterwards', async () => {
    const ok = await http('POST', `${emulator.url}/v25.0/me/messages?access_token=${world.token}`, {
      json: { recipient: { id: world.psid }, message: { text: 'still alive' } },
    });
    expect(ok.status).toBe(200);
    expect((await http('GET', `${emulator.url}/_emulator/health`)).body).toEqual({ ok: true });
  });
});
