/**
 * What the send job remembers about an outbound message between runs, kept in the message's `raw`
 * column (the Send API bodies): the Meta `message` of each part in order with the mid Meta gave it,
 * a part whose send may have reached Meta without an answer (to reconcile before any resend), and
 * when Meta started rate-limiting it.
 *
 * Also the echo metadata: every part carries `message.metadata` = `{"sb":"<message id>","m":<the
 * caller's metadata>}` (plus `"p":<part>` when the message has several parts). Meta returns it in
 * the echo, so the gateway recognises its own sends even when the Send API's answer was lost.
 */
import { GatewayError } from '../domain/errors.js';
import type { JsonObject } from '../domain/glossary.js';
import { characterLength, METADATA_MAX_CHARS } from '../domain/content.js';

export interface SendPart {
  /** The Meta `message` object, metadata included. */
  message: JsonObject;
  kind: 'text' | 'media' | 'template' | 'raw';
  media_type?: string;
  /** Set once the part is known to have gone out (from the answer or from its echo). */
  sent_at?: number;
  /** Meta's mid for the part, when known. */
  mid?: string;
  /** A reusable media part: the attachment id Meta answered with. */
  attachment_id?: string;
}

export interface UncertainSend {
  part: number;
  /** When the answer was lost (the job queue's clock, which schedules the checks). */
  since: number;
  /** The gateway code the message fails with if it is given up. */
  code: string;
  reason: string;
  /** Whether sending again is safe once no echo came (a lost answer: yes; Meta's 1/1357046: no). */
  resend: boolean;
}

export interface SendState {
  notification_type?: string;
  /** The stop-word confirmation: the one message an opted-out contact may still get. */
  opt_out_confirmation?: boolean;
  /** Built on the first run of the send job (media resolved then). */
  parts?: SendPart[];
  uncertain?: UncertainSend;
  /**
   * The part whose request is on its way to Meta (written before the call, cleared with its
   * outcome). Found on a new run, it means the previous run stopped mid-send (a crash, a lost
   * lease): that part is settled through its echo like a lost answer, never blindly sent again.
   */
  inflight?: { part: number; since: number };
  /** Sends of this message that ended without an answer, over all its parts. */
  lost?: number;
  /** When Meta started rate-limiting this message (the job queue's clock). */
  rate_limited_since?: number;
}

export function parseSendState(raw: string | null): SendState {
  if (raw === null || raw === '') return {};
  try {
    const value: unknown = JSON.parse(raw);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as SendState) : {};
  } catch {
    return {};
  }
}

export function serializeSendState(state: SendState): string {
  return JSON.stringify(state);
}

/** The index of the first part not known to have gone out (parts.length when all went). */
export function nextPartIndex(state: SendState): number {
  const parts = state.parts ?? [];
  const i = parts.findIndex((p) => p.sent_at === undefined);
  return i === -1 ? parts.length : i;
}

export interface EchoMetadata {
  /** The Switchboard message id. */
  sb: string;
  /** The caller's metadata, when there was one. */
  m?: string;
  /** The part, for messages sent in several parts. */
  p?: number;
}

export function echoMetadata(messageId: string, callerMetadata: string | null | undefined, part?: number): string {
  const value: EchoMetadata = { sb: messageId };
  if (callerMetadata !== null && callerMetadata !== undefined) value.m = callerMetadata;
  if (part !== undefined) value.p = part;
  return JSON.stringify(value);
}

/** The gateway's metadata in an echo, or null when the echo is not of a Switchboard send. */
export function parseEchoMetadata(metadata: string | null | undefined): EchoMetadata | null {
  if (typeof metadata !== 'string' || !metadata.startsWith('{')) return null;
  try {
    const value = JSON.parse(metadata) as Record<string, unknown>;
    if (typeof value['sb'] !== 'string' || !value['sb'].startsWith('msg_')) return null;
    const out: EchoMetadata = { sb: value['sb'] };
    if (typeof value['m'] === 'string') out.m = value['m'];
    if (typeof value['p'] === 'number' && Number.isInteger(value['p']) && value['p'] >= 0) out.p = value['p'];
    return out;
  } catch {
    return null;
  }
}

/**
 * Refuses caller metadata that would not fit in Meta's `message.metadata` (< 1000 characters)
 * once wrapped with the message id and the part number.
 */
export function checkCallerMetadata(messageId: string, metadata: string | undefined, parts: number): void {
  if (metadata === undefined) return;
  const worst = echoMetadata(messageId, metadata, parts > 1 ? parts - 1 : undefined);
  const length = characterLength(worst);
  if (length > METADATA_MAX_CHARS) {
    // Counted as Meta counts them: after JSON escaping, within the wrapper.
    const escaped = characterLength(JSON.stringify(metadata)) - 2;
    throw new GatewayError('CONTENT_TOO_LONG', {
      field: 'metadata',
      limit: METADATA_MAX_CHARS - (length - escaped),
      unit: 'characters (after JSON escaping)',
      length: escaped,
    });
  }
}
