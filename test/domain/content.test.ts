import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { ContentOptions, OutboundContentInput } from '../../src/domain/content.js';
import { buildMetaMessages, normalizeOutboundContent, templateTypeOf, checkMetadata } from '../../src/domain/content.js';
import type { GatewayError } from '../../src/domain/errors.js';

function errorOf(fn: () => unknown): GatewayError {
  try {
    fn();
  } catch (err) {
    return err as GatewayError;
  }
  throw new Error('expected a GatewayError');
}

const messenger = { channel: 'messenger' as const };
const instagram = { channel: 'instagram' as const };
const normalize = (input: OutboundContentInput, options: ContentOptions = messenger) => normalizeOutboundContent(input, options);

describe('text', () => {
  it('accepts 1999 characters on Messenger and refuses 2000 with the limit in details', () => {
    expect(normalize({ text: 'a'.repeat(1999) }).text).toHaveLength(1999);
    const error = errorOf(() => normalize({ text: 'a'.repeat(2000) }));
    expect(error.code).toBe('CONTENT_TOO_LONG');
    expect(error.details).toMatchObject({ field: 'text', limit: 1999, unit: 'characters', length: 2000 });
  });

  it('counts an emoji as one character on Messenger', () => {
    expect(normalize({ text: '😀'.repeat(1999) }).text).toBeDefined();
  });

  it('limits Instagram text to 1000 bytes of UTF-8', () => {
    expect(normalize({ text: 'a'.repeat(1000) }, instagram).text).toHaveLength(1000);
    const error = errorOf(() => normalize({ text: 'é'.repeat(501) }, instagram));
    expect(error.code).toBe('CONTENT_TOO_LONG');
    expect(error.details).toMatchObject({ field: 'text', limit: 1000, unit: 'bytes', length: 1002 });
  });

  it('refuses an empty message with CONTENT_EMPTY', () => {
    expect(errorOf(() => normalize({})).code).toBe('CONTENT_EMPTY');
    expect(errorOf(() => normalize({ text: '   ' })).code).toBe('CONTENT_EMPTY');
  });

  it('refuses text that is not a string', () => {
    expect(errorOf(() => normalize({ text: 42 })).details).toMatchObject({ field: 'text' });
  });
});

describe('attachments', () => {
  it('split into one Meta message each, after the text, with quick replies on the last', () => {
    const content = normalize({
      text: 'Here you go',
      attachments: [
        { type: 'image', url: 'https://example.com/a.png' },
        { type: 'file', attachment_id: '1234567890123456789' },
        { type: 'video', media_id: 'med_1' },
      ],
      quick_replies: [{ title: 'Thanks', payload: 'THANKS' }],
    });
    const parts = buildMetaMessages(content, {
      metadata: 'sb:msg_1',
      resolveMedia: (id) => (id === 'med_1' ? { url: 'https://gw.example.com/m/med_1' } : null),
    });
    expect(parts.map((p) => p.kind)).toEqual(['text', 'media', 'media', 'media']);
    expect(parts[0]?.message).toEqual({ text: 'Here you go', metadata: 'sb:msg_1' });
    expect(parts[1]?.message).toEqual({
      attachment: { type: 'image', payload: { url: 'https://example.com/a.png', is_reusable: false } },
      metadata: 'sb:msg_1',
    });
    expect(parts[2]?.message['attachment']).toEqual({ type: 'file', payload: { attachment_id: '1234567890123456789' } });
    expect(parts[3]?.media_type).toBe('video');
    expect(parts[3]?.message['attachment']).toEqual({ type: 'video', payload: { url: 'https://gw.example.com/m/med_1', is_reusable: false } });
    expect(parts[3]?.message['quick_replies']).toEqual([{ content_type: 'text', title: 'Thanks', payload: 'THANKS' }]);
    expect(parts[0]?.message['quick_replies']).toBeUndefined();
  });

  it('need exactly one source each', () => {
    const error = errorOf(() => normalize({ attachments: [{ type: 'image', url: 'https://x.test/a', media_id: 'med_1' }] }));
    expect(error.code).toBe('CONTENT_INVALID');
    expect(error.details['field']).toBe('attachments[0]');
  });

  it('refuse unknown types and non-http URLs', () => {
    expect(errorOf(() => normalize({ attachments: [{ type: 'sticker', url: 'https://x.test/a' }] })).details['field']).toBe('attachments[0].type');
    const error = errorOf(() => normalize({ attachments: [{ type: 'image', url: 'file:///etc/passwd' }] }));
    expect(error.code).toBe('URL_NOT_ALLOWED');
    expect(error.details['field']).toBe('attachments[0].url');
  });

  it('refuse more than 10 in one message', () => {
    const many = Array.from({ length: 11 }, () => ({ type: 'image', url: 'https://x.test/a.png' }));
    expect(errorOf(() => normalize({ attachments: many })).code).toBe('CONTENT_INVALID');
  });

  it('fail to build when gateway media cannot be resolved', () => {
    const content = normalize({ attachments: [{ type: 'image', media_id: 'med_gone' }] });
    expect(errorOf(() => buildMetaMessages(content, { resolveMedia: () => null })).details['field']).toBe('attachments[0].media_id');
  });
});

describe('quick replies', () => {
  const qr = (n: number) => Array.from({ length: n }, (_, i) => ({ content_type: 'text', title: `Option ${i}`, payload: `P${i}` }));

  it('allow 13 and refuse 14 with TOO_MANY_QUICK_REPLIES', () => {
    expect(normalize({ text: 'Pick', quick_replies: qr(13) }).quick_replies).toHaveLength(13);
    const error = errorOf(() => normalize({ text: 'Pick', quick_replies: qr(14) }));
    expect(error.code).toBe('TOO_MANY_QUICK_REPLIES');
    expect(error.details).toMatchObject({ limit: 13, field: 'quick_replies' });
  });

  it('limit titles to 20 characters and payloads to 1000', () => {
    expect(normalize({ text: 'x', quick_replies: [{ title: 'a'.repeat(20), payload: 'p' }] })).toBeDefined();
    expect(errorOf(() => normalize({ text: 'x', quick_replies: [{ title: 'a'.repeat(21), payload: 'p' }] })).details).toMatchObject({
      field: 'quick_replies[0].title',
      limit: 20,
    });
    expect(errorOf(() => normalize({ text: 'x', quick_replies: [{ title: 'a', payload: 'p'.repeat(1001) }] })).details).toMatchObject({
      field: 'quick_replies[0].payload',
      limit: 1000,
    });
  });

  it('accept phone number and email quick replies without a title', () => {
    const content = normalize({ text: 'Your number?', quick_replies: [{ content_type: 'user_phone_number' }, { content_type: 'user_email' }] });
    expect(content.quick_replies).toEqual([{ content_type: 'user_phone_number' }, { content_type: 'user_email' }]);
  });
});

describe('templates', () => {
  const postback = (i: number) => ({ type: 'postback', title: `B${i}`, payload: `P${i}` });

  it('build a button template with 1 to 3 buttons and text up to 640 characters', () => {
    const content = normalize({ template: { type: 'button', text: 'a'.repeat(640), buttons: [postback(1), { type: 'web_url', title: 'Site', url: 'https://example.com' }, { type: 'phone_number', title: 'Call', payload: '+15105551234' }] } });
    const [part] = buildMetaMessages(content);
    expect(part?.kind).toBe('template');
    expect(part?.message).toMatchObject({ attachment: { type: 'template', payload: { template_type: 'button', buttons: [{ type: 'postback' }, { type: 'web_url' }, { type: 'phone_number' }] } } });
    expect(errorOf(() => normalize({ template: { type: 'button', text: 'a'.repeat(641), buttons: [postback(1)] } })).details).toMatchObject({ field: 'template.text', limit: 640 });
    expect(errorOf(() => normalize({ template: { type: 'button', text: 'hi', buttons: [] } })).code).toBe('TEMPLATE_INVALID');
    expect(errorOf(() => normalize({ template: { type: 'button', text: 'hi', buttons: [1, 2, 3, 4].map(postback) } })).details).toMatchObject({ field: 'template.buttons', limit: 3 });
  });

  it('accept Meta-style template_type as the type', () => {
    expect(normalize({ template: { template_type: 'button', text: 'hi', buttons: [postback(1)] } }).template?.type).toBe('button');
  });

  it('check button titles, phone numbers and unknown button types', () => {
    expect(errorOf(() => normalize({ template: { type: 'button', text: 'hi', buttons: [{ type: 'postback', title: 'a'.repeat(21), payload: 'x' }] } })).details['field']).toBe('template.buttons[0].title');
    expect(errorOf(() => normalize({ template: { type: 'button', text: 'hi', buttons: [{ type: 'phone_number', title: 'Call', payload: 'call me' }] } })).details['field']).toBe('template.buttons[0].payload');
    expect(errorOf(() => normalize({ template: { type: 'button', text: 'hi', buttons: [{ type: 'account_link', title: 'x', url: 'https://x.test' }] } })).details['field']).toBe('template.buttons[0].type');
  });

  it('build a generic template of up to 10 elements with titles and subtitles up to 80 characters', () => {
    const element = (i: number) => ({ title: `Item ${i}`, subtitle: 's', image_url: 'https://x.test/i.png', buttons: [postback(i)] });
    const content = normalize({ template: { type: 'generic', elements: Array.from({ length: 10 }, (_, i) => element(i)) } });
    expect(buildMetaMessages(content)[0]?.message).toMatchObject({ attachment: { payload: { template_type: 'generic' } } });
    expect(errorOf(() => normalize({ template: { type: 'generic', elements: Array.from({ length: 11 }, (_, i) => element(i)) } })).details).toMatchObject({ field: 'template.elements', limit: 10 });
    expect(errorOf(() => normalize({ template: { type: 'generic', elements: [{ title: 'a'.repeat(81) }] } })).details).toMatchObject({ field: 'template.elements[0].title', limit: 80 });
    expect(errorOf(() => normalize({ template: { type: 'generic', elements: [{ title: 't', subtitle: 'a'.repeat(81) }] } })).details).toMatchObject({ field: 'template.elements[0].subtitle', limit: 80 });
    expect(errorOf(() => normalize({ template: { type: 'generic', elements: [{ title: 't', buttons: [1, 2, 3, 4].map(postback) }] } })).details).toMatchObject({ field: 'template.elements[0].buttons' });
  });

  it('build a media template with one element', () => {
    const content = normalize({ template: { type: 'media', elements: [{ media_type: 'image', attachment_id: '42' }] } });
    expect(buildMetaMessages(content)[0]?.message).toEqual({ attachment: { type: 'template', payload: { template_type: 'media', elements: [{ media_type: 'image', attachment_id: '42' }] } } });
    expect(errorOf(() => normalize({ template: { type: 'media', elements: [] } })).code).toBe('TEMPLATE_INVALID');
  });

  it('build a receipt template and check its required fields', () => {
    const receipt = {
      type: 'receipt',
      recipient_name: 'Ada',
      order_number: 'A-1',
      currency: 'EUR',
      payment_method: 'Visa 1234',
      summary: { total_cost: 42.5 },
      elements: [{ title: 'Tea', price: 42.5, quantity: 1 }],
    };
    const [part] = buildMetaMessages(normalize({ template: receipt }));
    expect(part?.message).toEqual({
      attachment: { type: 'template', payload: { template_type: 'receipt', recipient_name: 'Ada', order_number: 'A-1', currency: 'EUR', payment_method: 'Visa 1234', summary: { total_cost: 42.5 }, elements: [{ title: 'Tea', price: 42.5, quantity: 1 }] } },
    });
    expect(errorOf(() => normalize({ template: { ...receipt, currency: 'euro' } })).details['field']).toBe('template.currency');
    expect(errorOf(() => normalize({ template: { ...receipt, summary: {} } })).details['field']).toBe('template.summary.total_cost');
  });

  it('refuse an unknown template type', () => {
    expect(errorOf(() => normalize({ template: { type: 'coupon' } })).details['field']).toBe('template.type');
  });
});

describe('raw message passthrough', () => {
  const fixture = JSON.parse(readFileSync(fileURLToPath(new URL('../fixtures/meta/16_send_request_message_tag.json', import.meta.url)), 'utf8')) as { message: Record<string, unknown> };

  it('passes a raw Meta message through untouched', () => {
    const content = normalize({ message: fixture.message });
    const parts = buildMetaMessages(content);
    expect(parts).toEqual([{ kind: 'raw', message: { text: 'Hello!' } }]);
    expect(parts[0]?.message).toBe(content.message);
  });

  it('adds the gateway metadata to a copy only when the raw message has none', () => {
    const content = normalize({ message: { text: 'hi' } });
    expect(buildMetaMessages(content, { metadata: 'sb' })[0]?.message).toEqual({ text: 'hi', metadata: 'sb' });
    expect(content.message).toEqual({ text: 'hi' });
    const own = normalize({ message: { text: 'hi', metadata: 'mine' } });
    expect(buildMetaMessages(own, { metadata: 'sb' })[0]?.message).toEqual({ text: 'hi', metadata: 'mine' });
  });

  it('cannot be combined with other content', () => {
    const error = errorOf(() => normalize({ message: { text: 'hi' }, text: 'also' }));
    expect(error.code).toBe('CONTENT_INVALID');
    expect(error.details['field']).toBe('message');
  });

  it('tells the template type of a raw template message', () => {
    const content = normalize({ message: { attachment: { type: 'template', payload: { template_type: 'customer_feedback' } } } });
    expect(templateTypeOf(content)).toBe('customer_feedback');
  });
});

describe('metadata and reply_to', () => {
  it('allows metadata under 1000 characters', () => {
    expect(checkMetadata('a'.repeat(999))).toHaveLength(999);
    expect(errorOf(() => checkMetadata('a'.repeat(1000))).details).toMatchObject({ field: 'metadata', limit: 999 });
    expect(errorOf(() => checkMetadata({})).code).toBe('CONTENT_INVALID');
  });

  it('keeps reply_to as a mid', () => {
    expect(normalize({ text: 'yes', reply_to: { mid: 'm_1' } }).reply_to).toEqual({ mid: 'm_1' });
    expect(normalize({ text: 'yes', reply_to: 'm_2' }).reply_to).toEqual({ mid: 'm_2' });
  });
});

describe('raw messages and Instagram templates', () => {
  it('checks a raw message against the same limits as the fields: text, quick replies', () => {
    expect(normalize({ message: { text: 'a'.repeat(1999) } }).message).toEqual({ text: 'a'.repeat(1999) });
    const long = errorOf(() => normalize({ message: { text: 'a'.repeat(20_001) } }));
    expect(long.code).toBe('CONTENT_TOO_LONG');
    expect(long.details).toMatchObject({ field: 'message.text', limit: 1999 });
    const bytes = errorOf(() => normalize({ message: { text: 'é'.repeat(501) } }, instagram));
    expect(bytes.code).toBe('CONTENT_TOO_LONG');
    expect(bytes.details).toMatchObject({ field: 'message.text', unit: 'bytes' });
    const many = errorOf(() => normalize({ message: { text: 'pick', quick_replies: Array.from({ length: 14 }, (_, i) => ({ content_type: 'text', title: `t${i}`, payload: `p${i}` })) } }));
    expect(many.code).toBe('TOO_MANY_QUICK_REPLIES');
    expect(many.details).toMatchObject({ field: 'message.quick_replies', limit: 13, length: 14 });
  });

  it('refuses media and receipt templates for Instagram, as fields and inside a raw message, and keeps button and generic', () => {
    const media = { type: 'media', elements: [{ media_type: 'image', url: 'https://example.com/a.jpg' }] };
    expect(normalize({ template: media }).template?.type).toBe('media');
    const refused = errorOf(() => normalize({ template: media }, instagram));
    expect(refused.code).toBe('TEMPLATE_INVALID');
    expect(refused.details).toMatchObject({ field: 'template.type' });
    expect(normalize({ template: { type: 'button', text: 'Choose', buttons: [{ type: 'postback', title: 'A', payload: 'A' }] } }, instagram).template?.type).toBe('button');
    const raw = errorOf(() => normalize({ message: { attachment: { type: 'template', payload: { template_type: 'receipt', recipient_name: 'x' } } } }, instagram));
    expect(raw.code).toBe('TEMPLATE_INVALID');
    expect(raw.details).toMatchObject({ field: 'message.attachment.payload.template_type' });
    expect(normalize({ message: { attachment: { type: 'template', payload: { template_type: 'generic', elements: [{ title: 'x' }] } } } }, instagram).message).toBeDefined();
  });
});
