import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import type { Engine } from '../db.js';

/**
 * Indexes for the job queue (`src/jobs/`):
 * - `waiting`, a job parked behind an older job with the same key, joins the live states, so the
 *   key index must cover it (the FIFO check and the promotion of the next job both read it);
 * - expired leases, kept dead jobs and briefly kept done jobs each get a small partial index, so
 *   neither the claim nor the admin views scan the whole table.
 */
export async function up(db: Kysely<unknown>, _engine: Engine): Promise<void> {
  await sql`drop index jobs_key_live`.execute(db);
  await sql`create index jobs_key_live on jobs (key, id) where key is not null and state in ('pending', 'running', 'waiting')`.execute(db);
  await sql`create index jobs_leased on jobs (locked_until) where state = 'running'`.execute(db);
  await sql`create index jobs_dead on jobs (id) where state = 'dead'`.execute(db);
  await sql`create index jobs_done on jobs (updated_at) where state = 'done'`.execute(db);
}
