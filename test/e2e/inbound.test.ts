/**
 * Inbound, end to end over real sockets: the emulator plays the customer and Meta's webhooks, the
 * gateway (`buildServer`) stores and processes them, and a test endpoint receives the events,
 * signed per Standard Webhooks. On SQLite and PostgreSQL.
 */
import { createHmac } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachEngine } from '../support/db.js';
import { call, eventually, startReceiver, startStack } from '../support/stack.js';
import type { Received, Stack } from '../support/stack.js';

interface EventBody {
  id: string;
  type: string;
  data: Record<string, unknown> & { message?: { id: string; mid: string | null; kind?: string; content: Record<string, unknown> } };
}

describeEachEngine('inbound messages end to end', (engine) => {
  let stack: Stack;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let secret: string;
  let page: { id: string; access_token: string };
  let senderId: string;
  let user: string;

  beforeAll(async () => {
    stack = await startStack({ engine });
    receiver = await startReceiver();
    const endpoint = await stack.api<{ id: string; secret: string }>('POST', '/v1/endpoints', { url: `${receiver.url}/events` });
    expect(endpoint.status).toBe(201);
    secret = endpoint.body.secret;
    const connected = await stack.connectPage({ name: 'Shoe Shop' });
    page = connected.page;
    senderId = connected.sender.id;
    const person = await stack.emu<{ id: string }>('POST', '/_emulator/users', { first_name: 'Ada', last_name: 'Lovelace' });
    expect(person.status).toBeLessThan(300);
    user = person.body.id;
  });
  afterAll(async () => {
    await receiver?.close();
    await stack?.close();
  });

  /** Every event the endpoint received, verified with the endpoint's secret. */
  function verified(): EventBody[] {
    return receiver.received.map((r: Received) => new Webhook(secret).verify(r.body, r.headers as Record<string, string>) as EventBody);
  }

  async function eventFor(type: string, match: (e: EventBody) => boolean, what: string): Promise<EventBody> {
    return eventually(() => verified().find((e) => e.type === type && match(e)), 20_000, what);
  }

  async function customer(body: Record<string, unknown>): Promise<{ psid?: string; mid?: string; user_ref?: string }> {
    const res = await stack.emu<{ psid?: string; mid?: string; user_ref?: string }>('POST', `/_emulator/pages/${page.id}/inbound`, { user, ...body });
    expect(res.status, JSON.stringify(res.body)).toBeLessThan(300);
    return res.body;
  }

  it('delivers a text message as a signed message.received event after conversation.created', async () => {
    const sent = await customer({ text: 'Do you have these in blue?' });
    const event = await eventFor('message.received', (e) => e.data.message?.mid === sent.mid, 'the text message event');
    expect(event.data.message?.content).toEqual({ text: 'Do you have these in blue?' });
    expect(event.data['contact']).toMatchObject({ psid: sent.psid, sender_id: senderId });
    const created = verified().find((e) => e.type === 'conversation.created');
    expect(created?.data['contact']).toMatchObject({ psid: sent.psid });
  });

  it('delivers an image, downloads it and serves it back at /v1/media/{id}', async () => {
    const sent = await customer({ attachments: ['image'] });
    const event = await eventFor('message.received', (e) => e.data.message?.mid === sent.mid, 'the image event');
    const attachment = (event.data.message?.content['attachments'] as { type: string; media_id: string }[])[0]!;
    expect(attachment.type).toBe('image');
    expect(attachment.media_id).toMatch(/^med_/);
    const media = await eventually(async () => {
      const res = await fetch(`${stack.url}/v1/media/${attachment.media_id}`, { headers: { authorization: `Bearer ${stack.account.key}` } });
      return res.status === 200 ? res : undefined;
    }, 20_000, 'the downloaded image');
    expect(media.headers.get('content-type')).toMatch(/^image\//);
    expect((await media.arrayBuffer()).byteLength).toBeGreaterThan(0);
    const stored = await stack.store.db.selectFrom('messages').select('content').where('mid', '=', sent.mid!).executeTakeFirstOrThrow();
    expect(JSON.parse(stored.content)).toMatchObject({ attachments: [{ url: `${stack.gateway.ctx.publicUrl}/v1/media/${attachment.media_id}` }] });
    // Another account's key cannot read it.
    const other = await stack.newAccount('Someone else');
    const refused = await call('GET', `${stack.url}/v1/media/${attachment.media_id}`, undefined, { authorization: `Bearer ${other.key}` });
    expect(refused.status).toBe(404);
  });

  it('delivers a quick reply, a postback, a reaction, an opt-in and a referral as their events', async () => {
    const quick = await customer({ text: 'Blue', quick_reply: 'COLOR_BLUE' });
    const qr = await eventFor('message.received', (e) => e.data.message?.mid === quick.mid, 'the quick reply');
    expect(qr.data.message?.content['quick_reply']).toEqual({ payload: 'COLOR_BLUE' });

    await customer({ postback: { title: 'Buy', payload: 'BUY_42' } });
    const postback = await eventFor('postback', (e) => (e.data['postback'] as { payload?: string }).payload === 'BUY_42', 'the postback');
    expect(postback.data['postback']).toMatchObject({ title: 'Buy' });

    await customer({ reaction: { reaction: 'love', emoji: '❤', action: 'react', mid: quick.mid } });
    const reaction = await eventFor('reaction', (e) => (e.data['reaction'] as { mid?: string }).mid === quick.mid, 'the reaction');
    expect(reaction.data['target_message_id']).toBe(qr.data.message?.id);

    await customer({ optin: { ref: 'newsletter' } });
    const optin = await eventFor('optin', (e) => (e.data['optin'] as { ref?: string }).ref === 'newsletter', 'the opt-in');
    expect(optin.data['contact']).toMatchObject({ sender_id: senderId });

    await customer({ referral: { ref: 'summer-sale', source: 'SHORTLINK', type: 'OPEN_THREAD' } });
    await eventFor('referral', (e) => (e.data['referral'] as { ref?: string }).ref === 'summer-sale', 'the referral');
  });

  it('keeps one message when Meta delivers the same batch three times', async () => {
    const body = JSON.stringify({
      object: 'page',
      entry: [{ id: page.id, time: Date.now(), messaging: [{ sender: { id: '77770001' }, recipient: { id: page.id }, timestamp: Date.now(), message: { mid: 'm_retried_batch', text: 'once' } }] }],
    });
    for (let i = 0; i < 3; i += 1) {
      const res = await stack.emu('POST', '/_emulator/webhooks/raw', { app_id: stack.app.id, body });
      expect(res.status).toBe(202);
    }
    await eventually(async () => {
      const batches = await stack.store.db.selectFrom('inbound_batches').select(['processed_at']).where('body', '=', body).execute();
      return batches.length === 3 && batches.every((b) => b.processed_at !== null);
    }, 20_000, 'three processed batches');
    const messages = await stack.store.db.selectFrom('messages').select('id').where('mid', '=', 'm_retried_batch').execute();
    expect(messages).toHaveLength(1);
    await eventFor('message.received', (e) => e.data.message?.mid === 'm_retried_batch', 'the event of the retried message');
    const stored = await stack.store.db.selectFrom('events').select('id').where('type', '=', 'message.received').where('message_id', '=', messages[0]!.id).execute();
    expect(stored).toHaveLength(1);
  });

  it('refuses a forged signature and stores nothing', async () => {
    const before = await stack.store.db.selectFrom('inbound_batches').select('id').execute();
    const body = JSON.stringify({ object: 'page', entry: [{ id: page.id, time: 1, messaging: [] }] });
    const forged = `sha256=${createHmac('sha256', 'not-the-app-secret').update(body).digest('hex')}`;
    const res = await call('POST', `${stack.url}/webhooks/meta`, JSON.parse(body), { 'x-hub-signature-256': forged });
    expect(res.status).toBe(401);
    const after = await stack.store.db.selectFrom('inbound_batches').select('id').execute();
    expect(after.length).toBe(before.length);
  });

  it('keeps events for a Page no account owns as unroutable', async () => {
    const body = JSON.stringify({ object: 'page', entry: [{ id: '123456789012345', time: 1, messaging: [{ sender: { id: '1' }, recipient: { id: '123456789012345' }, timestamp: 1, message: { mid: 'm_nobody', text: '?' } }] }] });
    await stack.emu('POST', '/_emulator/webhooks/raw', { app_id: stack.app.id, body });
    const row = await eventually(() => stack.store.db.selectFrom('unroutable_events').selectAll().where('entry_id', '=', '123456789012345').executeTakeFirst(), 20_000, 'the unroutable row');
    expect(JSON.parse(row.item)).toMatchObject({ message: { mid: 'm_nobody' } });
  });
});
