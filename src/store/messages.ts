/**
 * Messages, both directions, and their status history. Sections: reads, inserts (inbound items and
 * external echoes; deduplicated by Meta's `mid`), content updates (edits, stored media), and the
 * status history and the reads receipts need (the lifecycle's rules live in
 * `src/pipeline/message-status.ts`).
 */
import { sql } from 'kysely';
import { allColumns, compiled, compiledByShape, compiledInsert } from './compiled.js';
import type { Db } from './db.js';
import type { MessageRow, MessagesTable } from './schema.js';

// ----------------------------------------------------------------------------------------------
// Reads
// ----------------------------------------------------------------------------------------------

const messageInAccount = compiled((db: Db, accountId: string, id: string) => db.selectFrom('messages').selectAll().where('account_id', '=', accountId).where('id', '=', id));
const messageById = compiled((db: Db, id: string) => db.selectFrom('messages').selectAll().where('id', '=', id));

export async function getMessage(db: Db, accountId: string, id: string): Promise<MessageRow | undefined> {
  return messageInAccount.first(db, accountId, id);
}

/** Unscoped, for jobs and echoes that hold an id given by scoped code or by the gateway itself. */
export async function getMessageById(db: Db, id: string): Promise<MessageRow | undefined> {
  return messageById.first(db, id);
}

export async function findMessageByMid(db: Db, senderId: string, mid: string): Promise<MessageRow | undefined> {
  return db.selectFrom('messages').selectAll().where('sender_id', '=', senderId).where('mid', '=', mid).executeTakeFirst();
}

export async function messageExistsByMid(db: Db, senderId: string, mid: string): Promise<boolean> {
  const row = await db.selectFrom('messages').select('id').where('sender_id', '=', senderId).where('mid', '=', mid).executeTakeFirst();
  return row !== undefined;
}

export async function listConversationMessages(db: Db, accountId: string, conversationId: string, opts: { after?: string; limit: number }): Promise<MessageRow[]> {
  let q = db.selectFrom('messages').selectAll().where('account_id', '=', accountId).where('conversation_id', '=', conversationId);
  if (opts.after !== undefined) q = q.where('id', '>', opts.after);
  return q.orderBy('id').limit(opts.limit).execute();
}

// ----------------------------------------------------------------------------------------------
// Inserts
// ----------------------------------------------------------------------------------------------

const messageColumns = allColumns<MessagesTable>({
  id: true,
  account_id: true,
  sender_id: true,
  contact_id: true,
  conversation_id: true,
  direction: true,
  mid: true,
  kind: true,
  content: true,
  raw: true,
  status: true,
  error_code: true,
  error_message: true,
  meta_error_code: true,
  meta_error_subcode: true,
  origin: true,
  client_ref: true,
  metadata: true,
  messaging_type: true,
  tag: true,
  status_callback: true,
  meta_timestamp: true,
  created_at: true,
  updated_at: true,
  sent_at: true,
  delivered_at: true,
  read_at: true,
  status_log: true,
});
const messageInsert = compiledInsert('messages', messageColumns);
// Meta retries a batch until it is answered 200: the same mid arrives again and is not stored twice.
const messageInsertOnce = compiledInsert('messages', messageColumns, (oc) => oc.columns(['sender_id', 'mid']).where('mid', 'is not', null).doNothing());

/** Inserts a complete row (every column given). */
export async function insertMessage(db: Db, row: MessageRow): Promise<void> {
  await messageInsert.run(db, row);
}

/**
 * Inserts a message unless one with the same `(sender_id, mid)` exists: Meta retries batches until
 * it gets a 200, so the same mid arrives more than once. Returns whether the row was inserted.
 */
export async function insertMessageOnce(db: Db, row: MessageRow): Promise<boolean> {
  // A row without a mid is outside the unique index and always goes in.
  return Number((await messageInsertOnce.run(db, row)).numAffectedRows ?? 0n) > 0;
}

// ----------------------------------------------------------------------------------------------
// Content updates
// ----------------------------------------------------------------------------------------------

export async function updateMessageContent(db: Db, id: string, content: string, now: number): Promise<void> {
  await db.updateTable('messages').set({ content, updated_at: now }).where('id', '=', id).execute();
}

// ----------------------------------------------------------------------------------------------
// Status lifecycle
// ----------------------------------------------------------------------------------------------

/**
 * Outbound messages to a contact that a receipt's watermark covers: sent at or before it, not yet
 * read, and in one of `statuses` (those that may still move). Oldest first, the order they went
 * out. Read through the `messages_unread` partial index (its predicate is repeated here word for
 * word, so SQLite uses it): the cost follows the unread messages, not the conversation's length.
 */
export async function listOutboundUpToWatermark(db: Db, contactId: string, senderId: string, watermark: number, statuses: readonly string[]): Promise<MessageRow[]> {
  return upToWatermark(statuses.join(',')).all(db, contactId, senderId, watermark);
}

// Every receipt runs these; the status lists are few (one per target status), so one statement
// each, with the constants written into the text (bound, SQLite plans without knowing them).
const lit = (values: readonly string[]) => values.map((v) => sql.lit(v));
const upToWatermark = compiledByShape((shape: string) => ({
  arity: 3,
  build: (db: Db, contactId: string, senderId: string, watermark: number) =>
    db
      .selectFrom('messages')
      .selectAll()
      .where('contact_id', '=', contactId)
      .where('direction', '=', sql.lit('outbound'))
      .where('sent_at', 'is not', null)
      .where('read_at', 'is', null)
      .where('sent_at', '<=', watermark)
      .where('sender_id', '=', senderId)
      .where('status', 'in', lit(shape.split(',')))
      .orderBy('sent_at')
      .orderBy('id'),
}));
const byOneMid = compiledByShape((shape: string) => ({
  arity: 2,
  build: (db: Db, senderId: string, mid: string) =>
    db.selectFrom('messages').selectAll().where('sender_id', '=', senderId).where('mid', '=', mid).where('direction', '=', sql.lit('outbound')).where('status', 'in', lit(shape.split(','))),
}));

/** Outbound messages of a sender with these mids, in one of `statuses`. */
export async function listOutboundByMids(db: Db, senderId: string, mids: readonly string[], statuses: readonly string[]): Promise<MessageRow[]> {
  if (mids.length === 0 || statuses.length === 0) return [];
  if (mids.length === 1) return byOneMid(statuses.join(',')).all(db, senderId, mids[0] as string);
  return db
    .selectFrom('messages')
    .selectAll()
    .where('sender_id', '=', senderId)
    .where('mid', 'in', [...mids])
    .where('direction', '=', 'outbound')
    .where('status', 'in', [...statuses])
    .orderBy('id')
    .execute();
}

// ----------------------------------------------------------------------------------------------
// Outbound sending (added by the outbound pipeline)
// ----------------------------------------------------------------------------------------------

export interface MessageListFilter {
  senderId?: string;
  contactId?: string;
  conversationId?: string;
  status?: string;
  direction?: string;
  /** Ids at or after this one (`idFloor('msg', since)`: ids sort by creation time). */
  fromId?: string;
  /** Ids before this one. */
  beforeId?: string;
  /** Cursor: ids after this one. */
  after?: string;
  limit: number;
}

/** An account's messages in creation order, filtered; the caller asks one more than a page. */
export async function listMessages(db: Db, accountId: string, filter: MessageListFilter): Promise<MessageRow[]> {
  let q = db.selectFrom('messages').selectAll().where('account_id', '=', accountId);
  if (filter.senderId !== undefined) q = q.where('sender_id', '=', filter.senderId);
  if (filter.contactId !== undefined) q = q.where('contact_id', '=', filter.contactId);
  if (filter.conversationId !== undefined) q = q.where('conversation_id', '=', filter.conversationId);
  if (filter.status !== undefined) q = q.where('status', '=', filter.status);
  if (filter.direction !== undefined) q = q.where('direction', '=', filter.direction);
  if (filter.fromId !== undefined) q = q.where('id', '>=', filter.fromId);
  if (filter.beforeId !== undefined) q = q.where('id', '<', filter.beforeId);
  if (filter.after !== undefined) q = q.where('id', '>', filter.after);
  return q.orderBy('id').limit(filter.limit).execute();
}

/** Saves the send job's progress (`raw`: the parts and their mids) between Send API calls. */
export async function updateOutboundSendState(db: Db, id: string, raw: string, now: number): Promise<void> {
  await db.updateTable('messages').set({ raw, updated_at: now }).where('id', '=', id).execute();
}
