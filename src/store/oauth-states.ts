/**
 * Facebook Login states (`/v1/senders/connect`): one row per flow started, deleted when the flow
 * finishes. A flow never finished leaves its row until housekeeping removes it after it expires.
 */
import type { Db } from './db.js';

/** Removes up to `limit` states that expired before `now`, oldest first; returns how many went. */
export async function purgeExpiredOauthStates(db: Db, now: number, limit: number): Promise<number> {
  const result = await db
    .deleteFrom('oauth_states')
    .where('state', 'in', (eb) => eb.selectFrom('oauth_states as old').select('old.state').where('old.expires_at', '<', now).orderBy('old.expires_at').limit(limit))
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
