/**
 * Indexes for housekeeping (`src/pipeline/housekeeping.ts`): Idempotency-Key records expire after
 * 24 hours and Facebook Login states of abandoned flows after their `expires_at`; each is removed
 * in small batches taken oldest first, which without these indexes would scan the whole table for
 * every batch.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.createIndex('idempotency_keys_created').on('idempotency_keys').column('created_at').execute();
  await db.schema.createIndex('oauth_states_expires').on('oauth_states').column('expires_at').execute();
}
