import type { CreateTableBuilder, Kysely } from 'kysely';
import { sql } from 'kysely';
import type { Engine } from '../db.js';

/** An integer sequence primary key in either engine (bigserial is parsed to a number in `db.ts`). */
export function sequenceId<T extends string>(engine: Engine, t: CreateTableBuilder<T, never>): CreateTableBuilder<T, 'id'> {
  return engine === 'postgres'
    ? t.addColumn('id', 'bigserial', (c) => c.primaryKey())
    : t.addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement());
}

export async function up(db: Kysely<unknown>, engine: Engine): Promise<void> {
  await db.schema
    .createTable('accounts')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('parent_id', 'text', (c) => c.references('accounts.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('active'))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('accounts_parent').on('accounts').column('parent_id').execute();

  await db.schema
    .createTable('api_keys')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('prefix', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull().unique())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('last_used_at', 'bigint')
    .addColumn('revoked_at', 'bigint')
    .execute();
  await db.schema.createIndex('api_keys_account').on('api_keys').column('account_id').execute();

  await db.schema
    .createTable('senders')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id'))
    .addColumn('channel', 'text', (c) => c.notNull())
    .addColumn('meta_id', 'text', (c) => c.notNull())
    .addColumn('page_id', 'text', (c) => c.notNull())
    .addColumn('name', 'text')
    .addColumn('username', 'text')
    .addColumn('token_enc', 'text', (c) => c.notNull())
    .addColumn('health', 'text', (c) => c.notNull().defaultTo('active'))
    .addColumn('health_reason', 'text')
    .addColumn('health_changed_at', 'bigint', (c) => c.notNull())
    .addColumn('inbound_url', 'text')
    .addColumn('inbound_method', 'text', (c) => c.notNull().defaultTo('POST'))
    .addColumn('fallback_url', 'text')
    .addColumn('fallback_method', 'text', (c) => c.notNull().defaultTo('POST'))
    .addColumn('status_url', 'text')
    .addColumn('status_method', 'text', (c) => c.notNull().defaultTo('POST'))
    .addColumn('format', 'text', (c) => c.notNull().defaultTo('native'))
    .addColumn('human_agent', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('settings', 'text', (c) => c.notNull().defaultTo('{}'))
    .addColumn('last_checked_at', 'bigint')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('senders_account').on('senders').column('account_id').execute();
  // A Meta id is connected to at most one account at a time; a disconnected row keeps its history
  // but gives the id up, hence the partial index.
  await sql`create unique index senders_meta_id_live on senders (channel, meta_id) where health <> 'disconnected'`.execute(db);
  await db.schema.createIndex('senders_meta_id').on('senders').column('meta_id').execute();

  await db.schema
    .createTable('contacts')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id'))
    .addColumn('sender_id', 'text', (c) => c.notNull().references('senders.id'))
    .addColumn('channel', 'text', (c) => c.notNull())
    .addColumn('psid', 'text')
    .addColumn('user_ref', 'text')
    .addColumn('name', 'text')
    .addColumn('first_name', 'text')
    .addColumn('last_name', 'text')
    .addColumn('username', 'text')
    .addColumn('profile_pic', 'text')
    .addColumn('locale', 'text')
    .addColumn('profile_status', 'text', (c) => c.notNull().defaultTo('pending'))
    .addColumn('profile_fetched_at', 'bigint')
    .addColumn('last_inbound_at', 'bigint')
    .addColumn('ad_window_until', 'bigint')
    .addColumn('user_ref_at', 'bigint')
    .addColumn('blocked_at', 'bigint')
    .addColumn('opted_out_at', 'bigint')
    .addColumn('refs', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('profile_id', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await sql`create unique index contacts_sender_psid on contacts (sender_id, psid) where psid is not null`.execute(db);
  await sql`create unique index contacts_sender_user_ref on contacts (sender_id, user_ref) where user_ref is not null`.execute(db);
  await db.schema.createIndex('contacts_account').on('contacts').columns(['account_id', 'id']).execute();

  await db.schema
    .createTable('conversations')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id'))
    .addColumn('sender_id', 'text', (c) => c.notNull().references('senders.id'))
    .addColumn('contact_id', 'text', (c) => c.notNull().references('contacts.id'))
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('open'))
    .addColumn('assignee', 'text')
    .addColumn('last_message_at', 'bigint')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addColumn('closed_at', 'bigint')
    .execute();
  await db.schema.createIndex('conversations_contact').on('conversations').columns(['contact_id', 'status']).execute();
  await db.schema.createIndex('conversations_account').on('conversations').columns(['account_id', 'id']).execute();

  await db.schema
    .createTable('messages')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id'))
    .addColumn('sender_id', 'text', (c) => c.notNull().references('senders.id'))
    .addColumn('contact_id', 'text', (c) => c.notNull().references('contacts.id'))
    .addColumn('conversation_id', 'text', (c) => c.notNull().references('conversations.id'))
    .addColumn('direction', 'text', (c) => c.notNull())
    .addColumn('mid', 'text')
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('content', 'text', (c) => c.notNull())
    .addColumn('raw', 'text')
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('error_code', 'text')
    .addColumn('error_message', 'text')
    .addColumn('meta_error_code', 'integer')
    .addColumn('meta_error_subcode', 'integer')
    .addColumn('origin', 'text', (c) => c.notNull())
    .addColumn('client_ref', 'text')
    .addColumn('metadata', 'text')
    .addColumn('messaging_type', 'text')
    .addColumn('tag', 'text')
    .addColumn('status_callback', 'text')
    .addColumn('meta_timestamp', 'bigint')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addColumn('sent_at', 'bigint')
    .addColumn('delivered_at', 'bigint')
    .addColumn('read_at', 'bigint')
    .execute();
  // Meta retries a batch until it gets a 200: the mid makes a retried message a no-op.
  await sql`create unique index messages_sender_mid on messages (sender_id, mid) where mid is not null`.execute(db);
  await db.schema.createIndex('messages_account').on('messages').columns(['account_id', 'id']).execute();
  await db.schema.createIndex('messages_conversation').on('messages').columns(['conversation_id', 'id']).execute();
  await db.schema.createIndex('messages_contact_sent').on('messages').columns(['contact_id', 'direction', 'sent_at']).execute();

  await sequenceId(engine, db.schema.createTable('message_status_history'))
    .addColumn('message_id', 'text', (c) => c.notNull().references('messages.id'))
    .addColumn('account_id', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('detail', 'text')
    .addColumn('at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('message_status_history_message').on('message_status_history').columns(['message_id', 'id']).execute();

  await sequenceId(engine, db.schema.createTable('inbound_batches'))
    .addColumn('received_at', 'bigint', (c) => c.notNull())
    .addColumn('body', 'text', (c) => c.notNull())
    .addColumn('processed_at', 'bigint')
    .addColumn('error', 'text')
    .execute();

  await sequenceId(engine, db.schema.createTable('unroutable_events'))
    .addColumn('batch_id', 'bigint', (c) => c.notNull())
    .addColumn('object', 'text', (c) => c.notNull())
    .addColumn('entry_id', 'text', (c) => c.notNull())
    .addColumn('item', 'text', (c) => c.notNull())
    .addColumn('received_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('unroutable_events_entry').on('unroutable_events').columns(['entry_id', 'id']).execute();

  await db.schema
    .createTable('events')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id'))
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('sender_id', 'text')
    .addColumn('conversation_id', 'text')
    .addColumn('message_id', 'text')
    .addColumn('payload', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('events_account').on('events').columns(['account_id', 'created_at']).execute();

  await db.schema
    .createTable('endpoints')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id'))
    .addColumn('url', 'text', (c) => c.notNull())
    .addColumn('method', 'text', (c) => c.notNull().defaultTo('POST'))
    .addColumn('fallback_url', 'text')
    .addColumn('fallback_method', 'text', (c) => c.notNull().defaultTo('POST'))
    .addColumn('events', 'text')
    .addColumn('secret_enc', 'text', (c) => c.notNull())
    .addColumn('format', 'text', (c) => c.notNull().defaultTo('native'))
    .addColumn('description', 'text')
    .addColumn('sender_id', 'text')
    .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('disabled_at', 'bigint')
    .addColumn('disabled_reason', 'text')
    .addColumn('failing_since', 'bigint')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('endpoints_account').on('endpoints').column('account_id').execute();

  await db.schema
    .createTable('deliveries')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'text', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull().references('events.id'))
    .addColumn('endpoint_id', 'text', (c) => c.notNull().references('endpoints.id'))
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('last_status_code', 'integer')
    .addColumn('last_error', 'text')
    .addColumn('next_attempt_at', 'bigint')
    .addColumn('delivered_at', 'bigint')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('deliveries_event').on('deliveries').column('event_id').execute();
  await db.schema.createIndex('deliveries_endpoint').on('deliveries').columns(['endpoint_id', 'created_at']).execute();

  await sequenceId(engine, db.schema.createTable('delivery_attempts'))
    .addColumn('delivery_id', 'text', (c) => c.notNull().references('deliveries.id'))
    .addColumn('account_id', 'text', (c) => c.notNull())
    .addColumn('url', 'text', (c) => c.notNull())
    .addColumn('target', 'text', (c) => c.notNull())
    .addColumn('status_code', 'integer')
    .addColumn('latency_ms', 'integer', (c) => c.notNull())
    .addColumn('response_excerpt', 'text')
    .addColumn('error', 'text')
    .addColumn('at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('delivery_attempts_delivery').on('delivery_attempts').columns(['delivery_id', 'id']).execute();

  await db.schema
    .createTable('media')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id'))
    .addColumn('sender_id', 'text')
    .addColumn('message_id', 'text')
    .addColumn('origin', 'text', (c) => c.notNull())
    .addColumn('source_url', 'text')
    .addColumn('content_type', 'text')
    .addColumn('filename', 'text')
    .addColumn('size', 'bigint')
    .addColumn('sha256', 'text')
    .addColumn('storage_key', 'text')
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('error', 'text')
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('meta_attachment_id', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('media_message').on('media').column('message_id').execute();

  await db.schema
    .createTable('idempotency_keys')
    .addColumn('account_id', 'text', (c) => c.notNull())
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('request_hash', 'text', (c) => c.notNull())
    .addColumn('status_code', 'integer')
    .addColumn('response', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('idempotency_keys_pk', ['account_id', 'key'])
    .execute();

  await db.schema
    .createTable('oauth_states')
    .addColumn('state', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'text', (c) => c.notNull())
    .addColumn('data', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .execute();

  await sequenceId(engine, db.schema.createTable('jobs'))
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('key', 'text')
    .addColumn('payload', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('run_at', 'bigint', (c) => c.notNull())
    .addColumn('locked_until', 'bigint')
    .addColumn('locked_by', 'text')
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('max_attempts', 'integer', (c) => c.notNull())
    .addColumn('last_error', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  // The claim query reads ready jobs in id order; FIFO keys look for an older live job with the same key.
  await sql`create index jobs_ready on jobs (run_at, id) where state = 'pending'`.execute(db);
  await sql`create index jobs_key_live on jobs (key, id) where key is not null and state in ('pending', 'running')`.execute(db);
}
