/**
 * Endpoints as use cases: creating them with a secret, rotating secrets, keeping a sender's
 * callback endpoints in step with its settings, and finding the secrets that sign a delivery.
 *
 * Secrets. An endpoint made through `/v1/endpoints` has its own secret, shown at creation and on
 * rotation. The callbacks a business configures as settings (a sender's `inbound_url` and
 * `status_url`, a message's `status_callback`) are signed with the account's signing secret, held
 * in the account's `signing` row and shown by `GET /v1/endpoints/signing-secret`: one secret to
 * verify them all, whatever URLs come and go. A sender endpoint whose secret is rotated gets a
 * secret of its own from then on.
 */
import type { Db } from '../store/db.js';
import { newId } from '../domain/ids.js';
import type { SecretBox } from '../store/secrets.js';
import type { SenderRow } from '../store/schema.js';
import {
  ensureSigningEndpoint,
  generateSigningSecret,
  getSenderEndpoint,
  insertEndpoint,
  newEndpointRow,
  sealSigningSecretIfEmpty,
} from '../store/endpoints.js';
import type { Endpoint, EndpointChanges } from '../store/endpoints.js';

// After a rotation the old secret keeps signing alongside the new one for a day, so a receiver
// can deploy the new secret without refusing events in between (Svix keeps 24 h too).
export const PREVIOUS_SECRET_GRACE_MS = 24 * 60 * 60_000;

/** The account's signing row with a sealed secret, created on first need. */
export async function accountSigningEndpoint(db: Db, secrets: SecretBox, accountId: string, now: number): Promise<Endpoint> {
  const row = await ensureSigningEndpoint(db, accountId, now, () => newId('ep', now), secrets.seal(generateSigningSecret()));
  if (row.secret_enc !== '') return row;
  return sealSigningSecretIfEmpty(db, row.id, secrets.seal(generateSigningSecret()), now);
}

/** The secrets that sign a delivery through this endpoint row, newest first. */
export async function signingSecretsFor(db: Db, secrets: SecretBox, endpoint: Endpoint, now: number): Promise<string[]> {
  const owner = endpoint.secret_enc === '' ? await accountSigningEndpoint(db, secrets, endpoint.account_id, now) : endpoint;
  const out = [secrets.open(owner.secret_enc)];
  if (owner.previous_secret_enc && owner.previous_secret_until !== null && owner.previous_secret_until > now) {
    out.push(secrets.open(owner.previous_secret_enc));
  }
  return out;
}

export interface EndpointInput {
  url: string;
  method?: string;
  fallback_url?: string | null;
  fallback_method?: string;
  events?: string[] | null;
  description?: string | null;
  format?: string;
}

/** Creates an account endpoint; returns the row and its secret (shown this once). */
export async function createEndpoint(db: Db, secrets: SecretBox, accountId: string, input: EndpointInput, now: number): Promise<{ endpoint: Endpoint; secret: string }> {
  const secret = generateSigningSecret();
  const id = newId('ep', now);
  await insertEndpoint(
    db,
    newEndpointRow(
      {
        id,
        account_id: accountId,
        role: 'account',
        url: input.url,
        method: input.method ?? 'POST',
        fallback_url: input.fallback_url ?? null,
        fallback_method: input.fallback_method ?? 'POST',
        events: input.events && input.events.length > 0 ? JSON.stringify(input.events) : null,
        secret_enc: secrets.seal(secret),
        format: input.format ?? 'native',
        description: input.description ?? null,
      },
      now,
    ),
  );
  const endpoint = await db.selectFrom('endpoints').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  return { endpoint, secret };
}

/**
 * Gives the endpoint (or the account's signing row) a new secret; the old one keeps signing for
 * `PREVIOUS_SECRET_GRACE_MS`. Returns the new secret (shown this once).
 */
export async function rotateSecret(db: Db, secrets: SecretBox, endpoint: Endpoint, now: number): Promise<{ secret: string; previous_valid_until: number }> {
  // A sender endpoint signing with the account secret moves to a secret of its own; the account
  // secret is its "previous" one for the grace period.
  const previous = endpoint.secret_enc === '' ? (await accountSigningEndpoint(db, secrets, endpoint.account_id, now)).secret_enc : endpoint.secret_enc;
  const secret = generateSigningSecret();
  const until = now + PREVIOUS_SECRET_GRACE_MS;
  await db
    .updateTable('endpoints')
    .set({ secret_enc: secrets.seal(secret), previous_secret_enc: previous, previous_secret_until: until, updated_at: now })
    .where('id', '=', endpoint.id)
    .execute();
  return { secret, previous_valid_until: until };
}

/** The sender callback settings the gateway mirrors into endpoint rows. */
export type SenderCallbackSettings = Pick<
  SenderRow,
  'id' | 'account_id' | 'health' | 'inbound_url' | 'inbound_method' | 'fallback_url' | 'fallback_method' | 'status_url' | 'status_method' | 'format'
>;

/**
 * Keeps one endpoint row per sender role in step with the sender's callback settings: inbound
 * events go to `inbound_url` (with the sender's fallback URL), `message.status` to `status_url`.
 * A role whose URL is cleared (or a disconnected sender) has its endpoint deleted. A role named in
 * `reenable` (its URL was just set again, the business having fixed its server) is enabled again
 * if delivery had disabled it after failing for days. Call it in the transaction that changes the
 * sender.
 */
export async function syncSenderEndpoints(
  trx: Db,
  secrets: SecretBox,
  sender: SenderCallbackSettings,
  now: number = Date.now(),
  reenable: ReadonlySet<'inbound' | 'status'> = new Set(),
): Promise<void> {
  const live = sender.health !== 'disconnected';
  const wanted: Array<{ role: 'inbound' | 'status'; url: string | null; method: string; fallback_url: string | null; fallback_method: string }> = [
    { role: 'inbound', url: live ? sender.inbound_url : null, method: sender.inbound_method, fallback_url: sender.fallback_url, fallback_method: sender.fallback_method },
    { role: 'status', url: live ? sender.status_url : null, method: sender.status_method, fallback_url: null, fallback_method: 'POST' },
  ];
  for (const want of wanted) {
    const existing = await getSenderEndpoint(trx, sender.id, want.role);
    if (want.url === null || want.url === '') {
      if (existing) await trx.updateTable('endpoints').set({ deleted_at: now, enabled: 0, updated_at: now }).where('id', '=', existing.id).execute();
      continue;
    }
    if (existing) {
      const changes: EndpointChanges = {};
      if (existing.url !== want.url) changes.url = want.url;
      if (existing.method !== want.method) changes.method = want.method;
      if (existing.fallback_url !== want.fallback_url) changes.fallback_url = want.fallback_url;
      if (existing.fallback_method !== want.fallback_method) changes.fallback_method = want.fallback_method;
      if (existing.format !== sender.format) changes.format = sender.format;
      const enable = existing.enabled === 0 && reenable.has(want.role) ? { enabled: 1, disabled_at: null, disabled_reason: null, failing_since: null } : {};
      if (Object.keys(changes).length > 0 || 'enabled' in enable) await trx.updateTable('endpoints').set({ ...changes, ...enable, updated_at: now }).where('id', '=', existing.id).execute();
      continue;
    }
    await accountSigningEndpoint(trx, secrets, sender.account_id, now);
    await insertEndpoint(
      trx,
      newEndpointRow(
        {
          id: newId('ep', now),
          account_id: sender.account_id,
          role: want.role,
          url: want.url,
          method: want.method,
          fallback_url: want.fallback_url,
          fallback_method: want.fallback_method,
          // Empty: signed with the account's signing secret (see the top of this file).
          secret_enc: '',
          format: sender.format,
          description: want.role === 'inbound' ? "The sender's inbound_url" : "The sender's status_url",
          sender_id: sender.id,
        },
        now,
      ),
    );
  }
}
