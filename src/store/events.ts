/** Events: facts for subscribers, stored once and delivered to every endpoint that wants them. */
import type { Insertable } from 'kysely';
import { idFloor } from '../domain/ids.js';
import { allColumns, compiled, compiledInsert } from './compiled.js';
import type { Db } from './db.js';
import type { EventRow, EventsTable } from './schema.js';

export type NewEventRow = Insertable<EventsTable>;

const eventInsert = compiledInsert('events', allColumns<EventsTable>({ id: true, account_id: true, type: true, sender_id: true, conversation_id: true, message_id: true, payload: true, created_at: true }));

const eventById = compiled((db: Db, id: string) => db.selectFrom('events').selectAll().where('id', '=', id));

export async function insertEvent(db: Db, row: EventRow): Promise<void> {
  await eventInsert.run(db, row);
}

export async function getEvent(db: Db, accountId: string, id: string): Promise<EventRow | undefined> {
  return db.selectFrom('events').selectAll().where('account_id', '=', accountId).where('id', '=', id).executeTakeFirst();
}

/** Unscoped, for the delivery job. */
export async function getEventById(db: Db, id: string): Promise<EventRow | undefined> {
  return eventById.first(db, id);
}

export interface EventFilter {
  type?: string;
  senderId?: string;
  conversationId?: string;
  /** Epoch ms, inclusive. */
  since?: number;
  /** Epoch ms, exclusive. */
  until?: number;
  /** Cursor: events with a larger id (ids sort by time). */
  after?: string;
  limit: number;
}

/** The account's events, oldest first. */
export async function listEvents(db: Db, accountId: string, filter: EventFilter): Promise<EventRow[]> {
  let q = db.selectFrom('events').selectAll().where('account_id', '=', accountId);
  if (filter.type) q = q.where('type', '=', filter.type);
  if (filter.senderId) q = q.where('sender_id', '=', filter.senderId);
  if (filter.conversationId) q = q.where('conversation_id', '=', filter.conversationId);
  // An event's id never sorts before its creation time (`newId`): the id bound lets the
  // (account_id, id) index start at `since`; the created_at test stays the exact one.
  if (filter.since !== undefined) q = q.where('id', '>=', idFloor('evt', filter.since)).where('created_at', '>=', filter.since);
  if (filter.until !== undefined) q = q.where('created_at', '<', filter.until);
  if (filter.after) q = q.where('id', '>', filter.after);
  return q.orderBy('id').limit(filter.limit).execute();
}
