import type { EmulatorContext } from './context.js';
import { controlErrors } from './errors.js';
import type { MediaKind } from './media.js';
import { emojiFor, personDelivered, personRead, REACTIONS } from './outbound.js';
import { AD_WINDOW_MS } from './policy.js';
import type { Channel, Page, Person, ThreadMessage } from './state.js';
import type { WebhookEvent } from './webhooks.js';

/**
 * A person does something in Messenger or Instagram: writes, sends media, taps a quick reply or
 * a button, follows a link, opts in, reacts, reads, edits. Each action lands in the thread and
 * becomes the webhook item Meta sends for it (shapes as in PLATFORM.md and its examples).
 */

export interface InboundAttachment {
  type: string;
  url?: string;
  title?: string;
  sticker_id?: string | number;
  lat?: number;
  long?: number;
}

export interface InboundInput {
  user?: string;
  channel?: Channel;
  text?: string;
  attachments?: Array<string | InboundAttachment>;
  quick_reply?: string | { payload: string };
  postback?: string | { payload?: string; title?: string };
  referral?: { ref?: string; source?: string; type?: string; ad_id?: string; ads_context_data?: Record<string, unknown> };
  optin?: { ref?: string; user_ref?: string; type?: string; payload?: string; title?: string; frequency?: string };
  reaction?: string | { reaction?: string; emoji?: string; action?: 'react' | 'unreact'; mid?: string };
  read?: boolean | { watermark?: number };
  delivery?: boolean;
  edit?: { mid?: string; text: string };
  unsend?: boolean | { mid?: string };
  reply_to?: string | { mid: string };
  timestamp?: number;
  standby?: boolean;
}

export interface InboundResult {
  event: string;
  psid?: string;
  mid?: string;
  user_ref?: string;
  notification_messages_token?: string;
  webhooks: number;
}

// During Meta's 2026 sticker migration a sticker arrives both as `sticker` and as `image`,
// until 2026-08-30.
const STICKER_DUAL_UNTIL = Date.UTC(2026, 7, 30);
// Marketing-message opt-in tokens last 6 months (Meta: token_expiry_timestamp).
const NOTIFICATION_TOKEN_MS = 182 * 24 * 60 * 60 * 1000;
// The sticker id Messenger uses for its "like" thumb.
const LIKE_STICKER_ID = 369239263222822;

const MEDIA_ATTACHMENTS = ['image', 'audio', 'video', 'file'];
const LINK_ATTACHMENTS = ['share', 'story_mention', 'post', 'ig_post'];
export const INBOUND_ATTACHMENT_TYPES = [...MEDIA_ATTACHMENTS, 'sticker', 'reel', 'ig_reel', 'fallback', 'location', ...LINK_ATTACHMENTS];

export function handleInbound(ctx: EmulatorContext, pageRef: string, input: InboundInput): InboundResult {
  const { state, clock } = ctx;
  const page = state.pageForObjectId(pageRef);
  if (!page) throw controlErrors.notFound('Page', pageRef);
  const channel: Channel = input.channel ?? (page.instagram?.id === pageRef ? 'instagram' : 'messenger');
  if (channel === 'instagram' && !page.instagram) throw controlErrors.invalid(`Page ${page.id} has no Instagram account`);
  const timestamp = input.timestamp ?? clock.now();
  if (!Number.isFinite(timestamp) || timestamp <= 0) throw controlErrors.invalid('timestamp must be epoch milliseconds');

  const actions = [
    input.text !== undefined || input.attachments !== undefined || input.quick_reply !== undefined ? 'message' : null,
    input.postback !== undefined ? 'postback' : null,
    input.optin !== undefined ? 'optin' : null,
    input.reaction !== undefined ? 'reaction' : null,
    input.read !== undefined && input.read !== false ? 'read' : null,
    input.delivery === true ? 'delivery' : null,
    input.edit !== undefined ? 'edit' : null,
    input.unsend !== undefined && input.unsend !== false ? 'unsend' : null,
  ].filter((a): a is string => a !== null);
  if (actions.length > 1) throw controlErrors.invalid(`one action per request; got ${actions.join(', ')}`);
  const action = actions[0] ?? (input.referral !== undefined ? 'referral' : null);
  if (action === null) {
    throw controlErrors.invalid('say what the person does: text, attachments, quick_reply, postback, referral, optin, reaction, read, delivery, edit or unsend');
  }

  if (action === 'optin' && input.optin?.user_ref !== undefined) return checkboxOptin(ctx, page, channel, input, timestamp);

  const person = findPerson(ctx, page, input.user);
  const scoped = state.scopedIdFor(person.id, page.id, channel);
  const thread = state.threadFor(scoped);
  const isNewThread = thread.lastUserActivityAt === null && thread.messages.length === 0;
  const base = eventBase(page, channel, thread.scopedId, timestamp, input.standby === true);
  const result: InboundResult = { event: action, psid: scoped.id, webhooks: 0 };
  const touch = () => {
    thread.lastUserActivityAt = Math.max(thread.lastUserActivityAt ?? 0, timestamp);
  };
  const mid = () => (channel === 'instagram' && page.instagram ? ctx.ids.instagramMid(page.instagram.id) : ctx.ids.messengerMid());

  switch (action) {
    case 'message': {
      const message: Record<string, unknown> = { mid: mid() };
      const stored: ThreadMessage = { mid: String(message.mid), from: 'user', timestamp };
      if (input.text !== undefined) {
        if (input.text.length === 0) throw controlErrors.invalid('text must not be empty');
        message.text = input.text;
        stored.text = input.text;
      }
      if (input.quick_reply !== undefined) {
        const payload = typeof input.quick_reply === 'string' ? input.quick_reply : input.quick_reply.payload;
        message.quick_reply = { payload };
        stored.quick_reply = { payload };
      }
      if (input.reply_to !== undefined) {
        const replyMid = typeof input.reply_to === 'string' ? input.reply_to : input.reply_to.mid;
        message.reply_to = { mid: replyMid };
        stored.reply_to = { mid: replyMid };
      }
      if (input.attachments !== undefined) {
        if (input.attachments.length === 0) throw controlErrors.invalid('attachments must not be empty');
        const built = input.attachments.map((a) => buildAttachment(ctx, channel, typeof a === 'string' ? { type: a } : a, timestamp));
        message.attachments = built.flat();
        stored.attachments = built.map((list) => list[0] ?? {});
        const stickerId = built.flat().find((a) => (a.payload as { sticker_id?: unknown } | undefined)?.sticker_id !== undefined);
        if (stickerId && channel === 'messenger') message.sticker_id = (stickerId.payload as { sticker_id: unknown }).sticker_id;
      }
      if (input.referral !== undefined) {
        message.referral = referralOf(input.referral);
        if (message.referral && (message.referral as { source?: string }).source === 'ADS') {
          thread.adWindowUntil = timestamp + AD_WINDOW_MS;
        }
      }
      thread.messages.push(stored);
      touch();
      result.mid = stored.mid;
      result.webhooks = publish(ctx, { ...base, field: 'messages', item: { ...base.item, message } });
      break;
    }
    case 'postback':
    case 'referral': {
      if (action === 'referral' && !isNewThread) {
        // An m.me link or ad on an existing thread: a referral event (it restarts the window).
        touch();
        result.webhooks = publish(ctx, {
          ...base,
          field: 'messaging_referrals',
          item: { ...base.item, referral: referralOf(input.referral ?? {}) },
        });
        break;
      }
      // A tapped button, or a new thread opened from a link: the Get Started postback.
      const given = typeof input.postback === 'string' ? { payload: input.postback } : (input.postback ?? {});
      const getStarted = (page.messengerProfile[channel].get_started as { payload?: string } | undefined)?.payload;
      const title = given.title ?? (action === 'referral' ? 'Get Started' : (given.payload ?? 'Postback'));
      const payload = given.payload ?? getStarted ?? 'GET_STARTED';
      const postback: Record<string, unknown> = { mid: mid(), title };
      // Standby postbacks carry no payload.
      if (input.standby !== true) postback.payload = payload;
      if (input.referral !== undefined) {
        postback.referral = referralOf(input.referral);
        if ((postback.referral as { source?: string }).source === 'ADS') thread.adWindowUntil = timestamp + AD_WINDOW_MS;
      }
      thread.messages.push({ mid: String(postback.mid), from: 'user', timestamp, text: title, postback: { title, payload } });
      touch();
      result.mid = String(postback.mid);
      result.webhooks = publish(ctx, { ...base, field: 'messaging_postbacks', item: { ...base.item, postback } });
      break;
    }
    case 'optin': {
      const optinInput = input.optin ?? {};
      const optin: Record<string, unknown> = {};
      if (optinInput.type === 'notification_messages') {
        const token = ctx.ids.opaque(24);
        const expiresAt = timestamp + NOTIFICATION_TOKEN_MS;
        state.notificationTokens.set(token, { token, pageId: page.id, scopedId: scoped.id, expiresAt });
        optin.type = 'notification_messages';
        optin.payload = optinInput.payload ?? optinInput.ref ?? '';
        optin.notification_messages_token = token;
        optin.notification_messages_frequency = optinInput.frequency ?? 'DAILY';
        optin.notification_messages_timezone = 'UTC';
        optin.token_expiry_timestamp = expiresAt;
        optin.user_token_status = 'NOT_REFRESHED';
        if (optinInput.title !== undefined) optin.title = optinInput.title;
        result.notification_messages_token = token;
      } else {
        // Send to Messenger plugin: the plugin's data-ref arrives with the person's PSID.
        optin.ref = optinInput.ref ?? '';
      }
      touch();
      result.webhooks = publish(ctx, { ...base, field: 'messaging_optins', item: { ...base.item, optin } });
      break;
    }
    case 'reaction': {
      const given = typeof input.reaction === 'string' ? { reaction: input.reaction } : (input.reaction ?? {});
      const target = given.mid ?? thread.messages.filter((m) => m.from === 'page').at(-1)?.mid ?? thread.messages.at(-1)?.mid;
      if (target === undefined) throw controlErrors.invalid('there is no message to react to in this thread');
      const reactionName = given.reaction ?? (given.emoji !== undefined ? 'other' : 'love');
      if (given.emoji === undefined && !REACTIONS.includes(reactionName) && reactionName !== 'other') {
        throw controlErrors.invalid(`reaction must be one of ${[...REACTIONS, 'other'].join(', ')}`);
      }
      const emoji = given.emoji ?? emojiFor(reactionName);
      const act = given.action ?? 'react';
      const message = thread.messages.find((m) => m.mid === target);
      if (message) {
        message.reactions = (message.reactions ?? []).filter((r) => r.by !== 'user');
        if (act === 'react') message.reactions.push({ by: 'user', reaction: reactionName, emoji });
      }
      touch();
      const reaction: Record<string, unknown> = { mid: target, action: act };
      if (act === 'react') {
        reaction.reaction = reactionName;
        reaction.emoji = emoji;
      }
      result.mid = target;
      result.webhooks = publish(ctx, { ...base, field: 'message_reactions', item: { ...base.item, reaction } });
      break;
    }
    case 'read': {
      const upTo = typeof input.read === 'object' ? input.read.watermark : undefined;
      const read = personRead(ctx, thread, { standby: input.standby === true, ...(upTo !== undefined ? { upTo } : {}) });
      if (!read) throw controlErrors.invalid('the Page has sent nothing to read in this thread');
      result.mid = read.mid;
      break;
    }
    case 'delivery':
      personDelivered(ctx, thread);
      break;
    case 'edit': {
      const edit = input.edit ?? { text: '' };
      if (edit.text.length === 0) throw controlErrors.invalid('edit.text must not be empty');
      const target = edit.mid === undefined ? thread.messages.filter((m) => m.from === 'user').at(-1) : thread.messages.find((m) => m.mid === edit.mid);
      if (!target || target.from !== 'user') throw controlErrors.invalid('edit.mid must name a message the person sent');
      target.text = edit.text;
      target.edits = (target.edits ?? 0) + 1;
      result.mid = target.mid;
      result.webhooks = publish(ctx, {
        ...base,
        field: 'message_edits',
        item: { ...base.item, message_edit: { mid: target.mid, text: edit.text, num_edit: target.edits } },
      });
      break;
    }
    case 'unsend': {
      if (channel !== 'instagram') throw controlErrors.invalid('unsend is an Instagram event; use channel "instagram"');
      const given = typeof input.unsend === 'object' ? input.unsend.mid : undefined;
      const target = given === undefined ? thread.messages.filter((m) => m.from === 'user').at(-1) : thread.messages.find((m) => m.mid === given);
      if (!target || target.from !== 'user') throw controlErrors.invalid('unsend.mid must name a message the person sent');
      target.deleted = true;
      result.mid = target.mid;
      result.webhooks = publish(ctx, { ...base, field: 'messages', item: { ...base.item, message: { mid: target.mid, is_deleted: true } } });
      break;
    }
  }
  state.touchThread(thread);
  return result;
}

function findPerson(ctx: EmulatorContext, page: Page, user: string | undefined): Person {
  if (user === undefined || user === '') throw controlErrors.invalid('user is required: a person id from POST /_emulator/users, or a PSID/IGSID of this Page');
  const person = ctx.state.people.get(user);
  if (person) return person;
  const scoped = ctx.state.scopedIds.get(user);
  if (scoped && scoped.pageId === page.id) {
    const owner = ctx.state.people.get(scoped.personId);
    if (owner) return owner;
  }
  throw controlErrors.notFound('Person', user);
}

type EventBase = Omit<WebhookEvent, 'field'> & { item: Record<string, unknown> };

function eventBase(page: Page, channel: Channel, scopedId: string, timestamp: number, standby: boolean): EventBase {
  const entryId = channel === 'instagram' && page.instagram ? page.instagram.id : page.id;
  return {
    pageId: page.id,
    object: channel === 'instagram' ? 'instagram' : 'page',
    entryId,
    standby,
    item: { sender: { id: scopedId }, recipient: { id: entryId }, timestamp },
  };
}

function publish(ctx: EmulatorContext, event: WebhookEvent): number {
  return ctx.webhooks.publish(event);
}

function referralOf(input: NonNullable<InboundInput['referral']>): Record<string, unknown> {
  const referral: Record<string, unknown> = {};
  if (input.ref !== undefined) referral.ref = input.ref;
  referral.source = input.source ?? (input.ad_id !== undefined ? 'ADS' : 'SHORTLINK');
  referral.type = input.type ?? 'OPEN_THREAD';
  if (input.ad_id !== undefined) referral.ad_id = input.ad_id;
  if (input.ads_context_data !== undefined) referral.ads_context_data = input.ads_context_data;
  return referral;
}

function checkboxOptin(ctx: EmulatorContext, page: Page, channel: Channel, input: InboundInput, timestamp: number): InboundResult {
  if (channel !== 'messenger') throw controlErrors.invalid('the checkbox plugin exists on Messenger only');
  const userRef = input.optin?.user_ref ?? '';
  if (userRef.length === 0) throw controlErrors.invalid('optin.user_ref must not be empty');
  ctx.state.userRefs.set(`${page.id}:${userRef}`, {
    userRef,
    pageId: page.id,
    ref: input.optin?.ref ?? null,
    optedInAt: timestamp,
    messagesSent: 0,
  });
  const optin: Record<string, unknown> = {};
  if (input.optin?.ref !== undefined) optin.ref = input.optin.ref;
  optin.user_ref = userRef;
  // The checkbox plugin's opt-in names no PSID: there is no sender.
  const webhooks = publish(ctx, {
    pageId: page.id,
    object: 'page',
    entryId: page.id,
    field: 'messaging_optins',
    standby: input.standby === true,
    item: { recipient: { id: page.id }, timestamp, optin },
  });
  return { event: 'optin', user_ref: userRef, webhooks };
}

function buildAttachment(ctx: EmulatorContext, channel: Channel, input: InboundAttachment, timestamp: number): Array<Record<string, unknown>> {
  const { type } = input;
  if (!INBOUND_ATTACHMENT_TYPES.includes(type)) {
    throw controlErrors.invalid(`attachment type must be one of ${INBOUND_ATTACHMENT_TYPES.join(', ')}`);
  }
  const now = ctx.clock.now();
  const mediaUrl = (kind: MediaKind) => input.url ?? ctx.media.url(ctx.media.sample(kind), now);
  if (MEDIA_ATTACHMENTS.includes(type)) return [{ type, payload: { url: mediaUrl(type as MediaKind) } }];
  switch (type) {
    case 'sticker': {
      const payload = { url: mediaUrl('sticker'), sticker_id: Number(input.sticker_id ?? LIKE_STICKER_ID) };
      if (channel === 'messenger' && timestamp < STICKER_DUAL_UNTIL) {
        return [{ type: 'sticker', payload }, { type: 'image', payload }];
      }
      return [{ type: 'sticker', payload }];
    }
    case 'reel':
    case 'ig_reel':
      return [{ type, payload: { reel_video_id: ctx.ids.numeric(17), title: input.title ?? 'A reel', url: mediaUrl('video') } }];
    case 'fallback':
      return input.url === undefined && input.title === undefined
        ? [{ type: 'fallback' }]
        : [{ type: 'fallback', payload: { ...(input.url !== undefined ? { url: input.url } : {}), ...(input.title !== undefined ? { title: input.title } : {}) } }];
    case 'location':
      return [{ type: 'location', payload: { coordinates: { lat: input.lat ?? 48.8584, long: input.long ?? 2.2945 } } }];
    default:
      return [{ type, payload: { url: mediaUrl('image') } }];
  }
}

