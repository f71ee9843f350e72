import type { ErrorCode } from './errors.js';
import type {
  Channel,
  EventType,
  JsonValue,
  MessageContent,
  MessageDirection,
  MessageStatus,
  MessagingType,
  Optin,
  Postback,
  Reaction,
  Referral,
  SenderHealth,
} from './glossary.js';

/**
 * What endpoints receive: one envelope per event, `{id, type, created_at, account_id, data}`, with
 * a data shape per type. Times in events and resources are ISO 8601 strings (UTC); ids are strings.
 */

/** Why an outbound message failed: the gateway's code and, when Meta answered, Meta's. */
export interface MessageFailure {
  code: ErrorCode;
  message: string;
  meta_code?: number | null;
  meta_subcode?: number | null;
  meta_message?: string | null;
  fbtrace_id?: string | null;
}

/** Where an outbound message came from: the API, the web inbox, or outside Switchboard (an echo). */
export type MessageOrigin = 'api' | 'inbox' | 'auto_reply' | 'external';

export interface MessageResource {
  id: string;
  account_id: string;
  sender_id: string;
  contact_id: string;
  conversation_id: string | null;
  channel: Channel;
  direction: MessageDirection;
  status: MessageStatus;
  /** Meta's message id, once known. */
  mid: string | null;
  content: MessageContent;
  origin?: MessageOrigin;
  client_ref?: string | null;
  metadata?: string | null;
  messaging_type?: MessagingType | null;
  tag?: string | null;
  error?: MessageFailure | null;
  created_at: string;
  updated_at?: string;
  sent_at?: string | null;
  delivered_at?: string | null;
  read_at?: string | null;
}

export interface ContactWindow {
  open: boolean;
  open_until: string | null;
  human_agent_until: string | null;
}

export interface ContactResource {
  id: string;
  account_id: string;
  sender_id: string;
  channel: Channel;
  /** PSID (Messenger) or IGSID (Instagram); null while only a checkbox `user_ref` is known. */
  psid: string | null;
  user_ref?: string | null;
  name?: string | null;
  first_name?: string | null;
  last_name?: string | null;
  username?: string | null;
  profile_pic?: string | null;
  locale?: string | null;
  last_inbound_at: string | null;
  window?: ContactWindow;
  blocked_at?: string | null;
  opted_out_at?: string | null;
  created_at: string;
}

export interface ConversationResource {
  id: string;
  account_id: string;
  sender_id: string;
  contact_id: string;
  status: 'open' | 'closed';
  assigned_to?: string | null;
  created_at: string;
  last_message_at?: string | null;
}

export interface SenderResource {
  id: string;
  account_id: string;
  channel: Channel;
  /** The Page id or Instagram account id. */
  meta_id: string;
  name: string | null;
  health: SenderHealth;
  human_agent: boolean;
}

export interface MessageReceivedData {
  message: MessageResource;
  contact: ContactResource;
  conversation: ConversationResource | null;
}

export interface MessageEchoData {
  message: MessageResource;
  contact: ContactResource;
  /** True when the message was sent outside Switchboard (Page inbox, Messenger app). */
  external: boolean;
}

export interface MessageStatusData {
  message_id: string;
  status: MessageStatus;
  previous_status: MessageStatus | null;
  /** When the status changed (for receipts: Meta's watermark time). */
  timestamp: string;
  error: MessageFailure | null;
  message: MessageResource;
}

export interface ReactionData {
  reaction: Reaction;
  /** Our id of the message reacted to, when the gateway knows it. */
  target_message_id: string | null;
  message: MessageResource | null;
  contact: ContactResource;
}

export interface PostbackData {
  postback: Postback;
  message: MessageResource | null;
  contact: ContactResource;
}

export interface OptinData {
  optin: Optin;
  contact: ContactResource;
}

export interface ReferralData {
  referral: Referral;
  contact: ContactResource;
}

export interface ConversationCreatedData {
  conversation: ConversationResource;
  contact: ContactResource;
}

export interface SenderHealthChangedData {
  sender: SenderResource;
  previous_health: SenderHealth;
  health: SenderHealth;
  reason: string;
  error?: MessageFailure | null;
}

export interface EndpointDisabledData {
  endpoint_id: string;
  url: string;
  reason: string;
  disabled_at: string;
  failing_since?: string | null;
}

/** An event Meta sent that the gateway has no type for: forwarded as received, never dropped. */
export interface RawEventData {
  object: string | null;
  entry_id: string | null;
  source: 'messaging' | 'standby' | 'changes';
  sender_id: string | null;
  item: JsonValue;
}

export interface EventDataMap {
  'message.received': MessageReceivedData;
  'message.status': MessageStatusData;
  'message.echo': MessageEchoData;
  reaction: ReactionData;
  postback: PostbackData;
  optin: OptinData;
  referral: ReferralData;
  'conversation.created': ConversationCreatedData;
  'sender.health_changed': SenderHealthChangedData;
  'endpoint.disabled': EndpointDisabledData;
  raw: RawEventData;
}

export interface EventEnvelope<T extends EventType = EventType> {
  id: string;
  type: T;
  created_at: string;
  account_id: string;
  data: EventDataMap[T];
}

/** Any event, discriminated by `type`. */
export type AnyEventEnvelope = { [T in EventType]: EventEnvelope<T> }[EventType];

/** Whether an endpoint's filter (`events`, absent or empty = all) lets an event type through. */
export function endpointWants(filter: readonly string[] | null | undefined, type: EventType): boolean {
  if (filter === null || filter === undefined || filter.length === 0) return true;
  return filter.includes(type) || filter.includes('*');
}
