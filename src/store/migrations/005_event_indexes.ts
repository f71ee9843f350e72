/**
 * One index fewer on `events`, the table every message writes five or six rows to.
 *
 * `events_account (account_id, created_at)` served listings and replays bounded by a time. Event
 * ids begin with their creation time (`newId`, never earlier than `created_at`), so
 * `events_account_id (account_id, id)` serves them too: a `since` bound becomes a lower bound on
 * the id (`idFloor`) beside the exact `created_at` test (`src/store/events.ts`). In the outbound
 * benchmark the dropped index was about 3 % of the pages each commit wrote, and an index entry
 * written per event.
 */
import type { Kysely } from 'kysely';
import { sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`drop index events_account`.execute(db);
}
