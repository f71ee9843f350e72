/**
 * API keys: random, shown once, stored as a SHA-256 hash, named and revocable.
 * A key is `sk_` + 32 random bytes in base64url; with 256 bits of entropy a fast hash is enough
 * (a slow password hash would only cost CPU on every request).
 */
import { createHash, randomBytes } from 'node:crypto';
import { newId } from '../domain/ids.js';
import { compiled } from './compiled.js';
import type { Db } from './db.js';
import type { AccountRow, ApiKeyRow } from './schema.js';

const KEY_PREFIX = 'sk_';

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

export async function createApiKey(db: Db, accountId: string, name: string, now = Date.now()): Promise<{ key: string; row: ApiKeyRow }> {
  const key = KEY_PREFIX + randomBytes(32).toString('base64url');
  const row: ApiKeyRow = {
    id: newId('key'),
    account_id: accountId,
    name,
    prefix: key.slice(0, 10),
    hash: hashApiKey(key),
    created_at: now,
    last_used_at: null,
    revoked_at: null,
  };
  await db.insertInto('api_keys').values(row).execute();
  return { key, row };
}

/** The live key row for a presented key, looked up by hash (the index makes timing independent of the key). */
// The key and its account in one statement: every API request runs it, and on SQLite each
// statement outside a transaction waits its turn for the one connection.
const liveKeyWithAccount = compiled((db: Db, hash: string) =>
  db
    .selectFrom('api_keys')
    .innerJoin('accounts', 'accounts.id', 'api_keys.account_id')
    .selectAll('accounts')
    .select(['api_keys.id as key_id'])
    .where('api_keys.hash', '=', hash)
    .where('api_keys.revoked_at', 'is', null),
);

/** A live key's id and its account, if the key is one. */
export async function findApiKeyAccount(db: Db, key: string): Promise<{ keyId: string; account: AccountRow } | undefined> {
  if (!key.startsWith(KEY_PREFIX)) return undefined;
  const row = await liveKeyWithAccount.first(db, hashApiKey(key));
  if (row === undefined) return undefined;
  const { key_id, ...account } = row;
  return { keyId: key_id, account };
}

export async function touchApiKey(db: Db, id: string, now = Date.now()): Promise<void> {
  await db.updateTable('api_keys').set({ last_used_at: now }).where('id', '=', id).execute();
}

export async function listApiKeys(db: Db, accountId: string): Promise<ApiKeyRow[]> {
  return db.selectFrom('api_keys').selectAll().where('account_id', '=', accountId).orderBy('id').execute();
}

export async function revokeApiKey(db: Db, accountId: string, id: string, now = Date.now()): Promise<boolean> {
  const res = await db
    .updateTable('api_keys')
    .set({ revoked_at: now })
    .where('account_id', '=', accountId)
    .where('id', '=', id)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) > 0;
}
