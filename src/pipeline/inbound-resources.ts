/**
 * Rows -> the resources events carry (`src/domain/events.ts`): ISO times, ids as strings, content
 * as the canonical model. Shared by every step that emits an event about a message, contact or
 * conversation.
 */
import type { ContactResource, ConversationResource, MessageFailure, MessageOrigin, MessageResource } from '../domain/events.js';
import type { ErrorCode } from '../domain/errors.js';
import type { Channel, MessageContent, MessageStatus, MessagingType } from '../domain/glossary.js';
import { windowState } from '../domain/policy.js';
import { isoOrNull as iso, isoTime } from '../domain/time.js';
import type { ContactRow, ConversationRow, MessageRow } from '../store/schema.js';
import { isDerivedMid } from './inbound-context.js';

export function parseContent(json: string): MessageContent {
  try {
    const value: unknown = JSON.parse(json);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as MessageContent) : {};
  } catch {
    return {};
  }
}

function failureOf(row: MessageRow): MessageFailure | null {
  if (row.error_code === null) return null;
  return {
    code: row.error_code as ErrorCode,
    message: row.error_message ?? '',
    meta_code: row.meta_error_code,
    meta_subcode: row.meta_error_subcode,
  };
}

/** `content` may be passed when the caller holds it already (saves parsing what it just wrote). */
export function messageResource(row: MessageRow, channel: Channel, content?: MessageContent): MessageResource {
  return {
    id: row.id,
    account_id: row.account_id,
    sender_id: row.sender_id,
    contact_id: row.contact_id,
    conversation_id: row.conversation_id,
    channel,
    direction: row.direction === 'outbound' ? 'outbound' : 'inbound',
    status: row.status as MessageStatus,
    // A key the gateway derived for dedupe is not Meta's: the resource shows no mid then.
    mid: isDerivedMid(row.mid) ? null : row.mid,
    content: content ?? parseContent(row.content),
    origin: row.origin as MessageOrigin,
    client_ref: row.client_ref,
    metadata: row.metadata,
    messaging_type: row.messaging_type as MessagingType | null,
    tag: row.tag,
    error: failureOf(row),
    created_at: isoTime(row.created_at),
    updated_at: isoTime(row.updated_at),
    sent_at: iso(row.sent_at),
    delivered_at: iso(row.delivered_at),
    read_at: iso(row.read_at),
  };
}

export function contactResource(row: ContactRow, now: number): ContactResource {
  const window = windowState(
    {
      last_inbound_at: row.last_inbound_at,
      ad_window_until: row.ad_window_until,
      blocked_at: row.blocked_at,
      opted_out_at: row.opted_out_at,
      has_user_ref: row.psid === null && row.user_ref !== null,
    },
    now,
  );
  return {
    id: row.id,
    account_id: row.account_id,
    sender_id: row.sender_id,
    channel: row.channel as Channel,
    psid: row.psid,
    user_ref: row.user_ref,
    name: row.name,
    first_name: row.first_name,
    last_name: row.last_name,
    username: row.username,
    profile_pic: row.profile_pic,
    locale: row.locale,
    last_inbound_at: iso(row.last_inbound_at),
    window: { open: window.open, open_until: iso(window.open_until), human_agent_until: iso(window.human_agent_until) },
    blocked_at: iso(row.blocked_at),
    opted_out_at: iso(row.opted_out_at),
    created_at: isoTime(row.created_at),
  };
}

export function conversationResource(row: ConversationRow): ConversationResource {
  return {
    id: row.id,
    account_id: row.account_id,
    sender_id: row.sender_id,
    contact_id: row.contact_id,
    status: row.status === 'closed' ? 'closed' : 'open',
    assigned_to: row.assignee,
    created_at: isoTime(row.created_at),
    last_message_at: iso(row.last_message_at),
  };
}
