/**
 * The confirmation after a stop word. When a customer's message opts them out (the inbound
 * pipeline marks `opted_out_at` and emits `message.received` with `opt_out: 'stop'`) and the
 * sender has `settings.opt_out.confirm_text`, that text is sent once, through the same send path
 * as any reply (origin `auto_reply`), even though the contact is now opted out: it is the one
 * message the policy lets through (`is_opt_out_confirmation`). Nothing else reaches them until a
 * start word.
 */
import { isGatewayError } from '../domain/errors.js';
import type { Db } from '../store/db.js';
import type { ContactRow, MessageRow, SenderRow } from '../store/schema.js';
import type { PipelineContext } from './context.js';
import { insertOutbound, prepareOutbound } from './outbound.js';
import { senderSettings } from './outbound-policy.js';

/** The sender's confirmation text, or null when none is configured. */
export function optOutConfirmText(sender: SenderRow): string | null {
  const optOut = senderSettings(sender)['opt_out'];
  if (typeof optOut !== 'object' || optOut === null) return null;
  const text = (optOut as Record<string, unknown>)['confirm_text'];
  return typeof text === 'string' && text.trim() !== '' ? text : null;
}

/**
 * Queues the confirmation in the caller's transaction (the one that marked the contact opted
 * out, so both commit together and a retried webhook batch, deduplicated by mid, cannot send it
 * twice). Returns the message, or null when there is nothing to send or the policy refuses (a
 * sender awaiting reauthorisation, a closed window): the opt-out itself stands either way.
 */
export async function confirmOptOut(trx: Db, ctx: PipelineContext, sender: SenderRow, contact: ContactRow): Promise<MessageRow | null> {
  const text = optOutConfirmText(sender);
  if (text === null) return null;
  try {
    const prepared = await prepareOutbound(
      ctx,
      sender.account_id,
      { sender_id: sender.id, to: { contact_id: contact.id }, text },
      { origin: 'auto_reply', optOutConfirmation: true },
      trx,
    );
    return await insertOutbound(trx, ctx, prepared);
  } catch (err) {
    if (!isGatewayError(err)) throw err;
    ctx.logger.warn({ account: sender.account_id, sender: sender.id, contact: contact.id, code: err.code }, 'the opt-out confirmation was not sent');
    return null;
  }
}
