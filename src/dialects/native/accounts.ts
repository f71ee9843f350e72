/** `/v1/account`, `/v1/accounts` (a parent's subaccounts) and `/v1/keys`. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { GatewayError } from '../../domain/errors.js';
import type { PipelineContext } from '../../pipeline/context.js';
import { disconnectAccountSenders } from '../../pipeline/senders.js';
import { createAccount, getAccount, getSubaccount, listSubaccounts, renameAccount, setAccountStatus } from '../../store/accounts.js';
import { createApiKey, listApiKeys, revokeApiKey } from '../../store/api-keys.js';
import type { AccountRow, ApiKeyRow } from '../../store/schema.js';
import { IdParams, NullableString, NullableTimestamp, PageQuery, Timestamp, commonErrors, iso, listOf, page } from './schemas.js';

const AccountSchema = Type.Object({
  id: Type.String(),
  parent_id: NullableString,
  name: Type.String(),
  status: Type.Union([Type.Literal('active'), Type.Literal('suspended'), Type.Literal('closed')]),
  created_at: Timestamp,
  updated_at: Timestamp,
});

const KeySchema = Type.Object({
  id: Type.String(),
  account_id: Type.String(),
  name: Type.String(),
  prefix: Type.String({ description: 'The first characters of the key, to tell keys apart.' }),
  created_at: Timestamp,
  last_used_at: NullableTimestamp,
  revoked_at: NullableTimestamp,
});
const NewKeySchema = Type.Intersect([KeySchema, Type.Object({ key: Type.String({ description: 'Shown once; only its hash is stored.' }) })]);

function presentAccount(a: AccountRow) {
  return { id: a.id, parent_id: a.parent_id, name: a.name, status: a.status as 'active' | 'suspended' | 'closed', created_at: new Date(a.created_at).toISOString(), updated_at: new Date(a.updated_at).toISOString() };
}
function presentKey(k: ApiKeyRow) {
  return { id: k.id, account_id: k.account_id, name: k.name, prefix: k.prefix, created_at: new Date(k.created_at).toISOString(), last_used_at: iso(k.last_used_at), revoked_at: iso(k.revoked_at) };
}

export function accountRoutes(ctx: PipelineContext): FastifyPluginAsyncTypebox {
  const db = ctx.store.db;
  return async (app) => {
    app.get('/account', { schema: { tags: ['accounts'], summary: 'The account this request acts for', response: { 200: AccountSchema, ...commonErrors } } }, async (req) => {
      const row = await getAccount(db, req.account.id);
      if (!row) throw new GatewayError('NOT_FOUND', { resource: 'account' });
      return presentAccount(row);
    });

    /** Only an account acting for itself manages subaccounts, and subaccounts have none of their own. */
    const requireParent = (req: { account: { id: string; parent_id: string | null; key_account_id: string } }) => {
      if (req.account.key_account_id !== req.account.id) throw new GatewayError('FORBIDDEN', {}, 'Subaccounts are managed by the parent acting for itself, without the Switchboard-Account header.');
      if (req.account.parent_id !== null) throw new GatewayError('FORBIDDEN', {}, 'A subaccount cannot have subaccounts of its own.');
    };

    app.post(
      '/accounts',
      {
        schema: {
          tags: ['accounts'],
          summary: 'Create a subaccount (returns its first API key, shown once)',
          body: Type.Object({ name: Type.String({ minLength: 1, maxLength: 200 }), key_name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })) }, { additionalProperties: false }),
          response: { 201: Type.Object({ account: AccountSchema, api_key: NewKeySchema }), ...commonErrors },
        },
      },
      async (req, reply) => {
        requireParent(req);
        const { account, key } = await db.transaction().execute(async (trx) => {
          const account = await createAccount(trx, { name: req.body.name, parent_id: req.account.id });
          const key = await createApiKey(trx, account.id, req.body.key_name ?? 'default');
          return { account, key };
        });
        req.log.info({ account: req.account.id, subaccount: account.id }, 'subaccount created');
        return reply.status(201).send({ account: presentAccount(account), api_key: { ...presentKey(key.row), key: key.key } });
      },
    );

    app.get('/accounts', { schema: { tags: ['accounts'], summary: 'List subaccounts', querystring: PageQuery, response: { 200: listOf(AccountSchema), ...commonErrors } } }, async (req) => {
      requireParent(req);
      const limit = req.query.limit ?? 50;
      const rows = await listSubaccounts(db, req.account.id, { after: req.query.after, limit: limit + 1 });
      const p = page(rows, limit);
      return { data: p.data.map(presentAccount), next_cursor: p.next_cursor };
    });

    app.get('/accounts/:id', { schema: { tags: ['accounts'], summary: 'Get a subaccount', params: IdParams, response: { 200: AccountSchema, ...commonErrors } } }, async (req) => {
      requireParent(req);
      const row = await getSubaccount(db, req.account.id, req.params.id);
      if (!row) throw new GatewayError('NOT_FOUND', { resource: 'account' });
      return presentAccount(row);
    });

    app.patch(
      '/accounts/:id',
      {
        schema: {
          tags: ['accounts'],
          summary: 'Rename, suspend, reactivate or close a subaccount',
          params: IdParams,
          body: Type.Object(
            { name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })), status: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('suspended'), Type.Literal('closed')])) },
            { additionalProperties: false },
          ),
          response: { 200: AccountSchema, ...commonErrors, 409: Type.Ref('Error') },
        },
      },
      async (req) => {
        requireParent(req);
        const row = await getSubaccount(db, req.account.id, req.params.id);
        if (!row) throw new GatewayError('NOT_FOUND', { resource: 'account' });
        if (row.status === 'closed' && req.body.status && req.body.status !== 'closed') throw new GatewayError('CONFLICT', { reason: 'a closed account cannot be reopened' });
        if (req.body.name) await renameAccount(db, row.id, req.body.name);
        if (req.body.status && req.body.status !== row.status) {
          await setAccountStatus(db, row.id, req.body.status);
          if (req.body.status === 'closed') await disconnectAccountSenders(ctx, row.id);
          req.log.info({ account: req.account.id, subaccount: row.id, status: req.body.status }, 'subaccount status changed');
        }
        return presentAccount((await getSubaccount(db, req.account.id, req.params.id)) as AccountRow);
      },
    );

    app.delete('/accounts/:id', { schema: { tags: ['accounts'], summary: 'Close a subaccount (its keys stop working and its senders are disconnected)', params: IdParams, response: { 200: AccountSchema, ...commonErrors } } }, async (req) => {
      requireParent(req);
      const row = await getSubaccount(db, req.account.id, req.params.id);
      if (!row) throw new GatewayError('NOT_FOUND', { resource: 'account' });
      await setAccountStatus(db, row.id, 'closed');
      // Also when it was already closed: a close that stopped half way finishes here.
      const disconnected = await disconnectAccountSenders(ctx, row.id);
      req.log.info({ account: req.account.id, subaccount: row.id, senders_disconnected: disconnected }, 'subaccount closed');
      return presentAccount((await getSubaccount(db, req.account.id, req.params.id)) as AccountRow);
    });

    app.post(
      '/keys',
      {
        schema: {
          tags: ['keys'],
          summary: 'Create an API key (shown once)',
          body: Type.Object({ name: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false }),
          response: { 201: NewKeySchema, ...commonErrors },
        },
      },
      async (req, reply) => {
        const { key, row } = await createApiKey(db, req.account.id, req.body.name);
        return reply.status(201).send({ ...presentKey(row), key });
      },
    );

    app.get('/keys', { schema: { tags: ['keys'], summary: 'List API keys (never the keys themselves)', response: { 200: listOf(KeySchema), ...commonErrors } } }, async (req) => {
      const rows = await listApiKeys(db, req.account.id);
      return { data: rows.map(presentKey), next_cursor: null };
    });

    app.delete('/keys/:id', { schema: { tags: ['keys'], summary: 'Revoke an API key', params: IdParams, response: { 204: Type.Null(), ...commonErrors } } }, async (req, reply) => {
      if (!(await revokeApiKey(db, req.account.id, req.params.id))) throw new GatewayError('NOT_FOUND', { resource: 'API key' });
      return reply.status(204).send(null);
    });
  };
}
