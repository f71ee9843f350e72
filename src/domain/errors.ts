import type { JsonObject, JsonValue } from './glossary.js';

/**
 * The one error catalogue. Every error the gateway reports has a stable code, an HTTP status, a
 * message a person understands and what to do about it. `docs/errors.md` lists the same table.
 *
 * Message templates may name a detail in braces (`{limit}`); it is filled from the error's details.
 */

export interface ErrorDefinition {
  /** HTTP status when the error answers an API request. */
  status: number;
  /** A sentence a person understands; `{name}` is replaced by `details.name` when present. */
  message: string;
  /** Whether trying the same request again later can succeed without changing anything. */
  retryable: boolean;
  /** What the caller or operator should do. */
  action: string;
}

export const ERROR_CATALOGUE = {
  // --- Requests ------------------------------------------------------------------------------
  VALIDATION_FAILED: {
    status: 400,
    message: 'The request is not valid: {reason}',
    retryable: false,
    action: 'Fix the field named in details.field and send the request again.',
  },
  UNAUTHENTICATED: {
    status: 401,
    message: 'No valid API key was given.',
    retryable: false,
    action: 'Send `Authorization: Bearer <api key>` with a key that has not been revoked.',
  },
  FORBIDDEN: {
    status: 403,
    message: 'This API key may not do that.',
    retryable: false,
    action: "Use a key of the account that owns the resource (a parent account's key for subaccount management).",
  },
  NOT_FOUND: {
    status: 404,
    message: 'No {resource} with that id exists in this account.',
    retryable: false,
    action: 'Check the id, and that the API key belongs to the account that owns it.',
  },
  METHOD_NOT_ALLOWED: {
    status: 405,
    message: 'This route does not accept that HTTP method.',
    retryable: false,
    action: 'See the API reference for the methods the route accepts.',
  },
  CONFLICT: {
    status: 409,
    message: 'The request conflicts with the current state: {reason}',
    retryable: false,
    action: 'Read the resource again and decide whether the change still applies.',
  },
  IDEMPOTENCY_KEY_REUSED: {
    status: 409,
    message: 'This Idempotency-Key was already used with a different request body.',
    retryable: false,
    action: 'Use a new key for a new request; repeat a request only with exactly the same body.',
  },
  IDEMPOTENCY_KEY_IN_PROGRESS: {
    status: 409,
    message: 'A request with this Idempotency-Key is still being processed.',
    retryable: true,
    action: 'Wait a moment and repeat the request; it will then return the first result.',
  },
  PAYLOAD_TOO_LARGE: {
    status: 413,
    message: 'The request body is larger than the gateway accepts.',
    retryable: false,
    action: 'Send a smaller body; upload large media through POST /v1/media.',
  },
  HEADERS_TOO_LARGE: {
    status: 431,
    message: 'The request headers are larger than the gateway accepts.',
    retryable: false,
    action: 'Send fewer or shorter headers (16 KB in all).',
  },
  UNSUPPORTED_CONTENT_TYPE: {
    status: 415,
    message: 'The request body has a content type this route does not accept.',
    retryable: false,
    action: 'Send `Content-Type: application/json` (or the type the route documents).',
  },
  RATE_LIMITED: {
    status: 429,
    message: 'Too many requests; slow down.',
    retryable: true,
    action: 'Wait for the number of seconds in the Retry-After header, then retry.',
  },
  INTERNAL: {
    status: 500,
    message: 'The gateway failed unexpectedly.',
    retryable: true,
    action: 'Retry later; if it persists, report it with the request id from the logs.',
  },
  STORAGE_FAILED: {
    status: 503,
    message: 'The gateway could not flush its database to disk; it takes no more work until it is restarted.',
    retryable: true,
    action: 'Retry once the gateway is back (sends with the same Idempotency-Key). Operators: check the disk, then restart the gateway.',
  },
  UPSTREAM_UNAVAILABLE: {
    status: 502,
    message: "Meta's Graph API could not be reached.",
    retryable: true,
    action: 'Nothing: the gateway retries. Check network access to the Graph API if it persists.',
  },
  UPSTREAM_TIMEOUT: {
    status: 504,
    message: "Meta's Graph API did not answer in time.",
    retryable: true,
    action: 'Nothing: the gateway checks whether the message went out before it tries again.',
  },

  // --- Accounts ------------------------------------------------------------------------------
  ACCOUNT_SUSPENDED: {
    status: 403,
    message: 'This account is suspended.',
    retryable: false,
    action: 'Ask the parent account (or the operator) to reactivate it.',
  },
  ACCOUNT_CLOSED: {
    status: 403,
    message: 'This account is closed.',
    retryable: false,
    action: 'A closed account cannot be used again; create a new one.',
  },
  SENDER_ALREADY_CONNECTED: {
    status: 409,
    message: 'This Page or Instagram account is already connected to an account.',
    retryable: false,
    action: 'Disconnect it from the other account first; a Meta id belongs to one account at a time.',
  },

  // --- Webhook ingress -----------------------------------------------------------------------
  WEBHOOK_SIGNATURE_INVALID: {
    status: 401,
    message: 'The webhook signature is missing or does not match the body.',
    retryable: false,
    action: 'Check that META_APP_SECRET is the secret of the app that sends the webhooks.',
  },
  WEBHOOK_VERIFY_TOKEN_MISMATCH: {
    status: 403,
    message: 'The webhook verification token does not match.',
    retryable: false,
    action: 'Use the value of META_VERIFY_TOKEN as the Verify Token in the app dashboard.',
  },

  // --- Sending: policy -----------------------------------------------------------------------
  WINDOW_CLOSED: {
    status: 422,
    message: 'The messaging window with this contact closed at {closed_at}.',
    retryable: false,
    action:
      'Wait for the contact to write again; a human reply may use the HUMAN_AGENT tag until details.human_agent_until where the sender allows it.',
  },
  HUMAN_AGENT_NOT_ALLOWED: {
    status: 422,
    message: 'This sender is not allowed to use the HUMAN_AGENT tag.',
    retryable: false,
    action: "Enable `human_agent` on the sender once the app has Meta's Human Agent permission.",
  },
  HUMAN_AGENT_WINDOW_CLOSED: {
    status: 422,
    message: 'The 7-day HUMAN_AGENT window with this contact closed at {closed_at}.',
    retryable: false,
    action: 'Wait for the contact to write again.',
  },
  TAG_RETIRED: {
    status: 422,
    message: 'The message tag {tag} was retired by Meta on {retired_on}.',
    retryable: false,
    action: 'Send inside the 24-hour window, or use HUMAN_AGENT for a human reply within 7 days.',
  },
  TAG_NOT_ALLOWED: {
    status: 422,
    message: 'The message tag {tag} cannot be used here: {reason}',
    retryable: false,
    action: 'Use a tag from the documented table that the channel accepts (Instagram accepts only HUMAN_AGENT).',
  },
  TAG_REQUIRED: {
    status: 422,
    message: 'messaging_type MESSAGE_TAG needs a tag.',
    retryable: false,
    action: 'Add `tag`, or choose another messaging_type.',
  },
  USER_REF_ALREADY_USED: {
    status: 422,
    message: 'This checkbox opt-in (user_ref) was already answered once.',
    retryable: false,
    action: 'Wait for the person to write back; then message their PSID.',
  },
  CONTACT_BLOCKED: {
    status: 422,
    message: 'This contact has blocked the Page or stopped receiving its messages.',
    retryable: false,
    action: 'Nothing can be sent until the contact writes again.',
  },
  CONTACT_OPTED_OUT: {
    status: 422,
    message: 'This contact opted out of messages.',
    retryable: false,
    action: 'Nothing can be sent until the contact opts back in with a start word.',
  },
  CONTACT_UNREACHABLE: {
    status: 422,
    message: "Meta reported that this contact isn't available right now.",
    retryable: false,
    action: 'Wait for the contact to write again.',
  },
  SENDER_REAUTH_REQUIRED: {
    status: 422,
    message: "The sender's access token is no longer valid.",
    retryable: false,
    action: 'Reconnect the Page (paste a new token or go through Facebook Login again).',
  },
  SENDER_DISCONNECTED: {
    status: 422,
    message: 'The sender is disconnected.',
    retryable: false,
    action: 'Connect the Page again before sending.',
  },
  SENDER_PAUSED: {
    status: 422,
    message: 'Sending from this sender is paused.',
    retryable: false,
    action: 'Meta blocked the Page for a policy violation, or an operator paused it; when that is resolved, resume it with PATCH /v1/senders/{id} {"settings": {"paused": false}}.',
  },

  // --- Sending: content ----------------------------------------------------------------------
  CONTENT_EMPTY: {
    status: 422,
    message: 'The message has no content.',
    retryable: false,
    action: 'Give text, attachments, a template or a raw message.',
  },
  CONTENT_TOO_LONG: {
    status: 422,
    message: '{field} is too long: the limit is {limit} {unit}.',
    retryable: false,
    action: 'Shorten the field named in details.field, or split the message.',
  },
  CONTENT_INVALID: {
    status: 422,
    message: 'The message content is not valid: {reason}',
    retryable: false,
    action: 'Fix the field named in details.field.',
  },
  TOO_MANY_QUICK_REPLIES: {
    status: 422,
    message: 'A message may carry at most {limit} quick replies.',
    retryable: false,
    action: 'Offer fewer quick replies.',
  },
  TEMPLATE_INVALID: {
    status: 422,
    message: 'The template is not valid: {reason}',
    retryable: false,
    action: 'Fix the template field named in details.field.',
  },
  MEDIA_TOO_LARGE: {
    status: 413,
    message: 'The media is larger than {limit} bytes.',
    retryable: false,
    action: 'Send a smaller file (Meta accepts attachments up to 25 MB).',
  },
  MEDIA_TYPE_UNSUPPORTED: {
    status: 415,
    message: 'This media type cannot be sent: {content_type}.',
    retryable: false,
    action: 'Send an image, audio, video or file type Meta accepts.',
  },
  URL_NOT_ALLOWED: {
    status: 422,
    message: 'This URL is not allowed: {reason}',
    retryable: false,
    action: 'Use a public http(s) URL; private, loopback and link-local addresses are refused unless the operator allows them.',
  },

  // --- Meta's answers (recorded on failed messages and sender checks) ------------------------
  META_TOKEN_INVALID: {
    status: 422,
    message: "Meta refused the sender's access token (expired, revoked or invalid).",
    retryable: false,
    action: 'Reconnect the Page; the sender is marked reauth_required.',
  },
  META_PERMISSION_MISSING: {
    status: 422,
    message: 'The app lacks a permission Meta requires for this call.',
    retryable: false,
    action: 'Grant the permission (pages_messaging, instagram_manage_messages, …) and reconnect the Page.',
  },
  META_RATE_LIMITED: {
    status: 429,
    message: 'Meta rate-limited the call.',
    retryable: true,
    action: 'Nothing: the gateway slows the sender down and retries.',
  },
  META_USER_UNAVAILABLE: {
    status: 422,
    message: "Meta reported that this person isn't available or isn't receiving messages from the Page.",
    retryable: false,
    action: 'Wait for the contact to write again; the contact is marked so.',
  },
  META_RECIPIENT_NOT_FOUND: {
    status: 422,
    message: 'Meta found no person with this id for this Page.',
    retryable: false,
    action: 'Check the PSID/IGSID: ids are scoped to one Page or Instagram account.',
  },
  META_ATTACHMENT_FAILED: {
    status: 422,
    message: 'Meta could not fetch or upload the attachment.',
    retryable: false,
    action: 'Check that the attachment URL is public and serves the file with the right content type.',
  },
  META_ATTACHMENT_TOO_LARGE: {
    status: 422,
    message: 'Meta refused the attachment as too large.',
    retryable: false,
    action: 'Send a file under 25 MB.',
  },
  META_INVALID_PARAMETER: {
    status: 422,
    message: 'Meta refused a parameter of the call: {meta_message}',
    retryable: false,
    action: "Read Meta's message in details; fix the content or the recipient.",
  },
  META_TEMPORARY: {
    status: 502,
    message: 'Meta reported a temporary error.',
    retryable: true,
    action: 'Nothing: the gateway retries with backoff.',
  },
  META_DELIVERY_UNCERTAIN: {
    status: 502,
    message: 'Meta answered in a way that leaves open whether the message was delivered.',
    retryable: false,
    action: 'Nothing: the gateway reconciles with the echo before deciding; a blind retry could send it twice.',
  },
  META_POLICY_BLOCK: {
    status: 422,
    message: 'Meta temporarily blocked the Page from sending for a policy violation.',
    retryable: false,
    action: 'Resolve it in the Page Quality tab; the sender is paused (SENDER_PAUSED) until you resume it with PATCH /v1/senders/{id} {"settings": {"paused": false}}.',
  },
  META_MARKETING_LIMIT: {
    status: 422,
    message: 'Meta refused a marketing message sent too soon after the previous one.',
    retryable: false,
    action: 'Respect the frequency the person chose in their marketing opt-in.',
  },
  META_PROFILE_UNAVAILABLE: {
    status: 422,
    message: 'Meta has no profile available for this person.',
    retryable: false,
    action: 'Nothing: this is normal; the contact keeps no invented name.',
  },
  META_UNKNOWN: {
    status: 502,
    message: 'Meta returned an error the gateway does not know: {meta_message}',
    retryable: false,
    action: "Read Meta's code and message in details.",
  },
} as const satisfies Record<string, ErrorDefinition>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;
export const ERROR_CODES = Object.keys(ERROR_CATALOGUE) as ErrorCode[];

export function isErrorCode(value: string): value is ErrorCode {
  return Object.prototype.hasOwnProperty.call(ERROR_CATALOGUE, value);
}

export type ErrorDetails = Record<string, JsonValue | undefined>;

/** Fills each `{name}` in a template from details; a name without a value is dropped with its braces. */
export function renderErrorMessage(template: string, details: ErrorDetails): string {
  return template
    .replace(/\{([a-z_]+)\}/g, (_match, name: string) => {
      const value = details[name];
      if (value === undefined || value === null) return '';
      if (typeof value === 'number' && name.endsWith('_at')) return new Date(value).toISOString();
      return typeof value === 'string' ? value : JSON.stringify(value);
    })
    .replace(/:\s*$/, '.')
    .replace(/\s+\./g, '.');
}

/** The JSON shape of every error the API returns: `{ "error": { code, message, details } }`. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; details: JsonObject };
}

export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly details: JsonObject;

  constructor(code: ErrorCode, details: ErrorDetails = {}, message?: string) {
    const definition: ErrorDefinition = ERROR_CATALOGUE[code];
    super(message ?? renderErrorMessage(definition.message, details));
    this.name = 'GatewayError';
    this.code = code;
    this.status = definition.status;
    this.retryable = definition.retryable;
    this.details = compactDetails(details);
  }

  toJSON(): ErrorBody {
    return { error: { code: this.code, message: this.message, details: this.details } };
  }
}

export function isGatewayError(value: unknown): value is GatewayError {
  return value instanceof GatewayError;
}

/** Drops undefined values so details stay JSON. */
function compactDetails(details: ErrorDetails): JsonObject {
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(details)) {
    if (value !== undefined) out[key] = value;
  }
  return out;
}
