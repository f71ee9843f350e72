/**
 * Fair shares of the send and delivery lanes. A job may carry a `fair_key` (its account), and
 * `jobs_ready` becomes `(kind, fair_key, run_at, id)`: a kind read fairly is claimed tenant by tenant
 * (`src/jobs/claim.ts`), each tenant's ready jobs the start of its own index range, so one account's
 * backlog does not hold back another account's messages and events. Kinds read oldest first keep `fair_key`
 * null and read the `(kind, null)` range, in `(run_at, id)` order as before. Jobs written before
 * this migration have no fair key; the fair claim serves them as one tenant of their own.
 */
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table jobs add column fair_key text`.execute(db);
  await sql`drop index jobs_ready`.execute(db);
  await sql`create index jobs_ready on jobs (kind, fair_key, run_at, id) where state = 'pending'`.execute(db);
}
