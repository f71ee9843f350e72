/**
 * The rest of the sending surface, end to end over real sockets on SQLite and PostgreSQL:
 * attachments in several parts (by URL, by uploaded media, by Meta attachment id), media uploads,
 * sender actions, status callbacks, listing and reading messages, contacts and conversations,
 * blocked contacts, the opt-out confirmation, and a send that was in flight when its run stopped.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { uploadMedia, UPLOAD_MAX_BYTES } from '../../src/pipeline/outbound-media.js';
import { echoMetadata, serializeSendState } from '../../src/pipeline/outbound-state.js';
import { describeEachEngine } from '../support/db.js';
import { http, pageTexts, startWorld, waitFor } from '../pipeline/outbound/support.js';
import type { World } from '../pipeline/outbound/support.js';

interface ErrorBody {
  error: { code: string; message: string; details: Record<string, unknown> };
}

// A 1x1 PNG.
const PNG = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8cfc0f01f0005000201a5f6e14a0000000049454e44ae426082', 'hex');

interface Files {
  url: string;
  callbacks: { body: { type: string; data: { status: string; message_id: string } } }[];
  close(): Promise<void>;
}

/** Serves the PNG for attachment URLs and records status callbacks. */
async function startFiles(): Promise<Files> {
  const callbacks: Files['callbacks'] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method === 'POST') {
        callbacks.push({ body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Files['callbacks'][number]['body'] });
        res.writeHead(200).end('ok');
        return;
      }
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': String(PNG.length) }).end(PNG);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    callbacks,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describeEachEngine('sending, the whole surface', (engine) => {
  let world: World;
  let files: Files;
  beforeAll(async () => {
    files = await startFiles();
    world = await startWorld(engine, { senderSettings: { opt_out: { languages: ['en'], confirm_text: 'You will not hear from us again.' } } });
  });
  afterAll(async () => {
    await world?.close();
    await files?.close();
  });

  async function upload(body: Buffer, contentType: string, query = '') {
    return http<Record<string, unknown> & Partial<ErrorBody>>('POST', `${world.url}/v1/media${query}`, {
      body,
      headers: { authorization: `Bearer ${world.apiKey}`, 'content-type': contentType },
    });
  }

  it('uploads media checked against Meta limits, optionally straight to the Page', async () => {
    const raw = await upload(PNG, 'image/png', '?filename=dot.png');
    expect(raw.status).toBe(201);
    expect(raw.body).toMatchObject({ type: 'image', content_type: 'image/png', filename: 'dot.png', size: PNG.length, meta_attachment_id: null });

    const form = new FormData();
    form.append('sender_id', world.senderId);
    form.append('pre_upload', 'true');
    form.append('file', new Blob([PNG], { type: 'image/png' }), 'form.png');
    const multi = await http<Record<string, unknown>>('POST', `${world.url}/v1/media`, { body: form, headers: { authorization: `Bearer ${world.apiKey}` } });
    expect(multi.status).toBe(201);
    expect(multi.body['filename']).toBe('form.png');
    expect(multi.body['sender_id']).toBe(world.senderId);
    expect(String(multi.body['meta_attachment_id'])).toMatch(/^\d+$/);

    // Plain text and JSON files are files too, streamed like any other.
    const text = await upload(Buffer.from('opening hours: 9-17\n'), 'text/plain', '?filename=hours.txt');
    expect(text.status).toBe(201);
    expect(text.body).toMatchObject({ type: 'file', content_type: 'text/plain', size: 20 });
    const json = await upload(Buffer.from('{"menu": ["espresso"]}'), 'application/json', '?filename=menu.json');
    expect(json.status).toBe(201);
    expect(json.body).toMatchObject({ type: 'file', content_type: 'application/json' });
    const exe = await upload(Buffer.from('MZ'), 'application/x-msdownload');
    expect(exe.status).toBe(415);
    expect(exe.body.error?.code).toBe('MEDIA_TYPE_UNSUPPORTED');
    const noSender = await upload(PNG, 'image/png', '?pre_upload=true');
    expect(noSender.status).toBe(400);
    expect(noSender.body.error?.details['field']).toBe('sender_id');

    // Past Meta's 25 MB the upload stops and nothing is kept.
    const huge = (async function* () {
      const chunk = Buffer.alloc(1024 * 1024);
      for (let i = 0; i <= UPLOAD_MAX_BYTES / chunk.length; i += 1) yield chunk;
    })();
    await expect(uploadMedia(world.gateway.ctx, { accountId: world.accountId, source: huge, contentType: 'video/mp4', filename: null })).rejects.toMatchObject({ code: 'MEDIA_TOO_LARGE', status: 413 });
    const rows = await world.store.db.selectFrom('media').select('content_type').where('account_id', '=', world.accountId).execute();
    expect(rows.map((r) => r.content_type)).not.toContain('video/mp4');
  });

  it('keeps the attachment id Meta gives a reusable URL attachment on the message, to send the file again by', async () => {
    const customer = await world.customer('send it twice');
    const first = await world.api<{ id: string }>('POST', '/messages', { sender_id: world.senderId, to: { psid: customer.psid }, attachments: [{ type: 'image', url: `${files.url}/by-url.png`, is_reusable: true }] });
    expect(first.status).toBe(202);
    await world.waitForSent(first.body.id);
    const stored = await world.api<{ content: { attachments: { url?: string; attachment_id?: string }[] } }>('GET', `/messages/${first.body.id}`);
    const attachmentId = stored.body.content.attachments[0]?.attachment_id;
    expect(attachmentId).toMatch(/^\d+$/);
    expect(stored.body.content.attachments[0]?.url).toBe(`${files.url}/by-url.png`);
    const again = await world.api<{ id: string }>('POST', '/messages', { sender_id: world.senderId, to: { psid: customer.psid }, attachments: [{ type: 'image', attachment_id: attachmentId }] });
    expect(again.status).toBe(202);
    await world.waitForSent(again.body.id);
  });

  it('sends text and attachments as parts in order (URL, uploaded media, Meta attachment id), quick replies on the last', async () => {
    const customer = await world.customer('show me');
    const media = await upload(PNG, 'image/png', '?filename=uploaded.png');
    const reusable = await upload(PNG, 'image/png', `?sender_id=${world.senderId}&pre_upload=true`);
    const res = await world.api<{ id: string }>('POST', '/messages', {
      sender_id: world.senderId,
      to: { psid: customer.psid },
      text: 'Here are three pictures',
      attachments: [
        { type: 'image', url: `${files.url}/by-url.png` },
        { type: 'image', media_id: media.body['id'] },
        { type: 'image', attachment_id: reusable.body['meta_attachment_id'] },
      ],
      quick_replies: [{ content_type: 'text', title: 'Nice', payload: 'NICE' }],
      metadata: 'campaign-7',
    });
    expect(res.status).toBe(202);
    const sent = await world.waitForSent(res.body.id);
    const thread = (await world.thread(customer.psid)).filter((m) => m.from === 'page');
    expect(thread).toHaveLength(4);
    expect(thread[0]?.text).toBe('Here are three pictures');
    expect(thread.slice(1).every((m) => m.attachment !== undefined)).toBe(true);
    expect(thread[3]?.quick_replies).toBeDefined();
    expect(thread[0]?.quick_replies).toBeUndefined();
    expect(sent['mid']).toBe(thread[0]?.mid);
    expect(sent['metadata']).toBe('campaign-7');
    const raw = await world.store.db.selectFrom('messages').select('raw').where('id', '=', res.body.id).executeTakeFirstOrThrow();
    const state = JSON.parse(raw.raw ?? '{}') as { parts: { mid: string; message: { metadata: string } }[] };
    expect(state.parts.map((p) => p.mid)).toEqual(thread.map((m) => m.mid));
    expect(state.parts.map((p) => p.message.metadata)).toEqual([0, 1, 2, 3].map((i) => echoMetadata(res.body.id, 'campaign-7', i)));
    // The uploaded media was uploaded to the Page once, and is reused from now on.
    const stored = await world.store.db.selectFrom('media').select(['meta_attachment_id', 'sender_id']).where('id', '=', String(media.body['id'])).executeTakeFirstOrThrow();
    expect(stored.meta_attachment_id).toMatch(/^\d+$/);
    expect(stored.sender_id).toBe(world.senderId);
  });

  it('sends a button template and a raw Meta message passed through, its own metadata kept inside the gateway\'s', async () => {
    const customer = await world.customer('templates');
    const template = await world.api<{ id: string; content: { template: { type: string } } }>('POST', '/messages', {
      sender_id: world.senderId,
      to: { psid: customer.psid },
      template: { type: 'button', text: 'Pick one', buttons: [{ type: 'postback', title: 'Yes', payload: 'YES' }, { type: 'web_url', title: 'Site', url: 'https://example.com' }] },
    });
    expect(template.status).toBe(202);
    expect(template.body.content.template.type).toBe('button');
    const raw = await world.api<{ id: string; metadata: string; content: { message: Record<string, unknown> } }>('POST', '/messages', {
      sender_id: world.senderId,
      to: { psid: customer.psid },
      message: { text: 'raw text', metadata: 'their own' },
    });
    expect(raw.status).toBe(202);
    expect(raw.body.metadata).toBe('their own');
    await world.waitForSent(template.body.id);
    await world.waitForSent(raw.body.id);
    const page = (await world.thread(customer.psid)).filter((m) => m.from === 'page');
    expect(page).toHaveLength(2);
    expect(JSON.stringify(page[0]?.attachment)).toContain('Pick one');
    expect(page[1]?.text).toBe('raw text');
    const stored = await world.store.db.selectFrom('messages').select('raw').where('id', '=', raw.body.id).executeTakeFirstOrThrow();
    const sentMessage = (JSON.parse(stored.raw ?? '{}') as { parts: { message: Record<string, unknown> }[] }).parts[0]?.message;
    expect(sentMessage).toEqual({ text: 'raw text', metadata: echoMetadata(raw.body.id, 'their own') });
  });

  it('refuses attachments it cannot send before accepting them', async () => {
    const customer = await world.customer('bad attachments');
    const unknown = await world.api<ErrorBody>('POST', '/messages', { sender_id: world.senderId, to: { psid: customer.psid }, attachments: [{ type: 'image', media_id: 'med_nope' }] });
    expect(unknown.status).toBe(422);
    expect(unknown.body.error).toMatchObject({ code: 'CONTENT_INVALID', details: { field: 'attachments[0].media_id' } });
    const privateUrl = await world.api<ErrorBody>('POST', '/messages', { sender_id: world.senderId, to: { psid: customer.psid }, attachments: [{ type: 'image', url: 'http://10.1.2.3/x.png' }] });
    expect(privateUrl.status).toBe(422);
    expect(privateUrl.body.error).toMatchObject({ code: 'URL_NOT_ALLOWED', details: { field: 'attachments[0].url' } });
  });

  it('reports every status to the per-message status callback, in order', async () => {
    const customer = await world.customer('call me back');
    const res = await world.api<{ id: string }>('POST', '/messages', { sender_id: world.senderId, to: { psid: customer.psid }, text: 'with a callback', status_callback: `${files.url}/status` });
    expect(res.status).toBe(202);
    await world.waitForStatus(res.body.id, 'read');
    const mine = () => files.callbacks.filter((c) => c.body.data.message_id === res.body.id).map((c) => c.body.data.status);
    await waitFor(() => mine().length === 6, 'six callbacks');
    expect(mine()).toEqual(['accepted', 'queued', 'sending', 'sent', 'delivered', 'read']);
    expect(files.callbacks.every((c) => c.body.type === 'message.status')).toBe(true);
  });

  it('shows typing and marks seen through sender actions, with the contact rules', async () => {
    const customer = await world.customer('are you there?');
    const typing = await world.api<{ action: string; contact_id: string }>('POST', `/senders/${world.senderId}/actions`, { to: { psid: customer.psid }, action: 'typing_on' });
    expect(typing.status).toBe(200);
    expect(typing.body.contact_id).toBe(customer.contactId);
    expect((await world.control<{ typing: boolean }>('GET', `/_emulator/pages/${world.pageId}/threads/${customer.psid}`)).body.typing).toBe(true);
    const seen = await world.api('POST', `/senders/${world.senderId}/actions`, { to: { contact_id: customer.contactId }, action: 'mark_seen' });
    expect(seen.status).toBe(200);
    expect((await world.control<{ seen_watermark: number | null }>('GET', `/_emulator/pages/${world.pageId}/threads/${customer.psid}`)).body.seen_watermark).not.toBeNull();

    const bad = await world.api<ErrorBody>('POST', `/senders/${world.senderId}/actions`, { to: { psid: customer.psid }, action: 'dance' });
    expect(bad.status).toBe(400);
    const unknownSender = await world.api<ErrorBody>('POST', '/senders/snd_nope/actions', { to: { psid: customer.psid }, action: 'typing_on' });
    expect(unknownSender.status).toBe(404);
  });

  it('marks a contact Meta will not deliver to, refuses later sends, and lifts it when they write again', async () => {
    const customer = await world.customer('block incoming');
    await world.control('POST', `/_emulator/pages/${world.pageId}/block`, { user: customer.userId });
    const res = await world.api<{ id: string }>('POST', '/messages', { sender_id: world.senderId, to: { psid: customer.psid }, text: 'blocked?' });
    const failed = await world.waitForStatus(res.body.id, 'failed');
    expect(failed['error']).toMatchObject({ code: 'META_USER_UNAVAILABLE', meta_code: 551 });
    // Meta says only that the person isn't available (not that they blocked the Page): so it is shown.
    const contact = await world.api<{ blocked: boolean; unreachable: boolean; unreachable_at: string | null }>('GET', `/contacts/${customer.contactId}`);
    expect(contact.body).toMatchObject({ blocked: false, unreachable: true });
    expect(contact.body.unreachable_at).not.toBeNull();
    const refused = await world.api<ErrorBody>('POST', '/messages', { sender_id: world.senderId, to: { psid: customer.psid }, text: 'still?' });
    expect(refused.status).toBe(422);
    expect(refused.body.error.code).toBe('CONTACT_UNREACHABLE');
    const action = await world.api<ErrorBody>('POST', `/senders/${world.senderId}/actions`, { to: { psid: customer.psid }, action: 'typing_on' });
    expect(action.body.error.code).toBe('CONTACT_UNREACHABLE');

    await world.control('POST', `/_emulator/pages/${world.pageId}/unblock`, { user: customer.userId });
    await world.write(customer, 'sorry, unblocked you');
    await waitFor(async () => !(await world.api<{ unreachable: boolean }>('GET', `/contacts/${customer.contactId}`)).body.unreachable, 'the mark lifted by their message');
    const again = await world.api<{ id: string }>('POST', '/messages', { sender_id: world.senderId, to: { psid: customer.psid }, text: 'welcome back' });
    expect(again.status).toBe(202);
    await world.waitForSent(again.body.id);
  });

  it('confirms a stop word once, even though the contact is now opted out, and refuses anything else', async () => {
    const customer = await world.customer('hello');
    await world.write(customer, 'STOP');
    await waitFor(async () => {
      const row = await world.store.db.selectFrom('contacts').selectAll().where('id', '=', customer.contactId).executeTakeFirst();
      return row?.opted_out_at !== null ? row : undefined;
    }, 'the contact to be opted out');
    const autoReplies = () => world.store.db.selectFrom('messages').select(['id', 'status']).where('contact_id', '=', customer.contactId).where('origin', '=', 'auto_reply').execute();
    // The inbound step queues the confirmation in the very transaction that opts the contact out.
    const replies = await autoReplies();
    expect(replies).toHaveLength(1);
    const [confirmation] = replies;
    await world.waitForSent(confirmation?.id ?? '');
    expect(pageTexts(await world.thread(customer.psid))).toEqual(['You will not hear from us again.']);

    const refused = await world.api<ErrorBody>('POST', '/messages', { sender_id: world.senderId, to: { psid: customer.psid }, text: 'one more offer' });
    expect(refused.status).toBe(422);
    expect(refused.body.error.code).toBe('CONTACT_OPTED_OUT');
    const contact = await world.api<{ opted_out: boolean }>('GET', `/contacts/${customer.contactId}`);
    expect(contact.body.opted_out).toBe(true);
    expect(await autoReplies()).toHaveLength(1);
  });

  it('answers a checkbox opt-in once through its user_ref', async () => {
    const user = await world.control<{ id: string }>('POST', '/_emulator/users', { first_name: 'Opt', last_name: 'In' });
    const userRef = `ref-${user.body.id}`;
    const optin = await world.control('POST', `/_emulator/pages/${world.pageId}/inbound`, { user: user.body.id, optin: { ref: 'checkout', user_ref: userRef } });
    expect(optin.status).toBe(200);
    await waitFor(async () => (await world.store.db.selectFrom('contacts').select('id').where('user_ref', '=', userRef).executeTakeFirst())?.id, 'the user_ref contact');
    const res = await world.api<{ id: string }>('POST', '/messages', { sender_id: world.senderId, to: { user_ref: userRef }, text: 'Thanks for opting in' });
    expect(res.status).toBe(202);
    const sent = await world.waitForSent(res.body.id);
    expect(sent['mid']).toMatch(/^m_/);
    const second = await world.api<ErrorBody>('POST', '/messages', { sender_id: world.senderId, to: { user_ref: userRef }, text: 'and again' });
    expect(second.status).toBe(422);
    expect(second.body.error.code).toBe('USER_REF_ALREADY_USED');
  });

  it('sends to Instagram within its limits: 1000 bytes of text, HUMAN_AGENT as the only tag', async () => {
    const ig = await world.connectPage('IG Page', true);
    const customer = await world.customer('hi from instagram', { pageId: ig.pageId, senderId: ig.senderId, channel: 'instagram' });
    const tooLong = await world.api<ErrorBody>('POST', '/messages', { sender_id: ig.senderId, to: { psid: customer.psid }, text: 'é'.repeat(501) });
    expect(tooLong.status).toBe(422);
    expect(tooLong.body.error).toMatchObject({ code: 'CONTENT_TOO_LONG', details: { unit: 'bytes', limit: 1000 } });
    const res = await world.api<{ id: string; channel: string }>('POST', '/messages', { sender_id: ig.senderId, to: { psid: customer.psid }, text: 'é'.repeat(500) });
    expect(res.status).toBe(202);
    expect(res.body.channel).toBe('instagram');
    await world.waitForSent(res.body.id);
    const thread = await world.control<{ messages: { from: string; text?: string }[] }>('GET', `/_emulator/pages/${ig.instagramId}/threads/${customer.psid}`);
    expect(thread.body.messages.filter((m) => m.from === 'page').map((m) => m.text)).toEqual(['é'.repeat(500)]);
    const tagged = await world.api<ErrorBody>('POST', '/messages', { sender_id: ig.senderId, to: { psid: customer.psid }, text: 'x', tag: 'CUSTOMER_FEEDBACK' });
    expect(tagged.status).toBe(422);
    expect(tagged.body.error.code).toBe('TAG_NOT_ALLOWED');
  });

  it('lists and reads messages, contacts and conversations with filters and cursors', async () => {
    const customer = await world.customer('list me');
    const before = new Date(Date.now() + world.offset.ms - 1).toISOString();
    const ids: string[] = [];
    for (const text of ['one', 'two', 'three']) {
      const res = await world.api<{ id: string }>('POST', '/messages', { sender_id: world.senderId, to: { psid: customer.psid }, text });
      ids.push(res.body.id);
    }
    for (const id of ids) await world.waitForSent(id);

    const page1 = await world.api<{ data: { id: string }[]; next_cursor: string | null }>('GET', `/messages?contact_id=${customer.contactId}&direction=outbound&limit=2`);
    expect(page1.body.data.map((m) => m.id)).toEqual(ids.slice(0, 2));
    const page2 = await world.api<{ data: { id: string }[]; next_cursor: string | null }>('GET', `/messages?contact_id=${customer.contactId}&direction=outbound&limit=2&after=${page1.body.next_cursor}`);
    expect(page2.body.data.map((m) => m.id)).toEqual(ids.slice(2));
    expect(page2.body.next_cursor).toBeNull();
    const inbound = await world.api<{ data: { direction: string; status: string; content: { text: string } }[] }>('GET', `/messages?contact_id=${customer.contactId}&direction=inbound`);
    expect(inbound.body.data.map((m) => [m.direction, m.status, m.content.text])).toEqual([['inbound', 'received', 'list me']]);
    const since = await world.api<{ data: { id: string }[] }>('GET', `/messages?contact_id=${customer.contactId}&since=${encodeURIComponent(before)}`);
    expect(since.body.data.map((m) => m.id)).toEqual(ids);
    const until = await world.api<{ data: unknown[] }>('GET', `/messages?contact_id=${customer.contactId}&until=${encodeURIComponent(before)}`);
    expect(until.body.data).toHaveLength(1);
    const badStatus = await world.api<ErrorBody>('GET', '/messages?status=lost');
    expect(badStatus.status).toBe(400);

    const one = await world.api<{ status_history: { status: string }[]; content: { text: string } }>('GET', `/messages/${ids[0]}`);
    expect(one.body.content.text).toBe('one');
    expect(one.body.status_history.slice(0, 4).map((h) => h.status)).toEqual(['accepted', 'queued', 'sending', 'sent']);
    expect((await world.api('GET', '/messages/msg_nope')).status).toBe(404);

    const conversations = await world.api<{ data: { id: string; status: string }[] }>('GET', `/conversations?contact_id=${customer.contactId}`);
    expect(conversations.body.data).toHaveLength(1);
    const conversationId = conversations.body.data[0]?.id ?? '';
    const full = await world.api<{ messages: { data: { content: { text: string } }[] } }>('GET', `/conversations/${conversationId}?messages_limit=10`);
    expect(full.body.messages.data.map((m) => m.content.text)).toEqual(['list me', 'one', 'two', 'three']);
    const closed = await world.api<{ status: string; closed_at: string | null }>('POST', `/conversations/${conversationId}/close`);
    expect(closed.body.status).toBe('closed');
    expect(closed.body.closed_at).not.toBeNull();
    expect((await world.api<{ data: unknown[] }>('GET', `/conversations?contact_id=${customer.contactId}&status=open`)).body.data).toHaveLength(0);
    const reopened = await world.api<{ status: string; closed_at: string | null }>('POST', `/conversations/${conversationId}/reopen`);
    expect(reopened.body).toMatchObject({ status: 'open', closed_at: null });
    expect((await world.api('POST', '/conversations/cnv_nope/close')).status).toBe(404);

    const contacts = await world.api<{ data: { id: string; window: { open: boolean } }[] }>('GET', `/contacts?sender_id=${world.senderId}&limit=200`);
    expect(contacts.body.data.map((c) => c.id)).toContain(customer.contactId);
    expect((await world.api('GET', '/contacts/con_nope')).status).toBe(404);
  });
});

describeEachEngine('a send in flight when its run stopped', (engine) => {
  let world: World;
  beforeAll(async () => {
    // Long enough for the held-back echo to arrive within the wait on a loaded machine.
    world = await startWorld(engine, { send: { reconcileWaitMs: 5_000 } });
  });
  afterAll(async () => {
    await world?.close();
  });

  it('checks for the echo of a send that was in flight when its run stopped, and sends it only if none came', async () => {
    // Two messages whose previous run "stopped" mid-send: Meta got the first (its echo is held
    // back for a moment), never the second.
    const customer = await world.customer('crash test');
    world.hold.sends = true;
    try {
      const got = await world.api<{ id: string }>('POST', '/messages', { sender_id: world.senderId, to: { psid: customer.psid }, text: 'Meta got this one' });
      const lost = await world.api<{ id: string }>('POST', '/messages', { sender_id: world.senderId, to: { psid: customer.psid }, text: 'this one never left' });
      await world.control('POST', '/_emulator/webhooks/pause', { app_id: world.appId });
      const direct = await http<{ message_id: string }>('POST', `${world.emulator.url}/v25.0/me/messages?access_token=${encodeURIComponent(world.pageToken)}`, {
        json: { recipient: { id: customer.psid }, messaging_type: 'RESPONSE', message: { text: 'Meta got this one', metadata: echoMetadata(got.body.id, null) } },
      });
      expect(direct.status).toBe(200);
      const since = Date.now();
      for (const id of [got.body.id, lost.body.id]) {
        await world.store.db.updateTable('messages').set({ status: 'sending', raw: serializeSendState({ inflight: { part: 0, since } }) }).where('id', '=', id).execute();
      }
      world.hold.sends = false;
      // The first waits for its echo; it comes once webhooks flow again.
      await waitFor(async () => {
        const row = await world.store.db.selectFrom('messages').select('raw').where('id', '=', got.body.id).executeTakeFirstOrThrow();
        return (JSON.parse(row.raw ?? '{}') as { uncertain?: unknown }).uncertain !== undefined;
      }, 'the first message to wait for its echo');
      await world.control('POST', '/_emulator/webhooks/resume', { app_id: world.appId });
      const settled = await world.waitForSent(got.body.id);
      expect(settled['mid']).toBe(direct.body.message_id);
      await world.waitForSent(lost.body.id);
      const texts = pageTexts(await world.thread(customer.psid));
      expect(texts.filter((t) => t === 'Meta got this one')).toHaveLength(1);
      expect(texts.filter((t) => t === 'this one never left')).toHaveLength(1);
    } finally {
      world.hold.sends = false;
      await world.control('POST', '/_emulator/webhooks/resume', { app_id: world.appId });
    }
  });
});
