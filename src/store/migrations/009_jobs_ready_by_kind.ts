/**
 * `jobs_ready` indexed by kind first: `(kind, run_at, id)` where `(run_at, id)` was. The runner
 * claims in lanes (`src/jobs/runner.ts`): received webhooks, then background work, then event
 * deliveries, then sends, each lane's jobs oldest first. With the index in time order alone, a
 * claim for webhooks read past every older ready send to find them, a backlog of thousands of
 * rows on each claim; by kind, each lane's oldest ready jobs are the start of one index range.
 */
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`drop index jobs_ready`.execute(db);
  await sql`create index jobs_ready on jobs (kind, run_at, id) where state = 'pending'`.execute(db);
}
