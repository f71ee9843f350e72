/**
 * Conversations: the thread between one sender and one contact. The inbound pipeline opens one on
 * a contact's first message and reopens the latest when the contact writes after it was closed.
 */
import { newId } from '../domain/ids.js';
import { sql } from 'kysely';
import { allColumns, compiled, compiledInsert } from './compiled.js';
import type { Db } from './db.js';
import type { ConversationRow, ConversationsTable } from './schema.js';

export async function getConversation(db: Db, accountId: string, id: string): Promise<ConversationRow | undefined> {
  return db.selectFrom('conversations').selectAll().where('account_id', '=', accountId).where('id', '=', id).executeTakeFirst();
}

export async function getConversationById(db: Db, id: string): Promise<ConversationRow | undefined> {
  return db.selectFrom('conversations').selectAll().where('id', '=', id).executeTakeFirst();
}

/** The contact's most recent conversation (open or closed) with this sender. */
// `limit 1` in the text: with a bound limit SQLite took three times as long (11 against 3.5 µs).
const latestConversation = compiled((db: Db, senderId: string, contactId: string) =>
  db.selectFrom('conversations').selectAll().where('contact_id', '=', contactId).where('sender_id', '=', senderId).orderBy('id', 'desc').limit(sql.lit(1)),
);
const conversationInsert = compiledInsert(
  'conversations',
  allColumns<ConversationsTable>({ id: true, account_id: true, sender_id: true, contact_id: true, status: true, assignee: true, last_message_at: true, created_at: true, updated_at: true, closed_at: true }),
);
const conversationTouch = compiled((db: Db, id: string, lastMessageAt: number, now: number) =>
  db.updateTable('conversations').set({ last_message_at: lastMessageAt, updated_at: now }).where('id', '=', id),
);

export async function findLatestConversation(db: Db, senderId: string, contactId: string): Promise<ConversationRow | undefined> {
  return latestConversation.first(db, senderId, contactId);
}

export interface ConversationTarget {
  account_id: string;
  sender_id: string;
  contact_id: string;
}

export type ConversationOutcome = 'created' | 'reopened' | 'existing';

/**
 * The conversation a message belongs to. `reopen` (a contact's new message) reopens a closed one;
 * without it (an echo, a receipt) a closed conversation stays closed and just gets the message.
 * `at` moves `last_message_at` forward, never back.
 */
export async function ensureConversation(
  db: Db,
  target: ConversationTarget,
  opts: { at: number; reopen: boolean },
  now: number,
): Promise<{ conversation: ConversationRow; outcome: ConversationOutcome }> {
  const latest = await findLatestConversation(db, target.sender_id, target.contact_id);
  if (!latest) {
    const row: ConversationRow = {
      id: newId('cnv', now),
      account_id: target.account_id,
      sender_id: target.sender_id,
      contact_id: target.contact_id,
      status: 'open',
      assignee: null,
      last_message_at: opts.at,
      created_at: now,
      updated_at: now,
      closed_at: null,
    };
    await conversationInsert.run(db, row);
    return { conversation: row, outcome: 'created' };
  }
  const reopening = opts.reopen && latest.status === 'closed';
  const lastMessageAt = latest.last_message_at === null || opts.at > latest.last_message_at ? opts.at : latest.last_message_at;
  if (!reopening && lastMessageAt === latest.last_message_at) return { conversation: latest, outcome: 'existing' };
  const changes = reopening
    ? { status: 'open', closed_at: null, last_message_at: lastMessageAt, updated_at: now }
    : { last_message_at: lastMessageAt, updated_at: now };
  if (reopening) await db.updateTable('conversations').set(changes).where('id', '=', latest.id).execute();
  else await conversationTouch.run(db, latest.id, lastMessageAt, now);
  return { conversation: { ...latest, ...changes }, outcome: reopening ? 'reopened' : 'existing' };
}

export async function closeConversation(db: Db, accountId: string, id: string, now: number): Promise<void> {
  await db
    .updateTable('conversations')
    .set({ status: 'closed', closed_at: now, updated_at: now })
    .where('account_id', '=', accountId)
    .where('id', '=', id)
    .execute();
}

export async function listConversations(
  db: Db,
  accountId: string,
  opts: { senderId?: string; contactId?: string; status?: string; after?: string; limit: number },
): Promise<ConversationRow[]> {
  let q = db.selectFrom('conversations').selectAll().where('account_id', '=', accountId);
  if (opts.senderId !== undefined) q = q.where('sender_id', '=', opts.senderId);
  if (opts.contactId !== undefined) q = q.where('contact_id', '=', opts.contactId);
  if (opts.status !== undefined) q = q.where('status', '=', opts.status);
  if (opts.after !== undefined) q = q.where('id', '>', opts.after);
  return q.orderBy('id').limit(opts.limit).execute();
}
