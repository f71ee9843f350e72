/**
 * A customer's message: contact upserted and window restarted, conversation opened or reopened,
 * the message stored once per `mid` with its canonical content, media rows and download jobs for
 * attachments Meta hosts, opt-out keywords applied, and a `message.received` event. Everything for
 * one message commits in one transaction, so a retried batch yields one message and one event.
 */
import type { Attachment, JsonValue, MessageContent } from '../domain/glossary.js';
import { newId } from '../domain/ids.js';
import { classifyKeyword } from '../domain/opt-out.js';
import { adWindowUntil } from '../domain/policy.js';
import type { MetaMessageEvent } from '../meta/webhook.js';
import { attachPsidToUserRefContact, findContactByPsid, findContactByUserRef, setContactOptedOut } from '../store/contacts.js';
import type { InboundTouch } from '../store/contacts.js';
import { insertInboundMedia } from '../store/media.js';
import { findMessageByMid, messageExistsByMid, updateMessageContent } from '../store/messages.js';
import type { SenderRow } from '../store/schema.js';
import { emitEvent } from './events.js';
import { rememberInboundItem } from '../store/inbound-item-keys.js';
import { confirmOptOut } from './opt-out.js';
import { openInboundConversation, upsertInboundContact } from './inbound-contacts.js';
import { DuplicateItem, derivedMid, itemTime } from './inbound-context.js';
import { inboundMessageRow, insertInboundOrRollback } from './inbound-rows.js';
import type { InboundItemContext, ItemOutcome } from './inbound-context.js';
import { emitRawEvent } from './inbound-raw.js';
import { contactResource, conversationResource, messageResource, parseContent } from './inbound-resources.js';
import { MEDIA_DOWNLOAD_JOB } from './media.js';
import type { MediaDownloadPayload } from './media.js';

/** Attachment types whose bytes sit behind an expiring Meta CDN link and are worth keeping. */
const DOWNLOADABLE: ReadonlySet<string> = new Set(['image', 'audio', 'video', 'file', 'sticker', 'story_mention']);

export function messageKind(content: MessageContent): string {
  if (content.quick_reply !== undefined) return 'quick_reply';
  if (content.attachments !== undefined && content.attachments.length > 0) return 'attachments';
  if (content.text !== undefined) return 'text';
  if (content.is_unsupported === true) return 'unsupported';
  return 'text';
}

interface OptOutSettings {
  enabled?: boolean;
  languages?: string[];
  stop_words?: string[];
  start_words?: string[];
}

function optOutSettings(sender: SenderRow): OptOutSettings | null {
  let settings: unknown;
  try {
    settings = JSON.parse(sender.settings);
  } catch {
    settings = {};
  }
  const value = typeof settings === 'object' && settings !== null ? (settings as { opt_out?: unknown }).opt_out : undefined;
  if (value === false) return null;
  const opt = typeof value === 'object' && value !== null ? (value as OptOutSettings) : {};
  if (opt.enabled === false) return null;
  return opt;
}

/** `stop` / `start` when the whole text is a keyword under the sender's settings (English by default). */
export function optOutKeyword(sender: SenderRow, text: string | undefined): 'stop' | 'start' | null {
  if (text === undefined) return null;
  const opt = optOutSettings(sender);
  if (opt === null) return null;
  const options: { languages: string[]; stop_words?: string[]; start_words?: string[] } = {
    languages: Array.isArray(opt.languages) ? opt.languages.filter((l) => typeof l === 'string') : ['en'],
  };
  if (Array.isArray(opt.stop_words)) options.stop_words = opt.stop_words.filter((w) => typeof w === 'string');
  if (Array.isArray(opt.start_words)) options.start_words = opt.start_words.filter((w) => typeof w === 'string');
  return classifyKeyword(text, options);
}

/** Checkbox opt-in answered: Meta names the `user_ref` the business wrote to first. */
function priorUserRef(raw: JsonValue): string | null {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return null;
  const prior = raw['prior_message'];
  if (typeof prior !== 'object' || prior === null || Array.isArray(prior)) return null;
  const identifier = prior['identifier'];
  return typeof identifier === 'string' && identifier !== '' ? identifier : null;
}

export async function handleMessage(ic: InboundItemContext, ev: MetaMessageEvent): Promise<ItemOutcome> {
  const { ctx, sender } = ic;
  if (ev.content.is_deleted === true) return handleUnsend(ic, ev);
  // Meta's retries: most duplicates are caught here, before a transaction is opened.
  if (await messageExistsByMid(ctx.store.db, sender.id, ev.mid)) return 'duplicate';
  try {
    await ctx.queue.transaction(async (trx) => {
      const now = ctx.now();
      const at = itemTime(ev.timestamp, now);
      const content: MessageContent = structuredClone(ev.content);

      const userRef = priorUserRef(ev.raw);
      if (userRef !== null && !(await findContactByPsid(trx, sender.id, ev.sender_id))) {
        const byRef = await findContactByUserRef(trx, sender.id, userRef);
        if (byRef && byRef.psid === null) await attachPsidToUserRefContact(trx, byRef.id, ev.sender_id, now);
      }

      const touch: InboundTouch = { interaction_at: at };
      const referral = content.referral;
      if (referral) {
        touch.ref = { ref: strOf(referral.ref), source: strOf(referral.source), type: strOf(referral.type), ad_id: strOf(referral.ad_id) };
        // A message carrying an ad referral is the first one from a click-to-Messenger ad.
        if (referral.source === 'ADS') touch.ad_window_until = adWindowUntil(at);
      }
      let contact = await upsertInboundContact(trx, ic, { psid: ev.sender_id }, touch);
      const conversation = await openInboundConversation(trx, ic, contact, { at, reopen: true });

      const messageId = newId('msg', now);
      const downloads: { id: string; url: string; filename: string | null }[] = [];
      for (const attachment of content.attachments ?? []) {
        if (attachment.url === undefined || !DOWNLOADABLE.has(attachment.type)) continue;
        const mediaId = newId('med', now);
        attachment.media_id = mediaId;
        downloads.push({ id: mediaId, url: attachment.url, filename: fileName(attachment) });
      }

      const row = inboundMessageRow(ic, { id: messageId, contact, conversation, mid: ev.mid, kind: messageKind(content), content, raw: ev.raw, at }, now);
      await insertInboundOrRollback(trx, row);
      for (const d of downloads) {
        await insertInboundMedia(trx, { id: d.id, account_id: sender.account_id, sender_id: sender.id, message_id: messageId, source_url: d.url, filename: d.filename }, now);
      }
      if (downloads.length > 0) {
        await ctx.queue.enqueue(
          trx,
          downloads.map((d) => ({ kind: MEDIA_DOWNLOAD_JOB, payload: { media_id: d.id } satisfies MediaDownloadPayload })),
        );
      }

      const keyword = optOutKeyword(sender, content.text);
      const contactWasOptedIn = contact.opted_out_at === null;
      if (keyword === 'stop' && contact.opted_out_at === null) {
        await setContactOptedOut(trx, contact.id, at, now);
        contact = { ...contact, opted_out_at: at };
      } else if (keyword === 'start' && contact.opted_out_at !== null) {
        await setContactOptedOut(trx, contact.id, null, now);
        contact = { ...contact, opted_out_at: null };
      }

      const data: Record<string, unknown> = {
        message: messageResource(row, ic.channel, content),
        contact: contactResource(contact, now),
        conversation: conversationResource(conversation),
      };
      if (keyword !== null) data.opt_out = keyword;
      await emitEvent(trx, ctx.queue, {
        created_at: now,
        account_id: sender.account_id,
        type: 'message.received',
        sender_id: sender.id,
        conversation_id: conversation.id,
        message_id: messageId,
        data,
      });
      // The one reply an opted-out person may still get: the confirmation, when the sender set one.
      if (keyword === 'stop' && contactWasOptedIn) await confirmOptOut(trx, ctx, sender, contact);
    });
  } catch (err) {
    if (err instanceof DuplicateItem) return 'duplicate';
    throw err;
  }
  return 'stored';
}

/**
 * Instagram: the person unsent a message. The original keeps its row, marked deleted (the business
 * may have to honour it); the item is forwarded as a raw event so nothing Meta said is dropped.
 */
async function handleUnsend(ic: InboundItemContext, ev: MetaMessageEvent): Promise<ItemOutcome> {
  const { ctx, sender } = ic;
  const handled = await ctx.queue.transaction(async (trx) => {
    // Meta's retry of the same unsend forwards nothing more.
    if (!(await rememberInboundItem(trx, sender.id, derivedMid('unsend', ev.raw), ctx.now()))) return false;
    const original = await findMessageByMid(trx, sender.id, ev.mid);
    if (original && original.direction === 'inbound') {
      const content = parseContent(original.content);
      if (content.is_deleted !== true) {
        await updateMessageContent(trx, original.id, JSON.stringify({ ...content, is_deleted: true }), ctx.now());
      }
    }
    await emitRawEvent(trx, ic, ev, original ? { conversation_id: original.conversation_id, message_id: original.id } : {});
    return true;
  });
  if (!handled) return 'duplicate';
  return 'updated';
}

function strOf(value: JsonValue | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function fileName(attachment: Attachment): string | null {
  if (attachment.type !== 'file' || attachment.url === undefined) return null;
  try {
    const last = new URL(attachment.url).pathname.split('/').pop() ?? '';
    // A name for a download dialog; CDN paths can be long hashes, so it is kept short.
    return last === '' ? null : decodeURIComponent(last).slice(0, 200);
  } catch {
    return null;
  }
}
