/** Row builders the store-level suites share (the pipeline writes these rows itself in production). */
import { newId } from '../../src/domain/ids.js';
import { createAccount } from '../../src/store/accounts.js';
import { ensureContact } from '../../src/store/contacts.js';
import type { Db } from '../../src/store/db.js';
import type { ContactRow, MessageRow } from '../../src/store/schema.js';
import { insertSender, newSenderRow } from '../../src/store/senders.js';

/** An account with one Messenger sender (Page 42) and one contact (PSID 1) who wrote first. */
export async function seedContact(db: Db, now: number): Promise<{ account_id: string; sender_id: string; contact: ContactRow }> {
  const account = await createAccount(db, { name: 'A' }, now);
  const sender = newSenderRow({ id: newId('snd'), account_id: account.id, channel: 'messenger', meta_id: '42', page_id: '42', name: null, token_enc: 'x', now });
  await insertSender(db, sender);
  const { contact } = await ensureContact(db, { account_id: account.id, sender_id: sender.id, channel: 'messenger', psid: '1' }, now);
  return { account_id: account.id, sender_id: sender.id, contact };
}

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
