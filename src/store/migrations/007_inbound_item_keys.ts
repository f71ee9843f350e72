/**
 * `inbound_item_keys`: webhook items that become no message row of their own (a `changes` item, a
 * handover or policy notice, an Instagram unsend) are remembered here by a hash of the item, so
 * Meta's retries of a batch forward each of them once; items for a Page no account owns are kept as
 * unroutable once the same way (under `unroutable:<entry id>`). Messages need none of this: their `mid`
 * (or the key derived from the item) is unique per sender already. Rows older than a week are
 * removed by housekeeping; Meta gives up retrying long before.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('inbound_item_keys')
    .addColumn('sender_id', 'text', (c) => c.notNull())
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('inbound_item_keys_pk', ['sender_id', 'key'])
    .execute();
  await db.schema.createIndex('inbound_item_keys_created').on('inbound_item_keys').column('created_at').execute();
}
