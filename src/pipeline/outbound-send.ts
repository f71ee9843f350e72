/**
 * Sending, step two: the `send` job, one per message, keyed `send:<sender>:<contact>` so one
 * conversation's messages go out one at a time and in order. Each run:
 *
 * 1. settles a part whose answer was lost (`outbound-reconcile.ts`) before anything else goes;
 * 2. checks the policy again (the window may have closed while the message waited): a refusal
 *    fails the message with its code and the queue moves on;
 * 3. builds the Meta `message` of each part once (media uploaded to the Page when needed) and
 *    keeps them, with each part's mid, in the message's `raw`, so a part that went is never sent
 *    again;
 * 4. paces per sender (`pacing.ts`) and sends part by part;
 * 5. maps a Meta error through `classifyMetaError`: rate limits reschedule without counting a
 *    failure, transient errors retry with backoff and jitter, a dead token moves the sender to
 *    `reauth_required`, a block marks the contact, everything else fails the message with the
 *    gateway's code and Meta's.
 */
import { GatewayError } from '../domain/errors.js';
import type { Channel, MessageContent, OutboundMediaType } from '../domain/glossary.js';
import { buildMetaMessages } from '../domain/content.js';
import type { ResolvedMedia } from '../domain/content.js';
import { PermanentJobError, RetryableJobError } from '../jobs/job.js';
import type { Job, JobHandler, JobReschedule } from '../jobs/job.js';
import { classifyError, metaFailureToGatewayError, retryDelayMs } from '../meta/errors.js';
import type { MetaErrorClass } from '../meta/errors.js';
import { MetaApiError, MetaTransportError } from '../meta/graph.js';
import type { MetaRecipient, MetaSendBody } from '../meta/graph.js';
import type { GraphUsage } from '../meta/usage.js';
import type { Db } from '../store/db.js';
import { getContactById, markContactBlocked, markContactUnreachable } from '../store/contacts.js';
import { getMessageById, updateMessageContent, updateOutboundSendState } from '../store/messages.js';
import { getSenderById } from '../store/senders.js';
import type { ContactRow, MessageRow, SenderRow } from '../store/schema.js';
import type { PipelineContext } from './context.js';
import { parseContent } from './inbound-resources.js';
import { advanceStatus, failureFromError } from './message-status.js';
import { groupCommitFor } from '../jobs/group-commit.js';
import { policyFor } from './outbound-policy.js';
import { DEFAULT_BACKLOG_WAIT_MS, DEFAULT_MAX_LOST_ANSWERS, DEFAULT_RECONCILE_POLL_MS, DEFAULT_RECONCILE_WAIT_MS, awaitInboundBacklog, reconcileUncertain, echoExpected } from './outbound-reconcile.js';
import { INBOUND_BATCH_JOB } from './ingress-batch.js';
import type { ReconcileOptions } from './outbound-reconcile.js';
import { resolveMediaForSender } from './outbound-media.js';
import { echoMetadata, nextPartIndex, parseSendState, serializeSendState } from './outbound-state.js';
import type { SendPart, SendState } from './outbound-state.js';
import type { SenderPacer } from './pacing.js';
import { paceClassOf, pacingLimits } from './pacing.js';
import { pauseSender, setSenderHealth } from './senders.js';

export const SEND_JOB = 'send';

export interface SendJobPayload {
  message_id: string;
}

export interface SendJobOptions extends ReconcileOptions {
  pacer: SenderPacer;
  /** Wait before retry `attempt` (1 = the first) of a failure of this class; Meta's regain time is in `usage`. */
  retryDelay: (cls: MetaErrorClass, attempt: number, usage: GraphUsage | undefined) => number;
  /** How long Meta may keep rate-limiting one message before it fails (the conversation must move on). */
  maxRateLimitedMs: number;
}

/** An hour: Meta's rate-limit windows are counted over up to an hour; past that the reply is stale. */
export const DEFAULT_MAX_RATE_LIMITED_MS = 60 * 60_000;

export const DEFAULT_SEND_OPTIONS: Omit<SendJobOptions, 'pacer'> = {
  retryDelay: (cls, attempt, usage) => retryDelayMs(cls, attempt, usage === undefined ? {} : { usage }),
  maxRateLimitedMs: DEFAULT_MAX_RATE_LIMITED_MS,
  reconcileWaitMs: DEFAULT_RECONCILE_WAIT_MS,
  reconcilePollMs: DEFAULT_RECONCILE_POLL_MS,
  backlogWaitMs: DEFAULT_BACKLOG_WAIT_MS,
  maxLostAnswers: DEFAULT_MAX_LOST_ANSWERS,
};

const PROVEN_SENT = new Set(['sent', 'delivered', 'read']);

/** Nothing left to do: failed for good, or sent with every part known to have gone. */
function settled(message: MessageRow, state: SendState): boolean {
  if (message.status === 'failed') return true;
  if (!PROVEN_SENT.has(message.status)) return false;
  return state.parts === undefined || nextPartIndex(state) >= state.parts.length;
}

// Opening a sealed token costs an AES-GCM decryption per send; senders are few and tokens change
// rarely, so the opened ones are kept (by their sealed form, so a new token is a new entry).
const openedTokens = new Map<string, string>();
const TOKEN_CACHE_LIMIT = 1_000;

function tokenOf(ctx: PipelineContext, sender: SenderRow): string {
  let token = openedTokens.get(sender.token_enc);
  if (token === undefined) {
    token = ctx.secrets.open(sender.token_enc);
    if (openedTokens.size >= TOKEN_CACHE_LIMIT) openedTokens.clear();
    openedTokens.set(sender.token_enc, token);
  }
  return token;
}

function recipientOf(contact: ContactRow): MetaRecipient {
  if (contact.psid !== null) return { id: contact.psid };
  return { user_ref: contact.user_ref ?? '' };
}

function channelOf(sender: SenderRow): Channel {
  return sender.channel === 'instagram' ? 'instagram' : 'messenger';
}

/** The Send API body of one part. `reply_to` rides on the first part only. */
function sendBody(message: MessageRow, state: SendState, content: MessageContent, part: SendPart, index: number, recipient: MetaRecipient): MetaSendBody {
  const body: MetaSendBody = { recipient, message: part.message, messaging_type: message.messaging_type ?? 'RESPONSE' };
  if (message.tag !== null) body.tag = message.tag;
  if (state.notification_type !== undefined) body.notification_type = state.notification_type;
  if (index === 0 && content.reply_to?.mid !== undefined) body.reply_to = { mid: content.reply_to.mid };
  return body;
}

/** The parts of a message, each with the gateway's echo metadata; `media_id` attachments resolved for the sender's Page. */
async function buildParts(ctx: PipelineContext, message: MessageRow, content: MessageContent, sender: SenderRow): Promise<SendPart[]> {
  const resolved = new Map<string, ResolvedMedia>();
  for (const attachment of content.attachments ?? []) {
    if (attachment.media_id === undefined || resolved.has(attachment.media_id)) continue;
    resolved.set(attachment.media_id, await resolveMediaForSender(ctx, attachment.media_id, attachment.type as OutboundMediaType, sender, tokenOf(ctx, sender)));
  }
  const built = buildMetaMessages(content, { resolveMedia: (id) => resolved.get(id) ?? null });
  return built.map((p, i) => {
    const part: SendPart = {
      message: { ...p.message, metadata: echoMetadata(message.id, message.metadata, built.length > 1 ? i : undefined) },
      kind: p.kind,
    };
    if (p.media_type !== undefined) part.media_type = p.media_type;
    return part;
  });
}

interface SendRun {
  ctx: PipelineContext;
  options: SendJobOptions;
  job: Job;
  message: MessageRow;
  state: SendState;
  sender: SenderRow;
  contact: ContactRow;
  channel: Channel;
}

/** Fails the message with `error`, applying Meta's effects on the sender and contact in the same transaction. */
async function failMessage(run: SendRun, error: GatewayError, effects?: (trx: Db) => Promise<void>): Promise<void> {
  const { ctx, message, state } = run;
  delete state.uncertain;
  delete state.inflight;
  const sentParts = (state.parts ?? []).filter((p) => p.mid !== undefined).length;
  const moved = await groupCommitFor(ctx).run(async (trx) => {
    if (effects) await effects(trx);
    return advanceStatus(trx, ctx.queue, message, 'failed', {
      at: ctx.now(),
      error: failureFromError(error),
      raw: serializeSendState(state),
      channel: run.channel,
      ...(sentParts > 0 ? { info: { parts_sent: sentParts } } : {}),
    });
  });
  const log = { account: message.account_id, sender: message.sender_id, message: message.id, code: error.code };
  if (moved === null) ctx.logger.warn(log, 'the send failed but the message had already moved on; its status stays');
  else ctx.logger.info(log, 'message failed');
}

/**
 * Saves the send state. An echo handled meanwhile may have marked parts as sent in the stored
 * copy (`applyOutboundEcho`); those marks are kept, so a part known to have gone is never resent.
 */
async function saveState(run: SendRun): Promise<void> {
  const db = run.ctx.store.db;
  const stored = await db.selectFrom('messages').select('raw').where('id', '=', run.message.id).executeTakeFirst();
  const theirs = parseSendState(stored?.raw ?? null).parts ?? [];
  (run.state.parts ?? []).forEach((part, i) => {
    const echoed = theirs[i];
    if (part.sent_at === undefined && echoed?.sent_at !== undefined) {
      part.sent_at = echoed.sent_at;
      if (echoed.mid !== undefined) part.mid = echoed.mid;
    }
  });
  await updateOutboundSendState(db, run.message.id, serializeSendState(run.state), run.ctx.now());
}

/** Meta's effects on the sender and the contact (run inside the failing message's transaction). */
function effectsOf(run: SendRun, cls: MetaErrorClass, err: unknown): (trx: Db) => Promise<void> {
  return async (trx) => {
    const { ctx, sender, contact } = run;
    const said = err instanceof Error ? err.message : String(err);
    if (cls.senderEffect === 'reauth_required') {
      await setSenderHealth(ctx, sender, 'reauth_required', `Meta refused the Page token (${cls.metaCode ?? '?'}${cls.metaSubcode !== null ? `/${cls.metaSubcode}` : ''}): ${said}`, trx);
    } else if (cls.senderEffect === 'degraded') {
      await setSenderHealth(ctx, sender, 'degraded', `Meta refused a send for a missing permission: ${said}`, trx);
    } else if (cls.senderEffect === 'paused') {
      const reason = `Meta blocked the Page from sending for policy violations: ${said}`;
      await setSenderHealth(ctx, sender, 'degraded', reason, trx);
      if (await pauseSender(trx, sender.id, reason, ctx.now())) ctx.logger.warn({ account: sender.account_id, sender: sender.id }, 'sender paused after a policy block from Meta');
    }
    // Blocked or unavailable, Meta will not deliver until the person writes again (which lifts the
    // mark): later sends are refused before they leave instead of failing at Meta one by one.
    if (cls.contactEffect === 'blocked') await markContactBlocked(trx, contact.id, ctx.now(), ctx.now());
    if (cls.contactEffect === 'unavailable') await markContactUnreachable(trx, contact.id, ctx.now(), ctx.now());
  };
}

function usageOf(err: unknown): GraphUsage | undefined {
  return err instanceof MetaApiError ? err.usage : undefined;
}

/** A failed Graph call (`phase` upload: an attachment for the Page; send: a part). */
async function handleFailure(run: SendRun, err: unknown, phase: 'upload' | 'send', partIndex: number): Promise<void | JobReschedule> {
  const { ctx, options, job, state, sender } = run;
  if (!(err instanceof MetaApiError) && !(err instanceof MetaTransportError)) throw err;
  delete state.inflight;
  const cls = classifyError(err);
  const error = metaFailureToGatewayError(err, cls);
  const log = { account: run.message.account_id, sender: sender.id, message: run.message.id, code: cls.gatewayCode, meta_code: cls.metaCode, meta_subcode: cls.metaSubcode, attempt: job.attempts };

  // The request may have reached Meta: find its echo before sending anything again. An upload
  // that went twice is harmless, so uploads retry like any transient failure.
  if (cls.reconcile && phase === 'send') {
    if (!echoExpected(run.contact)) {
      await failMessage(run, new GatewayError(cls.gatewayCode, { ...error.details, maybe_delivered: true }, `${error.message} The recipient is a user_ref, which gets no echo to check, so the message is not sent again.`));
      return;
    }
    state.lost = (state.lost ?? 0) + 1;
    state.uncertain = { part: partIndex, since: ctx.queue.now(), code: cls.gatewayCode, reason: err.message, resend: err instanceof MetaTransportError || err.code === null };
    await saveState(run);
    ctx.logger.warn(log, 'the answer to a send was lost; waiting for its echo before deciding');
    return { retryAt: ctx.queue.now() + options.reconcilePollMs };
  }

  if (cls.backoff === 'rate_limit') {
    const queueNow = ctx.queue.now();
    state.rate_limited_since ??= queueNow;
    if (queueNow - state.rate_limited_since > options.maxRateLimitedMs) {
      await failMessage(run, error);
      return;
    }
    const wait = options.pacer.rateLimited(sender.id, (strike) => options.retryDelay(cls, strike, usageOf(err)));
    await saveState(run);
    ctx.logger.warn({ ...log, wait_ms: wait }, 'Meta rate-limited the sender; the message waits');
    return { retryAt: queueNow + wait };
  }

  if (cls.retryable && job.attempts < job.maxAttempts) {
    await saveState(run);
    ctx.logger.warn(log, 'send failed; retrying with backoff');
    throw new RetryableJobError(error.message, { retryAt: ctx.queue.now() + options.retryDelay(cls, job.attempts, usageOf(err)), cause: err });
  }
  await failMessage(run, error, effectsOf(run, cls, err));
}

async function runSend(ctx: PipelineContext, options: SendJobOptions, job: Job, messageId: string): Promise<void | JobReschedule> {
  const db = ctx.store.db;
  const message = await getMessageById(db, messageId);
  if (message === undefined || message.direction !== 'outbound') return;
  const state = parseSendState(message.raw);
  if (settled(message, state)) return;
  const [sender, contact] = await Promise.all([getSenderById(db, message.sender_id), getContactById(db, message.contact_id)]);
  if (sender === undefined || contact === undefined) throw new PermanentJobError(`message ${message.id} has no sender or contact row`);
  const run: SendRun = { ctx, options, job, message, state, sender, contact, channel: channelOf(sender) };
  const content = parseContent(message.content);

  // 1. A send whose answer was lost is settled before anything else goes. A part still marked
  // in flight means the previous run stopped during its call: the same question.
  const stopped = state.inflight;
  if (stopped !== undefined) {
    delete state.inflight;
    if (state.parts?.[stopped.part]?.sent_at === undefined && state.uncertain === undefined) {
      state.lost = (state.lost ?? 0) + 1;
      state.uncertain = { part: stopped.part, since: stopped.since, code: 'UPSTREAM_TIMEOUT', reason: 'the gateway stopped while the send was in flight', resend: true };
      ctx.logger.warn({ account: message.account_id, sender: message.sender_id, message: message.id, part: stopped.part }, 'a send was in flight when its run stopped; checking for its echo');
    }
    await saveState(run);
  }
  if (state.uncertain !== undefined) {
    const queueNow = ctx.queue.now();
    const outcome = await awaitInboundBacklog(reconcileUncertain(message, state, contact, queueNow, options), state, contact, queueNow, options, () => ctx.queue.hasLiveJobs(INBOUND_BATCH_JOB, queueNow - options.reconcilePollMs));
    if (outcome.kind === 'wait') return { retryAt: outcome.retryAt };
    if (outcome.kind === 'give_up') {
      await failMessage(run, outcome.error);
      return;
    }
    const part = state.parts?.[state.uncertain.part];
    if (outcome.kind === 'echoed' && part !== undefined && part.sent_at === undefined) {
      part.sent_at = ctx.now();
      if (outcome.mid !== null) part.mid = outcome.mid;
    }
    delete state.uncertain;
    // A one-part message already moved to sent by its echo has nothing left to do.
    if (settled(message, state)) {
      await saveState(run);
      return;
    }
  }

  const parts = state.parts;
  const remaining = parts === undefined || nextPartIndex(state) < parts.length;
  if (remaining) {
    // 2. The policy again, just before the send.
    const decision = await policyFor(db, ctx.now(), sender, contact, {
      messaging_type: message.messaging_type,
      tag: message.tag,
      content,
      optOutConfirmation: state.opt_out_confirmation === true,
      excludeMessageId: message.id,
    });
    if (!decision.ok) {
      await failMessage(run, decision.error);
      return;
    }
  }

  // 3. The parts, built once.
  const built = state.parts === undefined;
  if (state.parts === undefined) {
    try {
      state.parts = await buildParts(ctx, message, content, sender);
    } catch (err) {
      if (err instanceof GatewayError) {
        await failMessage(run, err);
        return;
      }
      return handleFailure(run, err, 'upload', 0);
    }
  }
  const all = state.parts;
  const limits = pacingLimits(sender.settings);
  const recipient = recipientOf(contact);
  const token = tokenOf(ctx, sender);

  // 4. Part by part, paced.
  for (let i = nextPartIndex(state); i < all.length; i = nextPartIndex(state)) {
    const part = all[i] as SendPart;
    const wait = options.pacer.reserve(sender.id, paceClassOf(part.media_type), limits);
    if (wait > 0) {
      // Kept so the media uploaded for the parts is not uploaded again on the next run.
      if (built || run.message.status === 'sending') await saveState(run);
      return { retryAt: ctx.queue.now() + wait };
    }
    state.inflight = { part: i, since: ctx.queue.now() };
    if (run.message.status !== 'sending' && !PROVEN_SENT.has(run.message.status)) {
      const moved = await groupCommitFor(ctx).run((trx) =>
        advanceStatus(trx, ctx.queue, run.message, 'sending', { at: ctx.now(), raw: serializeSendState(state), channel: run.channel }),
      );
      if (moved === null) {
        // Someone else moved the message meanwhile: stop if it is decided, else go on from the stored row.
        const fresh = await getMessageById(db, message.id);
        if (fresh === undefined || settled(fresh, parseSendState(fresh.raw)) || fresh.status === 'failed') return;
        run.message = fresh;
        await saveState(run);
      } else {
        run.message = moved;
      }
    } else {
      await saveState(run);
    }
    // Receipts cover messages sent at or before their watermark (Meta's time of the message), so
    // a part counts as sent when its request left, never after Meta stamped it.
    const leftAt = ctx.now();
    let result;
    try {
      result = await ctx.graph.sendMessage(sender.page_id, token, sendBody(run.message, state, content, part, i, recipient));
    } catch (err) {
      return handleFailure(run, err, 'send', i);
    }
    options.pacer.observeUsage(sender.id, result.usage);
    options.pacer.succeeded(sender.id);
    part.mid = result.message_id;
    part.sent_at = leftAt;
    if (result.attachment_id !== undefined) part.attachment_id = result.attachment_id;
    delete state.inflight;
    delete state.rate_limited_since;
    if (nextPartIndex(state) < all.length) await saveState(run);
  }

  // 5. Every part went.
  const first = all[0];
  const firstMid = first?.mid;
  const reusable = withReusableIds(content, all);
  const moved = await groupCommitFor(ctx).run(async (trx) => {
    // Media sent by URL with is_reusable: the attachment ids Meta gave join the stored content, where
    // the business finds them to send the same file again without uploading it.
    if (reusable !== null) await updateMessageContent(trx, run.message.id, JSON.stringify(reusable), ctx.now());
    return advanceStatus(trx, ctx.queue, run.message, 'sent', {
      at: first?.sent_at ?? ctx.now(),
      now: ctx.now(),
      ...(firstMid !== undefined ? { mid: firstMid } : {}),
      raw: serializeSendState(state),
      channel: run.channel,
      info: all.length > 1 ? { parts: all.length } : {},
    });
  });
  if (moved === null) await saveState(run);
}

/**
 * The content with each attachment's reusable `attachment_id` filled in from the media part that
 * sent it (media parts go in the order of the attachments), or null when Meta gave none.
 */
function withReusableIds(content: MessageContent, parts: readonly SendPart[]): MessageContent | null {
  const media = parts.filter((p) => p.kind === 'media');
  if (!media.some((p) => p.attachment_id !== undefined) || content.attachments === undefined) return null;
  return {
    ...content,
    attachments: content.attachments.map((a, i) => {
      const id = media[i]?.attachment_id;
      return id !== undefined && a.attachment_id === undefined ? { ...a, attachment_id: id } : a;
    }),
  };
}

/** The `send` job handler. */
export function sendJobHandler(ctx: PipelineContext, options: Partial<SendJobOptions> & { pacer: SenderPacer }): JobHandler {
  const opts: SendJobOptions = { ...DEFAULT_SEND_OPTIONS, ...options };
  return async (job) => {
    const payload = job.payload as Partial<SendJobPayload> | null;
    if (typeof payload?.message_id !== 'string') throw new PermanentJobError('a send job needs a message_id');
    const messageId = payload.message_id;
    try {
      return await runSend(ctx, opts, job, messageId);
    } catch (err) {
      if (err instanceof RetryableJobError || err instanceof PermanentJobError || job.attempts < job.maxAttempts) throw err;
      // The last try failed on our side (the database, a bug): decide the message's fate so its
      // conversation moves on, then let the job die with the error for an operator to see.
      const message = await getMessageById(ctx.store.db, messageId);
      const sender = message && (await getSenderById(ctx.store.db, message.sender_id));
      if (message && sender) {
        await groupCommitFor(ctx).run((trx) =>
          advanceStatus(trx, ctx.queue, message, 'failed', {
            at: ctx.now(),
            error: failureFromError(new GatewayError('INTERNAL', { reason: (err as Error).message })),
            channel: channelOf(sender),
          }),
        );
      }
      throw err;
    }
  };
}
