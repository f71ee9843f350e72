/**
 * Messages, both directions, and their status history. Sections: reads, inserts (inbound items and
 * external echoes; deduplicated by Meta's `mid`), content updates (edits, stored media), and the
 * status history and the reads receipts need (the lifecycle's rules live in
 * `src/pipeline/message-status.ts`).
 */
import type { Db } from './db.js';
import type { MessageRow, NewMessage } from './schema.js';

// ----------------------------------------------------------------------------------------------
// Reads
// ----------------------------------------------------------------------------------------------

export async function getMessage(db: Db, accountId: string, id: string): Promise<MessageRow | undefined> {
  return db.selectFrom('messages').selectAll().where('account_id', '=', accountId).where('id', '=', id).executeTakeFirst();
}

/** Unscoped, for jobs and echoes that hold an id given by scoped code or by the gateway itself. */
export async function getMessageById(db: Db, id: string): Promise<MessageRow | undefined> {
  return db.selectFrom('messages').selectAll().where('id', '=', id).executeTakeFirst();
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

/**
 * Inserts a message unless one with the same `(sender_id, mid)` exists: Meta retries batches until
 * it gets a 200, so the same mid arrives more than once. Returns whether the row was inserted.
 */
export async function insertMessageOnce(db: Db, row: NewMessage): Promise<boolean> {
  if (row.mid === null || row.mid === undefined) {
    await db.insertInto('messages').values(row).execute();
    return true;
  }
  const result = await db
    .insertInto('messages')
    .values(row)
    .onConflict((oc) => oc.columns(['sender_id', 'mid']).where('mid', 'is not', null).doNothing())
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0n) > 0;
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

export async function insertStatusHistory(
  db: Db,
  row: { message_id: string; account_id: string; status: string; detail: string | null; at: number },
): Promise<void> {
  await db.insertInto('message_status_history').values(row).execute();
}

export async function listStatusHistory(db: Db, messageId: string): Promise<{ status: string; detail: string | null; at: number }[]> {
  return db.selectFrom('message_status_history').select(['status', 'detail', 'at']).where('message_id', '=', messageId).orderBy('id').execute();
}

/**
 * Outbound messages to a contact that a receipt's watermark covers: sent at or before it and in
 * one of `statuses` (those that may still move). Oldest first, the order they went out.
 */
export async function listOutboundUpToWatermark(db: Db, contactId: string, senderId: string, watermark: number, statuses: readonly string[]): Promise<MessageRow[]> {
  return db
    .selectFrom('messages')
    .selectAll()
    .where('contact_id', '=', contactId)
    .where('direction', '=', 'outbound')
    .where('sent_at', '<=', watermark)
    .where('sender_id', '=', senderId)
    .where('status', 'in', [...statuses])
    .orderBy('sent_at')
    .orderBy('id')
    .execute();
}

/** Outbound messages of a sender with these mids, in one of `statuses`. */
export async function listOutboundByMids(db: Db, senderId: string, mids: readonly string[], statuses: readonly string[]): Promise<MessageRow[]> {
  if (mids.length === 0 || statuses.length === 0) return [];
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
