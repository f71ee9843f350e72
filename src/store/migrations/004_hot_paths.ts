/**
 * Fewer writes on the paths every message takes, found by measuring the outbound benchmark:
 *
 * - `messages.status_log`: an outbound message's status history (a JSON array of
 *   `{status, at, detail?}`, oldest first) lives in its own row, written by the same UPDATE that
 *   moves its status. As a table of its own it cost an insert and an index entry per move, five or
 *   six per message. Existing history is copied in, then the table is dropped.
 * - receipts find the messages a watermark covers through `messages_unread`, an index of only
 *   the outbound messages sent and not yet read, instead of every outbound message of the
 *   contact: the scan grew with the length of the conversation (after five minutes at 1,000
 *   messages a second over 1,000 customers, every receipt read 300 rows). Its entries are
 *   written when a message is sent and removed when it is read (`sent_at` and `read_at` are each
 *   set once); the index it replaces was rewritten on the same moves.
 * - a contact's latest conversation (`order by id desc limit 1`) was read through the
 *   `(contact_id, status)` index and then sorted; `(contact_id, id)` answers it in one step.
 */
import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import type { Engine } from '../db.js';

export async function up(db: Kysely<unknown>, engine: Engine): Promise<void> {
  await db.schema.alterTable('messages').addColumn('status_log', 'text').execute();
  if (engine === 'postgres') {
    await sql`update messages m set status_log = h.log from (
        select message_id, json_agg(json_strip_nulls(json_build_object('status', status, 'at', at, 'detail', detail::json)) order by id)::text as log
        from message_status_history group by message_id) h
      where h.message_id = m.id`.execute(db);
  } else {
    await sql`update messages set status_log = (
        select json_group_array(json(e)) from (
          select json_object('status', status, 'at', at, 'detail', json(detail)) as e from message_status_history h
          where h.message_id = messages.id order by id))
      where exists (select 1 from message_status_history h where h.message_id = messages.id)`.execute(db);
    // SQLite's json_object keeps a null detail; the API shows none either way.
  }
  await db.schema.dropTable('message_status_history').execute();
  await sql`drop index messages_contact_sent`.execute(db);
  await sql`create index messages_unread on messages (contact_id, sent_at) where direction = 'outbound' and sent_at is not null and read_at is null`.execute(db);
  await db.schema.createIndex('conversations_contact_latest').on('conversations').columns(['contact_id', 'id']).execute();
}
