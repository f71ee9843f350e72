/**
 * Sending, end to end over real sockets: the gateway (`buildServer`) against the emulator, on
 * SQLite and PostgreSQL. A reply reaches the customer and comes back delivered then read; the
 * window and tag rules refuse before anything leaves; a revoked token stops the sender.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachEngine } from '../support/db.js';
import { pageTexts, startWorld, waitFor } from '../pipeline/outbound/support.js';
import type { World } from '../pipeline/outbound/support.js';

const HOUR = 60 * 60 * 1000;
const DAY = 24 * HOUR;

interface ErrorBody {
  error: { code: string; message: string; details: Record<string, unknown> };
}

describeEachEngine('sending a reply', (engine) => {
  let world: World;
  beforeAll(async () => {
    world = await startWorld(engine);
  });
  afterAll(async () => {
    await world?.close();
  });

  it('reaches the customer and comes back delivered, then read, with every status in order', async () => {
    const customer = await world.customer('Where is my order?');
    const res = await world.api<{ id: string; status: string; contact_id: string; conversation_id: string }>('POST', '/messages', {
      sender_id: world.senderId,
      to: { psid: customer.psid },
      text: 'It ships today.',
      client_ref: 'order-42',
    });
    expect(res.status).toBe(202);
    expect(res.body.status).toBe('queued');
    expect(res.body.contact_id).toBe(customer.contactId);
    expect(res.body.conversation_id).toMatch(/^cnv_/);

    await waitFor(async () => pageTexts(await world.thread(customer.psid)).includes('It ships today.'), 'the reply in the thread');
    const read = await world.waitForStatus(res.body.id, 'read');
    expect(read.status_history.map((h) => h.status)).toEqual(['accepted', 'queued', 'sending', 'sent', 'delivered', 'read']);
    expect(read['mid']).toMatch(/^m_/);
    expect(read['client_ref']).toBe('order-42');

    const events = await world.store.db
      .selectFrom('events')
      .select(['payload'])
      .where('type', '=', 'message.status')
      .where('message_id', '=', res.body.id)
      .orderBy('id')
      .execute();
    const statuses = events.map((e) => (JSON.parse(e.payload) as { status: string; previous_status: string | null }));
    expect(statuses.map((s) => s.status)).toEqual(['accepted', 'queued', 'sending', 'sent', 'delivered', 'read']);
    expect(statuses.map((s) => s.previous_status)).toEqual([null, 'accepted', 'queued', 'sending', 'sent', 'delivered']);
  });

  it('addresses a contact by id and shows the open window on the contact', async () => {
    const customer = await world.customer('hi');
    const contact = await world.api<{ window: { open: boolean; open_until: string; human_agent_until: string; human_agent_allowed: boolean }; blocked: boolean; opted_out: boolean }>(
      'GET',
      `/contacts/${customer.contactId}`,
    );
    expect(contact.status).toBe(200);
    expect(contact.body.window.open).toBe(true);
    expect(Date.parse(contact.body.window.human_agent_until) - Date.parse(contact.body.window.open_until)).toBe(6 * DAY);
    expect(contact.body.window.human_agent_allowed).toBe(false);
    expect(contact.body.blocked).toBe(false);
    expect(contact.body.opted_out).toBe(false);

    const res = await world.api<{ id: string }>('POST', '/messages', { sender_id: world.senderId, to: { contact_id: customer.contactId }, text: 'By contact id.' });
    expect(res.status).toBe(202);
    await world.waitForSent(res.body.id);
    expect(pageTexts(await world.thread(customer.psid))).toContain('By contact id.');
  });

  it('refuses a PSID that never wrote: the customer writes first', async () => {
    const res = await world.api<ErrorBody>('POST', '/messages', { sender_id: world.senderId, to: { psid: '999999999999' }, text: 'cold' });
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('NOT_FOUND');
    expect(res.body.error.details['field']).toBe('to.psid');
  });

  it('refuses a retired tag before anything leaves', async () => {
    const customer = await world.customer('tag me');
    for (const tag of ['ACCOUNT_UPDATE', 'SHIPPING_UPDATE']) {
      const res = await world.api<ErrorBody>('POST', '/messages', { sender_id: world.senderId, to: { psid: customer.psid }, text: 'tagged', tag });
      expect(res.status).toBe(422);
      expect(res.body.error.code).toBe('TAG_RETIRED');
      expect(res.body.error.details['tag']).toBe(tag);
      expect(typeof res.body.error.details['retired_on']).toBe('string');
    }
    expect(pageTexts(await world.thread(customer.psid))).toEqual([]);
    const stored = await world.store.db.selectFrom('messages').select('id').where('contact_id', '=', customer.contactId).where('direction', '=', 'outbound').execute();
    expect(stored).toEqual([]);
  });

  it('refuses content over the limit and bad metadata with stable codes', async () => {
    const customer = await world.customer('limits');
    const long = await world.api<ErrorBody>('POST', '/messages', { sender_id: world.senderId, to: { psid: customer.psid }, text: 'x'.repeat(2000) });
    expect(long.status).toBe(422);
    expect(long.body.error.code).toBe('CONTENT_TOO_LONG');
    expect(long.body.error.details['field']).toBe('text');
    const meta = await world.api<ErrorBody>('POST', '/messages', { sender_id: world.senderId, to: { psid: customer.psid }, text: 'ok', metadata: 'm'.repeat(990) });
    expect(meta.status).toBe(422);
    expect(meta.body.error.code).toBe('CONTENT_TOO_LONG');
    expect(meta.body.error.details['field']).toBe('metadata');
    // Far over a limit is the same refusal as just over it, not a schema error.
    const far = await world.api<ErrorBody>('POST', '/messages', { sender_id: world.senderId, to: { psid: customer.psid }, text: 'x'.repeat(20_001), metadata: 'ok' });
    expect(far.status).toBe(422);
    expect(far.body.error.code).toBe('CONTENT_TOO_LONG');
    const farMeta = await world.api<ErrorBody>('POST', '/messages', { sender_id: world.senderId, to: { psid: customer.psid }, text: 'ok', metadata: 'm'.repeat(1001) });
    expect(farMeta.status).toBe(422);
    expect(farMeta.body.error.details['field']).toBe('metadata');
    const replies = Array.from({ length: 51 }, (_, i) => ({ content_type: 'text', title: `t${i}`, payload: `p${i}` }));
    const farReplies = await world.api<ErrorBody>('POST', '/messages', { sender_id: world.senderId, to: { psid: customer.psid }, text: 'pick', quick_replies: replies });
    expect(farReplies.status).toBe(422);
    expect(farReplies.body.error.code).toBe('TOO_MANY_QUICK_REPLIES');
    const rawLong = await world.api<ErrorBody>('POST', '/messages', { sender_id: world.senderId, to: { psid: customer.psid }, message: { text: 'x'.repeat(2500) } });
    expect(rawLong.status).toBe(422);
    expect(rawLong.body.error.details['field']).toBe('message.text');
    const empty = await world.api<ErrorBody>('POST', '/messages', { sender_id: world.senderId, to: { psid: customer.psid } });
    expect(empty.status).toBe(422);
    expect(empty.body.error.code).toBe('CONTENT_EMPTY');
    const noRecipient = await world.api<ErrorBody>('POST', '/messages', { sender_id: world.senderId, to: {}, text: 'x' });
    expect(noRecipient.status).toBe(400);
    expect(noRecipient.body.error.code).toBe('VALIDATION_FAILED');
    expect(noRecipient.body.error.details['field']).toBe('to');
  });
});

describeEachEngine('the messaging window', (engine) => {
  let world: World;
  beforeAll(async () => {
    world = await startWorld(engine);
  });
  afterAll(async () => {
    await world?.close();
  });

  it('closes after 24 hours: WINDOW_CLOSED says when, and HUMAN_AGENT is refused where not allowed', async () => {
    const customer = await world.customer('hello');
    const wroteAt = Date.now() + world.offset.ms;
    await world.advance(25 * HOUR);
    const res = await world.api<ErrorBody>('POST', '/messages', { sender_id: world.senderId, to: { psid: customer.psid }, text: 'too late' });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('WINDOW_CLOSED');
    const closedAt = res.body.error.details['closed_at'] as number;
    expect(Math.abs(closedAt - (wroteAt + DAY))).toBeLessThan(60_000);
    expect(res.body.error.details['human_agent_until']).toBeGreaterThan(Date.now() + world.offset.ms);

    const tagged = await world.api<ErrorBody>('POST', '/messages', { sender_id: world.senderId, to: { psid: customer.psid }, text: 'human', tag: 'HUMAN_AGENT' });
    expect(tagged.status).toBe(422);
    expect(tagged.body.error.code).toBe('HUMAN_AGENT_NOT_ALLOWED');

    const contact = await world.api<{ window: { open: boolean } }>('GET', `/contacts/${customer.contactId}`);
    expect(contact.body.window.open).toBe(false);
    expect(pageTexts(await world.thread(customer.psid))).toEqual([]);
  });
});

describeEachEngine('HUMAN_AGENT where the sender is allowed it', (engine) => {
  let world: World;
  beforeAll(async () => {
    world = await startWorld(engine, { humanAgent: true });
  });
  afterAll(async () => {
    await world?.close();
  });

  it('sends up to day 7 and refuses after', async () => {
    const customer = await world.customer('need a human');
    await world.advance(6 * DAY);
    const plain = await world.api<ErrorBody>('POST', '/messages', { sender_id: world.senderId, to: { psid: customer.psid }, text: 'untagged' });
    expect(plain.status).toBe(422);
    expect(plain.body.error.code).toBe('WINDOW_CLOSED');

    const res = await world.api<{ id: string; messaging_type: string; tag: string }>('POST', '/messages', {
      sender_id: world.senderId,
      to: { psid: customer.psid },
      text: 'A person here, on day 6.',
      tag: 'HUMAN_AGENT',
    });
    expect(res.status).toBe(202);
    expect(res.body.messaging_type).toBe('MESSAGE_TAG');
    expect(res.body.tag).toBe('HUMAN_AGENT');
    await world.waitForSent(res.body.id);
    const seen = (await world.thread(customer.psid)).find((m) => m.text === 'A person here, on day 6.');
    expect(seen?.tag).toBe('HUMAN_AGENT');

    await world.advance(2 * DAY);
    const late = await world.api<ErrorBody>('POST', '/messages', { sender_id: world.senderId, to: { psid: customer.psid }, text: 'day 8', tag: 'HUMAN_AGENT' });
    expect(late.status).toBe(422);
    expect(late.body.error.code).toBe('HUMAN_AGENT_WINDOW_CLOSED');
  });
});

describeEachEngine('a revoked token', (engine) => {
  let world: World;
  beforeAll(async () => {
    world = await startWorld(engine);
  });
  afterAll(async () => {
    await world?.close();
  });

  it('moves the sender to reauth_required and later sends are refused with SENDER_REAUTH_REQUIRED', async () => {
    const customer = await world.customer('hi');
    await world.control('POST', `/_emulator/pages/${world.pageId}/revoke_token`);
    const res = await world.api<{ id: string }>('POST', '/messages', { sender_id: world.senderId, to: { psid: customer.psid }, text: 'after revoke' });
    expect(res.status).toBe(202);
    const failed = await world.waitForStatus(res.body.id, 'failed');
    expect((failed['error'] as { code: string; meta_code: number }).code).toBe('META_TOKEN_INVALID');
    expect((failed['error'] as { code: string; meta_code: number }).meta_code).toBe(190);

    const sender = await world.api<{ health: string }>('GET', `/senders/${world.senderId}`);
    expect(sender.body.health).toBe('reauth_required');
    const health = await world.store.db.selectFrom('events').select('payload').where('type', '=', 'sender.health_changed').execute();
    expect(health.map((e) => (JSON.parse(e.payload) as { health: string }).health)).toContain('reauth_required');

    const later = await world.api<ErrorBody>('POST', '/messages', { sender_id: world.senderId, to: { psid: customer.psid }, text: 'refused' });
    expect(later.status).toBe(422);
    expect(later.body.error.code).toBe('SENDER_REAUTH_REQUIRED');
    expect(pageTexts(await world.thread(customer.psid))).toEqual([]);
  });
});
