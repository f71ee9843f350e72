/**
 * The send policy for one message to one contact, now: the facts `checkSendPolicy` needs, read
 * from the sender and contact rows (and, for a checkbox `user_ref`, whether its one message was
 * used). The API runs it before accepting a message and the send job again just before the send.
 */
import { templateTypeOf } from '../domain/content.js';
import type { MessageContent, SenderHealth } from '../domain/glossary.js';
import { checkSendPolicy } from '../domain/policy.js';
import type { SendPolicyResult } from '../domain/policy.js';
import type { Db } from '../store/db.js';
import type { ContactRow, SenderRow } from '../store/schema.js';

/**
 * When the one message a checkbox opt-in allows was used: the first outbound message to the
 * contact that did not fail (before `beforeId`, so the message being sent does not count itself).
 */
async function userRefUsedAt(db: Db, contactId: string, beforeId: string | undefined): Promise<number | null> {
  let q = db.selectFrom('messages').select('created_at').where('contact_id', '=', contactId).where('direction', '=', 'outbound').where('status', '<>', 'failed');
  if (beforeId !== undefined) q = q.where('id', '<', beforeId);
  const row = await q.orderBy('id').limit(1).executeTakeFirst();
  return row?.created_at ?? null;
}

export function senderSettings(sender: Pick<SenderRow, 'settings'>): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(sender.settings);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** The policy for one message to one contact, now: shared by the API and the send job. */
export async function policyFor(
  db: Db,
  now: number,
  sender: SenderRow,
  contact: ContactRow,
  message: {
    messaging_type: string | null;
    tag: string | null;
    content: MessageContent;
    optOutConfirmation: boolean;
    excludeMessageId?: string;
    /** typing_on/typing_off/mark_seen: no message, the same contact rules. */
    senderAction?: boolean;
  },
): Promise<SendPolicyResult> {
  const hasUserRef = contact.psid === null && contact.user_ref !== null;
  const usedAt = hasUserRef ? await userRefUsedAt(db, contact.id, message.excludeMessageId) : null;
  return checkSendPolicy({
    now,
    channel: sender.channel === 'instagram' ? 'instagram' : 'messenger',
    sender: { health: sender.health as SenderHealth, human_agent: sender.human_agent === 1, paused: senderSettings(sender)['paused'] === true },
    contact: {
      last_inbound_at: contact.last_inbound_at,
      ad_window_until: contact.ad_window_until,
      blocked_at: contact.blocked_at,
      unreachable_at: contact.unreachable_at,
      opted_out_at: contact.opted_out_at,
      has_user_ref: hasUserRef,
      user_ref_used_at: usedAt,
    },
    messaging_type: message.messaging_type,
    tag: message.tag,
    template_type: templateTypeOf(message.content),
    is_opt_out_confirmation: message.optOutConfirmation,
    is_sender_action: message.senderAction === true,
  });
}

