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

  it('refuse languages without default words, merge opt-out changes, and honour enabled: false', async () => {
    const { page, sender } = await s.connectPage({ name: 'Settings shop' });
    const patch = (settings: Record<string, unknown>) => s.api<{ settings: { opt_out?: Record<string, unknown> }; error?: { code: string; message: string; details: { field?: string } } }>('PATCH', `/v1/senders/${sender.id}`, { settings });

    const unknown = await patch({ opt_out: { languages: ['es', 'ja'] } });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error?.code).toBe('VALIDATION_FAILED');
    expect(unknown.body.error?.details.field).toBe('body.settings.opt_out.languages');
    expect(unknown.body.error?.message).toContain('ja');

    expect((await patch({ opt_out: { languages: ['es', 'pt-BR'] } })).status).toBe(200);
    const merged = await patch({ opt_out: { stop_words: ['BASTA YA'] } });
    expect(merged.status).toBe(200);
    expect(merged.body.settings.opt_out).toEqual({ languages: ['es', 'pt-BR'], stop_words: ['BASTA YA'] });

    const off = await patch({ opt_out: { enabled: false } });
    expect(off.status).toBe(200);
    expect(off.body.settings.opt_out).toMatchObject({ enabled: false, languages: ['es', 'pt-BR'] });
    const user = (await s.emu<{ id: string }>('POST', '/_emulator/users', { first_name: 'Noor' })).body;
    await s.emu('POST', `/_emulator/pages/${page.id}/inbound`, { user: user.id, text: 'BASTA YA' });
    const contact = await eventually(async () => {
      const list = await s.api<{ data: { id: string }[] }>('GET', `/v1/contacts?sender_id=${sender.id}`);
      const id = list.body.data[0]?.id;
      if (!id) return undefined;
      const msgs = await s.api<{ data: unknown[] }>('GET', `/v1/messages?contact_id=${id}`);
      return msgs.body.data.length > 0 ? (await s.api<{ opted_out: boolean }>('GET', `/v1/contacts/${id}`)).body : undefined;
    }, 15_000, 'the stop word stored as a message');
    expect(contact.opted_out).toBe(false);
  });
});
