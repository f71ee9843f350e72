import { GatewayError } from './errors.js';
import type {
  Attachment,
  Button,
  Channel,
  GenericElement,
  JsonObject,
  JsonValue,
  MessageContent,
  OutboundMediaType,
  QuickReplyContentType,
  QuickReplyOption,
  ReceiptElement,
  Template,
} from './glossary.js';
import { OUTBOUND_MEDIA_TYPES } from './glossary.js';

/**
 * Outbound content: validate what a business asks to send (the native body's content fields) into
 * canonical `MessageContent`, and build the Meta `message` objects that carry it. Limits come from
 * the Send API reference; every failure names the JSON path in `details.field`.
 */

/** Messenger text: fewer than 2000 characters. Source: Send API reference, `message.text`. */
export const MESSENGER_TEXT_MAX_CHARS = 1999;
/** Instagram text: at most 1000 bytes of UTF-8. Source: Instagram Messaging, "Send a message". */
export const INSTAGRAM_TEXT_MAX_BYTES = 1000;
/** Quick replies per message. Source: Send API reference, `quick_replies` (limit 13). */
export const MAX_QUICK_REPLIES = 13;
/** Quick reply titles are cut by Messenger after 20 characters. Source: Quick Replies reference. */
export const QUICK_REPLY_TITLE_MAX_CHARS = 20;
/** Postback and quick reply payloads. Source: Quick Replies and Postback Button references (1000). */
export const PAYLOAD_MAX_CHARS = 1000;
/** `message.metadata`: fewer than 1000 characters, returned in the echo. Source: Send API reference. */
export const METADATA_MAX_CHARS = 999;
/** Button template text. Source: Button Template reference (640 characters). */
export const BUTTON_TEMPLATE_TEXT_MAX_CHARS = 640;
/** Buttons per button template, generic element and media element. Source: Button Template reference (1-3). */
export const MAX_BUTTONS = 3;
/** Button titles. Source: Buttons reference (20 characters). */
export const BUTTON_TITLE_MAX_CHARS = 20;
/** Generic template elements (carousel cards). Source: Generic Template reference (10). */
export const MAX_GENERIC_ELEMENTS = 10;
/** Generic element title and subtitle. Source: Generic Template reference (80 characters each). */
export const GENERIC_TITLE_MAX_CHARS = 80;
/** Receipt line items. Source: Receipt Template reference (100 elements). */
export const MAX_RECEIPT_ELEMENTS = 100;
/**
 * Attachments in one API call. Meta takes one attachment per message, so each becomes its own Send
 * API call; 10 keeps one request's fan-out bounded (the same number as a carousel).
 */
export const MAX_ATTACHMENTS = 10;

/** The content fields of a native send body, as received (validated here). */
export interface OutboundContentInput {
  text?: unknown;
  attachments?: unknown;
  quick_replies?: unknown;
  template?: unknown;
  message?: unknown;
  reply_to?: unknown;
}

export interface ContentOptions {
  channel: Channel;
}

/** Characters as a person counts them (code points, so an emoji is one). */
export function characterLength(text: string): number {
  let n = 0;
  for (const _ of text) n += 1;
  return n;
}

/** Bytes of UTF-8, counted without an encoder so the domain stays free of runtime APIs. */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (const ch of text) {
    const cp = ch.codePointAt(0) ?? 0;
    bytes += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  }
  return bytes;
}

function invalid(field: string, reason: string): GatewayError {
  return new GatewayError('CONTENT_INVALID', { field, reason });
}

function templateInvalid(field: string, reason: string, extra: Record<string, JsonValue> = {}): GatewayError {
  return new GatewayError('TEMPLATE_INVALID', { field, reason, ...extra });
}

function tooLong(field: string, limit: number, unit: string, length: number): GatewayError {
  return new GatewayError('CONTENT_TOO_LONG', { field, limit, unit, length });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkChars(field: string, value: string, max: number): void {
  const length = characterLength(value);
  if (length > max) throw tooLong(field, max, 'characters', length);
}

function requireString(field: string, value: unknown, onError: (f: string, r: string) => GatewayError): string {
  if (typeof value !== 'string' || value.trim() === '') throw onError(field, 'must be a non-empty string');
  return value;
}

function optionalString(field: string, value: unknown, onError: (f: string, r: string) => GatewayError): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw onError(field, 'must be a string');
  return value;
}

/** Only http(s) URLs; whether the host is private is decided where DNS is resolved. */
export function checkHttpUrl(field: string, value: unknown): string {
  if (typeof value !== 'string' || value === '') {
    throw new GatewayError('URL_NOT_ALLOWED', { field, reason: 'a URL must be a non-empty string' });
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new GatewayError('URL_NOT_ALLOWED', { field, reason: 'not a valid absolute URL' });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new GatewayError('URL_NOT_ALLOWED', { field, reason: 'only http and https URLs can be sent' });
  }
  return value;
}

/** Validates message text for the channel's limit. */
export function checkText(field: string, text: string, channel: Channel): void {
  if (channel === 'instagram') {
    const bytes = utf8Length(text);
    if (bytes > INSTAGRAM_TEXT_MAX_BYTES) throw tooLong(field, INSTAGRAM_TEXT_MAX_BYTES, 'bytes', bytes);
  } else {
    checkChars(field, text, MESSENGER_TEXT_MAX_CHARS);
  }
}

/** Validates the `metadata` a business attaches to a send (it comes back in the echo). */
export function checkMetadata(metadata: unknown, field = 'metadata'): string | undefined {
  if (metadata === undefined || metadata === null) return undefined;
  if (typeof metadata !== 'string') throw invalid(field, 'must be a string');
  checkChars(field, metadata, METADATA_MAX_CHARS);
  return metadata;
}

function normalizeAttachment(field: string, value: unknown): Attachment {
  if (!isObject(value)) throw invalid(field, 'each attachment must be an object');
  const type = value['type'];
  if (typeof type !== 'string' || !(OUTBOUND_MEDIA_TYPES as readonly string[]).includes(type)) {
    throw invalid(`${field}.type`, `must be one of ${OUTBOUND_MEDIA_TYPES.join(', ')}`);
  }
  const sources = (['url', 'media_id', 'attachment_id'] as const).filter(
    (key) => value[key] !== undefined && value[key] !== null,
  );
  if (sources.length !== 1) {
    throw invalid(field, 'give exactly one of url, media_id or attachment_id');
  }
  const out: Attachment = { type: type as OutboundMediaType };
  const source = sources[0];
  if (source === 'url') out.url = checkHttpUrl(`${field}.url`, value['url']);
  if (source === 'media_id') out.media_id = requireString(`${field}.media_id`, value['media_id'], invalid);
  if (source === 'attachment_id') {
    const id = value['attachment_id'];
    // Meta returns attachment ids as strings, but a caller may have parsed one as a number.
    if (typeof id === 'number' && Number.isSafeInteger(id)) out.attachment_id = String(id);
    else out.attachment_id = requireString(`${field}.attachment_id`, id, invalid);
  }
  const reusable = value['is_reusable'];
  if (reusable !== undefined) {
    if (typeof reusable !== 'boolean') throw invalid(`${field}.is_reusable`, 'must be true or false');
    out.is_reusable = reusable;
  }
  return out;
}

const QUICK_REPLY_TYPES: readonly QuickReplyContentType[] = ['text', 'user_phone_number', 'user_email'];

function normalizeQuickReply(field: string, value: unknown): QuickReplyOption {
  if (!isObject(value)) throw invalid(field, 'each quick reply must be an object');
  const contentType = value['content_type'] ?? 'text';
  if (typeof contentType !== 'string' || !(QUICK_REPLY_TYPES as readonly string[]).includes(contentType)) {
    throw invalid(`${field}.content_type`, `must be one of ${QUICK_REPLY_TYPES.join(', ')}`);
  }
  const out: QuickReplyOption = { content_type: contentType as QuickReplyContentType };
  if (contentType === 'text') {
    const title = requireString(`${field}.title`, value['title'], invalid);
    checkChars(`${field}.title`, title, QUICK_REPLY_TITLE_MAX_CHARS);
    const payload = value['payload'];
    if (typeof payload !== 'string' && typeof payload !== 'number') {
      throw invalid(`${field}.payload`, 'a text quick reply needs a payload');
    }
    const payloadText = String(payload);
    checkChars(`${field}.payload`, payloadText, PAYLOAD_MAX_CHARS);
    out.title = title;
    out.payload = payloadText;
  }
  if (value['image_url'] !== undefined && value['image_url'] !== null) {
    out.image_url = checkHttpUrl(`${field}.image_url`, value['image_url']);
  }
  return out;
}

function normalizeButton(field: string, value: unknown): Button {
  if (!isObject(value)) throw templateInvalid(field, 'each button must be an object');
  const type = value['type'];
  const title = requireString(`${field}.title`, value['title'], templateInvalid);
  checkChars(`${field}.title`, title, BUTTON_TITLE_MAX_CHARS);
  if (type === 'web_url') {
    const url = checkHttpUrl(`${field}.url`, value['url']);
    const ratio = value['webview_height_ratio'];
    if (ratio === undefined || ratio === null) return { type, title, url };
    if (ratio !== 'compact' && ratio !== 'tall' && ratio !== 'full') {
      throw templateInvalid(`${field}.webview_height_ratio`, 'must be compact, tall or full');
    }
    return { type, title, url, webview_height_ratio: ratio };
  }
  if (type === 'postback') {
    const payload = requireString(`${field}.payload`, value['payload'], templateInvalid);
    checkChars(`${field}.payload`, payload, PAYLOAD_MAX_CHARS);
    return { type, title, payload };
  }
  if (type === 'phone_number') {
    const payload = requireString(`${field}.payload`, value['payload'], templateInvalid);
    // Meta dials the payload: it must be an international number, e.g. +15105551234.
    if (!/^\+[1-9]\d{5,14}$/.test(payload.replace(/[\s-]/g, ''))) {
      throw templateInvalid(`${field}.payload`, 'a phone_number button needs an international number such as +15105551234');
    }
    return { type, title, payload };
  }
  throw templateInvalid(`${field}.type`, 'must be web_url, postback or phone_number');
}

function normalizeButtons(field: string, value: unknown, min: number): Button[] | undefined {
  if (value === undefined || value === null) {
    if (min > 0) throw templateInvalid(field, `needs ${min} to ${MAX_BUTTONS} buttons`, { limit: MAX_BUTTONS });
    return undefined;
  }
  if (!Array.isArray(value)) throw templateInvalid(field, 'must be an array');
  if (value.length < min || value.length > MAX_BUTTONS) {
    throw templateInvalid(field, `needs ${min} to ${MAX_BUTTONS} buttons`, { limit: MAX_BUTTONS });
  }
  if (value.length === 0) return undefined;
  return value.map((button, i) => normalizeButton(`${field}[${i}]`, button));
}

function normalizeGenericElement(field: string, value: unknown): GenericElement {
  if (!isObject(value)) throw templateInvalid(field, 'each element must be an object');
  const title = requireString(`${field}.title`, value['title'], templateInvalid);
  checkChars(`${field}.title`, title, GENERIC_TITLE_MAX_CHARS);
  const out: GenericElement = { title };
  const subtitle = optionalString(`${field}.subtitle`, value['subtitle'], templateInvalid);
  if (subtitle !== undefined) {
    checkChars(`${field}.subtitle`, subtitle, GENERIC_TITLE_MAX_CHARS);
    out.subtitle = subtitle;
  }
  if (value['image_url'] !== undefined && value['image_url'] !== null) {
    out.image_url = checkHttpUrl(`${field}.image_url`, value['image_url']);
  }
  const action = value['default_action'];
  if (action !== undefined && action !== null) {
    if (!isObject(action) || (action['type'] ?? 'web_url') !== 'web_url') {
      throw templateInvalid(`${field}.default_action`, 'must be a web_url action');
    }
    out.default_action = { type: 'web_url', url: checkHttpUrl(`${field}.default_action.url`, action['url']) };
  }
  const buttons = normalizeButtons(`${field}.buttons`, value['buttons'], 0);
  if (buttons) out.buttons = buttons;
  return out;
}

function requireNumber(field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw templateInvalid(field, 'must be a number');
  return value;
}

function normalizeTemplate(value: unknown): Template {
  if (!isObject(value)) throw templateInvalid('template', 'must be an object');
  // Accept Meta's `template_type` too, so a payload copied from Meta's docs works.
  const type = value['type'] ?? value['template_type'];
  if (type === 'button') {
    const text = requireString('template.text', value['text'], templateInvalid);
    checkChars('template.text', text, BUTTON_TEMPLATE_TEXT_MAX_CHARS);
    const buttons = normalizeButtons('template.buttons', value['buttons'], 1) ?? [];
    return { type, text, buttons };
  }
  if (type === 'generic') {
    const elements = value['elements'];
    if (!Array.isArray(elements) || elements.length === 0 || elements.length > MAX_GENERIC_ELEMENTS) {
      throw templateInvalid('template.elements', `needs 1 to ${MAX_GENERIC_ELEMENTS} elements`, {
        limit: MAX_GENERIC_ELEMENTS,
      });
    }
    const out: Template = {
      type,
      elements: elements.map((element, i) => normalizeGenericElement(`template.elements[${i}]`, element)),
    };
    const ratio = value['image_aspect_ratio'];
    if (ratio !== undefined && ratio !== null) {
      if (ratio !== 'horizontal' && ratio !== 'square') {
        throw templateInvalid('template.image_aspect_ratio', 'must be horizontal or square');
      }
      out.image_aspect_ratio = ratio;
    }
    return out;
  }
  if (type === 'media') {
    const elements = value['elements'];
    // The media template shows exactly one image or video.
    if (!Array.isArray(elements) || elements.length !== 1) {
      throw templateInvalid('template.elements', 'a media template has exactly one element', { limit: 1 });
    }
    const element: unknown = elements[0];
    const field = 'template.elements[0]';
    if (!isObject(element)) throw templateInvalid(field, 'must be an object');
    const mediaType = element['media_type'];
    if (mediaType !== 'image' && mediaType !== 'video') {
      throw templateInvalid(`${field}.media_type`, 'must be image or video');
    }
    const hasUrl = element['url'] !== undefined && element['url'] !== null;
    const hasId = element['attachment_id'] !== undefined && element['attachment_id'] !== null;
    if (hasUrl === hasId) throw templateInvalid(field, 'give exactly one of url or attachment_id');
    const out: { media_type: 'image' | 'video'; url?: string; attachment_id?: string; buttons?: Button[] } = {
      media_type: mediaType,
    };
    if (hasUrl) out.url = checkHttpUrl(`${field}.url`, element['url']);
    else out.attachment_id = requireString(`${field}.attachment_id`, element['attachment_id'], templateInvalid);
    const buttons = normalizeButtons(`${field}.buttons`, element['buttons'], 0);
    if (buttons) out.buttons = buttons;
    return { type, elements: [out] };
  }
  if (type === 'receipt') {
    const currency = requireString('template.currency', value['currency'], templateInvalid);
    // ISO 4217 codes are three letters; Meta refuses anything else.
    if (!/^[A-Z]{3}$/.test(currency)) throw templateInvalid('template.currency', 'must be an ISO 4217 code such as EUR');
    const summary = value['summary'];
    if (!isObject(summary)) throw templateInvalid('template.summary', 'must be an object with total_cost');
    const out: Extract<Template, { type: 'receipt' }> = {
      type,
      recipient_name: requireString('template.recipient_name', value['recipient_name'], templateInvalid),
      order_number: requireString('template.order_number', value['order_number'], templateInvalid),
      currency,
      payment_method: requireString('template.payment_method', value['payment_method'], templateInvalid),
      summary: { total_cost: requireNumber('template.summary.total_cost', summary['total_cost']) },
    };
    for (const key of ['subtotal', 'shipping_cost', 'total_tax'] as const) {
      if (summary[key] !== undefined && summary[key] !== null) {
        out.summary[key] = requireNumber(`template.summary.${key}`, summary[key]);
      }
    }
    for (const key of ['merchant_name', 'timestamp'] as const) {
      const v = optionalString(`template.${key}`, value[key], templateInvalid);
      if (v !== undefined) out[key] = v;
    }
    if (value['order_url'] !== undefined && value['order_url'] !== null) {
      out.order_url = checkHttpUrl('template.order_url', value['order_url']);
    }
    const address = value['address'];
    if (address !== undefined && address !== null) {
      if (!isObject(address)) throw templateInvalid('template.address', 'must be an object');
      out.address = {
        street_1: requireString('template.address.street_1', address['street_1'], templateInvalid),
        city: requireString('template.address.city', address['city'], templateInvalid),
        postal_code: requireString('template.address.postal_code', address['postal_code'], templateInvalid),
        state: requireString('template.address.state', address['state'], templateInvalid),
        country: requireString('template.address.country', address['country'], templateInvalid),
      };
      const street2 = optionalString('template.address.street_2', address['street_2'], templateInvalid);
      if (street2 !== undefined) out.address.street_2 = street2;
    }
    const elements = value['elements'];
    if (elements !== undefined && elements !== null) {
      if (!Array.isArray(elements) || elements.length > MAX_RECEIPT_ELEMENTS) {
        throw templateInvalid('template.elements', `at most ${MAX_RECEIPT_ELEMENTS} elements`, {
          limit: MAX_RECEIPT_ELEMENTS,
        });
      }
      out.elements = elements.map((element: unknown, i): ReceiptElement => {
        const field = `template.elements[${i}]`;
        if (!isObject(element)) throw templateInvalid(field, 'must be an object');
        const item: ReceiptElement = {
          title: requireString(`${field}.title`, element['title'], templateInvalid),
          price: requireNumber(`${field}.price`, element['price']),
        };
        const subtitle = optionalString(`${field}.subtitle`, element['subtitle'], templateInvalid);
        if (subtitle !== undefined) item.subtitle = subtitle;
        if (element['quantity'] !== undefined && element['quantity'] !== null) {
          item.quantity = requireNumber(`${field}.quantity`, element['quantity']);
        }
        const itemCurrency = optionalString(`${field}.currency`, element['currency'], templateInvalid);
        if (itemCurrency !== undefined) item.currency = itemCurrency;
        if (element['image_url'] !== undefined && element['image_url'] !== null) {
          item.image_url = checkHttpUrl(`${field}.image_url`, element['image_url']);
        }
        return item;
      });
    }
    const adjustments = value['adjustments'];
    if (adjustments !== undefined && adjustments !== null) {
      if (!Array.isArray(adjustments)) throw templateInvalid('template.adjustments', 'must be an array');
      out.adjustments = adjustments.map((adj: unknown, i) => {
        const field = `template.adjustments[${i}]`;
        if (!isObject(adj)) throw templateInvalid(field, 'must be an object');
        return {
          name: requireString(`${field}.name`, adj['name'], templateInvalid),
          amount: requireNumber(`${field}.amount`, adj['amount']),
        };
      });
    }
    return out;
  }
  throw templateInvalid('template.type', 'must be button, generic, media or receipt');
}

/** Instagram's Send API takes these templates; Messenger takes every kind. */
export const INSTAGRAM_TEMPLATE_TYPES: readonly string[] = ['button', 'generic'];

function checkTemplateChannel(field: string, type: string, channel: Channel): void {
  if (channel === 'instagram' && !INSTAGRAM_TEMPLATE_TYPES.includes(type)) {
    throw templateInvalid(field, `Instagram takes ${INSTAGRAM_TEMPLATE_TYPES.join(' and ')} templates only, not ${type}`);
  }
}

/**
 * A raw `message` goes to Meta as it is, but the limits Meta would refuse it for are checked first,
 * with the same codes as the gateway's own fields: its text, quick replies and, on
 * Instagram, its template type. Anything else in it is Meta's to judge.
 */
function checkRawMessage(message: Record<string, unknown>, channel: Channel): void {
  const text = message['text'];
  if (typeof text === 'string') checkText('message.text', text, channel);
  const quickReplies = message['quick_replies'];
  if (Array.isArray(quickReplies) && quickReplies.length > MAX_QUICK_REPLIES) {
    throw new GatewayError('TOO_MANY_QUICK_REPLIES', { field: 'message.quick_replies', limit: MAX_QUICK_REPLIES, length: quickReplies.length });
  }
  const attachment = message['attachment'];
  if (isObject(attachment) && attachment['type'] === 'template' && isObject(attachment['payload'])) {
    const type = attachment['payload']['template_type'];
    if (typeof type === 'string') checkTemplateChannel('message.attachment.payload.template_type', type, channel);
  }
}

/**
 * Validates a native send body's content and returns the canonical content to store.
 * Throws a GatewayError (`CONTENT_EMPTY`, `CONTENT_TOO_LONG`, `CONTENT_INVALID`,
 * `TOO_MANY_QUICK_REPLIES`, `TEMPLATE_INVALID`, `URL_NOT_ALLOWED`) naming the field.
 */
export function normalizeOutboundContent(input: OutboundContentInput, options: ContentOptions): MessageContent {
  const content: MessageContent = {};

  if (input.message !== undefined && input.message !== null) {
    if (!isObject(input.message) || Object.keys(input.message).length === 0) {
      throw invalid('message', 'a raw message must be a non-empty JSON object');
    }
    const others = (['text', 'attachments', 'quick_replies', 'template'] as const).filter(
      (key) => input[key] !== undefined && input[key] !== null,
    );
    if (others.length > 0) {
      throw invalid('message', `a raw message cannot be combined with ${others.join(', ')}`);
    }
    checkRawMessage(input.message, options.channel);
    content.message = input.message as JsonObject;
  }

  if (input.text !== undefined && input.text !== null) {
    if (typeof input.text !== 'string') throw invalid('text', 'must be a string');
    if (input.text.trim() !== '') {
      checkText('text', input.text, options.channel);
      content.text = input.text;
    }
  }

  if (input.attachments !== undefined && input.attachments !== null) {
    if (!Array.isArray(input.attachments)) throw invalid('attachments', 'must be an array');
    if (input.attachments.length > MAX_ATTACHMENTS) {
      throw invalid('attachments', `at most ${MAX_ATTACHMENTS} attachments per message`);
    }
    if (input.attachments.length > 0) {
      content.attachments = input.attachments.map((a: unknown, i) => normalizeAttachment(`attachments[${i}]`, a));
    }
  }

  if (input.template !== undefined && input.template !== null) {
    content.template = normalizeTemplate(input.template);
    checkTemplateChannel('template.type', content.template.type, options.channel);
  }

  if (content.text === undefined && content.attachments === undefined && content.template === undefined && content.message === undefined) {
    throw new GatewayError('CONTENT_EMPTY', { field: 'text' });
  }

  if (input.quick_replies !== undefined && input.quick_replies !== null) {
    if (!Array.isArray(input.quick_replies)) throw invalid('quick_replies', 'must be an array');
    if (input.quick_replies.length > MAX_QUICK_REPLIES) {
      throw new GatewayError('TOO_MANY_QUICK_REPLIES', {
        field: 'quick_replies',
        limit: MAX_QUICK_REPLIES,
        length: input.quick_replies.length,
      });
    }
    if (input.quick_replies.length > 0) {
      content.quick_replies = input.quick_replies.map((q: unknown, i) => normalizeQuickReply(`quick_replies[${i}]`, q));
    }
  }

  if (input.reply_to !== undefined && input.reply_to !== null) {
    const replyTo = input.reply_to;
    const mid = isObject(replyTo) ? replyTo['mid'] : replyTo;
    content.reply_to = { mid: requireString('reply_to.mid', mid, invalid) };
  }

  return content;
}

// ---------------------------------------------------------------------------------------------
// Building Meta's `message` objects.
// ---------------------------------------------------------------------------------------------

/** One Send API call's `message`, with what pacing needs to know about it. */
export interface MetaMessagePart {
  message: JsonObject;
  kind: 'text' | 'media' | 'template' | 'raw';
  /** For media parts: Meta paces audio and video at 10 calls/s, the rest at 300. */
  media_type?: OutboundMediaType;
}

/** Where gateway-held media (`media_id`) is for Meta: a URL it can fetch, or a reusable Meta attachment id. */
export type ResolvedMedia = { url: string; is_reusable?: boolean } | { attachment_id: string };

export interface BuildOptions {
  /**
   * Returned by Meta in the echo of every part: the gateway uses it to recognise its own sends
   * (reconciliation after a timeout). A raw message keeps its own metadata when it has one.
   */
  metadata?: string;
  /** Resolves `media_id` attachments; required when the content has any. */
  resolveMedia?: (mediaId: string) => ResolvedMedia | null;
}

function buttonsToMeta(buttons: Button[]): JsonObject[] {
  return buttons.map((b) => ({ ...b }) as JsonObject);
}

function templateToMeta(template: Template): JsonObject {
  switch (template.type) {
    case 'button':
      return { template_type: 'button', text: template.text, buttons: buttonsToMeta(template.buttons) };
    case 'generic': {
      const payload: JsonObject = {
        template_type: 'generic',
        elements: template.elements.map((e) => {
          const element: JsonObject = { title: e.title };
          if (e.subtitle !== undefined) element['subtitle'] = e.subtitle;
          if (e.image_url !== undefined) element['image_url'] = e.image_url;
          if (e.default_action !== undefined) element['default_action'] = { ...e.default_action };
          if (e.buttons !== undefined) element['buttons'] = buttonsToMeta(e.buttons);
          return element;
        }),
      };
      if (template.image_aspect_ratio !== undefined) payload['image_aspect_ratio'] = template.image_aspect_ratio;
      return payload;
    }
    case 'media':
      return {
        template_type: 'media',
        elements: template.elements.map((e) => {
          const element: JsonObject = { media_type: e.media_type };
          if (e.url !== undefined) element['url'] = e.url;
          if (e.attachment_id !== undefined) element['attachment_id'] = e.attachment_id;
          if (e.buttons !== undefined) element['buttons'] = buttonsToMeta(e.buttons);
          return element;
        }),
      };
    case 'receipt': {
      const { type: _type, ...rest } = template;
      return { template_type: 'receipt', ...(JSON.parse(JSON.stringify(rest)) as JsonObject) };
    }
  }
}

function attachmentToMeta(attachment: Attachment, index: number, options: BuildOptions): JsonObject {
  let source: ResolvedMedia;
  if (attachment.attachment_id !== undefined) {
    source = { attachment_id: attachment.attachment_id };
  } else if (attachment.url !== undefined) {
    source = { url: attachment.url, is_reusable: attachment.is_reusable ?? false };
  } else if (attachment.media_id !== undefined) {
    const resolved = options.resolveMedia?.(attachment.media_id) ?? null;
    if (resolved === null) {
      throw invalid(`attachments[${index}].media_id`, `media ${attachment.media_id} is not available`);
    }
    source = resolved;
  } else {
    throw invalid(`attachments[${index}]`, 'has no url, media_id or attachment_id');
  }
  const payload: JsonObject =
    'attachment_id' in source
      ? { attachment_id: source.attachment_id }
      : { url: source.url, is_reusable: source.is_reusable ?? attachment.is_reusable ?? false };
  return { attachment: { type: attachment.type, payload } };
}

/**
 * The Meta `message` objects that carry the content, in the order to send them: text, then each
 * attachment (Meta takes one per message), then the template. Quick replies ride on the last
 * part, where Messenger shows them. A raw `message` is passed through as it is.
 */
export function buildMetaMessages(content: MessageContent, options: BuildOptions = {}): MetaMessagePart[] {
  if (content.message !== undefined) {
    const message = content.message;
    if (options.metadata !== undefined && message['metadata'] === undefined) {
      return [{ kind: 'raw', message: { ...message, metadata: options.metadata } }];
    }
    return [{ kind: 'raw', message }];
  }
  const parts: MetaMessagePart[] = [];
  if (content.text !== undefined) parts.push({ kind: 'text', message: { text: content.text } });
  (content.attachments ?? []).forEach((attachment, i) => {
    const part: MetaMessagePart = { kind: 'media', message: attachmentToMeta(attachment, i, options) };
    if ((OUTBOUND_MEDIA_TYPES as readonly string[]).includes(attachment.type)) {
      part.media_type = attachment.type as OutboundMediaType;
    }
    parts.push(part);
  });
  if (content.template !== undefined) {
    parts.push({ kind: 'template', message: { attachment: { type: 'template', payload: templateToMeta(content.template) } } });
  }
  if (parts.length === 0) throw new GatewayError('CONTENT_EMPTY', { field: 'text' });
  const last = parts[parts.length - 1];
  if (last && content.quick_replies !== undefined) {
    last.message['quick_replies'] = content.quick_replies.map((q) => {
      const out: JsonObject = { content_type: q.content_type };
      if (q.title !== undefined) out['title'] = q.title;
      if (q.payload !== undefined) out['payload'] = q.payload;
      if (q.image_url !== undefined) out['image_url'] = q.image_url;
      return out;
    });
  }
  if (options.metadata !== undefined) {
    for (const part of parts) part.message['metadata'] = options.metadata;
  }
  return parts;
}

/** The template type of stored content or of a raw Meta message (`customer_feedback`, `button`, …). */
export function templateTypeOf(content: MessageContent): string | null {
  if (content.template !== undefined) return content.template.type;
  const attachment = content.message?.['attachment'];
  if (isObject(attachment) && attachment['type'] === 'template' && isObject(attachment['payload'])) {
    const type = attachment['payload']['template_type'];
    return typeof type === 'string' ? type : null;
  }
  return null;
}
