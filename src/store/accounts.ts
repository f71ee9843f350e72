/** Accounts and subaccounts. A parent manages its children; a child never sees its parent or siblings. */
import { newId } from '../domain/ids.js';
import { compiled } from './compiled.js';
import type { Db } from './db.js';
import type { AccountRow } from './schema.js';

export type AccountStatus = 'active' | 'suspended' | 'closed';

export async function createAccount(db: Db, input: { name: string; parent_id?: string | null }, now = Date.now()): Promise<AccountRow> {
  const row: AccountRow = { id: newId('acc'), parent_id: input.parent_id ?? null, name: input.name, status: 'active', created_at: now, updated_at: now };
  await db.insertInto('accounts').values(row).execute();
  return row;
}

const accountById = compiled((db: Db, id: string) => db.selectFrom('accounts').selectAll().where('id', '=', id));

export async function getAccount(db: Db, id: string): Promise<AccountRow | undefined> {
  return accountById.first(db, id);
}

/** A subaccount of `parentId`, or undefined: the only way a parent reaches a child's row. */
export async function getSubaccount(db: Db, parentId: string, id: string): Promise<AccountRow | undefined> {
  return db.selectFrom('accounts').selectAll().where('id', '=', id).where('parent_id', '=', parentId).executeTakeFirst();
}

export async function listSubaccounts(db: Db, parentId: string, opts: { after?: string; limit: number }): Promise<AccountRow[]> {
  let q = db.selectFrom('accounts').selectAll().where('parent_id', '=', parentId);
  if (opts.after) q = q.where('id', '>', opts.after);
  return q.orderBy('id').limit(opts.limit).execute();
}

export async function setAccountStatus(db: Db, id: string, status: AccountStatus, now = Date.now()): Promise<void> {
  await db.updateTable('accounts').set({ status, updated_at: now }).where('id', '=', id).execute();
}

export async function renameAccount(db: Db, id: string, name: string, now = Date.now()): Promise<void> {
  await db.updateTable('accounts').set({ name, updated_at: now }).where('id', '=', id).execute();
}

export async function listAccounts(db: Db): Promise<AccountRow[]> {
  return db.selectFrom('accounts').selectAll().orderBy('id').execute();
}
