/** `switchboard dev`: the emulator and the gateway wired together, with demo data that works at once. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDev } from '../../src/dev.js';
import type { RunningDev } from '../../src/dev.js';
import { call, eventually } from '../support/stack.js';

describe('switchboard dev', () => {
  let dev: RunningDev;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-dev-'));
    dev = await startDev({ env: { PORT: '0', EMULATOR_PORT: '0', SWITCHBOARD_DATA_DIR: dir, META_APP_SECRET: 'dev-app-secret' }, logLevel: 'silent' });
  });
  afterAll(async () => {
    await dev?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints everything a script needs, honouring the environment', () => {
    const i = dev.info;
    for (const k of ['gateway_url', 'emulator_url', 'api_key', 'account_id', 'app_id', 'app_secret', 'page_id', 'instagram_id', 'sender_id'] as const) {
      expect(i[k], k).toBeTruthy();
    }
    expect(i.app_secret).toBe('dev-app-secret');
    expect(i.customer.user_id).toBeTruthy();
    expect(i.customer.psid).toMatch(/^\d+$/);
  });

  it('serves the API with the printed key, and the demo customer’s first message is already there', async () => {
    const auth = { authorization: `Bearer ${dev.info.api_key}` };
    const senders = await call<{ data: { id: string; health: string }[] }>('GET', `${dev.info.gateway_url}/v1/senders`, undefined, auth);
    expect(senders.status).toBe(200);
    expect(senders.body.data.map((s) => s.id)).toEqual(expect.arrayContaining([dev.info.sender_id, dev.info.instagram_sender_id]));
    await eventually(async () => {
      const r = await call<{ data: unknown[] }>('GET', `${dev.info.gateway_url}/v1/messages?sender_id=${dev.info.sender_id}`, undefined, auth);
      return r.body.data.length > 0;
    }, 15_000, 'the demo message');
    const health = await call('GET', `${dev.info.gateway_url}/readyz`);
    expect(health.status).toBe(200);
    const page = await fetch(dev.info.emulator_url);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
  });

  it("keeps the emulator's time: moving its clock a day on closes the demo customer's window at the gateway too", async () => {
    const auth = { authorization: `Bearer ${dev.info.api_key}` };
    const send = () => call<{ error?: { code: string } }>('POST', `${dev.info.gateway_url}/v1/messages`, { sender_id: dev.info.sender_id, to: { psid: dev.info.customer.psid }, text: 'still there?' }, auth);
    const before = await send();
    expect(before.status).toBe(202);
    const moved = await call('POST', `${dev.info.emulator_url}/_emulator/clock`, { advance_ms: 25 * 3_600_000 });
    expect(moved.status).toBe(200);
    try {
      const after = await send();
      expect(after.status).toBe(422);
      expect(after.body.error?.code).toBe('WINDOW_CLOSED');
    } finally {
      await call('POST', `${dev.info.emulator_url}/_emulator/clock`, { offset_ms: 0 });
    }
  });
});
