/**
 * Event delivery: what `001_core` lacked once endpoints had roles and per-message callbacks.
 *
 * endpoints:
 * - `role`: `account` (made through `/v1/endpoints`), `inbound` / `status` (made from a sender's
 *   callback settings, one row per sender and role), `signing` (one per account, no URL: holds the
 *   account's signing secret, which signs per-message status callbacks and the sender-role
 *   endpoints that have no secret of their own);
 * - `previous_secret_enc` / `previous_secret_until`: after a rotation the old secret keeps signing
 *   too (a second `v1,` signature) for a while, so receivers can switch without losing events;
 * - `deleted_at`: deliveries keep referring to a deleted endpoint, so deleting only hides it.
 * deliveries:
 * - `url`, `method`, `format`: set for a per-message callback, which has no endpoint row of its own
 *   (it uses the account's `signing` row); null means "the endpoint's".
 */
import type { ColumnType, Kysely } from 'kysely';
import { sql } from 'kysely';
import type { Engine } from '../db.js';

export async function up(db: Kysely<unknown>, _engine: Engine): Promise<void> {
  await db.schema.alterTable('endpoints').addColumn('role', 'text', (c) => c.notNull().defaultTo('account')).execute();
  await db.schema.alterTable('endpoints').addColumn('previous_secret_enc', 'text').execute();
  await db.schema.alterTable('endpoints').addColumn('previous_secret_until', 'bigint').execute();
  await db.schema.alterTable('endpoints').addColumn('deleted_at', 'bigint').execute();
  // One endpoint per sender and role, and one signing row per account: syncing and lazy creation
  // can then use "insert, ignore the conflict" safely when two requests race.
  await sql`create unique index endpoints_sender_role on endpoints (sender_id, role) where sender_id is not null and deleted_at is null`.execute(db);
  await sql`create unique index endpoints_signing on endpoints (account_id) where role = 'signing'`.execute(db);

  await db.schema.alterTable('deliveries').addColumn('url', 'text').execute();
  await db.schema.alterTable('deliveries').addColumn('method', 'text').execute();
  await db.schema.alterTable('deliveries').addColumn('format', 'text').execute();

  // Event listings page by id within an account (ids sort by time).
  await db.schema.createIndex('events_account_id').on('events').columns(['account_id', 'id']).execute();
  // Replaying an endpoint reads the events of one sender since a time.
  await db.schema.createIndex('events_sender').on('events').columns(['sender_id', 'created_at']).execute();
}

// The columns above, for Kysely's types (`schema.ts` describes 001; these merge into its interfaces).
declare module '../schema.js' {
  interface EndpointsTable {
    /** account | inbound | status | signing */
    role: ColumnDefault<string>;
    previous_secret_enc: string | null;
    previous_secret_until: number | null;
    deleted_at: number | null;
  }
  interface DeliveriesTable {
    /** A per-message callback's URL; null: the endpoint's. */
    url: string | null;
    method: string | null;
    format: string | null;
  }
}

/** A column with a database default: optional on insert. */
type ColumnDefault<T> = ColumnType<T, T | undefined, T>;
