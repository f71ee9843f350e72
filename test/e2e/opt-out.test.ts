/** A customer who writes a stop word is opted out (confirmed once), and a start word brings them back. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startStack } from '../support/stack.js';
import type { Stack } from '../support/stack.js';

describe('opt-out by keyword', () => {
  let s: Stack;
  beforeAll(async () => {
    s = await startStack();
  });
  afterAll(async () => {
    await s?.close();
  });

  it('confirm once, refuse later sends with CONTACT_OPTED_OUT, and allow them again after START', async () => {
    const { page, sender } = await s.connectPage({ name: 'Opt-out shop' });
    const patched = await s.api('PATCH', `/v1/senders/${sender.id}`, { settings: { opt_out: { languages: ['en', 'es'], confirm_text: 'You will get no more messages. Write START to come back.' } } });
    expect(patched.status).toBe(200);
    const user = (await s.emu<{ id: string }>('POST', '/_emulator/users', { first_name: 'Sam' })).body;
    const hello = await s.emu<{ psid: string }>('POST', `/_emulator/pages/${page.id}/inbound`, { user: user.id, text: 'hola' });
    const psid = hello.body.psid;
    await eventually(async () => (await s.api<{ data: unknown[] }>('GET', `/v1/contacts?sender_id=${sender.id}`)).body.data.length > 0, 15_000, 'the contact');

    await s.emu('POST', `/_emulator/pages/${page.id}/inbound`, { user: user.id, text: '  Stop ' });
    const thread = await eventually(async () => {
      const t = await s.emu<{ messages: { from: string; text?: string }[] }>('GET', `/_emulator/pages/${page.id}/threads/${psid}`);
      return t.body.messages.some((m) => m.from === 'page' && m.text?.startsWith('You will get no more messages')) ? t.body.messages : undefined;
    }, 15_000, 'the confirmation in the thread');
    expect(thread.filter((m) => m.from === 'page')).toHaveLength(1);

    const refused = await s.api<{ error: { code: string } }>('POST', '/v1/messages', { sender_id: sender.id, to: { psid }, text: 'A promotion' });
    expect(refused.status).toBe(422);
    expect(refused.body.error.code).toBe('CONTACT_OPTED_OUT');

    // A second stop word sends no second confirmation.
    await s.emu('POST', `/_emulator/pages/${page.id}/inbound`, { user: user.id, text: 'PARAR' });
    await s.emu('POST', `/_emulator/pages/${page.id}/inbound`, { user: user.id, text: 'start' });
    const allowed = await eventually(async () => {
      const r = await s.api<{ status: string }>('POST', '/v1/messages', { sender_id: sender.id, to: { psid }, text: 'Welcome back' });
      return r.status === 202 ? r : undefined;
    }, 15_000, 'sending allowed again after START');
    expect(allowed.status).toBe(202);
    const after = await s.emu<{ messages: { from: string; text?: string }[] }>('GET', `/_emulator/pages/${page.id}/threads/${psid}`);
    expect(after.body.messages.filter((m) => m.text?.startsWith('You will get no more messages'))).toHaveLength(1);
  });
});
