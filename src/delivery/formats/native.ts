/**
 * The native format: the envelope `{id, type, created_at, account_id, data}` signed per the
 * Standard Webhooks scheme with the `standardwebhooks` package:
 * - `webhook-id`: the event id, the same on every retry, redelivery and replay, so a receiver
 *   dedupes on it;
 * - `webhook-timestamp`: when this request was signed, in Unix seconds (receivers refuse old ones);
 * - `webhook-signature`: `v1,<base64 HMAC-SHA256>` of `<id>.<timestamp>.<content>`, one per valid
 *   secret, separated by spaces (during a secret rotation both the new and the old one sign).
 *
 * POST sends the envelope as the JSON body; the signed content is the body.
 * GET sends the envelope's fields as query parameters (`id`, `type`, `created_at`, `account_id`,
 * and `data` as JSON text), added after any the URL already has; the signed content is then the
 * whole query string as sent (everything after `?`), which a receiver verifies with
 * `new Webhook(secret).verify(rawQuery, headers, { jsonParse: false })`.
 */
import { Webhook } from 'standardwebhooks';
import { isoTime } from '../../domain/time.js';
import type { DeliveryFormat, FormatInput, OutgoingRequest } from './index.js';

const USER_AGENT = 'Switchboard-Webhooks/1';

// Signers are built once per secret (the constructor decodes the key); bounded so rotated-away
// secrets do not accumulate in a long-running process.
const MAX_SIGNERS = 1000;
const signers = new Map<string, Webhook>();

function signer(secret: string): Webhook {
  let wh = signers.get(secret);
  if (!wh) {
    if (signers.size >= MAX_SIGNERS) signers.clear();
    wh = new Webhook(secret);
    signers.set(secret, wh);
  }
  return wh;
}

/** The envelope as JSON text; `data` is the stored payload as it is, never parsed and re-serialised. */
export function envelopeJson(input: FormatInput['event']): string {
  return `{"id":${JSON.stringify(input.id)},"type":${JSON.stringify(input.type)},"created_at":"${isoTime(input.created_at)}","account_id":${JSON.stringify(input.account_id)},"data":${input.payload}}`;
}

/** Standard Webhooks headers for `content`, signed with every secret. */
export function standardWebhookHeaders(id: string, content: string, secrets: readonly string[], now: number): Record<string, string> {
  const at = new Date(now);
  return {
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(now / 1000)),
    'webhook-signature': secrets.map((s) => signer(s).sign(id, at, content)).join(' '),
  };
}

export const nativeFormat: DeliveryFormat = {
  name: 'native',
  build(input: FormatInput): OutgoingRequest {
    const { event } = input;
    if (input.method === 'GET') {
      const query = new URLSearchParams({
        id: event.id,
        type: event.type,
        created_at: isoTime(event.created_at),
        account_id: event.account_id,
        data: event.payload,
      }).toString();
      const url = new URL(input.url);
      const signed = url.search.length > 1 ? `${url.search.slice(1)}&${query}` : query;
      url.search = `?${signed}`;
      // URL may re-encode the search; sign what will actually be sent.
      const sent = url.search.slice(1);
      return {
        url: url.toString(),
        method: 'GET',
        headers: { 'user-agent': USER_AGENT, ...standardWebhookHeaders(event.id, sent, input.secrets, input.now) },
      };
    }
    const body = envelopeJson(event);
    return {
      url: input.url,
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': USER_AGENT, ...standardWebhookHeaders(event.id, body, input.secrets, input.now) },
      body,
    };
  },
};
