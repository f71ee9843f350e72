import type { ErrorCode } from '../domain/errors.js';
import { ERROR_CATALOGUE, GatewayError } from '../domain/errors.js';
import { MetaApiError, MetaTransportError } from './graph.js';
import type { TransportErrorKind } from './graph.js';
import type { GraphUsage } from './usage.js';

/**
 * ONE table maps Meta's `(code, subcode)` to what the gateway does: its error code, whether a
 * retry is safe, and the effect on the sender and the contact. Source for every row: the Errors
 * table in PLATFORM.md (Meta's Send API error reference and observed payloads).
 */

export type SenderEffect = 'reauth_required' | 'degraded' | 'paused' | 'rate_limited';
export type ContactEffect = 'blocked' | 'unavailable';
export type BackoffClass = 'transient' | 'rate_limit';

export interface MetaErrorRule {
  /** A code, or an inclusive range of codes; absent = any code with this subcode. */
  code?: number | readonly [number, number];
  subcode?: number;
  gatewayCode: ErrorCode;
  retryable: boolean;
  senderEffect?: SenderEffect;
  contactEffect?: ContactEffect;
  backoff?: BackoffClass;
  /** Meta may have delivered the message: check the echo before deciding (never a blind retry). */
  reconcile?: boolean;
  why: string;
}

const TOKEN_DEAD = { gatewayCode: 'META_TOKEN_INVALID', retryable: false, senderEffect: 'reauth_required' } as const;
const RATE_LIMITED = {
  gatewayCode: 'META_RATE_LIMITED',
  retryable: true,
  senderEffect: 'rate_limited',
  backoff: 'rate_limit',
} as const;
const TRANSIENT = { gatewayCode: 'META_TEMPORARY', retryable: true, backoff: 'transient' } as const;

export const META_ERROR_TABLE: readonly MetaErrorRule[] = [
  // Transient failures: Meta asks to retry after a while.
  { code: 1, subcode: 1357046, gatewayCode: 'META_DELIVERY_UNCERTAIN', retryable: false, reconcile: true, why: 'invalid reply after a batched send: the message may already be delivered' },
  { code: 1, ...TRANSIENT, why: 'unknown error, Meta says temporary' },
  { code: 2, ...TRANSIENT, why: 'service temporarily unavailable' },
  { code: 1200, ...TRANSIENT, why: 'temporary send message failure' },

  // Rate limits: back off for the time the usage header names.
  { code: 4, ...RATE_LIMITED, why: 'application request limit reached' },
  { code: 17, ...RATE_LIMITED, why: 'user request limit reached' },
  { code: 32, ...RATE_LIMITED, why: 'Page request limit reached' },
  { code: 341, ...RATE_LIMITED, why: 'application limit reached' },
  { code: 613, ...RATE_LIMITED, why: 'Send API calls exceeded the rate limit' },
  { code: [80000, 80014], ...RATE_LIMITED, why: 'business use case rate limit (Messenger: 80006)' },

  // Window.
  { code: 10, subcode: 2018278, gatewayCode: 'WINDOW_CLOSED', retryable: false, why: 'sent outside the allowed window' },
  { code: 10, subcode: 2534022, gatewayCode: 'WINDOW_CLOSED', retryable: false, why: 'Instagram: sent outside the allowed window' },

  // The person cannot be reached.
  { code: 10, subcode: 2018108, gatewayCode: 'META_USER_UNAVAILABLE', retryable: false, contactEffect: 'unavailable', why: 'the person is not reachable' },
  { code: 200, subcode: 1545041, gatewayCode: 'META_USER_UNAVAILABLE', retryable: false, contactEffect: 'blocked', why: "the person isn't receiving messages from the Page (blocked it)" },
  { code: 551, subcode: 1545041, gatewayCode: 'META_USER_UNAVAILABLE', retryable: false, contactEffect: 'unavailable', why: "this person isn't available right now" },
  { code: 551, gatewayCode: 'META_USER_UNAVAILABLE', retryable: false, contactEffect: 'unavailable', why: "this person isn't available right now" },

  // Bad requests.
  { code: 100, subcode: 2018001, gatewayCode: 'META_RECIPIENT_NOT_FOUND', retryable: false, why: 'no matching user: the PSID does not belong to this Page' },
  { code: 100, subcode: 2018109, gatewayCode: 'META_ATTACHMENT_TOO_LARGE', retryable: false, why: 'attachment size exceeds the allowable limit' },
  { code: 100, subcode: 2018047, gatewayCode: 'META_ATTACHMENT_FAILED', retryable: false, why: 'upload attachment failure: Meta could not fetch the URL' },
  { code: 100, gatewayCode: 'META_INVALID_PARAMETER', retryable: false, why: 'invalid parameter (also retired tags after 2026-04-27)' },
  { subcode: 2018218, gatewayCode: 'META_PROFILE_UNAVAILABLE', retryable: false, why: 'no profile available for this person: normal, not a fault' },
  { subcode: 2300052, gatewayCode: 'META_MARKETING_LIMIT', retryable: false, why: 'marketing message sent too soon after the previous one' },
  { code: 2300052, gatewayCode: 'META_MARKETING_LIMIT', retryable: false, why: 'marketing message sent too soon after the previous one' },

  // The token: the sender needs reauthorisation.
  { code: 190, subcode: 458, ...TOKEN_DEAD, why: 'the app is no longer installed for the user' },
  { code: 190, subcode: 459, ...TOKEN_DEAD, why: 'the user is checkpointed' },
  { code: 190, subcode: 460, ...TOKEN_DEAD, why: 'the password changed, revoking the token' },
  { code: 190, subcode: 463, ...TOKEN_DEAD, why: 'the token expired' },
  { code: 190, subcode: 464, ...TOKEN_DEAD, why: 'the user is not confirmed' },
  { code: 190, subcode: 467, ...TOKEN_DEAD, why: 'the token is invalid' },
  { code: 190, subcode: 492, ...TOKEN_DEAD, why: 'invalid session (the user is no longer a Page admin)' },
  { code: 190, ...TOKEN_DEAD, why: 'invalid OAuth access token' },
  { code: 102, ...TOKEN_DEAD, why: 'API session invalid' },

  // Permissions: the sender is misconfigured until someone grants them.
  { code: 10, gatewayCode: 'META_PERMISSION_MISSING', retryable: false, senderEffect: 'degraded', why: 'permission denied' },
  { code: 230, gatewayCode: 'META_PERMISSION_MISSING', retryable: false, senderEffect: 'degraded', why: 'requires the pages_messaging permission' },
  { code: [200, 299], gatewayCode: 'META_PERMISSION_MISSING', retryable: false, senderEffect: 'degraded', why: 'permission error' },

  // Policy.
  { code: 368, gatewayCode: 'META_POLICY_BLOCK', retryable: false, senderEffect: 'paused', why: 'temporarily blocked for policy violations' },
];

export interface MetaErrorClass {
  gatewayCode: ErrorCode;
  retryable: boolean;
  senderEffect?: SenderEffect;
  contactEffect?: ContactEffect;
  backoff?: BackoffClass;
  /** Check the echo before any retry: the message may already have gone out. */
  reconcile: boolean;
  metaCode: number | null;
  metaSubcode: number | null;
  /** Why the table says so. */
  why: string;
}

function codeMatches(rule: MetaErrorRule, code: number | null): boolean {
  if (rule.code === undefined) return true;
  if (code === null) return false;
  if (typeof rule.code === 'number') return rule.code === code;
  return code >= rule.code[0] && code <= rule.code[1];
}

/** Most specific row first: code + subcode, then subcode alone, then the exact code, then a range. */
function specificity(rule: MetaErrorRule): number {
  if (rule.subcode !== undefined && rule.code !== undefined) return 4;
  if (rule.subcode !== undefined) return 3;
  if (typeof rule.code === 'number') return 2;
  return 1;
}

const RULES_BY_SPECIFICITY = [...META_ERROR_TABLE].sort((a, b) => specificity(b) - specificity(a));

export function findMetaErrorRule(code: number | null, subcode: number | null): MetaErrorRule | undefined {
  return RULES_BY_SPECIFICITY.find(
    (rule) => codeMatches(rule, code) && (rule.subcode === undefined || rule.subcode === subcode) && (rule.code !== undefined || rule.subcode !== undefined),
  );
}

/** What the gateway makes of an error Meta answered with. */
export function classifyMetaError(err: { code: number | null; subcode: number | null; httpStatus?: number }): MetaErrorClass {
  const rule = findMetaErrorRule(err.code, err.subcode);
  const base = { metaCode: err.code, metaSubcode: err.subcode };
  if (rule !== undefined) {
    const out: MetaErrorClass = {
      ...base,
      gatewayCode: rule.gatewayCode,
      retryable: rule.retryable,
      reconcile: rule.reconcile ?? false,
      why: rule.why,
    };
    if (rule.senderEffect !== undefined) out.senderEffect = rule.senderEffect;
    if (rule.contactEffect !== undefined) out.contactEffect = rule.contactEffect;
    if (rule.backoff !== undefined) out.backoff = rule.backoff;
    return out;
  }
  const status = err.httpStatus ?? 0;
  if (status === 429) {
    return { ...base, gatewayCode: 'META_RATE_LIMITED', retryable: true, senderEffect: 'rate_limited', backoff: 'rate_limit', reconcile: false, why: 'HTTP 429 from the Graph API' };
  }
  if (status >= 500 && err.code === null) {
    // No Graph error body: a proxy or load balancer in front of Meta answered (502, 504), and the
    // request may have reached Meta and gone out. Look for its echo before sending it again.
    return { ...base, gatewayCode: 'META_TEMPORARY', retryable: true, backoff: 'transient', reconcile: true, why: `HTTP ${status} from the Graph API without an error body: the send may have gone out` };
  }
  if (status >= 500) {
    // A 5xx with Meta's error body is Meta failing, not refusing: retry with backoff like its transient codes.
    return { ...base, gatewayCode: 'META_TEMPORARY', retryable: true, backoff: 'transient', reconcile: false, why: `HTTP ${status} from the Graph API` };
  }
  return { ...base, gatewayCode: 'META_UNKNOWN', retryable: false, reconcile: false, why: 'an error code the table does not know' };
}

/** What the gateway makes of a call that got no Graph answer. */
export function classifyTransportError(err: { kind: TransportErrorKind; maybeDelivered: boolean }): MetaErrorClass {
  return {
    gatewayCode: err.kind === 'timeout' ? 'UPSTREAM_TIMEOUT' : 'UPSTREAM_UNAVAILABLE',
    // Safe to try again, but only after reconciling when the request may have been acted on.
    retryable: true,
    backoff: 'transient',
    reconcile: err.maybeDelivered,
    metaCode: null,
    metaSubcode: null,
    why: err.maybeDelivered
      ? `${err.kind}: the request reached Meta but no answer came back`
      : `${err.kind}: the request never reached Meta`,
  };
}

/** Either kind of Meta failure; anything else is an internal error (not retryable). */
export function classifyError(err: unknown): MetaErrorClass {
  if (err instanceof MetaApiError) return classifyMetaError(err);
  if (err instanceof MetaTransportError) return classifyTransportError(err);
  return { gatewayCode: 'INTERNAL', retryable: false, reconcile: false, metaCode: null, metaSubcode: null, why: 'not a Graph API failure' };
}

/** A GatewayError for a Meta failure, with Meta's code and words in details. */
export function metaFailureToGatewayError(err: unknown, cls: MetaErrorClass = classifyError(err)): GatewayError {
  if (err instanceof MetaApiError) {
    const details = {
      meta_code: err.code,
      meta_subcode: err.subcode,
      meta_message: err.message,
      meta_type: err.type,
      fbtrace_id: err.fbtraceId,
      http_status: err.httpStatus,
    };
    // A catalogue message that names facts only the gateway's own check knows (`WINDOW_CLOSED`'s
    // `{closed_at}`) would read "closed at." here: Meta's refusal is told in Meta's words instead.
    const template = ERROR_CATALOGUE[cls.gatewayCode].message;
    const unknown = [...template.matchAll(/\{([a-z_]+)\}/g)].some(([, name]) => (details as Record<string, unknown>)[name as string] == null);
    const message = unknown ? `Meta refused the send: ${err.message}` : undefined;
    return new GatewayError(cls.gatewayCode, details, message);
  }
  if (err instanceof MetaTransportError) {
    return new GatewayError(cls.gatewayCode, { reason: err.message, maybe_delivered: err.maybeDelivered, kind: err.kind });
  }
  return new GatewayError('INTERNAL');
}

/** Transient failures: 1 s doubling to 60 s, so a flapping Graph API is not hammered. */
const TRANSIENT_BASE_MS = 1_000;
const TRANSIENT_MAX_MS = 60_000;
/** Rate limits: 10 s doubling to 15 min; Meta's limits are counted over minutes to an hour. */
const RATE_LIMIT_BASE_MS = 10_000;
const RATE_LIMIT_MAX_MS = 15 * 60_000;

/**
 * How long to wait before retry number `attempt` (1 for the first retry): exponential with
 * "equal jitter" (half fixed, half random) so retries from many jobs spread out, and never sooner
 * than the `estimated_time_to_regain_access` Meta reported.
 */
export function retryDelayMs(
  cls: Pick<MetaErrorClass, 'backoff'>,
  attempt: number,
  options: { usage?: GraphUsage; random?: () => number } = {},
): number {
  const random = options.random ?? Math.random;
  const rateLimited = cls.backoff === 'rate_limit';
  const base = rateLimited ? RATE_LIMIT_BASE_MS : TRANSIENT_BASE_MS;
  const max = rateLimited ? RATE_LIMIT_MAX_MS : TRANSIENT_MAX_MS;
  const exp = Math.min(max, base * 2 ** Math.max(0, attempt - 1));
  const jittered = exp / 2 + random() * (exp / 2);
  const regainMs = (options.usage?.regainAccessMinutes ?? 0) * 60_000;
  return Math.round(Math.max(jittered, regainMs));
}
