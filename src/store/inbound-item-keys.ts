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

/** Removes up to `limit` keys recorded before the cut-off, oldest first; returns how many went. */
export async function purgeInboundItemKeys(db: Db, createdBefore: number, limit: number): Promise<number> {
  const result = await db
    .deleteFrom('inbound_item_keys')
    .where((eb) =>
      eb(
        eb.refTuple('sender_id', 'key'),
        'in',
        eb.selectFrom('inbound_item_keys as old').select(['old.sender_id', 'old.key']).where('old.created_at', '<', createdBefore).orderBy('old.created_at').limit(limit).$asTuple('sender_id', 'key'),
      ),
    )
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
