/**
 * The words Switchboard is built from. Every other module names things with these words.
 *
 * - **account**: a tenant. It may own subaccounts; every row belongs to exactly one account.
 * - **page**: a Facebook Page. Customers write to a Page in Messenger; its id is the Page id.
 * - **channel**: `messenger` (a Facebook Page) or `instagram` (an Instagram professional account
 *   linked to a Page).
 * - **sender**: one connected Page or Instagram account as the gateway holds it: its Meta id,
 *   encrypted access token, health and callback settings. A Meta id is connected to at most one
 *   account at a time.
 * - **PSID**: page-scoped id. Messenger gives every person a different id per Page; it is the only
 *   id a Page may message.
 * - **IGSID**: Instagram-scoped id, the Instagram counterpart of a PSID. It can exceed 2^53, so ids
 *   are always strings inside Switchboard.
 * - **contact**: one person as one sender sees them: the PSID or IGSID, the profile, the time of
 *   their last message (which opens the window), and whether they blocked the Page or opted out.
 * - **conversation**: the thread between one sender and one contact; open or closed.
 * - **message**: inbound (from a contact) or outbound (to a contact); canonical content, Meta's `mid`,
 *   a status with its history.
 * - **window**: the time in which a business may answer: 24 hours after the contact's last message
 *   or interaction, up to 7 days with the `HUMAN_AGENT` tag where the sender is allowed it, and
 *   7 days after a first message that came from a click-to-Messenger ad.
 * - **tag**: a Meta message tag that allows a message outside the standard window. The allowed set
 *   is data with dates (see `tags.ts`), not code: tags stop working on given days.
 * - **echo**: Meta's copy of a message the Page sent (through Switchboard, the Page inbox or the
 *   Messenger app), delivered back to the gateway as a webhook; matched to outbound messages by `mid`.
 * - **event**: a fact for subscribers (`message.received`, `message.status`, …) delivered to endpoints.
 * - **endpoint**: where an account wants its events: URL, secret, format, filter, fallback URL.
 * - **job**: a durable unit of work in the database: send a message, deliver an event, fetch a
 *   profile, download media.
 * - **dialect**: an HTTP surface that speaks another provider's API (Twilio, Vonage) by translating
 *   to the canonical model below.
 */

/** Any value JSON can carry. Stored payloads and raw passthroughs use it. */
export type JsonValue = string | number | boolean | null | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

export type Channel = 'messenger' | 'instagram';
export const CHANNELS: readonly Channel[] = ['messenger', 'instagram'];

/** `active -> degraded -> reauth_required -> disconnected`, driven by Meta errors and periodic checks. */
export type SenderHealth = 'active' | 'degraded' | 'reauth_required' | 'disconnected';
export const SENDER_HEALTHS: readonly SenderHealth[] = ['active', 'degraded', 'reauth_required', 'disconnected'];

export type MessageDirection = 'inbound' | 'outbound';

/**
 * Outbound messages move `accepted -> queued -> sending -> sent -> delivered -> read`, or end in
 * `failed`. Inbound messages are `received`.
 */
export type MessageStatus =
  | 'accepted'
  | 'queued'
  | 'sending'
  | 'sent'
  | 'delivered'
  | 'read'
  | 'failed'
  | 'received';
export const MESSAGE_STATUSES: readonly MessageStatus[] = [
  'accepted',
  'queued',
  'sending',
  'sent',
  'delivered',
  'read',
  'failed',
  'received',
];

/** Where an outbound status stands in the lifecycle; a receipt never moves a message backwards. */
export const OUTBOUND_STATUS_RANK: Readonly<Record<Exclude<MessageStatus, 'received' | 'failed'>, number>> = {
  accepted: 0,
  queued: 1,
  sending: 2,
  sent: 3,
  delivered: 4,
  read: 5,
};

export type EventType =
  | 'message.received'
  | 'message.status'
  | 'message.echo'
  | 'reaction'
  | 'postback'
  | 'optin'
  | 'referral'
  | 'conversation.created'
  | 'sender.health_changed'
  | 'endpoint.disabled'
  | 'raw';
export const EVENT_TYPES: readonly EventType[] = [
  'message.received',
  'message.status',
  'message.echo',
  'reaction',
  'postback',
  'optin',
  'referral',
  'conversation.created',
  'sender.health_changed',
  'endpoint.disabled',
  'raw',
];

/** Meta's `messaging_type` on a send. */
export type MessagingType = 'RESPONSE' | 'UPDATE' | 'MESSAGE_TAG' | 'UTILITY';
export const MESSAGING_TYPES: readonly MessagingType[] = ['RESPONSE', 'UPDATE', 'MESSAGE_TAG', 'UTILITY'];

/** Meta's `notification_type` on a send. */
export type NotificationType = 'REGULAR' | 'SILENT_PUSH' | 'NO_PUSH';
export const NOTIFICATION_TYPES: readonly NotificationType[] = ['REGULAR', 'SILENT_PUSH', 'NO_PUSH'];

/** Sender actions Meta accepts on the Send API instead of a message. */
export type SenderAction = 'typing_on' | 'typing_off' | 'mark_seen' | 'react' | 'unreact';
export const SENDER_ACTIONS: readonly SenderAction[] = ['typing_on', 'typing_off', 'mark_seen', 'react', 'unreact'];

// ---------------------------------------------------------------------------------------------
// Canonical content: what a stored message holds, in both directions.
// ---------------------------------------------------------------------------------------------

export type AttachmentType =
  | 'image'
  | 'audio'
  | 'video'
  | 'file'
  | 'sticker'
  | 'reel'
  | 'ig_reel'
  | 'post'
  | 'share'
  | 'story_mention'
  | 'fallback'
  | 'template'
  | 'location';
export const ATTACHMENT_TYPES: readonly AttachmentType[] = [
  'image',
  'audio',
  'video',
  'file',
  'sticker',
  'reel',
  'ig_reel',
  'post',
  'share',
  'story_mention',
  'fallback',
  'template',
  'location',
];

/** The attachment types a business may send as media (templates have their own field). */
export type OutboundMediaType = 'image' | 'audio' | 'video' | 'file';
export const OUTBOUND_MEDIA_TYPES: readonly OutboundMediaType[] = ['image', 'audio', 'video', 'file'];

export interface Attachment {
  type: AttachmentType;
  /** Where the bytes are: Meta's CDN link inbound (expires), the business's URL outbound. */
  url?: string;
  /** Media stored by the gateway (`/v1/media/{id}`): uploaded by the business, or downloaded from Meta. */
  media_id?: string;
  /** A reusable Meta attachment id for the sender's Page. */
  attachment_id?: string;
  title?: string;
  /** Meta's attachment payload as received (inbound), kept so nothing is lost. */
  payload?: JsonValue;
  /** Outbound: ask Meta to keep the uploaded attachment for reuse. */
  is_reusable?: boolean;
}

export type QuickReplyContentType = 'text' | 'user_phone_number' | 'user_email';

export interface QuickReplyOption {
  content_type: QuickReplyContentType;
  title?: string;
  payload?: string;
  image_url?: string;
}

export interface Referral {
  ref?: string;
  source?: string;
  type?: string;
  ad_id?: string;
  ads_context_data?: JsonObject;
  referer_uri?: string;
  [key: string]: JsonValue | undefined;
}

export interface Postback {
  title?: string;
  payload?: string;
  referral?: Referral;
}

export type ReactionAction = 'react' | 'unreact';

export interface Reaction {
  /** Meta's reaction name: smile, angry, sad, wow, love, like, dislike, other. */
  reaction?: string;
  emoji?: string;
  action: ReactionAction;
  /** The message reacted to. */
  mid: string;
}

export interface MessageEdit {
  mid: string;
  text: string;
  num_edit: number;
}

export interface Optin {
  /** `notification_messages` for marketing opt-ins; absent for Send to Messenger and checkbox. */
  type?: string;
  ref?: string;
  /** Checkbox plugin: the only way to address the person until they answer. */
  user_ref?: string;
  notification_messages_token?: string;
  notification_messages_frequency?: string;
  notification_messages_status?: string;
  notification_messages_timezone?: string;
  token_expiry_timestamp?: number;
  title?: string;
  payload?: string;
  [key: string]: JsonValue | undefined;
}

export interface ReplyTo {
  mid?: string;
  /** Instagram story replies carry the story instead of a message id. */
  story?: { id?: string; url?: string };
}

// Outbound templates. Field names follow Meta's where they exist.

export type Button =
  | { type: 'web_url'; title: string; url: string; webview_height_ratio?: 'compact' | 'tall' | 'full' }
  | { type: 'postback'; title: string; payload: string }
  | { type: 'phone_number'; title: string; payload: string };

export interface GenericElement {
  title: string;
  subtitle?: string;
  image_url?: string;
  default_action?: { type: 'web_url'; url: string; webview_height_ratio?: 'compact' | 'tall' | 'full' };
  buttons?: Button[];
}

export interface ReceiptElement {
  title: string;
  subtitle?: string;
  quantity?: number;
  price: number;
  currency?: string;
  image_url?: string;
}

export interface ReceiptSummary {
  subtotal?: number;
  shipping_cost?: number;
  total_tax?: number;
  total_cost: number;
}

export interface ReceiptAddress {
  street_1: string;
  street_2?: string;
  city: string;
  postal_code: string;
  state: string;
  country: string;
}

export type Template =
  | { type: 'button'; text: string; buttons: Button[] }
  | { type: 'generic'; elements: GenericElement[]; image_aspect_ratio?: 'horizontal' | 'square' }
  | {
      type: 'media';
      elements: { media_type: 'image' | 'video'; url?: string; attachment_id?: string; buttons?: Button[] }[];
    }
  | {
      type: 'receipt';
      recipient_name: string;
      order_number: string;
      currency: string;
      payment_method: string;
      summary: ReceiptSummary;
      merchant_name?: string;
      order_url?: string;
      timestamp?: string;
      address?: ReceiptAddress;
      elements?: ReceiptElement[];
      adjustments?: { name: string; amount: number }[];
    };

export type TemplateType = Template['type'];

/**
 * What a stored message holds. Inbound messages fill what Meta sent; outbound messages what the
 * business asked to send. Everything is JSON-serialisable and every id is a string.
 */
export interface MessageContent {
  text?: string;
  attachments?: Attachment[];
  /** Inbound: the quick reply the person tapped. */
  quick_reply?: { payload: string };
  /** Outbound: quick replies offered with the message. */
  quick_replies?: QuickReplyOption[];
  reply_to?: ReplyTo;
  postback?: Postback;
  reaction?: Reaction;
  edit?: MessageEdit;
  optin?: Optin;
  referral?: Referral;
  /** Outbound template. */
  template?: Template;
  /** Outbound: a Meta `message` object passed through untouched. */
  message?: JsonObject;
  /** Instagram: the person unsent the message. */
  is_deleted?: boolean;
  /** Instagram: content Meta cannot show through the API. */
  is_unsupported?: boolean;
}
