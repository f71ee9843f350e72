/**
 * Bearer API-key authentication for `/v1`. A parent account may act for one of its subaccounts with
 * the `Switchboard-Account` header; any other account id there is refused, so no key reaches a
 * sibling's or a parent's data.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError } from '../domain/errors.js';
import type { Db } from '../store/db.js';
import { findApiKeyAccount, touchApiKey } from '../store/api-keys.js';
import { getAccount } from '../store/accounts.js';
import type { AccountRow } from '../store/schema.js';

export interface RequestAccount {
  id: string;
  parent_id: string | null;
  name: string;
  status: string;
  /** The account whose key was presented (differs from `id` when a parent acts for a subaccount). */
  key_account_id: string;
  key_id: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    account: RequestAccount;
  }
}

// last_used_at is advisory: writing it on every request would double the writes of a busy key.
const TOUCH_EVERY_MS = 60_000;

export function bearerAuth(db: Db, now: () => number = Date.now) {
  const touched = new Map<string, number>();
  return async function authenticate(request: FastifyRequest, _reply: FastifyReply): Promise<void> {
    const header = request.headers.authorization;
    const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match?.[1]) throw new GatewayError('UNAUTHENTICATED');
    const found = await findApiKeyAccount(db, match[1]);
    if (!found) throw new GatewayError('UNAUTHENTICATED');
    const owner = found.account;
    const key = { id: found.keyId };
    assertUsable(owner);
    let account: AccountRow = owner;
    const actAs = request.headers['switchboard-account'];
    if (typeof actAs === 'string' && actAs !== '' && actAs !== owner.id) {
      const child = await getAccount(db, actAs);
      if (!child || child.parent_id !== owner.id) throw new GatewayError('FORBIDDEN', {}, 'This API key may only act for its own account or its direct subaccounts.');
      assertUsable(child);
      account = child;
    }
    request.account = { id: account.id, parent_id: account.parent_id, name: account.name, status: account.status, key_account_id: owner.id, key_id: key.id };
    const t = now();
    if ((touched.get(key.id) ?? 0) + TOUCH_EVERY_MS < t) {
      touched.set(key.id, t);
      await touchApiKey(db, key.id, t);
    }
  };
}

function assertUsable(account: AccountRow): void {
  if (account.status === 'suspended') throw new GatewayError('ACCOUNT_SUSPENDED');
  if (account.status === 'closed') throw new GatewayError('ACCOUNT_CLOSED');
}
