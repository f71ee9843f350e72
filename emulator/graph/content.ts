import { graphErrors } from '../errors.js';
import type { Channel } from '../state.js';

/**
 * Content rules of the Send API: text length, quick replies, attachments and templates. Each
 * broken rule answers error 100 with a message naming the parameter, as Meta does.
 */

// Messenger text must stay under 2000 characters; Instagram counts 1000 bytes.
const MAX_TEXT_CHARS = 2000;
const MAX_INSTAGRAM_TEXT_BYTES = 1000;
// `metadata` comes back in the echo; Meta caps it at 1000 characters.
const MAX_METADATA_CHARS = 1000;
// At most 13 quick replies, titles up to 20 characters, payloads up to 1000.
const MAX_QUICK_REPLIES = 13;
const MAX_QUICK_REPLY_TITLE = 20;
const MAX_PAYLOAD_CHARS = 1000;
// Button template: text up to 640 characters, 1-3 buttons with titles up to 20 characters.
const MAX_BUTTON_TEMPLATE_TEXT = 640;
const MAX_BUTTONS = 3;
const MAX_BUTTON_TITLE = 20;
// Generic template: up to 10 elements, titles and subtitles up to 80 characters.
const MAX_GENERIC_ELEMENTS = 10;
const MAX_ELEMENT_TITLE = 80;

export const MEDIA_TYPES = ['image', 'audio', 'video', 'file'] as const;
const QUICK_REPLY_TYPES = ['text', 'user_phone_number', 'user_email'];
const BUTTON_TYPES = ['web_url', 'postback', 'phone_number', 'account_link', 'account_unlink', 'game_play'];
const MESSENGER_TEMPLATES = ['button', 'generic', 'media', 'receipt', 'customer_feedback'];
const INSTAGRAM_TEMPLATES = ['button', 'generic'];

export interface MediaSource {
  url?: string;
  attachmentId?: string;
  isReusable: boolean;
}

export interface ValidatedMessage {
  text?: string;
  attachment?: { type: string; payload: Record<string, unknown> };
  /** Set for image/audio/video/file attachments. */
  media?: MediaSource;
  templateType?: string;
  quickReplies?: Array<Record<string, unknown>>;
  metadata?: string;
}

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);
const invalid = (text: string, subcode?: number) => graphErrors.invalidParam(text, subcode);

/** Validates `message`; `hasUpload` is true when a multipart `filedata` came with it. */
export function validateMessage(message: unknown, channel: Channel, hasUpload: boolean): ValidatedMessage {
  if (!isObject(message)) throw invalid('param message must be a JSON object');
  const out: ValidatedMessage = {};
  const { text, attachment } = message;
  if (text === undefined && attachment === undefined) {
    throw invalid('Message cannot be empty, must provide valid attachment or text', 2018034);
  }
  if (text !== undefined && attachment !== undefined) {
    throw invalid('Only one of message[text] or message[attachment] may be set');
  }
  if (text !== undefined) {
    if (typeof text !== 'string' || text.length === 0) throw invalid('param message[text] must be a non-empty UTF-8 encoded string');
    if (channel === 'instagram') {
      if (Buffer.byteLength(text, 'utf8') > MAX_INSTAGRAM_TEXT_BYTES) {
        throw invalid(`Length of param message[text] must be less than or equal to ${MAX_INSTAGRAM_TEXT_BYTES} bytes`).forInstagram();
      }
    } else if (text.length > MAX_TEXT_CHARS) {
      throw invalid(`Length of param message[text] must be less than or equal to ${MAX_TEXT_CHARS}`);
    }
    out.text = text;
  }
  if (attachment !== undefined) validateAttachment(attachment, channel, hasUpload, out);
  if (message.metadata !== undefined) {
    if (typeof message.metadata !== 'string') throw invalid('param message[metadata] must be a string');
    if (message.metadata.length > MAX_METADATA_CHARS) {
      throw invalid(`Length of param message[metadata] must be less than or equal to ${MAX_METADATA_CHARS}`);
    }
    out.metadata = message.metadata;
  }
  if (message.quick_replies !== undefined) out.quickReplies = validateQuickReplies(message.quick_replies, channel);
  return out;
}

function validateQuickReplies(value: unknown, channel: Channel): Json[] {
  if (!Array.isArray(value)) throw invalid('param message[quick_replies] must be an array');
  if (value.length === 0) throw invalid('param message[quick_replies] must not be empty');
  if (value.length > MAX_QUICK_REPLIES) {
    throw invalid(`param message[quick_replies] must have at most ${MAX_QUICK_REPLIES} items`);
  }
  return value.map((reply, index) => {
    const name = `message[quick_replies][${index}]`;
    if (!isObject(reply)) throw invalid(`param ${name} must be a JSON object`);
    const type = reply.content_type ?? 'text';
    if (typeof type !== 'string' || !QUICK_REPLY_TYPES.includes(type)) {
      throw invalid(`param ${name}[content_type] must be one of {${QUICK_REPLY_TYPES.join(', ')}}`);
    }
    if (channel === 'instagram' && type !== 'text') throw invalid(`param ${name}[content_type] must be text on Instagram`).forInstagram();
    if (type === 'text') {
      const { title, payload, image_url: imageUrl } = reply;
      if (title === undefined && imageUrl === undefined) throw invalid(`param ${name}[title] is required`);
      if (title !== undefined && (typeof title !== 'string' || title.length === 0)) throw invalid(`param ${name}[title] must be a non-empty string`);
      if (typeof title === 'string' && title.length > MAX_QUICK_REPLY_TITLE) {
        throw invalid(`Length of param ${name}[title] must be less than or equal to ${MAX_QUICK_REPLY_TITLE}`);
      }
      if (payload === undefined || payload === '') throw invalid(`param ${name}[payload] is required`);
      if (typeof payload !== 'string' && typeof payload !== 'number') throw invalid(`param ${name}[payload] must be a string`);
      if (String(payload).length > MAX_PAYLOAD_CHARS) {
        throw invalid(`Length of param ${name}[payload] must be less than or equal to ${MAX_PAYLOAD_CHARS}`);
      }
    }
    return { ...reply, content_type: type };
  });
}

function validateAttachment(attachment: unknown, channel: Channel, hasUpload: boolean, out: ValidatedMessage): void {
  if (!isObject(attachment)) throw invalid('param message[attachment] must be a JSON object');
  const { type } = attachment;
  const payload = attachment.payload ?? {};
  if (typeof type !== 'string') throw invalid('param message[attachment][type] is required');
  if (!isObject(payload)) throw invalid('param message[attachment][payload] must be a JSON object');
  if ((MEDIA_TYPES as readonly string[]).includes(type)) {
    const url = payload.url;
    const attachmentId = payload.attachment_id;
    const sources = [url !== undefined, attachmentId !== undefined, hasUpload].filter(Boolean).length;
    if (sources === 0) throw invalid('param message[attachment][payload] must have a url or an attachment_id');
    if (sources > 1) throw invalid('Only one of url, attachment_id or filedata may be given for an attachment');
    if (url !== undefined && (typeof url !== 'string' || !/^https?:\/\//i.test(url))) {
      throw invalid('param message[attachment][payload][url] must be a valid URL');
    }
    if (attachmentId !== undefined && typeof attachmentId !== 'string' && typeof attachmentId !== 'number') {
      throw invalid('param message[attachment][payload][attachment_id] must be a string');
    }
    const isReusable = payload.is_reusable === true || payload.is_reusable === 'true';
    out.media = { isReusable };
    if (typeof url === 'string') out.media.url = url;
    if (attachmentId !== undefined) out.media.attachmentId = String(attachmentId);
    out.attachment = { type, payload: { ...payload } };
    return;
  }
  if (type !== 'template') {
    throw invalid(`param message[attachment][type] must be one of {image, audio, video, file, template}`);
  }
  const templateType = payload.template_type;
  const allowed = channel === 'instagram' ? INSTAGRAM_TEMPLATES : MESSENGER_TEMPLATES;
  if (typeof templateType !== 'string' || !allowed.includes(templateType)) {
    const error = invalid(`param message[attachment][payload][template_type] must be one of {${allowed.join(', ')}}`);
    throw channel === 'instagram' ? error.forInstagram() : error;
  }
  const prefix = 'message[attachment][payload]';
  switch (templateType) {
    case 'button': {
      const text = payload.text;
      if (typeof text !== 'string' || text.length === 0) throw invalid(`param ${prefix}[text] is required`);
      if (text.length > MAX_BUTTON_TEMPLATE_TEXT) {
        throw invalid(`Length of param ${prefix}[text] must be less than or equal to ${MAX_BUTTON_TEMPLATE_TEXT}`);
      }
      validateButtons(payload.buttons, `${prefix}[buttons]`, true);
      break;
    }
    case 'generic': {
      const elements = payload.elements;
      if (!Array.isArray(elements) || elements.length === 0) throw invalid(`param ${prefix}[elements] must be a non-empty array`);
      if (elements.length > MAX_GENERIC_ELEMENTS) {
        throw invalid(`param ${prefix}[elements] must have at most ${MAX_GENERIC_ELEMENTS} items`);
      }
      elements.forEach((element: unknown, index) => {
        const name = `${prefix}[elements][${index}]`;
        if (!isObject(element)) throw invalid(`param ${name} must be a JSON object`);
        if (typeof element.title !== 'string' || element.title.length === 0) throw invalid(`param ${name}[title] is required`);
        if (element.title.length > MAX_ELEMENT_TITLE) {
          throw invalid(`Length of param ${name}[title] must be less than or equal to ${MAX_ELEMENT_TITLE}`);
        }
        if (element.subtitle !== undefined && (typeof element.subtitle !== 'string' || element.subtitle.length > MAX_ELEMENT_TITLE)) {
          throw invalid(`Length of param ${name}[subtitle] must be less than or equal to ${MAX_ELEMENT_TITLE}`);
        }
        if (element.buttons !== undefined) validateButtons(element.buttons, `${name}[buttons]`, false);
      });
      break;
    }
    case 'media': {
      const elements = payload.elements;
      if (!Array.isArray(elements) || elements.length !== 1) throw invalid(`param ${prefix}[elements] must have exactly 1 item`);
      const element: unknown = elements[0];
      if (!isObject(element)) throw invalid(`param ${prefix}[elements][0] must be a JSON object`);
      if (element.media_type !== 'image' && element.media_type !== 'video') {
        throw invalid(`param ${prefix}[elements][0][media_type] must be one of {image, video}`);
      }
      if (element.url === undefined && element.attachment_id === undefined) {
        throw invalid(`param ${prefix}[elements][0] must have a url or an attachment_id`);
      }
      if (element.buttons !== undefined) validateButtons(element.buttons, `${prefix}[elements][0][buttons]`, false);
      break;
    }
    case 'receipt': {
      for (const field of ['recipient_name', 'order_number', 'currency', 'payment_method']) {
        if (typeof payload[field] !== 'string' || payload[field] === '') throw invalid(`param ${prefix}[${field}] is required`);
      }
      const summary = payload.summary;
      if (!isObject(summary) || typeof summary.total_cost !== 'number') {
        throw invalid(`param ${prefix}[summary][total_cost] is required`);
      }
      break;
    }
    case 'customer_feedback': {
      if (typeof payload.title !== 'string' || payload.title.length === 0) throw invalid(`param ${prefix}[title] is required`);
      if (!Array.isArray(payload.feedback_screens) || payload.feedback_screens.length === 0) {
        throw invalid(`param ${prefix}[feedback_screens] must be a non-empty array`);
      }
      break;
    }
  }
  out.templateType = templateType;
  out.attachment = { type, payload: { ...payload } };
}

function validateButtons(value: unknown, name: string, required: boolean): void {
  if (!Array.isArray(value)) {
    if (required) throw invalid(`param ${name} must be a non-empty array`);
    throw invalid(`param ${name} must be an array`);
  }
  if (required && value.length === 0) throw invalid(`param ${name} must be a non-empty array`);
  if (value.length > MAX_BUTTONS) throw invalid(`param ${name} must have at most ${MAX_BUTTONS} items`);
  value.forEach((button: unknown, index) => {
    const itemName = `${name}[${index}]`;
    if (!isObject(button)) throw invalid(`param ${itemName} must be a JSON object`);
    const type = button.type;
    if (typeof type !== 'string' || !BUTTON_TYPES.includes(type)) {
      throw invalid(`param ${itemName}[type] must be one of {${BUTTON_TYPES.join(', ')}}`);
    }
    const needsTitle = type !== 'account_unlink' && type !== 'account_link';
    if (needsTitle) {
      if (typeof button.title !== 'string' || button.title.length === 0) throw invalid(`param ${itemName}[title] is required`);
      if (button.title.length > MAX_BUTTON_TITLE) {
        throw invalid(`Length of param ${itemName}[title] must be less than or equal to ${MAX_BUTTON_TITLE}`);
      }
    }
    if ((type === 'web_url' || type === 'account_link') && (typeof button.url !== 'string' || !/^https?:\/\//i.test(button.url))) {
      throw invalid(`param ${itemName}[url] must be a valid URL`);
    }
    if (type === 'postback') {
      if (button.payload === undefined || button.payload === '') throw invalid(`param ${itemName}[payload] is required`);
      if (String(button.payload).length > MAX_PAYLOAD_CHARS) {
        throw invalid(`Length of param ${itemName}[payload] must be less than or equal to ${MAX_PAYLOAD_CHARS}`);
      }
    }
    if (type === 'phone_number' && (typeof button.payload !== 'string' || !/^\+\d{5,15}$/.test(button.payload))) {
      throw invalid(`param ${itemName}[payload] must be a phone number in the format +<country code><number>`);
    }
  });
}
