/**
 * Sending, step one: accept a message. The request is checked (sender, recipient, content, the
 * policy with its window and tag rules) before anything is written, so the API can refuse at once
 * with a code that says why; then the message, its first statuses and its `send` job commit in
 * one transaction (with the Idempotency-Key's record when there is one). The send itself is
 * `outbound-send.ts`; timed-out sends are settled in `outbound-reconcile.ts`.
 */
import type { MessageOrigin, MessageResource } from '../domain/events.js';
import { GatewayError } from '../domain/errors.js';
import type { Channel, JsonObject, MessageContent, NotificationType } from '../domain/glossary.js';
import { NOTIFICATION_TYPES } from '../domain/glossary.js';
import { newId } from '../domain/ids.js';
import { normalizeOutboundContent } from '../domain/content.js';
import type { JobHandler } from '../jobs/job.js';
import type { Db } from '../store/db.js';
import { findContactByPsid, findContactByUserRef, getContact, lockContactRow } from '../store/contacts.js';
import { ensureConversation } from '../store/conversations.js';
import { insertMessage } from '../store/messages.js';
import { getSender } from '../store/senders.js';
import type { ContactRow, MessageRow, SenderRow } from '../store/schema.js';
import type { PipelineContext } from './context.js';
import { runIdempotent } from './idempotency.js';
import type { IdempotentResult, RecordResult } from './idempotency.js';
import { messageResource } from './inbound-resources.js';
import { initialStatusLog, recordInitialStatuses } from './message-status.js';
import { groupCommitFor } from '../jobs/group-commit.js';
import { policyFor } from './outbound-policy.js';
import { checkCallerMetadata, serializeSendState } from './outbound-state.js';
import type { SendState } from './outbound-state.js';
import { SEND_JOB, sendJobHandler } from './outbound-send.js';
import type { SendJobOptions, SendJobPayload } from './outbound-send.js';
import { pacerFor } from './pacing.js';

export { SEND_JOB } from './outbound-send.js';

/** Who a message goes to: a contact id, a PSID/IGSID, or a checkbox opt-in's `user_ref`. */
export interface OutboundRecipient {
  contact_id?: string;
  psid?: string;
  user_ref?: string;
}

/** The native send body (`POST /v1/messages`); content fields are validated by `src/domain/content.ts`. */
export interface OutboundMessageInput {
  sender_id: string;
  to: OutboundRecipient;
  text?: unknown;
  attachments?: unknown;
  quick_replies?: unknown;
  template?: unknown;
  message?: unknown;
  messaging_type?: string;
  tag?: string;
  notification_type?: string;
  reply_to?: unknown;
  metadata?: string;
  client_ref?: string;
  status_callback?: string;
}

export interface AcceptOptions {
  origin?: MessageOrigin;
  /** The `Idempotency-Key` header. */
  idempotencyKey?: string;
  /** The one confirmation after a stop word (reaches a contact who just opted out). */
  optOutConfirmation?: boolean;
  /** `checkOutboundUrls` already ran on this input (outside the transaction). */
  urlsChecked?: boolean;
}

/** Everything checked about a message before it is written. */
export interface PreparedMessage {
  sender: SenderRow;
  contact: ContactRow;
  channel: Channel;
  content: MessageContent;
  messagingType: string;
  tag: string | null;
  state: SendState;
  input: OutboundMessageInput;
  origin: MessageOrigin;
  id: string;
}

/** Where a field's error points, as the API names it. */
function field(err: unknown, name: string): unknown {
  if (err instanceof GatewayError) return new GatewayError(err.code, { ...err.details, field: name }, err.message);
  return err;
}

export async function resolveContact(db: Db, accountId: string, sender: SenderRow, to: OutboundRecipient): Promise<ContactRow> {
  const given = (['contact_id', 'psid', 'user_ref'] as const).filter((k) => typeof to[k] === 'string' && to[k] !== '');
  if (given.length !== 1) {
    throw new GatewayError('VALIDATION_FAILED', { field: 'to', reason: 'give exactly one of to.contact_id, to.psid or to.user_ref' });
  }
  if (to.contact_id !== undefined) {
    const contact = await getContact(db, accountId, to.contact_id);
    if (!contact) throw new GatewayError('NOT_FOUND', { resource: 'contact', field: 'to.contact_id' });
    if (contact.sender_id !== sender.id) {
      throw new GatewayError('VALIDATION_FAILED', {
        field: 'to.contact_id',
        reason: `the contact belongs to sender ${contact.sender_id}, not ${sender.id} (ids of people are scoped to one Page or Instagram account)`,
      });
    }
    return contact;
  }
  if (to.psid !== undefined) {
    const contact = await findContactByPsid(db, sender.id, to.psid);
    if (!contact) {
      throw new GatewayError(
        'NOT_FOUND',
        { resource: 'contact', field: 'to.psid', psid: to.psid },
        `No person with this ${sender.channel === 'instagram' ? 'IGSID' : 'PSID'} has written to this sender: the customer writes first.`,
      );
    }
    return contact;
  }
  const contact = await findContactByUserRef(db, sender.id, to.user_ref as string);
  if (!contact) {
    throw new GatewayError(
      'NOT_FOUND',
      { resource: 'contact', field: 'to.user_ref' },
      'No checkbox opt-in with this user_ref reached this sender.',
    );
  }
  return contact;
}

/** How many Send API calls the content takes (Meta carries one attachment per message). */
export function partCount(content: MessageContent): number {
  if (content.message !== undefined) return 1;
  return (content.text !== undefined ? 1 : 0) + (content.attachments?.length ?? 0) + (content.template !== undefined ? 1 : 0);
}

function messageKind(content: MessageContent): string {
  if (content.message !== undefined) return 'raw';
  if (content.template !== undefined) return 'template';
  if (content.attachments !== undefined && content.text === undefined) return 'attachments';
  return 'text';
}

async function checkMedia(db: Db, accountId: string, content: MessageContent): Promise<void> {
  const attachments = content.attachments ?? [];
  for (let i = 0; i < attachments.length; i += 1) {
    const mediaId = attachments[i]?.media_id;
    if (mediaId === undefined) continue;
    const media = await db.selectFrom('media').select(['id', 'status', 'meta_attachment_id']).where('account_id', '=', accountId).where('id', '=', mediaId).executeTakeFirst();
    if (!media) throw new GatewayError('CONTENT_INVALID', { field: `attachments[${i}].media_id`, reason: `no media ${mediaId} in this account` });
    if (media.status !== 'stored' && media.meta_attachment_id === null) {
      throw new GatewayError('CONTENT_INVALID', { field: `attachments[${i}].media_id`, reason: `media ${mediaId} is ${media.status}, not stored` });
    }
  }
}

/**
 * Checks the URLs a message names (its status callback, its attachments' URLs) against the
 * private ranges. Apart from the rest of the checks because a URL check may resolve a name: it
 * runs before the transaction, never inside one that other writes share.
 */
export async function checkOutboundUrls(ctx: PipelineContext, input: OutboundMessageInput): Promise<void> {
  if (typeof input.status_callback === 'string') {
    try {
      await ctx.urlGuard.check(input.status_callback);
    } catch (err) {
      throw field(err, 'status_callback');
    }
  }
  // Meta fetches attachment URLs, but a URL into the gateway's own network has no business in a
  // message either: it is refused here, like every URL the gateway is handed.
  const attachments = Array.isArray(input.attachments) ? (input.attachments as unknown[]) : [];
  for (let i = 0; i < attachments.length; i += 1) {
    const url = (attachments[i] as { url?: unknown } | null)?.url;
    if (typeof url !== 'string') continue;
    try {
      await ctx.urlGuard.check(url);
    } catch (err) {
      throw field(err, `attachments[${i}].url`);
    }
  }
}

/**
 * Checks a message completely without writing anything: the sender, the recipient, the content,
 * the status callback URL and the policy. Throws the GatewayError the API answers with. Inside a
 * transaction pass it as `db` (SQLite has one connection: reading beside it would wait for ever).
 */
export async function prepareOutbound(
  ctx: PipelineContext,
  accountId: string,
  input: OutboundMessageInput,
  options: AcceptOptions = {},
  db: Db = ctx.store.db,
): Promise<PreparedMessage> {
  const sender = await getSender(db, accountId, input.sender_id);
  if (!sender) throw new GatewayError('NOT_FOUND', { resource: 'sender', field: 'sender_id' });
  const channel: Channel = sender.channel === 'instagram' ? 'instagram' : 'messenger';
  const contact = await resolveContact(db, accountId, sender, input.to ?? {});

  const content = normalizeOutboundContent(
    { text: input.text, attachments: input.attachments, quick_replies: input.quick_replies, template: input.template, message: input.message, reply_to: input.reply_to },
    { channel },
  );
  let metadata = input.metadata;
  if (content.message !== undefined && typeof content.message['metadata'] === 'string') {
    // A raw message's own metadata rides inside the gateway's, so its echo is still recognised.
    if (metadata !== undefined) throw new GatewayError('CONTENT_INVALID', { field: 'metadata', reason: 'give metadata either in the body or inside message, not both' });
    metadata = content.message['metadata'];
    const { metadata: _own, ...rest } = content.message;
    content.message = rest as JsonObject;
  }
  const id = newId('msg', ctx.now());
  checkCallerMetadata(id, metadata, partCount(content));
  await checkMedia(db, accountId, content);

  const state: SendState = {};
  if (input.notification_type !== undefined) {
    if (!(NOTIFICATION_TYPES as readonly string[]).includes(input.notification_type)) {
      throw new GatewayError('VALIDATION_FAILED', { field: 'notification_type', reason: `notification_type must be one of ${NOTIFICATION_TYPES.join(', ')}` });
    }
    state.notification_type = input.notification_type as NotificationType;
  }
  if (options.optOutConfirmation === true) state.opt_out_confirmation = true;
  if (options.urlsChecked !== true) await checkOutboundUrls(ctx, input);

  const decision = await policyFor(db, ctx.now(), sender, contact, {
    messaging_type: input.messaging_type ?? null,
    tag: input.tag ?? null,
    content,
    optOutConfirmation: options.optOutConfirmation === true,
  });
  if (!decision.ok) throw decision.error;

  return {
    sender,
    contact,
    channel,
    content,
    messagingType: decision.messaging_type,
    tag: decision.tag,
    state,
    input: metadata === input.metadata ? input : { ...input, metadata },
    origin: options.origin ?? 'api',
    id,
  };
}

/** A new message is written `queued`, having been `accepted`: both are in its log and have their events. */
const FIRST_STATUSES = ['accepted', 'queued'] as const;

/**
 * Writes a prepared message in the caller's transaction: its conversation (opened when the contact
 * has none), the row as `queued` with its `accepted` and `queued` statuses and events, and its
 * `send` job keyed by sender and contact so a conversation's messages go out in order.
 */
export async function insertOutbound(trx: Db, ctx: PipelineContext, prepared: PreparedMessage): Promise<MessageRow> {
  const now = ctx.now();
  const { sender, contact, input } = prepared;
  if (ctx.store.engine === 'postgres') await lockContactRow(trx, contact.id);
  const { conversation } = await ensureConversation(trx, { account_id: sender.account_id, sender_id: sender.id, contact_id: contact.id }, { at: now, reopen: false }, now);
  const row: MessageRow = {
    id: prepared.id,
    account_id: sender.account_id,
    sender_id: sender.id,
    contact_id: contact.id,
    conversation_id: conversation.id,
    direction: 'outbound',
    mid: null,
    kind: messageKind(prepared.content),
    content: JSON.stringify(prepared.content),
    raw: Object.keys(prepared.state).length === 0 ? null : serializeSendState(prepared.state),
    status: 'queued',
    error_code: null,
    error_message: null,
    meta_error_code: null,
    meta_error_subcode: null,
    origin: prepared.origin,
    client_ref: input.client_ref ?? null,
    metadata: input.metadata ?? null,
    messaging_type: prepared.messagingType,
    tag: prepared.tag,
    status_callback: input.status_callback ?? null,
    meta_timestamp: null,
    created_at: now,
    updated_at: now,
    sent_at: null,
    delivered_at: null,
    read_at: null,
    status_log: initialStatusLog(FIRST_STATUSES, { at: now }),
  };
  await insertMessage(trx, row);
  // The account's share of the send lane: its backlog does not hold back other accounts' sends.
  await ctx.queue.enqueue(trx, { kind: SEND_JOB, key: sendKey(sender.id, contact.id), fairKey: row.account_id, payload: { message_id: row.id } satisfies SendJobPayload });
  await recordInitialStatuses(trx, ctx.queue, row, FIRST_STATUSES, { at: now, channel: prepared.channel });
  return row;
}

/** One conversation's sends run one at a time, in order. */
export function sendKey(senderId: string, contactId: string): string {
  return `send:${senderId}:${contactId}`;
}

/**
 * `POST /v1/messages`: checks, then commits the message with its send job; answers 202 with the
 * message. With an Idempotency-Key a repeat returns the first answer and sends nothing new.
 */
export async function acceptOutboundMessage(
  ctx: PipelineContext,
  accountId: string,
  input: OutboundMessageInput,
  options: AcceptOptions = {},
): Promise<IdempotentResult<MessageResource>> {
  return runIdempotent<MessageResource>(
    ctx.store.db,
    { accountId, key: options.idempotencyKey, scope: 'POST /v1/messages', body: input, now: ctx.now() },
    async (record: RecordResult) => {
      await checkOutboundUrls(ctx, input);
      // The reads and the policy run in the transaction that writes the message: on SQLite the
      // transaction holds the one connection, so they run at once instead of each waiting for it,
      // and what the policy decided on is what the message is written against.
      const body = await groupCommitFor(ctx).run(async (trx) => {
        const prepared = await prepareOutbound(ctx, accountId, input, { ...options, urlsChecked: true }, trx);
        const row = await insertOutbound(trx, ctx, prepared);
        const resource = messageResource(row, prepared.channel, prepared.content);
        await record(trx, 202, resource);
        return resource;
      }, { urgent: true });
      return { status: 202, body };
    },
  );
}

/** The job handlers the server registers for outbound work. */
export function outboundJobHandlers(ctx: PipelineContext, options: Partial<SendJobOptions> = {}): Record<string, JobHandler> {
  const pacer = options.pacer ?? pacerFor(ctx);
  return {
    [SEND_JOB]: sendJobHandler(ctx, { ...options, pacer }),
  };
}
