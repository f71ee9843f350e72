/** Row builders the store-level suites share (the pipeline writes these rows itself in production). */
import { newId } from '../../src/domain/ids.js';
import type { MessageRow } from '../../src/store/schema.js';

/** Where a message belongs. */
export interface MessagePlace {
  account_id: string;
  sender_id: string;
  contact_id: string;
  conversation_id: string;
}

/** An outbound text message as the sending side stores it, `queued` unless `changes` say otherwise. */
export function outboundMessageRow(place: MessagePlace, now: number, changes: Partial<MessageRow> = {}): MessageRow {
  return {
    id: newId('msg', now),
    ...place,
    direction: 'outbound',
    mid: null,
    kind: 'text',
    content: JSON.stringify({ text: 'hi' }),
    raw: null,
    status: 'queued',
    error_code: null,
    error_message: null,
    meta_error_code: null,
    meta_error_subcode: null,
    origin: 'api',
    client_ref: null,
    metadata: null,
    messaging_type: 'RESPONSE',
    tag: null,
    status_callback: null,
    meta_timestamp: null,
    created_at: now,
    updated_at: now,
    sent_at: null,
    delivered_at: null,
    read_at: null,
    status_log: null,
    ...changes,
  };
}
