/** Senders: connected Pages and Instagram accounts. Every read is scoped to an account, except the
 * ingress lookup by Meta id, which is how an event finds its account in the first place. */
import { sql } from 'kysely';
import { compiled } from './compiled.js';
import type { Db } from './db.js';
import type { NewSender, SenderRow, SenderUpdate } from './schema.js';

export async function insertSender(db: Db, row: NewSender): Promise<void> {
  await db.insertInto('senders').values(row).execute();
}

const senderInAccount = compiled((db: Db, accountId: string, id: string) => db.selectFrom('senders').selectAll().where('account_id', '=', accountId).where('id', '=', id));
const senderById = compiled((db: Db, id: string) => db.selectFrom('senders').selectAll().where('id', '=', id));

export async function getSender(db: Db, accountId: string, id: string): Promise<SenderRow | undefined> {
  return senderInAccount.first(db, accountId, id);
}

/** Unscoped, for jobs that already hold a sender id they were given by scoped code. */
export async function getSenderById(db: Db, id: string): Promise<SenderRow | undefined> {
  return senderById.first(db, id);
}

export async function listSenders(db: Db, accountId: string, opts: { after?: string; limit: number; includeDisconnected?: boolean }): Promise<SenderRow[]> {
  let q = db.selectFrom('senders').selectAll().where('account_id', '=', accountId);
  if (!opts.includeDisconnected) q = q.where('health', '<>', 'disconnected');
  if (opts.after) q = q.where('id', '>', opts.after);
  return q.orderBy('id').limit(opts.limit).execute();
}

/** The connected sender for a Meta id (Page id or Instagram account id), whatever its account. */
// The health is a literal in the text, so SQLite can use the partial unique index on live senders.
const liveSenderByMetaId = compiled((db: Db, channel: string, metaId: string) =>
  db.selectFrom('senders').selectAll().where('channel', '=', channel).where('meta_id', '=', metaId).where('health', '<>', sql.lit('disconnected')),
);

export async function findLiveSenderByMetaId(db: Db, channel: 'messenger' | 'instagram', metaId: string): Promise<SenderRow | undefined> {
  return liveSenderByMetaId.first(db, channel, metaId);
}

export async function updateSender(db: Db, accountId: string, id: string, changes: SenderUpdate): Promise<void> {
  await db.updateTable('senders').set(changes).where('account_id', '=', accountId).where('id', '=', id).execute();
}

export async function listLiveSenders(db: Db): Promise<SenderRow[]> {
  return db.selectFrom('senders').selectAll().where('health', '<>', 'disconnected').orderBy('id').execute();
}

/** A new sender row: active, no callbacks yet, native format, HUMAN_AGENT off unless given. */
export function newSenderRow(input: {
  id: string;
  account_id: string;
  channel: 'messenger' | 'instagram';
  meta_id: string;
  page_id: string;
  name: string | null;
  username?: string | null;
  token_enc: string;
  now: number;
  human_agent?: boolean;
  settings?: Record<string, unknown>;
  last_checked_at?: number | null;
}): SenderRow {
  return {
    id: input.id,
    account_id: input.account_id,
    channel: input.channel,
    meta_id: input.meta_id,
    page_id: input.page_id,
    name: input.name,
    username: input.username ?? null,
    token_enc: input.token_enc,
    health: 'active',
    health_reason: null,
    health_changed_at: input.now,
    inbound_url: null,
    inbound_method: 'POST',
    fallback_url: null,
    fallback_method: 'POST',
    status_url: null,
    status_method: 'POST',
    format: 'native',
    human_agent: input.human_agent ? 1 : 0,
    settings: JSON.stringify(input.settings ?? {}),
    last_checked_at: input.last_checked_at ?? null,
    created_at: input.now,
    updated_at: input.now,
  };
}
