/** Rows for the store-level outbound suites: an account, a sender, a contact, a conversation, messages. */
import { newId } from '../../../src/domain/ids.js';
import { createAccount } from '../../../src/store/accounts.js';
import type { Db } from '../../../src/store/db.js';
import type { ContactRow, ConversationRow, MessageRow, SenderRow } from '../../../src/store/schema.js';
import { newContactRow } from '../../../src/store/contacts.js';
import { newSenderRow } from '../../../src/store/senders.js';
import { outboundMessageRow } from '../../support/rows.js';

export interface Rows {
  accountId: string;
  sender: SenderRow;
  contact: ContactRow;
  conversation: ConversationRow;
}

export async function seedRows(db: Db, now: number): Promise<Rows> {
  const account = await createAccount(db, { name: 'Rows' }, now);
  const sender: SenderRow = newSenderRow({
    id: newId('snd', now),
    account_id: account.id,
    channel: 'messenger',
    meta_id: `${now}`,
    page_id: `${now}`,
    name: 'Page',
    token_enc: 'sealed',
    now,
  });
  await db.insertInto('senders').values(sender).execute();
  const contact: ContactRow = {
    ...newContactRow({ account_id: account.id, sender_id: sender.id, channel: 'messenger', psid: '24000000000000001' }, now),
    profile_status: 'fetched',
    profile_fetched_at: now,
    last_inbound_at: now,
  };
  await db.insertInto('contacts').values(contact).execute();
  const conversation: ConversationRow = {
    id: newId('cnv', now),
    account_id: account.id,
    sender_id: sender.id,
    contact_id: contact.id,
    status: 'open',
    assignee: null,
    last_message_at: now,
    created_at: now,
    updated_at: now,
    closed_at: null,
  };
  await db.insertInto('conversations').values(conversation).execute();
  return { accountId: account.id, sender, contact, conversation };
}

export async function insertOutboundRow(db: Db, rows: Rows, now: number, changes: Partial<MessageRow> = {}): Promise<MessageRow> {
  const row = outboundMessageRow({ account_id: rows.accountId, sender_id: rows.sender.id, contact_id: rows.contact.id, conversation_id: rows.conversation.id }, now, changes);
  await db.insertInto('messages').values(row).execute();
  return row;
}
