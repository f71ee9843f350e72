/** The message row every inbound item kind is stored as, and its once-per-mid insert. */
import type { JsonValue, MessageContent } from '../domain/glossary.js';
import { newId } from '../domain/ids.js';
import type { Db } from '../store/db.js';
import { insertMessageOnce } from '../store/messages.js';
import type { ContactRow, ConversationRow, MessageRow } from '../store/schema.js';
import { DuplicateItem } from './inbound-context.js';
import type { InboundItemContext } from './inbound-context.js';

export interface InboundRowInput {
  id?: string;
  contact: ContactRow;
  conversation: ConversationRow;
  mid: string | null;
  kind: string;
  content: MessageContent;
  raw: JsonValue;
  at: number;
}

/** The row of an inbound item stored as a message (any kind). */
export function inboundMessageRow(ic: InboundItemContext, input: InboundRowInput, now: number): MessageRow {
  return {
    id: input.id ?? newId('msg', now),
    account_id: ic.sender.account_id,
    sender_id: ic.sender.id,
    contact_id: input.contact.id,
    conversation_id: input.conversation.id,
    direction: 'inbound',
    mid: input.mid,
    kind: input.kind,
    content: JSON.stringify(input.content),
    raw: JSON.stringify(input.raw),
    status: 'received',
    error_code: null,
    error_message: null,
    meta_error_code: null,
    meta_error_subcode: null,
    origin: 'external',
    client_ref: null,
    metadata: null,
    messaging_type: null,
    tag: null,
    status_callback: null,
    meta_timestamp: input.at,
    created_at: now,
    updated_at: now,
    sent_at: null,
    delivered_at: null,
    read_at: null,
    status_log: null,
  };
}

/** Inserts the row or, when its mid is already stored, rolls the item's transaction back. */
export async function insertInboundOrRollback(trx: Db, row: MessageRow): Promise<void> {
  if (!(await insertMessageOnce(trx, row))) throw new DuplicateItem();
}
