import type { EmulatorContext } from './context.js';
import type { ValidatedMessage } from './graph/content.js';
import type { App, Page, Thread, ThreadMessage } from './state.js';
import type { WebhookEvent } from './webhooks.js';

/**
 * What happens after the Send API accepts a message: it lands in the person's thread, the app
 * gets an echo, and the person's device sends a delivery and a read receipt a moment later.
 */

// Messenger hides a typing indicator by itself after 20 seconds.
const TYPING_INDICATOR_MS = 20_000;

export interface PageSend {
  page: Page;
  app: App;
  thread: Thread;
  message: ValidatedMessage;
  /** The attachment as the person sees it (media rehosted by the emulator). */
  attachment?: { type: string; payload: Record<string, unknown> };
  messagingType: string;
  tag?: string;
  personaId?: string;
  replyTo?: string;
}

export function deliverPageMessage(ctx: EmulatorContext, send: PageSend): ThreadMessage {
  const { page, thread } = send;
  const now = ctx.clock.now();
  const mid = thread.channel === 'instagram' && page.instagram ? ctx.ids.instagramMid(page.instagram.id) : ctx.ids.messengerMid();
  const message: ThreadMessage = { mid, from: 'page', timestamp: now, messaging_type: send.messagingType, app_id: send.app.id };
  if (send.message.text !== undefined) message.text = send.message.text;
  if (send.attachment) message.attachment = send.attachment;
  if (send.message.quickReplies) message.quick_replies = send.message.quickReplies;
  if (send.tag !== undefined) message.tag = send.tag;
  if (send.message.metadata !== undefined) message.metadata = send.message.metadata;
  if (send.personaId !== undefined) message.persona_id = send.personaId;
  if (send.replyTo !== undefined) message.reply_to = { mid: send.replyTo };
  thread.messages.push(message);
  thread.typing = false;
  ctx.state.touchThread(thread);

  publishEcho(ctx, send, message);
  scheduleReceipts(ctx, thread);
  return message;
}

function publishEcho(ctx: EmulatorContext, send: PageSend, message: ThreadMessage): void {
  const { page, thread } = send;
  const instagram = thread.channel === 'instagram' && page.instagram;
  const body: Record<string, unknown> = {};
  if (instagram) {
    body.mid = message.mid;
  } else {
    body.is_echo = true;
    // Meta sends the app id as a JSON number in echoes.
    body.app_id = Number(send.app.id);
    if (message.metadata !== undefined) body.metadata = message.metadata;
    body.mid = message.mid;
  }
  if (message.text !== undefined) body.text = message.text;
  if (message.attachment) body.attachments = [message.attachment];
  if (message.quick_replies) body.quick_replies = message.quick_replies;
  if (message.reply_to) body.reply_to = message.reply_to;
  if (instagram) body.is_echo = true;
  const event: WebhookEvent = instagram
    ? {
        pageId: page.id,
        object: 'instagram',
        entryId: instagram.id,
        field: 'messages',
        item: { sender: { id: instagram.id }, recipient: { id: thread.scopedId }, timestamp: message.timestamp, message: body },
      }
    : {
        pageId: page.id,
        object: 'page',
        entryId: page.id,
        field: 'message_echoes',
        item: { sender: { id: page.id }, recipient: { id: thread.scopedId }, timestamp: message.timestamp, message: body },
      };
  ctx.webhooks.publish(event);
}

function scheduleReceipts(ctx: EmulatorContext, thread: Thread): void {
  const { deliveryDelayMs, readDelayMs } = ctx.options;
  // Instagram sends no delivery receipts, only "seen".
  if (deliveryDelayMs !== null && thread.channel === 'messenger') {
    ctx.timers.after(deliveryDelayMs, () => personDelivered(ctx, thread));
  }
  if (readDelayMs !== null) {
    ctx.timers.after(readDelayMs, () => personRead(ctx, thread));
  }
}

/** The person's device confirms delivery of everything the Page sent so far. */
export function personDelivered(ctx: EmulatorContext, thread: Thread): void {
  const page = ctx.state.pages.get(thread.pageId);
  if (!page || ctx.state.threads.get(thread.key) !== thread) return;
  const undelivered = thread.messages.filter((m) => m.from === 'page' && !m.delivered);
  if (undelivered.length === 0) return;
  for (const message of undelivered) message.delivered = true;
  const watermark = Math.max(...undelivered.map((m) => m.timestamp));
  thread.deliveredWatermark = watermark;
  ctx.state.touchThread(thread);
  if (thread.channel !== 'messenger') return;
  ctx.webhooks.publish({
    pageId: page.id,
    object: 'page',
    entryId: page.id,
    field: 'message_deliveries',
    item: {
      sender: { id: thread.scopedId },
      recipient: { id: page.id },
      timestamp: ctx.clock.now(),
      delivery: { mids: undelivered.map((m) => m.mid), watermark },
    },
  });
}

/** The person opens the thread and sees everything the Page sent so far (or up to `upTo`). */
export function personRead(
  ctx: EmulatorContext,
  thread: Thread,
  options: { standby?: boolean; upTo?: number } = {},
): { watermark: number; mid: string } | null {
  const page = ctx.state.pages.get(thread.pageId);
  if (!page || ctx.state.threads.get(thread.key) !== thread) return null;
  const upTo = options.upTo ?? Number.POSITIVE_INFINITY;
  const pageMessages = thread.messages.filter((m) => m.from === 'page' && m.timestamp <= upTo);
  const last = pageMessages.at(-1);
  if (!last) return null;
  for (const message of pageMessages) {
    message.delivered = true;
    message.read = true;
  }
  thread.deliveredWatermark = last.timestamp;
  thread.readWatermark = last.timestamp;
  ctx.state.touchThread(thread);
  const now = ctx.clock.now();
  if (thread.channel === 'instagram' && page.instagram) {
    ctx.webhooks.publish({
      pageId: page.id,
      object: 'instagram',
      entryId: page.instagram.id,
      field: 'messaging_seen',
      standby: options.standby === true,
      item: { sender: { id: thread.scopedId }, recipient: { id: page.instagram.id }, timestamp: now, read: { mid: last.mid } },
    });
  } else {
    ctx.webhooks.publish({
      pageId: page.id,
      object: 'page',
      entryId: page.id,
      field: 'message_reads',
      standby: options.standby === true,
      item: { sender: { id: thread.scopedId }, recipient: { id: page.id }, timestamp: now, read: { watermark: last.timestamp } },
    });
  }
  return { watermark: last.timestamp, mid: last.mid };
}

export const SENDER_ACTIONS = ['typing_on', 'typing_off', 'mark_seen', 'react', 'unreact'] as const;
export type SenderAction = (typeof SENDER_ACTIONS)[number];

/** Sender actions change what the person sees (typing, seen, reactions) and send no webhook. */
export function applySenderAction(
  ctx: EmulatorContext,
  thread: Thread,
  action: SenderAction,
  reaction: { mid: string; reaction?: string } | null,
): void {
  switch (action) {
    case 'typing_on':
      thread.typing = true;
      thread.typingUntil = Date.now() + TYPING_INDICATOR_MS;
      ctx.timers.after(TYPING_INDICATOR_MS, () => {
        if (thread.typing && Date.now() >= thread.typingUntil) {
          thread.typing = false;
          ctx.state.touchThread(thread);
        }
      });
      break;
    case 'typing_off':
      thread.typing = false;
      break;
    case 'mark_seen': {
      const lastUser = thread.messages.filter((m) => m.from === 'user').at(-1);
      thread.pageSeenWatermark = lastUser ? lastUser.timestamp : ctx.clock.now();
      break;
    }
    case 'react':
    case 'unreact': {
      const target = thread.messages.find((m) => m.mid === reaction?.mid);
      if (target) {
        target.reactions = (target.reactions ?? []).filter((r) => r.by !== 'page');
        if (action === 'react') {
          const name = reaction?.reaction ?? 'love';
          target.reactions.push({ by: 'page', reaction: name, emoji: emojiFor(name) });
        }
      }
      break;
    }
  }
  ctx.state.touchThread(thread);
}

const EMOJI: Record<string, string> = {
  smile: '\u{1F606}',
  angry: '\u{1F620}',
  sad: '\u{1F622}',
  wow: '\u{1F62E}',
  love: '\u{2764}\u{FE0F}',
  like: '\u{1F44D}',
  dislike: '\u{1F44E}',
};

export const REACTIONS = Object.keys(EMOJI);

export function emojiFor(reaction: string): string {
  return EMOJI[reaction] ?? reaction;
}
