import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { MetaEvent } from '../../src/meta/webhook.js';
import { parseMessagingItem, parseWebhook, webhookEvents } from '../../src/meta/webhook.js';
import { parseJsonExact } from '../../src/meta/json.js';

const fixtureDir = new URL('../fixtures/meta/', import.meta.url);
const fixture = (name: string) => readFileSync(fileURLToPath(new URL(name, fixtureDir)));

function only<K extends MetaEvent['kind']>(events: MetaEvent[], kind: K): Extract<MetaEvent, { kind: K }> {
  expect(events).toHaveLength(1);
  const [event] = events;
  expect(event?.kind).toBe(kind);
  return event as Extract<MetaEvent, { kind: K }>;
}

function envelope(items: unknown[], extra: Record<string, unknown> = {}, object = 'page'): string {
  return JSON.stringify({ object, entry: [{ id: '111', time: 1700000000000, messaging: items, ...extra }] });
}

const addressed = { sender: { id: '222' }, recipient: { id: '111' }, timestamp: 1700000000001 };

function itemsOf(body: string) {
  const parsed = parseWebhook(body);
  expect(parsed.error).toBeUndefined();
  return parsed.entries.flatMap((e) => e.items);
}

describe('the example payloads', () => {
  it('are stored byte-exact and all parse', () => {
    const names = readdirSync(fixtureDir).filter((n) => n.endsWith('.json'));
    expect(names.length).toBe(11);
    for (const name of names) expect(() => parseJsonExact(fixture(name)), name).not.toThrow();
  });

  it('01: a Page text message', () => {
    const parsed = parseWebhook(fixture('01_page_text_message.json'));
    expect(parsed.object).toBe('page');
    expect(parsed.entries[0]).toMatchObject({ id: '123123123', time: 1570649960485 });
    const event = only(parsed.entries[0]?.items ?? [], 'message');
    expect(event).toMatchObject({
      source: 'messaging',
      sender_id: '123123123',
      recipient_id: '123123123',
      timestamp: 1570649960249,
      mid: 'Q3znCzp31iKkarGcToiQWSJGtmSVjUPs7GtwB7WEjVRcg9MxG8TT09Z0wimdrcCHxQCRpMSKZcHBthhqXsonoA',
      content: { text: 'asd' },
    });
  });

  it('03: two entries in one POST, each handled', () => {
    const parsed = parseWebhook(fixture('03_page_batch_two_entries.json'));
    expect(parsed.entries.map((e) => e.id)).toEqual(['1895382890692545', '189538289069256']);
    const texts = [...webhookEvents(parsed)].map(({ event }) => (event.kind === 'message' ? event.content.text : null));
    expect(texts).toEqual(['test 1', 'test 2']);
  });

  it('05: an echo with a numeric app_id becomes an echo with string ids', () => {
    const event = only(parseWebhook(fixture('05_page_echo.json')).entries[0]?.items ?? [], 'echo');
    expect(event).toMatchObject({
      sender_id: '1691462197845448',
      recipient_id: '1134343043305865',
      mid: 'mid.1472026868734:832ecbdfc1ffc30139',
      app_id: '950864918368986',
      metadata: null,
      content: { text: 'hello' },
    });
  });

  it('06: a delivery with mids and a watermark', () => {
    const event = only(parseWebhook(fixture('06_page_delivery.json')).entries[0]?.items ?? [], 'delivery');
    expect(event).toMatchObject({ mids: ['mid.1472028395154:917e24ea99bc7d8f11'], watermark: 1472028395190, timestamp: 0 });
  });

  it('07: a Messenger read with a watermark', () => {
    const event = only(parseWebhook(fixture('07_page_read.json')).entries[0]?.items ?? [], 'read');
    expect(event).toMatchObject({ watermark: 1472026868763, mid: null, sender_id: '1134343043305865' });
  });

  it('08: a Get Started postback with an m.me referral', () => {
    const event = only(parseWebhook(fixture('08_page_postback_with_referral.json')).entries[0]?.items ?? [], 'postback');
    expect(event.postback).toEqual({
      title: 'title',
      payload: 'USER_DEFINED_PAYLOAD',
      referral: { ref: 'USER_DEFINED_REFERRAL_PARAM', source: 'SHORTLINK', type: 'OPEN_THREAD' },
    });
    expect(event.mid).toBe('m_1457764197618:41d102a3e1ae206a38');
    expect(event.content.referral?.ref).toBe('USER_DEFINED_REFERRAL_PARAM');
  });

  it('12: a single messaging item with an image', () => {
    const item = parseJsonExact(fixture('12_messaging_item_image_attachment.json'));
    const event = parseMessagingItem(item);
    expect(event.kind).toBe('message');
    if (event.kind !== 'message') return;
    expect(event.content.attachments).toEqual([
      {
        type: 'image',
        url: 'https://scontent.xx.fbcdn.net/v/t35.0-12/17887258_1429713783754592_1626047672_o.jpg?_nc_ad=z-m&oh=e44af5a4c973541ef56333202f160720&oe=58ECF78B',
        payload: {
          url: 'https://scontent.xx.fbcdn.net/v/t35.0-12/17887258_1429713783754592_1626047672_o.jpg?_nc_ad=z-m&oh=e44af5a4c973541ef56333202f160720&oe=58ECF78B',
        },
      },
    ]);
  });

  it('13: an Instagram entry with three items, every one kept', () => {
    const parsed = parseWebhook(fixture('13_ig_messages_batch_three.json'));
    expect(parsed.object).toBe('instagram');
    expect(parsed.entries[0]?.items.map((e) => e.sender_id)).toEqual(['567', '444', '666']);
  });

  it('16, 18, 19: the Send API examples are JSON the gateway reads', () => {
    expect(parseJsonExact(fixture('16_send_request_message_tag.json'))).toMatchObject({ tag: 'CONFIRMED_EVENT_UPDATE' });
    expect(parseJsonExact(fixture('18_send_response_success_docs.json'))).toMatchObject({ recipient_id: '1254477777772919' });
    expect(parseJsonExact(fixture('19_error_551_user_unavailable.json'))).toMatchObject({ error: { code: 551, error_subcode: 1545041 } });
  });
});

describe('every event type', () => {
  it('a message with quick reply, reply_to, attachments of every kind and an ad referral', () => {
    const event = only(
      itemsOf(
        envelope([
          {
            ...addressed,
            message: {
              mid: 'm_1',
              text: 'hi',
              quick_reply: { payload: 'YES' },
              reply_to: { mid: 'm_0' },
              referral: { ref: 'r', source: 'ADS', type: 'OPEN_THREAD', ad_id: 6123456789012, ads_context_data: { ad_title: 'Sale' } },
              attachments: [
                { type: 'sticker', payload: { url: 'https://cdn.test/s.png', sticker_id: 369239263222822 } },
                { type: 'fallback', title: 'A link', url: 'https://example.com' },
                { type: 'ig_post', payload: { url: 'https://cdn.test/p' } },
                { type: 'brand_new_thing', payload: { x: 1 } },
                { type: 'location', payload: { coordinates: { lat: 1, long: 2 } } },
              ],
            },
          },
        ]),
      ),
      'message',
    );
    expect(event.content.quick_reply).toEqual({ payload: 'YES' });
    expect(event.content.reply_to).toEqual({ mid: 'm_0' });
    expect(event.content.referral).toMatchObject({ source: 'ADS', ad_id: '6123456789012' });
    expect(event.content.attachments?.map((a) => a.type)).toEqual(['sticker', 'fallback', 'post', 'fallback', 'location']);
    expect(event.content.attachments?.[1]).toMatchObject({ title: 'A link', url: 'https://example.com' });
    expect(event.content.attachments?.[3]?.payload).toEqual({ type: 'brand_new_thing', payload: { x: 1 } });
  });

  it('an Instagram message that was unsent, and a story reply', () => {
    const [deleted, story] = itemsOf(
      envelope(
        [
          { ...addressed, message: { mid: 'm_2', is_deleted: true } },
          { ...addressed, message: { mid: 'm_3', text: 'nice', reply_to: { story: { url: 'https://cdn.test/story', id: '17900000000000001' } } } },
        ],
        {},
        'instagram',
      ),
    );
    expect(deleted).toMatchObject({ kind: 'message', content: { is_deleted: true } });
    expect(story).toMatchObject({ kind: 'message', content: { reply_to: { story: { id: '17900000000000001' } } } });
  });

  it('an echo with metadata and quick replies', () => {
    const event = only(
      itemsOf(envelope([{ ...addressed, message: { is_echo: true, app_id: '42', metadata: 'sb:msg_1', mid: 'm_4', text: 'yo', quick_replies: [{ content_type: 'text', title: 'A', payload: 'A' }] } }])),
      'echo',
    );
    expect(event).toMatchObject({ app_id: '42', metadata: 'sb:msg_1', content: { text: 'yo', quick_replies: [{ title: 'A' }] } });
  });

  it('an Instagram read carries the mid that was seen', () => {
    const event = only(itemsOf(envelope([{ ...addressed, read: { mid: 'm_5' } }], {}, 'instagram')), 'read');
    expect(event).toMatchObject({ mid: 'm_5', watermark: null });
  });

  it('a reaction and an unreaction', () => {
    const [react, unreact] = itemsOf(
      envelope([
        { ...addressed, reaction: { reaction: 'love', emoji: '❤️', action: 'react', mid: 'm_6' } },
        { ...addressed, reaction: { action: 'unreact', mid: 'm_6' } },
      ]),
    );
    expect(react).toMatchObject({ kind: 'reaction', reaction: { reaction: 'love', emoji: '❤️', action: 'react', mid: 'm_6' } });
    expect(unreact).toMatchObject({ kind: 'reaction', reaction: { action: 'unreact', mid: 'm_6' } });
  });

  it('an edit', () => {
    const event = only(itemsOf(envelope([{ ...addressed, message_edit: { mid: 'm_7', text: 'fixed', num_edit: 1 } }])), 'edit');
    expect(event.edit).toEqual({ mid: 'm_7', text: 'fixed', num_edit: 1 });
  });

  it('a Send to Messenger opt-in with a PSID and a checkbox opt-in with only user_ref', () => {
    const [plugin, checkbox] = itemsOf(
      envelope([
        { ...addressed, optin: { ref: 'PLUGIN' } },
        { recipient: { id: '111' }, timestamp: 1700000000002, optin: { ref: 'CHECKBOX', user_ref: 'UR_1' } },
      ]),
    );
    expect(plugin).toMatchObject({ kind: 'optin', sender_id: '222', optin: { ref: 'PLUGIN' } });
    expect(checkbox).toMatchObject({ kind: 'optin', sender_id: null, optin: { ref: 'CHECKBOX', user_ref: 'UR_1' } });
  });

  it('a marketing opt-in with its token', () => {
    const event = only(
      itemsOf(envelope([{ ...addressed, optin: { type: 'notification_messages', notification_messages_token: 'T', notification_messages_frequency: 'DAILY', notification_messages_status: 'RESUME_NOTIFICATIONS' } }])),
      'optin',
    );
    expect(event.optin).toMatchObject({ type: 'notification_messages', notification_messages_token: 'T' });
  });

  it('a referral on an existing thread', () => {
    const event = only(itemsOf(envelope([{ ...addressed, referral: { ref: 'R', source: 'SHORTLINK', type: 'OPEN_THREAD' } }])), 'referral');
    expect(event.referral).toEqual({ ref: 'R', source: 'SHORTLINK', type: 'OPEN_THREAD' });
  });

  it('handover events', () => {
    const events = itemsOf(
      envelope([
        { ...addressed, pass_thread_control: { new_owner_app_id: '123', metadata: 'm' } },
        { ...addressed, take_thread_control: { previous_owner_app_id: '123' } },
        { ...addressed, request_thread_control: { requested_owner_app_id: '123' } },
        { recipient: { id: '111' }, timestamp: 1700000000003, app_roles: { '123': ['primary_receiver'] } },
      ]),
    );
    expect(events.map((e) => (e.kind === 'handover' ? e.action : e.kind))).toEqual([
      'pass_thread_control',
      'take_thread_control',
      'request_thread_control',
      'app_roles',
    ]);
  });

  it('policy enforcement, in the current and the old spelling', () => {
    const events = itemsOf(
      envelope([
        { recipient: { id: '111' }, timestamp: 1, policy_enforcement: { action: 'block', reason: 'spam' } },
        { recipient: { id: '111' }, timestamp: 2, 'policy-enforcement': { action: 'unblock' } },
      ]),
    );
    expect(events).toMatchObject([
      { kind: 'policy_enforcement', action: 'block', reason: 'spam' },
      { kind: 'policy_enforcement', action: 'unblock', reason: null },
    ]);
  });

  it('an item type nobody knows is kept raw as unknown, without an error', () => {
    const item = { ...addressed, game_play: { game_id: 'g' } };
    const event = only(itemsOf(envelope([item])), 'unknown');
    expect(event.error).toBeUndefined();
    expect(event.raw).toEqual(item);
    expect(event.sender_id).toBe('222');
  });
});

describe('standby and changes', () => {
  it('standby items are parsed like messaging items and marked as standby (postbacks without payload)', () => {
    const items = itemsOf(
      JSON.stringify({
        object: 'page',
        entry: [
          {
            id: '111',
            time: 1,
            messaging: [{ ...addressed, message: { mid: 'm_a', text: 'primary' } }],
            standby: [
              { ...addressed, message: { mid: 'm_b', text: 'other app owns this' } },
              { ...addressed, postback: { title: 'Get Started' } },
            ],
          },
        ],
      }),
    );
    expect(items.map((e) => [e.source, e.kind])).toEqual([
      ['messaging', 'message'],
      ['standby', 'message'],
      ['standby', 'postback'],
    ]);
    expect(items[2]).toMatchObject({ postback: { title: 'Get Started' } });
  });

  it('changes items become change events, including the dashboard test call on entry "0"', () => {
    const parsed = parseWebhook(
      JSON.stringify({
        object: 'page',
        entry: [
          { id: '0', time: 5, changes: [{ field: 'feed', value: { item: 'status', verb: 'add', from: { id: '99' } } }] },
          { id: '111', time: 6, changes: [{ value: 'no field' }] },
        ],
      }),
    );
    expect(parsed.entries[0]?.items[0]).toMatchObject({ kind: 'change', source: 'changes', field: 'feed', sender_id: '99', recipient_id: '0', timestamp: 5 });
    expect(parsed.entries[1]?.items[0]).toMatchObject({ kind: 'unknown', source: 'changes', error: expect.stringContaining('field') });
  });
});

describe('big ids', () => {
  it('Instagram ids beyond 2^53 sent as JSON numbers keep every digit', () => {
    const body =
      '{"object":"instagram","entry":[{"id":17841400000000001,"time":1700000000000,"messaging":[{"sender":{"id":9007199254740993},"recipient":{"id":17841400000000001},"timestamp":1700000000000,"message":{"mid":"m_big","text":"hi"}}]}]}';
    const parsed = parseWebhook(Buffer.from(body));
    expect(parsed.entries[0]?.id).toBe('17841400000000001');
    expect(parsed.entries[0]?.items[0]).toMatchObject({ kind: 'message', sender_id: '9007199254740993', recipient_id: '17841400000000001' });
  });
});

describe('malformed input', () => {
  it('one bad item among good ones becomes unknown with an error and hides nothing', () => {
    const items = itemsOf(
      envelope([
        { ...addressed, message: { mid: 'm_1', text: 'first' } },
        { ...addressed, message: 'not an object' },
        { recipient: { id: '111' }, timestamp: 1, message: { mid: 'm_x', text: 'no sender' } },
        { ...addressed, reaction: { action: 'explode', mid: 'm_1' } },
        { ...addressed, message: { text: 'no mid' } },
        null,
        { ...addressed, message: { mid: 'm_2', text: 'last' } },
      ]),
    );
    expect(items.map((e) => e.kind)).toEqual(['message', 'unknown', 'unknown', 'unknown', 'unknown', 'unknown', 'message']);
    for (const bad of items.slice(1, 6)) expect(bad.kind === 'unknown' && bad.error).toBeTruthy();
    expect(items[2]).toMatchObject({ error: 'missing sender.id', recipient_id: '111' });
  });

  it('an entry that is not an object, or a messaging that is not an array, is reported and the rest parsed', () => {
    const parsed = parseWebhook(
      JSON.stringify({ object: 'page', entry: ['nope', { id: '1', time: 1, messaging: { oops: true } }, { id: '2', time: 1, messaging: [{ ...addressed, message: { mid: 'm', text: 'ok' } }] }] }),
    );
    expect(parsed.entries.map((e) => e.items[0]?.kind)).toEqual(['unknown', 'unknown', 'message']);
  });

  it('a body that is not JSON or not an envelope reports an error without throwing', () => {
    expect(parseWebhook('{"object":')).toMatchObject({ object: null, entries: [], error: expect.stringContaining('not valid JSON') });
    expect(parseWebhook('[]')).toMatchObject({ entries: [], error: 'the body is not a JSON object' });
    expect(parseWebhook('{"object":"page"}')).toMatchObject({ object: 'page', entries: [], error: 'the body has no entry array' });
  });

  it('an item without a timestamp falls back to the entry time', () => {
    const items = itemsOf(envelope([{ sender: { id: '222' }, recipient: { id: '111' }, message: { mid: 'm', text: 'x' } }]));
    expect(items[0]).toMatchObject({ kind: 'message', timestamp: 1700000000000 });
  });
});

describe('times out of range', () => {
  it('fall back to the entry time, or make the item unknown (stored raw), instead of failing later', () => {
    const message = { sender: { id: '1' }, recipient: { id: '2' }, message: { mid: 'm_1', text: 'hi' } };
    const fallback = parseMessagingItem({ ...message, timestamp: 1e300 }, 'messaging', { id: '2', time: 1_764_000_000_000 });
    expect(fallback).toMatchObject({ kind: 'message', timestamp: 1_764_000_000_000 });
    const none = parseMessagingItem({ ...message, timestamp: -5 }, 'messaging', { id: '2', time: null });
    expect(none).toMatchObject({ kind: 'unknown', error: 'missing timestamp' });
    const [event] = [...webhookEvents(parseWebhook(JSON.stringify({ object: 'page', entry: [{ id: '2', time: 1e300, messaging: [{ ...message, timestamp: 1e299 }] }] })))];
    expect(event?.event).toMatchObject({ kind: 'unknown' });
  });
});
