/**
 * `contacts.unreachable_at`: when Meta last answered a send to the person with "this person isn't
 * available right now" (551, 10/2018108). It was recorded as a block before, which told the
 * business the person had blocked the Page when Meta had said no such thing. Like a block it is
 * lifted by the person's next message, and sends meanwhile are refused with `CONTACT_UNREACHABLE`.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('contacts').addColumn('unreachable_at', 'bigint').execute();
}
