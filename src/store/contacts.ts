/**
 * Contacts: one person as one sender sees them (PSID or IGSID; a checkbox opt-in known only by its
 * `user_ref` until the person answers). Sections: reads, inbound upserts (window, refs), profile,
 * opt-out. Account-scoped reads take the account id; the `…ById` reads are for jobs that were
 * handed an id by scoped code.
 */
import { newId } from '../domain/ids.js';
import { compiled } from './compiled.js';
import type { Db } from './db.js';
import type { ContactRow, ContactsTable } from './schema.js';
import type { Updateable } from 'kysely';

/** One entry of `contacts.refs`: where a person came from (m.me link, ad, plugin opt-in). */
export interface ContactRef {
  ref?: string;
  source?: string;
  type?: string;
  ad_id?: string;
  at: number;
}

// Refs are history for the business, not a log: the newest 50 say where a person came from
// without letting one very active person grow a row without bound.
const MAX_REFS = 50;

// ----------------------------------------------------------------------------------------------
// Reads
// ----------------------------------------------------------------------------------------------

const contactInAccount = compiled((db: Db, accountId: string, id: string) => db.selectFrom('contacts').selectAll().where('account_id', '=', accountId).where('id', '=', id));
const contactById = compiled((db: Db, id: string) => db.selectFrom('contacts').selectAll().where('id', '=', id));
const contactByPsid = compiled((db: Db, senderId: string, psid: string) => db.selectFrom('contacts').selectAll().where('sender_id', '=', senderId).where('psid', '=', psid));

export async function getContact(db: Db, accountId: string, id: string): Promise<ContactRow | undefined> {
  return contactInAccount.first(db, accountId, id);
}

export async function getContactById(db: Db, id: string): Promise<ContactRow | undefined> {
  return contactById.first(db, id);
}

export async function findContactByPsid(db: Db, senderId: string, psid: string): Promise<ContactRow | undefined> {
  return contactByPsid.first(db, senderId, psid);
}

export async function findContactByUserRef(db: Db, senderId: string, userRef: string): Promise<ContactRow | undefined> {
  return db.selectFrom('contacts').selectAll().where('sender_id', '=', senderId).where('user_ref', '=', userRef).executeTakeFirst();
}

export async function listContacts(db: Db, accountId: string, opts: { senderId?: string; after?: string; limit: number }): Promise<ContactRow[]> {
  let q = db.selectFrom('contacts').selectAll().where('account_id', '=', accountId);
  if (opts.senderId !== undefined) q = q.where('sender_id', '=', opts.senderId);
  if (opts.after !== undefined) q = q.where('id', '>', opts.after);
  return q.orderBy('id').limit(opts.limit).execute();
}

// ----------------------------------------------------------------------------------------------
// Inbound upserts
// ----------------------------------------------------------------------------------------------

export interface ContactKey {
  account_id: string;
  sender_id: string;
  channel: string;
  /** PSID/IGSID, or absent for a checkbox opt-in known only by `user_ref`. */
  psid?: string | null;
  user_ref?: string | null;
}

/** A new contact row: no profile yet, no window, no refs. */
export function newContactRow(key: ContactKey, now: number): ContactRow {
  return {
    id: newId('con', now),
    account_id: key.account_id,
    sender_id: key.sender_id,
    channel: key.channel,
    psid: key.psid ?? null,
    user_ref: key.psid ? null : (key.user_ref ?? null),
    name: null,
    first_name: null,
    last_name: null,
    username: null,
    profile_pic: null,
    locale: null,
    profile_status: 'pending',
    profile_fetched_at: null,
    last_inbound_at: null,
    ad_window_until: null,
    user_ref_at: null,
    blocked_at: null,
    unreachable_at: null,
    opted_out_at: null,
    refs: '[]',
    profile_id: null,
    created_at: now,
    updated_at: now,
  };
}

/**
 * The contact for a PSID (or, without one, a `user_ref`), created when new. Race-safe: a second
 * writer inserting the same person at once loses on the unique index and reads the winner's row.
 */
export async function ensureContact(db: Db, key: ContactKey, now: number): Promise<{ contact: ContactRow; created: boolean }> {
  const byPsid = Boolean(key.psid);
  if (!byPsid && !key.user_ref) throw new Error('a contact needs a psid or a user_ref');
  const find = () => (byPsid ? findContactByPsid(db, key.sender_id, key.psid as string) : findContactByUserRef(db, key.sender_id, key.user_ref as string));
  const existing = await find();
  if (existing) return { contact: existing, created: false };
  const row = newContactRow(key, now);
  const inserted = await db
    .insertInto('contacts')
    .values(row)
    .onConflict((oc) =>
      byPsid
        ? oc.columns(['sender_id', 'psid']).where('psid', 'is not', null).doNothing()
        : oc.columns(['sender_id', 'user_ref']).where('user_ref', 'is not', null).doNothing(),
    )
    .executeTakeFirst();
  if (Number(inserted.numInsertedOrUpdatedRows ?? 0n) > 0) return { contact: row, created: true };
  const winner = await find();
  if (!winner) throw new Error('contact insert conflicted but no row was found');
  return { contact: winner, created: false };
}

/**
 * A checkbox opt-in's contact (known by `user_ref`) learns the person's PSID when they answer.
 * Only done when no contact holds that PSID yet; otherwise the two stay apart.
 */
export async function attachPsidToUserRefContact(db: Db, contactId: string, psid: string, now: number): Promise<void> {
  await db.updateTable('contacts').set({ psid, updated_at: now }).where('id', '=', contactId).where('psid', 'is', null).execute();
}

export interface InboundTouch {
  /** The person's interaction time (Meta's timestamp): restarts the window when later than the last. */
  interaction_at?: number;
  /** A ref learnt from this item (m.me link, ad, plugin). */
  ref?: Omit<ContactRef, 'at'>;
  /** A first message from a click-to-Messenger ad: the 7-day window's end. */
  ad_window_until?: number;
  /** Checkbox opt-in time: one message may go to the user_ref within 24 h of it. */
  user_ref_at?: number;
}

/** Applies what an inbound item teaches about the person; returns the updated row. */
export async function touchContactInbound(db: Db, contact: ContactRow, touch: InboundTouch, now: number): Promise<ContactRow> {
  const changes: Updateable<ContactsTable> = {};
  if (touch.interaction_at !== undefined && (contact.last_inbound_at === null || touch.interaction_at > contact.last_inbound_at)) {
    changes.last_inbound_at = touch.interaction_at;
  }
  if (touch.ad_window_until !== undefined && (contact.ad_window_until === null || touch.ad_window_until > contact.ad_window_until)) {
    changes.ad_window_until = touch.ad_window_until;
  }
  if (touch.user_ref_at !== undefined && (contact.user_ref_at === null || touch.user_ref_at > contact.user_ref_at)) {
    changes.user_ref_at = touch.user_ref_at;
  }
  if (touch.ref) {
    const at = touch.interaction_at ?? now;
    const refs = parseRefs(contact.refs);
    const entry: ContactRef = { ...touch.ref, at };
    const seen = refs.some((r) => r.at === at && r.ref === entry.ref && r.source === entry.source && r.type === entry.type);
    if (!seen) changes.refs = JSON.stringify([...refs, entry].slice(-MAX_REFS));
  }
  if (Object.keys(changes).length === 0) return contact;
  changes.updated_at = now;
  await db.updateTable('contacts').set(changes).where('id', '=', contact.id).execute();
  return { ...contact, ...changes } as ContactRow;
}

export function parseRefs(refs: string): ContactRef[] {
  try {
    const value: unknown = JSON.parse(refs);
    return Array.isArray(value) ? (value as ContactRef[]) : [];
  } catch {
    return [];
  }
}

// ----------------------------------------------------------------------------------------------
// Profile
// ----------------------------------------------------------------------------------------------

export interface ContactProfileUpdate {
  profile_status: 'pending' | 'fetched' | 'hidden' | 'failed';
  profile_fetched_at?: number | null;
  name?: string | null;
  first_name?: string | null;
  last_name?: string | null;
  username?: string | null;
  profile_pic?: string | null;
  locale?: string | null;
}

export async function updateContactProfile(db: Db, id: string, update: ContactProfileUpdate, now: number): Promise<void> {
  await db
    .updateTable('contacts')
    .set({ ...update, updated_at: now })
    .where('id', '=', id)
    .execute();
}

// ----------------------------------------------------------------------------------------------
// Opt-out and reachability
// ----------------------------------------------------------------------------------------------

/** `at` marks the contact opted out; null clears it (a start word). */
export async function setContactOptedOut(db: Db, id: string, at: number | null, now: number): Promise<void> {
  await db.updateTable('contacts').set({ opted_out_at: at, updated_at: now }).where('id', '=', id).execute();
}

/**
 * PostgreSQL: holds the contact's row lock until the transaction ends, so two batches for the
 * same person (processed by two workers) cannot both open a conversation. SQLite has one writer.
 */
export async function lockContactRow(db: Db, id: string): Promise<void> {
  await db.selectFrom('contacts').select('id').where('id', '=', id).forUpdate().execute();
}

// ----------------------------------------------------------------------------------------------
// Outbound sending (added by the outbound pipeline)
// ----------------------------------------------------------------------------------------------

/** Meta said the person blocked the Page: nothing goes to them until they write again. */
export async function markContactBlocked(db: Db, id: string, at: number, now: number): Promise<void> {
  await db.updateTable('contacts').set({ blocked_at: at, updated_at: now }).where('id', '=', id).execute();
}

/** Meta said the person is not available right now; their next message lifts it. */
export async function markContactUnreachable(db: Db, id: string, at: number, now: number): Promise<void> {
  await db.updateTable('contacts').set({ unreachable_at: at, updated_at: now }).where('id', '=', id).execute();
}
