/**
 * Endpoints: where an account wants its events. Rows have a role (see migration 003):
 * `account` (made through the API), `inbound` / `status` (made from a sender's callback settings)
 * and `signing` (one per account, no URL, holding the account's signing secret). Every read that
 * answers an API request is scoped to an account and hides deleted and `signing` rows.
 */
import { randomBytes } from 'node:crypto';
import type { Insertable, Selectable, Updateable } from 'kysely';
import { compiled } from './compiled.js';
import type { Db } from './db.js';
import type { EndpointsTable } from './schema.js';

export type EndpointRole = 'account' | 'inbound' | 'status' | 'signing';
export type Endpoint = Selectable<EndpointsTable>;
export type NewEndpoint = Insertable<EndpointsTable>;
export type EndpointChanges = Updateable<EndpointsTable>;

/** Roles a person sees through `/v1/endpoints`. */
const VISIBLE_ROLES: EndpointRole[] = ['account', 'inbound', 'status'];

// Standard Webhooks asks for 24 to 64 random bytes; 32 is a full-strength HMAC-SHA256 key.
const SECRET_BYTES = 32;

/** A new signing secret in the Standard Webhooks form `whsec_<base64>`. */
export function generateSigningSecret(): string {
  return `whsec_${randomBytes(SECRET_BYTES).toString('base64')}`;
}

/** A new endpoint row: enabled, never failed, POST, native format, unless the fields say otherwise. */
export function newEndpointRow(
  fields: Pick<NewEndpoint, 'id' | 'account_id' | 'role' | 'url' | 'secret_enc'> & Partial<Omit<NewEndpoint, 'created_at' | 'updated_at'>>,
  now: number,
): NewEndpoint {
  return {
    method: 'POST',
    fallback_url: null,
    fallback_method: 'POST',
    events: null,
    format: 'native',
    description: null,
    sender_id: null,
    enabled: 1,
    disabled_at: null,
    disabled_reason: null,
    failing_since: null,
    ...fields,
    created_at: now,
    updated_at: now,
  };
}

export async function insertEndpoint(db: Db, row: NewEndpoint): Promise<void> {
  await db.insertInto('endpoints').values(row).execute();
}

/** A visible endpoint of the account, or undefined (another account's id is simply not found). */
export async function getEndpoint(db: Db, accountId: string, id: string): Promise<Endpoint | undefined> {
  return db
    .selectFrom('endpoints')
    .selectAll()
    .where('account_id', '=', accountId)
    .where('id', '=', id)
    .where('deleted_at', 'is', null)
    .where('role', 'in', VISIBLE_ROLES)
    .executeTakeFirst();
}

/** Unscoped, for the delivery job, which holds an endpoint id it was given by scoped code. */
const endpointById = compiled((db: Db, id: string) => db.selectFrom('endpoints').selectAll().where('id', '=', id));

export async function getEndpointById(db: Db, id: string): Promise<Endpoint | undefined> {
  return endpointById.first(db, id);
}

export async function listEndpoints(db: Db, accountId: string, opts: { after?: string; limit: number; senderId?: string }): Promise<Endpoint[]> {
  let q = db
    .selectFrom('endpoints')
    .selectAll()
    .where('account_id', '=', accountId)
    .where('deleted_at', 'is', null)
    .where('role', 'in', VISIBLE_ROLES);
  if (opts.senderId) q = q.where('sender_id', '=', opts.senderId);
  if (opts.after) q = q.where('id', '>', opts.after);
  return q.orderBy('id').limit(opts.limit).execute();
}

export async function updateEndpoint(db: Db, accountId: string, id: string, changes: EndpointChanges): Promise<void> {
  await db.updateTable('endpoints').set(changes).where('account_id', '=', accountId).where('id', '=', id).execute();
}

/** The few columns the fan-out needs, for the live endpoints that may want an event of this sender. */
export interface FanOutTarget {
  id: string;
  role: string;
  events: string | null;
  sender_id: string | null;
}

/**
 * Enabled, undeleted endpoints of the account that are not tied to a sender, or tied to this one.
 * Runs for every event (hundreds a second): one indexed read of a handful of short columns.
 */
function liveTargets(db: Db, accountId: string) {
  return db
    .selectFrom('endpoints')
    .select(['id', 'role', 'events', 'sender_id'])
    .where('account_id', '=', accountId)
    .where('enabled', '=', 1)
    .where('deleted_at', 'is', null)
    .where('role', '<>', 'signing')
    .orderBy('id');
}
// Every event runs one of these (compiled once: see `compiled.ts`).
const accountTargets = compiled((db: Db, accountId: string) => liveTargets(db, accountId).where('sender_id', 'is', null));
const senderTargets = compiled((db: Db, accountId: string, senderId: string) =>
  liveTargets(db, accountId).where((eb) => eb.or([eb('sender_id', 'is', null), eb('sender_id', '=', senderId)])),
);

export async function listFanOutTargets(db: Db, accountId: string, senderId: string | null): Promise<FanOutTarget[]> {
  return senderId === null ? accountTargets.all(db, accountId) : senderTargets.all(db, accountId, senderId);
}

/** The live endpoint of a sender for a role, if any. */
export async function getSenderEndpoint(db: Db, senderId: string, role: 'inbound' | 'status'): Promise<Endpoint | undefined> {
  return db.selectFrom('endpoints').selectAll().where('sender_id', '=', senderId).where('role', '=', role).where('deleted_at', 'is', null).executeTakeFirst();
}

/**
 * The account's `signing` row, created when missing. `secretEnc` seals the secret at once; without
 * it (the fan-out has no key to seal with) the row starts with an empty secret, sealed on first use
 * by `sealSigningSecretIfEmpty`. A race between two creators is settled by the unique index.
 */
export async function ensureSigningEndpoint(db: Db, accountId: string, now: number, newId: () => string, secretEnc = ''): Promise<Endpoint> {
  const existing = await db.selectFrom('endpoints').selectAll().where('account_id', '=', accountId).where('role', '=', 'signing').executeTakeFirst();
  if (existing) return existing;
  await db
    .insertInto('endpoints')
    .values(
      newEndpointRow(
        { id: newId(), account_id: accountId, role: 'signing', url: '', secret_enc: secretEnc, description: 'Signs per-message status callbacks and sender callbacks' },
        now,
      ),
    )
    .onConflict((oc) => oc.doNothing())
    .execute();
  return db.selectFrom('endpoints').selectAll().where('account_id', '=', accountId).where('role', '=', 'signing').executeTakeFirstOrThrow();
}

/** Fills an empty secret (first writer wins) and returns the row as stored afterwards. */
export async function sealSigningSecretIfEmpty(db: Db, id: string, secretEnc: string, now: number): Promise<Endpoint> {
  await db.updateTable('endpoints').set({ secret_enc: secretEnc, updated_at: now }).where('id', '=', id).where('secret_enc', '=', '').execute();
  return db.selectFrom('endpoints').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
}

/** Records the first failure of a run of failures (later failures keep the first time). */
export async function markEndpointFailing(db: Db, id: string, now: number): Promise<void> {
  await db.updateTable('endpoints').set({ failing_since: now }).where('id', '=', id).where('failing_since', 'is', null).execute();
}

export async function clearEndpointFailing(db: Db, id: string): Promise<void> {
  await db.updateTable('endpoints').set({ failing_since: null }).where('id', '=', id).where('failing_since', 'is not', null).execute();
}

/** Disables an enabled endpoint; true when this call did it (so exactly one caller reports it). */
export async function disableEndpoint(db: Db, id: string, reason: string, now: number): Promise<boolean> {
  const result = await db
    .updateTable('endpoints')
    .set({ enabled: 0, disabled_at: now, disabled_reason: reason, updated_at: now })
    .where('id', '=', id)
    .where('enabled', '=', 1)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}
