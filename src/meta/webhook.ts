import type {
  Attachment,
  AttachmentType,
  JsonObject,
  JsonValue,
  MessageContent,
  MessageEdit,
  Optin,
  Postback,
  Reaction,
  Referral,
  ReplyTo,
} from '../domain/glossary.js';
import { ATTACHMENT_TYPES } from '../domain/glossary.js';
import { idString, parseJsonExact } from './json.js';

/**
 * Meta's webhook body -> one typed event per item. Every `entry[]` and every `messaging[]`,
 * `standby[]` and `changes[]` item is turned into a `MetaEvent`; an item the parser does not
 * understand becomes `unknown` (kept raw, with an `error` when it was malformed) and never hides
 * the items around it.
 */

export type MetaEventSource = 'messaging' | 'standby' | 'changes';

interface EventBase {
  source: MetaEventSource;
  /** The item as received (long integer ids already turned into exact strings). */
  raw: JsonValue;
}

/** Items that always carry a person and a Page. For echoes the sender is the Page. */
interface AddressedEvent extends EventBase {
  sender_id: string;
  recipient_id: string;
  /** Epoch ms, from the item (or the entry when the item has none). */
  timestamp: number;
}

export interface MetaMessageEvent extends AddressedEvent {
  kind: 'message';
  mid: string;
  content: MessageContent;
}

export interface MetaEchoEvent extends AddressedEvent {
  kind: 'echo';
  mid: string;
  /** The app that sent the message; another app (or none) means it was sent outside Switchboard. */
  app_id: string | null;
  /** The `metadata` given at send time: how the gateway recognises its own sends. */
  metadata: string | null;
  content: MessageContent;
}

export interface MetaDeliveryEvent extends AddressedEvent {
  kind: 'delivery';
  mids: string[];
  /** Everything sent before it is delivered. */
  watermark: number | null;
}

export interface MetaReadEvent extends AddressedEvent {
  kind: 'read';
  /** Messenger: everything sent up to it is read. */
  watermark: number | null;
  /** Instagram: the message that was seen. */
  mid: string | null;
}

export interface MetaReactionEvent extends AddressedEvent {
  kind: 'reaction';
  reaction: Reaction;
  content: MessageContent;
}

export interface MetaEditEvent extends AddressedEvent {
  kind: 'edit';
  edit: MessageEdit;
  content: MessageContent;
}

export interface MetaPostbackEvent extends AddressedEvent {
  kind: 'postback';
  mid: string | null;
  postback: Postback;
  content: MessageContent;
}

export interface MetaOptinEvent extends EventBase {
  kind: 'optin';
  /** Null for checkbox opt-ins: only `optin.user_ref` identifies the person then. */
  sender_id: string | null;
  recipient_id: string;
  timestamp: number;
  optin: Optin;
  content: MessageContent;
}

export interface MetaReferralEvent extends AddressedEvent {
  kind: 'referral';
  referral: Referral;
  content: MessageContent;
}

export type HandoverAction = 'pass_thread_control' | 'take_thread_control' | 'request_thread_control' | 'app_roles';

export interface MetaHandoverEvent extends EventBase {
  kind: 'handover';
  sender_id: string | null;
  recipient_id: string | null;
  timestamp: number;
  action: HandoverAction;
  data: JsonValue;
}

export interface MetaPolicyEnforcementEvent extends EventBase {
  kind: 'policy_enforcement';
  sender_id: string | null;
  recipient_id: string | null;
  timestamp: number;
  /** warning, block or unblock. */
  action: string | null;
  reason: string | null;
}

export interface MetaChangeEvent extends EventBase {
  kind: 'change';
  /** `value.from.id` when the change has one (comments, mentions). */
  sender_id: string | null;
  /** The entry's id (Page or Instagram account; "0" for the dashboard's test call). */
  recipient_id: string | null;
  timestamp: number | null;
  field: string;
  value: JsonValue;
}

export interface MetaUnknownEvent extends EventBase {
  kind: 'unknown';
  sender_id: string | null;
  recipient_id: string | null;
  timestamp: number | null;
  /** Set when the item was malformed; absent when it was just a type the parser does not know. */
  error?: string;
}

export type MetaEvent =
  | MetaMessageEvent
  | MetaEchoEvent
  | MetaDeliveryEvent
  | MetaReadEvent
  | MetaReactionEvent
  | MetaEditEvent
  | MetaPostbackEvent
  | MetaOptinEvent
  | MetaReferralEvent
  | MetaHandoverEvent
  | MetaPolicyEnforcementEvent
  | MetaChangeEvent
  | MetaUnknownEvent;

export type MetaEventKind = MetaEvent['kind'];

export interface ParsedEntry {
  /** Page id or Instagram account id ("" when the entry had none). */
  id: string;
  time: number | null;
  items: MetaEvent[];
}

export interface ParsedWebhook {
  /** `page` or `instagram`; null when the body was not an envelope. */
  object: string | null;
  entries: ParsedEntry[];
  /** Set when the body as a whole could not be read (not JSON, no `entry` array). */
  error?: string;
}

class ItemError extends Error {}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function str(value: JsonValue | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function num(value: JsonValue | undefined): number | null {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  // Some payloads carry times as numeric strings.
  if (typeof value === 'string' && /^\d{1,15}$/.test(value)) return Number(value);
  return null;
}

// The largest time a JavaScript Date holds; a timestamp past it (or below zero) is not a time.
const MAX_TIME_MS = 8_640_000_000_000_000;

/** A time Meta gave (epoch ms, or s for some `changes`), or null when it is none or out of range. */
function time(value: JsonValue | undefined): number | null {
  const n = num(value);
  return n !== null && n >= 0 && n <= MAX_TIME_MS ? n : null;
}

function objectAt(item: JsonObject, key: string): JsonObject {
  const value = item[key];
  if (!isObject(value)) throw new ItemError(`${key} is not an object`);
  return value;
}

function idOf(value: JsonValue | undefined): string | null {
  if (!isObject(value)) return null;
  return idString(value['id']);
}

function requireId(value: string | null, what: string): string {
  if (value === null) throw new ItemError(`missing ${what}`);
  return value;
}

const KNOWN_ATTACHMENT_TYPES = new Set<string>(ATTACHMENT_TYPES);

function parseAttachment(value: JsonValue): Attachment {
  if (!isObject(value)) throw new ItemError('an attachment is not an object');
  const rawType = str(value['type']) ?? 'fallback';
  const payload = value['payload'];
  const payloadObject = isObject(payload) ? payload : null;
  let type: AttachmentType;
  if (rawType === 'ig_post') type = 'post';
  else if (KNOWN_ATTACHMENT_TYPES.has(rawType)) type = rawType as AttachmentType;
  else type = 'fallback';
  const out: Attachment = { type };
  // Old fallback attachments carried url and title beside the payload.
  const url = str(payloadObject?.['url']) ?? str(value['url']);
  if (url !== undefined) out.url = url;
  const title = str(value['title']) ?? str(payloadObject?.['title']);
  if (title !== undefined) out.title = title;
  // Keep what Meta sent; for a type we do not know, keep the whole attachment so its type survives.
  if (type === 'fallback' && rawType !== 'fallback') out.payload = value;
  else if (payload !== undefined) out.payload = payload;
  return out;
}

function parseReferral(value: JsonValue | undefined): Referral | undefined {
  if (!isObject(value)) return undefined;
  const out: Referral = {};
  for (const [key, v] of Object.entries(value)) {
    if (key === 'ad_id') {
      const id = idString(v);
      if (id !== null) out.ad_id = id;
    } else {
      out[key] = v;
    }
  }
  return out;
}

function parseReplyTo(value: JsonValue | undefined): ReplyTo | undefined {
  if (!isObject(value)) return undefined;
  const out: ReplyTo = {};
  const mid = str(value['mid']);
  if (mid !== undefined) out.mid = mid;
  const story = value['story'];
  if (isObject(story)) {
    out.story = {};
    const id = idString(story['id']);
    if (id !== null) out.story.id = id;
    const url = str(story['url']);
    if (url !== undefined) out.story.url = url;
  }
  return out;
}

function parseMessageContent(message: JsonObject): MessageContent {
  const content: MessageContent = {};
  const text = str(message['text']);
  if (text !== undefined) content.text = text;
  const attachments = message['attachments'];
  if (Array.isArray(attachments)) content.attachments = attachments.map(parseAttachment);
  else if (attachments !== undefined && attachments !== null) throw new ItemError('message.attachments is not an array');
  const quickReply = message['quick_reply'];
  if (isObject(quickReply)) {
    const payload = quickReply['payload'];
    content.quick_reply = { payload: typeof payload === 'string' ? payload : JSON.stringify(payload ?? null) };
  }
  const replyTo = parseReplyTo(message['reply_to']);
  if (replyTo) content.reply_to = replyTo;
  const referral = parseReferral(message['referral']);
  if (referral) content.referral = referral;
  if (message['is_deleted'] === true) content.is_deleted = true;
  if (message['is_unsupported'] === true) content.is_unsupported = true;
  return content;
}

function parseOptin(value: JsonObject): Optin {
  const out: Optin = {};
  for (const [key, v] of Object.entries(value)) {
    if (key === 'user_ref' || key === 'notification_messages_token') {
      const s = idString(v);
      if (s !== null) out[key] = s;
    } else {
      out[key] = v;
    }
  }
  return out;
}

const HANDOVER_ACTIONS: readonly HandoverAction[] = [
  'pass_thread_control',
  'take_thread_control',
  'request_thread_control',
  'app_roles',
];

interface EntryContext {
  id: string | null;
  time: number | null;
}

/** Turns one `messaging[]` or `standby[]` item into an event. Never throws. */
export function parseMessagingItem(
  item: JsonValue,
  source: 'messaging' | 'standby' = 'messaging',
  entry: EntryContext = { id: null, time: null },
): MetaEvent {
  const base = { source, raw: item };
  if (!isObject(item)) {
    return { ...base, kind: 'unknown', sender_id: null, recipient_id: null, timestamp: null, error: 'the item is not an object' };
  }
  const senderId = idOf(item['sender']);
  const recipientId = idOf(item['recipient']) ?? entry.id;
  const timestamp = time(item['timestamp']) ?? entry.time;
  try {
    const addressed = (): AddressedEvent => ({
      ...base,
      sender_id: requireId(senderId, 'sender.id'),
      recipient_id: requireId(recipientId, 'recipient.id'),
      timestamp: requireTime(timestamp),
    });

    if (item['message'] !== undefined) {
      const message = objectAt(item, 'message');
      const mid = str(message['mid']) ?? idString(message['mid']);
      const content = parseMessageContent(message);
      // An item-level referral accompanies a first message from an ad in some payloads.
      if (content.referral === undefined) {
        const referral = parseReferral(item['referral']);
        if (referral) content.referral = referral;
      }
      if (message['is_echo'] === true) {
        const quickReplies = message['quick_replies'];
        if (Array.isArray(quickReplies)) {
          content.quick_replies = quickReplies.filter(isObject).map((q) => {
            const out: { content_type: 'text' | 'user_phone_number' | 'user_email'; title?: string; payload?: string } = {
              content_type: (str(q['content_type']) ?? 'text') as 'text' | 'user_phone_number' | 'user_email',
            };
            const title = str(q['title']);
            if (title !== undefined) out.title = title;
            const payload = str(q['payload']);
            if (payload !== undefined) out.payload = payload;
            return out;
          });
        }
        return {
          ...addressed(),
          kind: 'echo',
          mid: requireId(mid, 'message.mid'),
          app_id: idString(message['app_id']),
          metadata: str(message['metadata']) ?? null,
          content,
        };
      }
      return { ...addressed(), kind: 'message', mid: requireId(mid, 'message.mid'), content };
    }

    if (item['delivery'] !== undefined) {
      const delivery = objectAt(item, 'delivery');
      const mids = delivery['mids'];
      return {
        ...addressed(),
        kind: 'delivery',
        mids: Array.isArray(mids) ? mids.map((m) => idString(m)).filter((m): m is string => m !== null) : [],
        watermark: time(delivery['watermark']),
      };
    }

    if (item['read'] !== undefined) {
      const read = objectAt(item, 'read');
      const watermark = time(read['watermark']);
      const mid = str(read['mid']) ?? null;
      if (watermark === null && mid === null) throw new ItemError('read has neither watermark nor mid');
      return { ...addressed(), kind: 'read', watermark, mid };
    }

    if (item['reaction'] !== undefined) {
      const value = objectAt(item, 'reaction');
      const action = str(value['action']) ?? 'react';
      if (action !== 'react' && action !== 'unreact') throw new ItemError(`reaction.action is ${action}`);
      const reaction: Reaction = { action, mid: requireId(str(value['mid']) ?? null, 'reaction.mid') };
      const name = str(value['reaction']);
      if (name !== undefined) reaction.reaction = name;
      const emoji = str(value['emoji']);
      if (emoji !== undefined) reaction.emoji = emoji;
      return { ...addressed(), kind: 'reaction', reaction, content: { reaction } };
    }

    if (item['message_edit'] !== undefined) {
      const value = objectAt(item, 'message_edit');
      const edit: MessageEdit = {
        mid: requireId(str(value['mid']) ?? null, 'message_edit.mid'),
        text: str(value['text']) ?? '',
        num_edit: num(value['num_edit']) ?? 0,
      };
      return { ...addressed(), kind: 'edit', edit, content: { edit } };
    }

    if (item['postback'] !== undefined) {
      const value = objectAt(item, 'postback');
      const postback: Postback = {};
      const title = str(value['title']);
      if (title !== undefined) postback.title = title;
      // Standby postbacks carry no payload: Meta keeps it for the app that owns the thread.
      const payload = str(value['payload']);
      if (payload !== undefined) postback.payload = payload;
      const referral = parseReferral(value['referral']);
      if (referral) postback.referral = referral;
      const content: MessageContent = { postback };
      if (referral) content.referral = referral;
      return { ...addressed(), kind: 'postback', mid: str(value['mid']) ?? null, postback, content };
    }

    if (item['optin'] !== undefined) {
      const optin = parseOptin(objectAt(item, 'optin'));
      // Checkbox opt-ins have no sender: the person is known only by user_ref until they answer.
      if (senderId === null && optin.user_ref === undefined) throw new ItemError('optin has neither sender.id nor user_ref');
      return {
        ...base,
        kind: 'optin',
        sender_id: senderId,
        recipient_id: requireId(recipientId, 'recipient.id'),
        timestamp: requireTime(timestamp),
        optin,
        content: { optin },
      };
    }

    if (item['referral'] !== undefined) {
      const referral = parseReferral(item['referral']);
      if (!referral) throw new ItemError('referral is not an object');
      return { ...addressed(), kind: 'referral', referral, content: { referral } };
    }

    for (const action of HANDOVER_ACTIONS) {
      if (item[action] !== undefined) {
        return {
          ...base,
          kind: 'handover',
          sender_id: senderId,
          recipient_id: recipientId,
          timestamp: requireTime(timestamp),
          action,
          data: item[action] ?? null,
        };
      }
    }

    const policy = item['policy_enforcement'] ?? item['policy-enforcement'];
    if (policy !== undefined) {
      const value = isObject(policy) ? policy : {};
      return {
        ...base,
        kind: 'policy_enforcement',
        sender_id: senderId,
        recipient_id: recipientId,
        timestamp: requireTime(timestamp),
        action: str(value['action']) ?? null,
        reason: str(value['reason']) ?? null,
      };
    }

    return { ...base, kind: 'unknown', sender_id: senderId, recipient_id: recipientId, timestamp };
  } catch (err) {
    const error = err instanceof ItemError ? err.message : `unreadable item: ${(err as Error).message}`;
    return { ...base, kind: 'unknown', sender_id: senderId, recipient_id: recipientId, timestamp, error };
  }
}

function requireTime(value: number | null): number {
  if (value === null) throw new ItemError('missing timestamp');
  return value;
}

/** Turns one `changes[]` item into an event. Never throws. */
export function parseChangeItem(item: JsonValue, entry: EntryContext = { id: null, time: null }): MetaEvent {
  if (!isObject(item) || typeof item['field'] !== 'string') {
    return {
      source: 'changes',
      raw: item,
      kind: 'unknown',
      sender_id: null,
      recipient_id: entry.id,
      timestamp: entry.time,
      error: 'a change item needs a field name',
    };
  }
  const value = item['value'] ?? null;
  const from = isObject(value) ? idOf(value['from']) : null;
  const at = isObject(value) ? time(value['timestamp']) ?? time(value['created_time']) : null;
  return {
    source: 'changes',
    raw: item,
    kind: 'change',
    sender_id: from,
    recipient_id: entry.id,
    timestamp: at ?? entry.time,
    field: item['field'],
    value,
  };
}

function parseEntry(entry: JsonValue): ParsedEntry {
  if (!isObject(entry)) {
    return {
      id: '',
      time: null,
      items: [{ source: 'messaging', raw: entry, kind: 'unknown', sender_id: null, recipient_id: null, timestamp: null, error: 'the entry is not an object' }],
    };
  }
  const context: EntryContext = { id: idString(entry['id']), time: time(entry['time']) };
  const items: MetaEvent[] = [];
  for (const source of ['messaging', 'standby'] as const) {
    const list = entry[source];
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list)) {
      items.push({ source, raw: list, kind: 'unknown', sender_id: null, recipient_id: context.id, timestamp: context.time, error: `${source} is not an array` });
      continue;
    }
    for (const item of list) items.push(parseMessagingItem(item, source, context));
  }
  const changes = entry['changes'];
  if (Array.isArray(changes)) {
    for (const item of changes) items.push(parseChangeItem(item, context));
  } else if (changes !== undefined && changes !== null) {
    items.push({ source: 'changes', raw: changes, kind: 'unknown', sender_id: null, recipient_id: context.id, timestamp: context.time, error: 'changes is not an array' });
  }
  return { id: context.id ?? '', time: context.time, items };
}

/** Parses an already-decoded envelope (long ids must already be strings). Never throws. */
export function parseWebhookValue(body: JsonValue): ParsedWebhook {
  if (!isObject(body)) return { object: null, entries: [], error: 'the body is not a JSON object' };
  const object = str(body['object']) ?? null;
  const entries = body['entry'];
  if (!Array.isArray(entries)) return { object, entries: [], error: 'the body has no entry array' };
  return { object, entries: entries.map(parseEntry) };
}

/**
 * Parses a webhook body as received (raw bytes or text). Never throws: a body that is not JSON
 * comes back with `error` and no entries, so the caller can keep it as unroutable.
 */
export function parseWebhook(raw: string | Buffer | Uint8Array): ParsedWebhook {
  let body: JsonValue;
  try {
    body = parseJsonExact(raw);
  } catch (err) {
    return { object: null, entries: [], error: `the body is not valid JSON: ${(err as Error).message}` };
  }
  return parseWebhookValue(body);
}

/** Every event of a parsed webhook with its entry, in order. */
export function* webhookEvents(parsed: ParsedWebhook): Generator<{ entry: ParsedEntry; event: MetaEvent }> {
  for (const entry of parsed.entries) for (const event of entry.items) yield { entry, event };
}
