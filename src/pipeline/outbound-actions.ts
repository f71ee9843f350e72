/**
 * Sender actions: typing on, typing off, mark seen. No message is stored and nothing is queued:
 * an action matters only now, so it is sent at once and Meta's answer is the API's answer. The
 * same contact rules apply as for messages (blocked and opted-out contacts get nothing, the window
 * must be open) and the same per-sender pacing.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { GatewayError } from '../domain/errors.js';
import { classifyError, metaFailureToGatewayError, retryDelayMs } from '../meta/errors.js';
import { MetaApiError, MetaTransportError } from '../meta/graph.js';
import type { MetaRecipient } from '../meta/graph.js';
import { markContactBlocked } from '../store/contacts.js';
import { getSender } from '../store/senders.js';
import type { PipelineContext } from './context.js';
import type { OutboundRecipient } from './outbound.js';
import { resolveContact } from './outbound.js';
import { policyFor } from './outbound-policy.js';
import { pacerFor, pacingLimits } from './pacing.js';
import { setSenderHealth } from './senders.js';

export const API_SENDER_ACTIONS = ['typing_on', 'typing_off', 'mark_seen'] as const;
export type ApiSenderAction = (typeof API_SENDER_ACTIONS)[number];

/** A request waits this long at most for its pacing slot; beyond it the caller hears 429 and retries. */
const MAX_INLINE_WAIT_MS = 1_000;

export interface SenderActionInput {
  to: OutboundRecipient;
  action: ApiSenderAction;
}

export interface SenderActionResult {
  sender_id: string;
  contact_id: string;
  action: ApiSenderAction;
  recipient_id: string | null;
}

export async function sendSenderAction(ctx: PipelineContext, accountId: string, senderId: string, input: SenderActionInput): Promise<SenderActionResult> {
  const db = ctx.store.db;
  if (!(API_SENDER_ACTIONS as readonly string[]).includes(input.action)) {
    throw new GatewayError('VALIDATION_FAILED', { field: 'action', reason: `action must be one of ${API_SENDER_ACTIONS.join(', ')}` });
  }
  const sender = await getSender(db, accountId, senderId);
  if (!sender) throw new GatewayError('NOT_FOUND', { resource: 'sender' });
  const contact = await resolveContact(db, accountId, sender, input.to ?? {});
  const decision = await policyFor(db, ctx.now(), sender, contact, {
    messaging_type: null,
    tag: null,
    content: {},
    optOutConfirmation: false,
    senderAction: true,
  });
  if (!decision.ok) throw decision.error;

  const pacer = pacerFor(ctx);
  const limits = pacingLimits(sender.settings);
  for (let wait = pacer.reserve(sender.id, 'text', limits); wait > 0; wait = pacer.reserve(sender.id, 'text', limits)) {
    if (wait > MAX_INLINE_WAIT_MS) {
      throw new GatewayError('RATE_LIMITED', { retry_after_ms: wait }, `This sender is paced; try again in ${Math.ceil(wait / 1000)} s.`);
    }
    await sleep(wait);
  }

  const recipient: MetaRecipient = contact.psid !== null ? { id: contact.psid } : { user_ref: contact.user_ref ?? '' };
  try {
    const result = await ctx.graph.senderAction(sender.page_id, ctx.secrets.open(sender.token_enc), recipient, input.action);
    pacer.observeUsage(sender.id, result.usage);
    pacer.succeeded(sender.id);
    return { sender_id: sender.id, contact_id: contact.id, action: input.action, recipient_id: result.recipient_id ?? null };
  } catch (err) {
    if (!(err instanceof MetaApiError) && !(err instanceof MetaTransportError)) throw err;
    const cls = classifyError(err);
    if (cls.backoff === 'rate_limit') pacer.rateLimited(sender.id, (strike) => retryDelayMs(cls, strike, err instanceof MetaApiError ? { usage: err.usage } : {}));
    await ctx.queue.transaction(async (trx) => {
      if (cls.senderEffect === 'reauth_required') await setSenderHealth(ctx, sender, 'reauth_required', `Meta refused the Page token: ${err.message}`, trx);
      if (cls.contactEffect === 'blocked' || cls.contactEffect === 'unavailable') await markContactBlocked(trx, contact.id, ctx.now(), ctx.now());
    });
    throw metaFailureToGatewayError(err, cls);
  }
}
