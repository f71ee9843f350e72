/**
 * Settling a send whose answer was lost. The Send API has no idempotency key: a request that
 * reached Meta but whose answer never came (a timeout, a reset connection) may have gone out. Its
 * echo carries the gateway's metadata (`{"sb": <message id>, …}`), and the inbound pipeline notes
 * the echo on the message (`applyOutboundEcho`, or the mid and status when it matches by metadata).
 * So the send job waits a bounded time for that echo, checking again every few seconds, and only
 * sends again when none came, and not while webhooks it already received wait to be processed (the
 * echo may be one of them). A recipient known only by a checkbox `user_ref` gets no echo at all:
 * there the message fails as uncertain rather than risk a second copy.
 */
import { GatewayError } from '../domain/errors.js';
import type { ErrorCode } from '../domain/errors.js';
import { isErrorCode } from '../domain/errors.js';
import type { ContactRow, MessageRow } from '../store/schema.js';
import type { SendState } from './outbound-state.js';

export interface ReconcileOptions {
  /** How long to wait for the echo before deciding the send did not go out. */
  reconcileWaitMs: number;
  /** How often to look for it meanwhile. */
  reconcilePollMs: number;
  /** Lost answers a message may have before it fails instead of being sent again. */
  maxLostAnswers: number;
  /**
   * How much longer than `reconcileWaitMs` to wait while webhooks the gateway has received are
   * still waiting to be processed (the echo may be among them).
   */
  backlogWaitMs: number;
}

/**
 * Meta's echo comes within seconds of a send; 30 s covers a slow webhook delivery and a busy
 * inbound queue. Waiting longer only delays the customer's reply when the send really failed.
 */
export const DEFAULT_RECONCILE_WAIT_MS = 30_000;
/** Looking every 2 s: a settled send moves on quickly, and a waiting one costs a query per look. */
export const DEFAULT_RECONCILE_POLL_MS = 2_000;
/** Three lost answers for one message means Meta is not answering; stop before the customer gets copies. */
export const DEFAULT_MAX_LOST_ANSWERS = 3;
/**
 * An inbound backlog (a burst, a restart after downtime) can hold the echo for minutes; ten more
 * minutes cover that, while an inbound job stuck on a bad batch does not hold a send for ever.
 */
export const DEFAULT_BACKLOG_WAIT_MS = 10 * 60_000;

export type ReconcileOutcome =
  /** The part went out: its echo was seen (`mid` when known). */
  | { kind: 'echoed'; mid: string | null }
  /** No echo yet: look again at `retryAt` (the job queue's clock). */
  | { kind: 'wait'; retryAt: number }
  /** No echo came within the wait: sending again is safe. */
  | { kind: 'resend' }
  /** It cannot be known, or too many answers were lost: the message fails with this error. */
  | { kind: 'give_up'; error: GatewayError };

const PROVEN_SENT = new Set(['sent', 'delivered', 'read']);

/** Only a PSID/IGSID recipient produces echoes; a `user_ref` send never does. */
export function echoExpected(contact: ContactRow): boolean {
  return contact.psid !== null;
}

function uncertainError(code: string, details: Record<string, string | number | boolean>, message?: string): GatewayError {
  const errorCode: ErrorCode = isErrorCode(code) ? code : 'UPSTREAM_TIMEOUT';
  return new GatewayError(errorCode, { maybe_delivered: true, ...details }, message);
}

/**
 * What to do about `state.uncertain`, given the message as stored now. `queueNow` is the job
 * queue's clock (the one `since` and `retryAt` use).
 */
export function reconcileUncertain(message: MessageRow, state: SendState, contact: ContactRow, queueNow: number, options: ReconcileOptions): ReconcileOutcome {
  const uncertain = state.uncertain;
  if (uncertain === undefined) return { kind: 'resend' };
  const parts = state.parts ?? [];
  const part = parts[uncertain.part];
  if (part?.sent_at !== undefined) return { kind: 'echoed', mid: part.mid ?? null };
  // A one-part message matched by its echo's metadata gets its mid (and status) from the echo.
  if (parts.length <= 1 && (message.mid !== null || PROVEN_SENT.has(message.status))) return { kind: 'echoed', mid: message.mid };

  if (!echoExpected(contact)) {
    return {
      kind: 'give_up',
      error: uncertainError(
        uncertain.code,
        { reason: uncertain.reason },
        'The answer to the send was lost and a user_ref recipient gets no echo to check: the message may or may not have been delivered, so it is not sent again.',
      ),
    };
  }
  if (queueNow - uncertain.since < options.reconcileWaitMs) {
    return { kind: 'wait', retryAt: Math.min(uncertain.since + options.reconcileWaitMs, queueNow + options.reconcilePollMs) };
  }
  if (!uncertain.resend) {
    return {
      kind: 'give_up',
      error: uncertainError(uncertain.code, { reason: uncertain.reason, waited_ms: options.reconcileWaitMs }),
    };
  }
  if ((state.lost ?? 0) >= options.maxLostAnswers) {
    return {
      kind: 'give_up',
      error: uncertainError(
        uncertain.code,
        { reason: uncertain.reason, lost_answers: state.lost ?? 0 },
        `Meta did not answer ${state.lost ?? 0} sends of this message and no echo showed any of them went out; it is not sent again.`,
      ),
    };
  }
  return { kind: 'resend' };
}

/**
 * The decision after the echo's wait, once more: while webhooks the gateway received more than a
 * poll ago are not yet processed (`inboundBacklog`; the ones just received are normal traffic, done
 * in milliseconds), the echo may be among them, so a resend or a give-up waits (up to
 * `backlogWaitMs` more) instead of risking a second copy. The backlog is only asked for
 * (`inboundBacklog` is called) when the decision would otherwise be final.
 */
export async function awaitInboundBacklog(
  outcome: ReconcileOutcome,
  state: SendState,
  contact: ContactRow,
  queueNow: number,
  options: ReconcileOptions,
  inboundBacklog: () => Promise<boolean>,
): Promise<ReconcileOutcome> {
  if (outcome.kind !== 'resend' && outcome.kind !== 'give_up') return outcome;
  const since = state.uncertain?.since;
  if (since === undefined || !echoExpected(contact)) return outcome;
  if (queueNow - since >= options.reconcileWaitMs + options.backlogWaitMs) return outcome;
  return (await inboundBacklog()) ? { kind: 'wait', retryAt: queueNow + options.reconcilePollMs } : outcome;
}
