import type { EmulatorContext } from '../context.js';
import { GraphError, graphErrors } from '../errors.js';
import { deliverPageMessage, applySenderAction, SENDER_ACTIONS, type SenderAction } from '../outbound.js';
import { checkPolicy, MESSAGING_TYPES, STANDARD_WINDOW_MS } from '../policy.js';
import type { App, Channel, Page, ScopedId, Thread } from '../state.js';
import { authenticate, pageFromPath } from './auth.js';
import { storeAttachment, fetchAttachment, type FetchedMedia } from './attachments.js';
import { validateMessage, type ValidatedMessage } from './content.js';
import { decodeParam, json, type GraphAnswer, type GraphCall } from './route.js';

/**
 * The Send API: `POST /{page-id | ig-id | me}/messages` with a Page token. Checks run in Meta's
 * order as far as it can be observed: token, rate limit, parameters, recipient, content,
 * blocking, window and tags; then the message is carried out.
 */

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

const NOTIFICATION_TYPES = ['REGULAR', 'SILENT_PUSH', 'NO_PUSH'];

type Recipient =
  | { kind: 'id'; scoped: ScopedId; thread: Thread }
  | { kind: 'user_ref'; userRef: string }
  | { kind: 'notification'; scoped: ScopedId; thread: Thread };

export async function handleSend(call: GraphCall): Promise<GraphAnswer> {
  const { ctx } = call;
  const caller = authenticate(call);
  const page = pageFromPath(call, caller, 'POST');
  if (caller.token?.kind !== 'page' || !caller.page) throw graphErrors.pageTokenRequired();
  const app = caller.app;
  if (!ctx.usage.admitSend(page.id, ctx.options.sendRateLimitPerSecond)) throw graphErrors.rateLimited();

  const params = call.params;
  const recipientParam = decodeParam(params.recipient, 'recipient');
  const messageParam = decodeParam(params.message, 'message');
  const senderAction = params.sender_action;
  if (recipientParam === undefined) throw graphErrors.requiredParam('recipient');
  if (!isObject(recipientParam)) throw graphErrors.invalidParam('param recipient must be a JSON object');
  if (messageParam === undefined && senderAction === undefined) {
    throw graphErrors.invalidParam('Must send either message or sender_action');
  }
  if (messageParam !== undefined && senderAction !== undefined) {
    throw graphErrors.invalidParam('Only one of message or sender_action may be given');
  }
  const messagingType = params.messaging_type ?? (params.tag !== undefined ? 'MESSAGE_TAG' : 'RESPONSE');
  if (typeof messagingType !== 'string' || !(MESSAGING_TYPES as readonly string[]).includes(messagingType)) {
    throw graphErrors.invalidParam(`Param messaging_type must be one of {${MESSAGING_TYPES.join(', ')}}`);
  }
  const notificationType = params.notification_type;
  if (notificationType !== undefined && !NOTIFICATION_TYPES.includes(String(notificationType))) {
    throw graphErrors.invalidParam(`Param notification_type must be one of {${NOTIFICATION_TYPES.join(', ')}}`);
  }
  const tag = params.tag;
  if (tag !== undefined && typeof tag !== 'string') throw graphErrors.invalidParam('param tag must be a string');

  const recipient = resolveRecipient(ctx, page, call.pathId, recipientParam);
  const channel: Channel = recipient.kind === 'user_ref' ? 'messenger' : recipient.thread.channel;
  const asChannel = (error: GraphError) => (channel === 'instagram' ? error.forInstagram() : error);
  try {
    if (senderAction !== undefined) return senderActionAnswer(call, app, page, recipient, senderAction);

    const upload = call.files.find((file) => file.field === 'filedata');
    const message = validateMessage(messageParam, channel, upload !== undefined);
    if (recipient.kind !== 'user_ref' && page.blocked.has(recipient.scoped.personId)) throw graphErrors.personUnavailable();

    const now = ctx.clock.now();
    if (recipient.kind === 'user_ref') {
      const ref = ctx.state.userRefs.get(`${page.id}:${recipient.userRef}`);
      // A checkbox opt-in allows one message within 24 h; the person's answer opens a normal thread.
      if (!ref || ref.messagesSent > 0 || now - ref.optedInAt > STANDARD_WINDOW_MS) throw graphErrors.outsideWindow();
    } else if (recipient.kind === 'id') {
      const policyError = checkPolicy({
        channel,
        messagingType,
        tag,
        templateType: message.templateType,
        thread: recipient.thread,
        app,
        now,
      });
      if (policyError) throw policyError;
    }

    const media = await resolveMedia(ctx, page, message, upload);
    const attachment = presentedAttachment(message, media);
    const response: Json = {};
    if (media?.reusableId) response.attachment_id = media.reusableId;

    if (recipient.kind === 'user_ref') {
      const ref = ctx.state.userRefs.get(`${page.id}:${recipient.userRef}`);
      if (ref) ref.messagesSent += 1;
      const mid = ctx.ids.messengerMid();
      ctx.options.logger(`send: page ${page.id} -> user_ref ${recipient.userRef} (${mid})`);
      return json({ message_id: mid, ...response });
    }

    const replyTo = replyToMid(params);
    const sent = deliverPageMessage(ctx, {
      page,
      app,
      thread: recipient.thread,
      message,
      ...(attachment ? { attachment } : {}),
      messagingType,
      ...(tag !== undefined ? { tag } : {}),
      ...(typeof params.persona_id === 'string' ? { personaId: params.persona_id } : {}),
      ...(replyTo !== undefined ? { replyTo } : {}),
    });
    ctx.options.logger(`send: page ${page.id} -> ${recipient.thread.scopedId} (${sent.mid})`);
    return json({ recipient_id: recipient.thread.scopedId, message_id: sent.mid, ...response });
  } catch (error) {
    if (error instanceof GraphError) throw asChannel(error);
    throw error;
  }
}

function replyToMid(params: Json): string | undefined {
  const replyTo = decodeParam(params.reply_to, 'reply_to');
  return isObject(replyTo) && typeof replyTo.mid === 'string' ? replyTo.mid : undefined;
}

function resolveRecipient(ctx: EmulatorContext, page: Page, pathId: string | undefined, recipient: Json): Recipient {
  const { state } = ctx;
  if (recipient.id !== undefined) {
    const id = String(recipient.id);
    const scoped = state.scopedIds.get(id);
    if (!scoped || scoped.pageId !== page.id) throw graphErrors.noMatchingUser();
    // `/{ig-id}/messages` only reaches Instagram people.
    if (pathId !== undefined && pathId === page.instagram?.id && scoped.channel !== 'instagram') throw graphErrors.noMatchingUser();
    return { kind: 'id', scoped, thread: state.threadFor(scoped) };
  }
  if (recipient.user_ref !== undefined) {
    const userRef = String(recipient.user_ref);
    if (!state.userRefs.has(`${page.id}:${userRef}`)) throw graphErrors.noMatchingUser();
    return { kind: 'user_ref', userRef };
  }
  if (recipient.notification_messages_token !== undefined) {
    const token = state.notificationTokens.get(String(recipient.notification_messages_token));
    if (!token || token.pageId !== page.id) throw graphErrors.invalidParam('Invalid notification_messages_token');
    if (ctx.clock.now() > token.expiresAt) throw graphErrors.invalidParam('The notification_messages_token has expired');
    const scoped = state.scopedIds.get(token.scopedId);
    if (!scoped) throw graphErrors.noMatchingUser();
    return { kind: 'notification', scoped, thread: state.threadFor(scoped) };
  }
  if (recipient.comment_id !== undefined || recipient.post_id !== undefined) {
    throw graphErrors.invalidParam('Private replies to comments and posts are not available in the emulator');
  }
  throw graphErrors.invalidParam('param recipient must have one of id, user_ref or notification_messages_token');
}

function senderActionAnswer(call: GraphCall, app: App, page: Page, recipient: Recipient, senderAction: unknown): GraphAnswer {
  const { ctx } = call;
  if (typeof senderAction !== 'string' || !(SENDER_ACTIONS as readonly string[]).includes(senderAction)) {
    throw graphErrors.invalidParam(`param sender_action must be one of {${SENDER_ACTIONS.join(', ')}}`);
  }
  if (recipient.kind !== 'id') throw graphErrors.invalidParam('Sender actions need a recipient id');
  if (page.blocked.has(recipient.scoped.personId)) throw graphErrors.personUnavailable();
  const policyError = checkPolicy({
    channel: recipient.thread.channel,
    messagingType: 'RESPONSE',
    tag: undefined,
    templateType: undefined,
    thread: recipient.thread,
    app,
    now: ctx.clock.now(),
  });
  if (policyError) throw policyError;
  let reaction: { mid: string; reaction?: string } | null = null;
  if (senderAction === 'react' || senderAction === 'unreact') {
    const payload = decodeParam(call.params.payload, 'payload');
    if (!isObject(payload) || typeof payload.message_id !== 'string') throw graphErrors.requiredParam('payload[message_id]');
    if (!recipient.thread.messages.some((m) => m.mid === payload.message_id)) throw graphErrors.invalidParam('param payload[message_id] is not a message of this thread');
    reaction = { mid: payload.message_id };
    if (typeof payload.reaction === 'string') reaction.reaction = payload.reaction;
  }
  applySenderAction(ctx, recipient.thread, senderAction as SenderAction, reaction);
  return json({ recipient_id: recipient.thread.scopedId });
}

interface ResolvedMedia extends FetchedMedia {
  reusableId?: string;
}

async function resolveMedia(
  ctx: EmulatorContext,
  page: Page,
  message: ValidatedMessage,
  upload: { filename: string; contentType: string; bytes: Buffer } | undefined,
): Promise<ResolvedMedia | null> {
  if (!message.attachment || !message.media) return null;
  const type = message.attachment.type;
  if (message.media.attachmentId !== undefined) {
    const stored = ctx.state.attachments.get(message.media.attachmentId);
    if (!stored || stored.pageId !== page.id) throw graphErrors.invalidAttachmentId();
    return { url: stored.url };
  }
  const fetched: FetchedMedia = upload
    ? { url: ctx.media.url(ctx.media.store(upload.filename, upload.contentType, upload.bytes), ctx.clock.now()) }
    : await fetchAttachment(ctx, message.media.url ?? '');
  if (!message.media.isReusable) return fetched;
  return { ...fetched, reusableId: storeAttachment(ctx, page, type, fetched.url).id };
}

/** The attachment as the thread and the echo show it: media points at the emulator's copy. */
function presentedAttachment(
  message: ValidatedMessage,
  media: ResolvedMedia | null,
): { type: string; payload: Json } | undefined {
  if (!message.attachment) return undefined;
  if (!media) return message.attachment;
  return { type: message.attachment.type, payload: { url: media.url } };
}
