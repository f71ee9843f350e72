/**
 * Media rows: bytes the gateway keeps (downloaded from Meta's expiring links, or uploaded by the
 * business). The row says where the bytes come from and whether they are stored yet; the bytes
 * themselves live in `MediaFiles`.
 */
import { newId } from '../domain/ids.js';
import type { Db } from './db.js';
import type { MediaRow } from './schema.js';

export type MediaStatus = 'pending' | 'stored' | 'failed' | 'unavailable';

export interface NewInboundMedia {
  /** Chosen by the caller when the message content must name it before the row exists. */
  id?: string;
  account_id: string;
  sender_id: string;
  message_id: string;
  source_url: string;
  /** Known before the download only when Meta names it (file attachments). */
  filename?: string | null;
}

export async function insertInboundMedia(db: Db, input: NewInboundMedia, now: number): Promise<MediaRow> {
  const row: MediaRow = {
    id: input.id ?? newId('med', now),
    account_id: input.account_id,
    sender_id: input.sender_id,
    message_id: input.message_id,
    origin: 'inbound',
    source_url: input.source_url,
    content_type: null,
    filename: input.filename ?? null,
    size: null,
    sha256: null,
    storage_key: null,
    status: 'pending',
    error: null,
    attempts: 0,
    meta_attachment_id: null,
    created_at: now,
    updated_at: now,
  };
  await db.insertInto('media').values(row).execute();
  return row;
}

export async function insertMedia(db: Db, row: MediaRow): Promise<void> {
  await db.insertInto('media').values(row).execute();
}

export async function getMedia(db: Db, accountId: string, id: string): Promise<MediaRow | undefined> {
  return db.selectFrom('media').selectAll().where('account_id', '=', accountId).where('id', '=', id).executeTakeFirst();
}

export async function getMediaById(db: Db, id: string): Promise<MediaRow | undefined> {
  return db.selectFrom('media').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function listMessageMedia(db: Db, messageId: string): Promise<MediaRow[]> {
  return db.selectFrom('media').selectAll().where('message_id', '=', messageId).orderBy('id').execute();
}

export async function markMediaStored(
  db: Db,
  id: string,
  stored: { storage_key: string; content_type: string | null; size: number; sha256: string; filename?: string | null },
  now: number,
): Promise<void> {
  const set: Partial<MediaRow> = {
    status: 'stored',
    storage_key: stored.storage_key,
    content_type: stored.content_type,
    size: stored.size,
    sha256: stored.sha256,
    error: null,
    updated_at: now,
  };
  if (stored.filename !== undefined) set.filename = stored.filename;
  await db
    .updateTable('media')
    .set((eb) => ({ ...set, attempts: eb('attempts', '+', 1) }))
    .where('id', '=', id)
    .execute();
}

/**
 * A failed attempt: visible on the row (status, error, attempts). `failed` while the job retries;
 * `unavailable` once it will not (the link is gone, the file too large, the tries used up).
 */
export async function markMediaFailed(db: Db, id: string, error: string, now: number, final = false): Promise<void> {
  // The reason is for a person reading the row; a response body pasted into it helps no one.
  const reason = error.slice(0, 1000);
  await db
    .updateTable('media')
    .set((eb) => ({ status: final ? 'unavailable' : 'failed', error: reason, updated_at: now, attempts: eb('attempts', '+', 1) }))
    .where('id', '=', id)
    .execute();
}
