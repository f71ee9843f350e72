/**
 * Delivery formats: how one event becomes one HTTP request for a receiver. The native format is
 * Switchboard's own JSON envelope signed per Standard Webhooks; the Twilio and Vonage dialects add
 * theirs with `registerFormat` (the sender and the retry logic never change for a new format).
 */
import { GatewayError } from '../../domain/errors.js';
import { nativeFormat } from './native.js';

/** The stored event, as the formats see it. `payload` is the event's `data` as stored JSON text. */
export interface DeliverableEvent {
  id: string;
  type: string;
  account_id: string;
  sender_id: string | null;
  conversation_id: string | null;
  message_id: string | null;
  payload: string;
  /** Epoch ms. */
  created_at: number;
}

export type DeliveryMethod = 'POST' | 'GET';

export interface FormatInput {
  event: DeliverableEvent;
  url: string;
  method: DeliveryMethod;
  /** Signing secrets, newest first; a format signs with each (old ones stay valid while rotating). */
  secrets: readonly string[];
  /** When the request is signed (epoch ms). */
  now: number;
}

export interface OutgoingRequest {
  url: string;
  method: DeliveryMethod;
  headers: Record<string, string>;
  body?: string;
}

export interface DeliveryFormat {
  /** The value of an endpoint's `format` column. */
  readonly name: string;
  build(input: FormatInput): OutgoingRequest;
}

const formats = new Map<string, DeliveryFormat>([[nativeFormat.name, nativeFormat]]);

/** Adds (or replaces) a format; dialects call this when they load. */
export function registerFormat(format: DeliveryFormat): void {
  formats.set(format.name, format);
}

export function getFormat(name: string): DeliveryFormat | undefined {
  return formats.get(name);
}

export function formatNames(): string[] {
  return [...formats.keys()].sort();
}

/** Refuses a format no dialect has registered: its deliveries could never be made. */
export function checkFormatName(format: string | undefined, field: string): void {
  if (format === undefined || formats.has(format)) return;
  throw new GatewayError('VALIDATION_FAILED', { reason: `${field} must be one of ${formatNames().join(', ')}`, field });
}
