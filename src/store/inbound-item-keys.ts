/** Webhook items already forwarded, by sender and a hash of the item (see migration 007). */
import type { Db } from './db.js';

/** Records the key; false when it was there already (the item was handled before). */
export async function rememberInboundItem(db: Db, senderId: string, key: string, now: number): Promise<boolean> {
  const result = await db
    .insertInto('inbound_item_keys')
    .values({ sender_id: senderId, key, created_at: now })
    .onConflict((oc) => oc.columns(['sender_id', 'key']).doNothing())
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0n) > 0;
}
