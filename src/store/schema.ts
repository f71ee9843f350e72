/**
 * The database's tables as Kysely sees them. One set of types for SQLite and PostgreSQL:
 * - times are integers (epoch milliseconds), so both engines compare and sort them alike;
 * - JSON is stored as text, exactly as received or produced, so no engine re-serialises it;
 * - booleans are 0/1 integers (SQLite has no boolean type);
 * - ids are prefixed, time-sortable strings (`src/domain/ids.ts`), except jobs and attempts,
 *   which are integer sequences because the queue orders by them.
 * Every row that belongs to a tenant carries `account_id`; repositories filter by it.
 */
import type { Generated, Insertable, Selectable, Updateable } from 'kysely';

export interface AccountsTable {
  id: string;
  parent_id: string | null;
  name: string;
  /** active | suspended | closed */
  status: string;
  created_at: number;
  updated_at: number;
}

export interface ApiKeysTable {
  id: string;
  account_id: string;
  name: string;
  /** The first characters of the key, shown in listings so a person can tell keys apart. */
  prefix: string;
  /** SHA-256 of the whole key, hex: keys are long random strings, so a slow hash adds nothing. */
  hash: string;
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
}

export interface SendersTable {
  id: string;
  account_id: string;
  /** messenger | instagram */
  channel: string;
  /** Page id or Instagram professional account id; connected to one account at a time. */
  meta_id: string;
  /** The Page through which an Instagram account is reached (its own id for a Page). */
  page_id: string;
  name: string | null;
  username: string | null;
  /** Page access token, AES-256-GCM encrypted (`src/store/secrets.ts`). */
  token_enc: string;
  /** active | degraded | reauth_required | disconnected */
  health: string;
  health_reason: string | null;
  health_changed_at: number;
  inbound_url: string | null;
  inbound_method: string;
  fallback_url: string | null;
  fallback_method: string;
  status_url: string | null;
  status_method: string;
  /** native | twilio | vonage */
  format: string;
  human_agent: number;
  /** JSON: opt-out words and languages, pacing overrides, auto-replies. */
  settings: string;
  last_checked_at: number | null;
  created_at: number;
  updated_at: number;
}

export interface ContactsTable {
  id: string;
  account_id: string;
  sender_id: string;
  channel: string;
  /** PSID or IGSID; null for a checkbox opt-in known only by `user_ref`. */
  psid: string | null;
  user_ref: string | null;
  name: string | null;
  first_name: string | null;
  last_name: string | null;
  username: string | null;
  profile_pic: string | null;
  locale: string | null;
  /** pending | fetched | hidden | failed */
  profile_status: string;
  profile_fetched_at: number | null;
  /** Time of the person's last message or interaction: the window runs from here. */
  last_inbound_at: number | null;
  /** A first message from a click-to-Messenger ad opens a 7-day window. */
  ad_window_until: number | null;
  /** Checkbox opt-in: one message may go to the user_ref within 24 h of this. */
  user_ref_at: number | null;
  blocked_at: number | null;
  /** Meta said the person is not available (551); lifted by their next message. */
  unreachable_at: number | null;
  opted_out_at: number | null;
  /** JSON array of {ref, source, type, ad_id?, at}: m.me refs, ads, opt-ins. */
  refs: string;
  profile_id: string | null;
  created_at: number;
  updated_at: number;
}

export interface ConversationsTable {
  id: string;
  account_id: string;
  sender_id: string;
  contact_id: string;
  /** open | closed */
  status: string;
  assignee: string | null;
  last_message_at: number | null;
  created_at: number;
  updated_at: number;
  closed_at: number | null;
}

export interface MessagesTable {
  id: string;
  account_id: string;
  sender_id: string;
  contact_id: string;
  conversation_id: string;
  /** inbound | outbound */
  direction: string;
  /** Meta's message id; unique per sender when set. */
  mid: string | null;
  /** text | attachments | quick_reply | postback | reaction | edit | optin | referral | template | raw | echo | … */
  kind: string;
  /** JSON: canonical content (`MessageContent`). */
  content: string;
  /** JSON: the Meta item as received (inbound) or the Send API body (outbound). */
  raw: string | null;
  /** received | accepted | queued | sending | sent | delivered | read | failed */
  status: string;
  error_code: string | null;
  error_message: string | null;
  meta_error_code: number | null;
  meta_error_subcode: number | null;
  /** api | inbox | auto_reply | external (sent outside Switchboard, learnt from an echo) */
  origin: string;
  client_ref: string | null;
  /** Caller's metadata for outbound messages; echoed back by Meta. */
  metadata: string | null;
  messaging_type: string | null;
  tag: string | null;
  status_callback: string | null;
  /** Meta's timestamp of the event (inbound) or of the send (outbound), epoch ms. */
  meta_timestamp: number | null;
  created_at: number;
  updated_at: number;
  sent_at: number | null;
  delivered_at: number | null;
  read_at: number | null;
  /** JSON: an outbound message's status history, `[{status, at, detail?}, …]` oldest first; null inbound. */
  status_log: string | null;
}


/** Raw webhook POSTs from Meta, stored before anything is parsed (the durable ingress write). */
export interface InboundBatchesTable {
  id: Generated<number>;
  received_at: number;
  /** The exact bytes received, as UTF-8 text. */
  body: string;
  processed_at: number | null;
  error: string | null;
}

/** Items for a Page or Instagram account no account owns: kept and visible, never dropped. */
export interface UnroutableEventsTable {
  id: Generated<number>;
  batch_id: number;
  object: string;
  entry_id: string;
  item: string;
  received_at: number;
}

export interface EventsTable {
  id: string;
  account_id: string;
  type: string;
  sender_id: string | null;
  conversation_id: string | null;
  message_id: string | null;
  /** JSON: the event's `data`. */
  payload: string;
  created_at: number;
}

export interface EndpointsTable {
  id: string;
  account_id: string;
  url: string;
  method: string;
  fallback_url: string | null;
  fallback_method: string;
  /** JSON array of event types; null means every type. */
  events: string | null;
  /** Signing secret (`whsec_…`), encrypted at rest. */
  secret_enc: string;
  /** native | twilio | vonage */
  format: string;
  description: string | null;
  /** Set for the endpoint built from a sender's own callback settings. */
  sender_id: string | null;
  enabled: number;
  disabled_at: number | null;
  disabled_reason: string | null;
  failing_since: number | null;
  created_at: number;
  updated_at: number;
}

export interface DeliveriesTable {
  id: string;
  account_id: string;
  event_id: string;
  endpoint_id: string;
  /** pending | delivered | failed (retrying) | dead */
  status: string;
  attempts: number;
  last_status_code: number | null;
  last_error: string | null;
  next_attempt_at: number | null;
  delivered_at: number | null;
  created_at: number;
  updated_at: number;
}

export interface DeliveryAttemptsTable {
  id: Generated<number>;
  delivery_id: string;
  account_id: string;
  url: string;
  /** primary | fallback */
  target: string;
  status_code: number | null;
  latency_ms: number;
  response_excerpt: string | null;
  error: string | null;
  at: number;
}

export interface MediaTable {
  id: string;
  account_id: string;
  sender_id: string | null;
  message_id: string | null;
  /** inbound (downloaded from Meta) | upload (sent by the business) */
  origin: string;
  source_url: string | null;
  content_type: string | null;
  filename: string | null;
  size: number | null;
  sha256: string | null;
  /** Key of the bytes in the media store (a file under the data directory). */
  storage_key: string | null;
  /** pending | stored | failed */
  status: string;
  error: string | null;
  attempts: number;
  meta_attachment_id: string | null;
  created_at: number;
  updated_at: number;
}

export interface IdempotencyKeysTable {
  account_id: string;
  key: string;
  /** SHA-256 of the canonical request body: the same key with another body is a conflict. */
  request_hash: string;
  status_code: number | null;
  /** JSON of the first response. */
  response: string | null;
  created_at: number;
}

export interface OauthStatesTable {
  state: string;
  account_id: string;
  /** JSON: redirect target and, after the callback, the Pages offered. */
  data: string;
  created_at: number;
  expires_at: number;
}

export interface InboundItemKeysTable {
  sender_id: string;
  /** A hash of the item (`derivedMid`). */
  key: string;
  created_at: number;
}

export interface JobsTable {
  id: Generated<number>;
  kind: string;
  /** Jobs sharing a key run one at a time, oldest first; null runs freely. */
  key: string | null;
  /** The tenant a job of a fairly read kind belongs to (a send's account); null for other kinds. */
  fair_key: Generated<string | null>;
  /** JSON */
  payload: string;
  /** pending | waiting (behind an older job with the same key) | running | done | dead */
  state: string;
  run_at: number;
  locked_until: number | null;
  locked_by: string | null;
  attempts: number;
  max_attempts: number;
  last_error: string | null;
  created_at: number;
  updated_at: number;
}

export interface Database {
  accounts: AccountsTable;
  api_keys: ApiKeysTable;
  senders: SendersTable;
  contacts: ContactsTable;
  conversations: ConversationsTable;
  messages: MessagesTable;
  inbound_batches: InboundBatchesTable;
  unroutable_events: UnroutableEventsTable;
  events: EventsTable;
  endpoints: EndpointsTable;
  deliveries: DeliveriesTable;
  delivery_attempts: DeliveryAttemptsTable;
  media: MediaTable;
  idempotency_keys: IdempotencyKeysTable;
  oauth_states: OauthStatesTable;
  inbound_item_keys: InboundItemKeysTable;
  jobs: JobsTable;
}

export type AccountRow = Selectable<AccountsTable>;
export type ApiKeyRow = Selectable<ApiKeysTable>;
export type SenderRow = Selectable<SendersTable>;
export type NewSender = Insertable<SendersTable>;
export type SenderUpdate = Updateable<SendersTable>;
export type ContactRow = Selectable<ContactsTable>;
export type ConversationRow = Selectable<ConversationsTable>;
export type MessageRow = Selectable<MessagesTable>;
export type NewMessage = Insertable<MessagesTable>;
export type EventRow = Selectable<EventsTable>;
export type EndpointRow = Selectable<EndpointsTable>;
export type DeliveryRow = Selectable<DeliveriesTable>;
export type MediaRow = Selectable<MediaTable>;
export type JobRow = Selectable<JobsTable>;
