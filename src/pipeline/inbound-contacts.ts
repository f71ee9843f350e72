/**
 * The person and the thread behind an inbound item: the contact upserted (PSID/IGSID or checkbox
 * `user_ref`; window, refs, ad window), a profile fetch requested when due, and the conversation
 * opened or reopened (a new one is a `conversation.created` event).
 */
import type { Db } from '../store/db.js';
import { ensureContact, lockContactRow, touchContactInbound, updateContactProfile } from '../store/contacts.js';
import type { InboundTouch } from '../store/contacts.js';
import { ensureConversation } from '../store/conversations.js';
import type { ContactRow, ConversationRow, SenderRow } from '../store/schema.js';
import type { PipelineContext } from './context.js';
import { emitEvent } from './events.js';
import type { InboundItemContext } from './inbound-context.js';
import { contactResource, conversationResource } from './inbound-resources.js';

export const PROFILE_FETCH_JOB = 'profile.fetch';

/**
 * A fetched profile is trusted for a day: names rarely change, picture links expire within days,
 * and one Graph call per person per day stays far below the Page's rate limits even for busy Pages.
 */
export const PROFILE_TTL_MS = 24 * 60 * 60 * 1000;

export interface ProfileFetchPayload {
  contact_id: string;
}

export interface ContactIdentity {
  psid?: string | null;
  user_ref?: string | null;
}

/** Upserts the contact and applies what the item teaches; requests a profile fetch when due. */
export async function upsertInboundContact(trx: Db, ic: InboundItemContext, who: ContactIdentity, touch: InboundTouch): Promise<ContactRow> {
  const now = ic.ctx.now();
  const { contact, created } = await ensureContact(
    trx,
    { account_id: ic.sender.account_id, sender_id: ic.sender.id, channel: ic.channel, psid: who.psid ?? null, user_ref: who.user_ref ?? null },
    now,
  );
  const touched = await touchContactInbound(trx, contact, touch, now);
  return requestProfileIfDue(trx, ic.ctx, ic.sender, touched, created);
}

/**
 * Enqueues a `profile.fetch` job for a new contact, or for one whose profile is older than the
 * TTL. The job is keyed per sender, so fetches for one Page run one at a time (pacing); the
 * contact shows `pending` while one is queued, so a burst of messages queues one fetch.
 */
export async function requestProfileIfDue(trx: Db, ctx: PipelineContext, sender: SenderRow, contact: ContactRow, created: boolean): Promise<ContactRow> {
  if (contact.psid === null) return contact;
  const now = ctx.now();
  const stale = contact.profile_fetched_at === null || now - contact.profile_fetched_at >= PROFILE_TTL_MS;
  const due = created || (contact.profile_status !== 'pending' && stale);
  if (!due) return contact;
  await ctx.queue.enqueue(trx, {
    kind: PROFILE_FETCH_JOB,
    key: `profile:${sender.id}`,
    payload: { contact_id: contact.id } satisfies ProfileFetchPayload,
  });
  if (contact.profile_status === 'pending') return contact;
  await updateContactProfile(trx, contact.id, { profile_status: 'pending' }, now);
  return { ...contact, profile_status: 'pending' };
}

/**
 * The conversation for the item. `reopen`: the person wrote, so a closed conversation opens again;
 * receipts and echoes leave it as it is. Creating one emits `conversation.created`.
 */
export async function openInboundConversation(
  trx: Db,
  ic: InboundItemContext,
  contact: ContactRow,
  opts: { at: number; reopen: boolean },
): Promise<ConversationRow> {
  const { ctx, sender } = ic;
  const now = ctx.now();
  if (ctx.store.engine === 'postgres') await lockContactRow(trx, contact.id);
  const { conversation, outcome } = await ensureConversation(
    trx,
    { account_id: sender.account_id, sender_id: sender.id, contact_id: contact.id },
    opts,
    now,
  );
  if (outcome === 'created') {
    await emitEvent(trx, ctx.queue, {
      created_at: now,
      account_id: sender.account_id,
      type: 'conversation.created',
      sender_id: sender.id,
      conversation_id: conversation.id,
      data: { conversation: conversationResource(conversation), contact: contactResource(contact, now) },
    });
  }
  return conversation;
}
