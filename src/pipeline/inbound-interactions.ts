/**
 * A person's interactions other than messages: postbacks (buttons, Get Started, m.me links on a new
 * thread), reactions, opt-ins (Send to Messenger, checkbox, marketing), referrals (m.me links and
 * ads on an existing thread) and edits. Each is stored as a message of its kind, deduplicated like
 * messages, and emitted as its event type. Postbacks, reactions, referrals and opt-ins restart the
 * window (Meta counts them as interactions); an edit does not.
 */
import type { EventType, JsonValue, MessageContent, Referral } from '../domain/glossary.js';
import { adWindowUntil } from '../domain/policy.js';
import type { MetaEditEvent, MetaOptinEvent, MetaPostbackEvent, MetaReactionEvent, MetaReferralEvent } from '../meta/webhook.js';
import type { Db } from '../store/db.js';
import type { ContactRef, InboundTouch } from '../store/contacts.js';
import { findMessageByMid, messageExistsByMid, updateMessageContent } from '../store/messages.js';
import type { ContactRow, ConversationRow, MessageRow } from '../store/schema.js';
import { emitEvent } from './events.js';
import { openInboundConversation, upsertInboundContact } from './inbound-contacts.js';
import type { ContactIdentity } from './inbound-contacts.js';
import { derivedMid, DuplicateItem, itemTime } from './inbound-context.js';
import type { InboundItemContext, ItemOutcome } from './inbound-context.js';
import { contactResource, conversationResource, messageResource, parseContent } from './inbound-resources.js';
import { inboundMessageRow, insertInboundOrRollback } from './inbound-rows.js';

interface Stored {
  trx: Db;
  row: MessageRow;
  contact: ContactRow;
  conversation: ConversationRow;
  now: number;
}

interface InteractionSpec {
  mid: string;
  kind: string;
  who: ContactIdentity;
  touch: (at: number) => InboundTouch;
  reopen: boolean;
  content: MessageContent;
  raw: JsonValue;
  timestamp: number | null;
  eventType: EventType;
  /** Work before the row is written (an edit updates its original here). */
  before?: (trx: Db, now: number) => Promise<void>;
  data: (s: Stored) => Promise<unknown> | unknown;
}

/** The shared path: dedupe, contact and window, conversation, message row, event; one transaction. */
async function storeInteraction(ic: InboundItemContext, spec: InteractionSpec): Promise<ItemOutcome> {
  const { ctx, sender } = ic;
  if (await messageExistsByMid(ctx.store.db, sender.id, spec.mid)) return 'duplicate';
  try {
    await ctx.queue.transaction(async (trx) => {
      const now = ctx.now();
      const at = itemTime(spec.timestamp, now);
      await spec.before?.(trx, now);
      const contact = await upsertInboundContact(trx, ic, spec.who, spec.touch(at));
      const conversation = await openInboundConversation(trx, ic, contact, { at, reopen: spec.reopen });
      const row = inboundMessageRow(ic, { contact, conversation, mid: spec.mid, kind: spec.kind, content: spec.content, raw: spec.raw, at }, now);
      await insertInboundOrRollback(trx, row);
      const data = await spec.data({ trx, row, contact, conversation, now });
      await emitEvent(trx, ctx.queue, {
        created_at: now,
        account_id: sender.account_id,
        type: spec.eventType,
        sender_id: sender.id,
        conversation_id: conversation.id,
        message_id: row.id,
        data,
      });
    });
  } catch (err) {
    if (err instanceof DuplicateItem) return 'duplicate';
    throw err;
  }
  return 'stored';
}

function str(value: JsonValue | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function refOf(referral: Referral): Omit<ContactRef, 'at'> {
  return { ref: str(referral.ref), source: str(referral.source), type: str(referral.type), ad_id: str(referral.ad_id) };
}

export async function handlePostback(ic: InboundItemContext, ev: MetaPostbackEvent): Promise<ItemOutcome> {
  const referral = ev.postback.referral;
  return storeInteraction(ic, {
    mid: ev.mid ?? derivedMid('postback', ev.raw),
    kind: 'postback',
    who: { psid: ev.sender_id },
    touch: (at) => {
      const touch: InboundTouch = { interaction_at: at };
      if (referral) {
        touch.ref = refOf(referral);
        // A new thread opened from a click-to-Messenger ad arrives as a postback with an ad referral.
        if (referral.source === 'ADS') touch.ad_window_until = adWindowUntil(at);
      }
      return touch;
    },
    reopen: true,
    content: ev.content,
    raw: ev.raw,
    timestamp: ev.timestamp,
    eventType: 'postback',
    data: ({ row, contact, now }) => ({
      postback: ev.postback,
      message: messageResource(row, ic.channel, ev.content),
      contact: contactResource(contact, now),
    }),
  });
}

export async function handleReaction(ic: InboundItemContext, ev: MetaReactionEvent): Promise<ItemOutcome> {
  return storeInteraction(ic, {
    mid: derivedMid('reaction', ev.raw),
    kind: 'reaction',
    who: { psid: ev.sender_id },
    touch: (at) => ({ interaction_at: at }),
    // A reaction is not a new message: a closed conversation stays closed.
    reopen: false,
    content: ev.content,
    raw: ev.raw,
    timestamp: ev.timestamp,
    eventType: 'reaction',
    data: async ({ trx, row, contact, now }) => {
      const target = await findMessageByMid(trx, ic.sender.id, ev.reaction.mid);
      return {
        reaction: ev.reaction,
        target_message_id: target?.id ?? null,
        message: messageResource(row, ic.channel, ev.content),
        contact: contactResource(contact, now),
      };
    },
  });
}

export async function handleOptin(ic: InboundItemContext, ev: MetaOptinEvent): Promise<ItemOutcome> {
  const userRef = ev.sender_id === null ? (ev.optin.user_ref ?? null) : null;
  const who: ContactIdentity = ev.sender_id !== null ? { psid: ev.sender_id } : { user_ref: userRef };
  const type = str(ev.optin.type) ?? (userRef !== null ? 'checkbox' : 'send_to_messenger');
  return storeInteraction(ic, {
    mid: derivedMid('optin', ev.raw),
    kind: 'optin',
    who,
    touch: (at) => {
      const touch: InboundTouch = { interaction_at: at, ref: { ref: str(ev.optin.ref), source: 'OPTIN', type } };
      // Checkbox: one message may go to the user_ref within 24 h of this.
      if (userRef !== null) touch.user_ref_at = at;
      return touch;
    },
    reopen: true,
    content: ev.content,
    raw: ev.raw,
    timestamp: ev.timestamp,
    eventType: 'optin',
    data: ({ row, contact, now }) => ({
      optin: ev.optin,
      message: messageResource(row, ic.channel, ev.content),
      contact: contactResource(contact, now),
    }),
  });
}

export async function handleReferral(ic: InboundItemContext, ev: MetaReferralEvent): Promise<ItemOutcome> {
  return storeInteraction(ic, {
    mid: derivedMid('referral', ev.raw),
    kind: 'referral',
    who: { psid: ev.sender_id },
    // Referrals come only for existing threads, so an ad here is not a first message: no ad window.
    touch: (at) => ({ interaction_at: at, ref: refOf(ev.referral) }),
    reopen: true,
    content: ev.content,
    raw: ev.raw,
    timestamp: ev.timestamp,
    eventType: 'referral',
    data: ({ row, contact, now }) => ({
      referral: ev.referral,
      message: messageResource(row, ic.channel, ev.content),
      contact: contactResource(contact, now),
    }),
  });
}

/**
 * An edit: the original message's content takes the new text (with `edit` saying which version it
 * is) while its `raw` keeps the text as first received; the edit itself is stored as a message of
 * kind `edit` whose `raw` is Meta's edit item, so every version stays in history. Forwarded as
 * `message.received` with `edited_message_id`.
 */
export async function handleEdit(ic: InboundItemContext, ev: MetaEditEvent): Promise<ItemOutcome> {
  let originalId: string | null = null;
  return storeInteraction(ic, {
    mid: derivedMid('edit', ev.raw),
    kind: 'edit',
    who: { psid: ev.sender_id },
    touch: () => ({}),
    reopen: false,
    content: ev.content,
    raw: ev.raw,
    timestamp: ev.timestamp,
    eventType: 'message.received',
    before: async (trx, now) => {
      const original = await findMessageByMid(trx, ic.sender.id, ev.edit.mid);
      if (!original || original.direction !== 'inbound') return;
      originalId = original.id;
      const content = parseContent(original.content);
      // Edits may arrive out of order: an older version never overwrites a newer one.
      if (content.edit !== undefined && content.edit.num_edit >= ev.edit.num_edit) return;
      await updateMessageContent(trx, original.id, JSON.stringify({ ...content, text: ev.edit.text, edit: ev.edit }), now);
    },
    data: ({ row, contact, conversation, now }) => ({
      message: messageResource(row, ic.channel, ev.content),
      contact: contactResource(contact, now),
      conversation: conversationResource(conversation),
      edited_message_id: originalId,
    }),
  });
}
