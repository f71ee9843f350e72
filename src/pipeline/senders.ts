/**
 * Connecting Pages and Instagram accounts, and keeping their health.
 * health: active -> degraded (Meta trouble that may pass) -> reauth_required (token dead) ->
 * disconnected (by the business). Every change is a `sender.health_changed` event. Inbound keeps
 * flowing while a sender awaits reauthorisation: only `disconnected` stops routing.
 */
import type { Channel, SenderHealth } from '../domain/glossary.js';
import { GatewayError } from '../domain/errors.js';
import { newId } from '../domain/ids.js';
import { MetaApiError, MetaTransportError } from '../meta/graph.js';
import { classifyMetaError } from '../meta/errors.js';
import { PAGE_SUBSCRIBED_FIELDS } from '../meta/graph.js';
import type { Db } from '../store/db.js';
import type { SenderRow } from '../store/schema.js';
import { findLiveSenderByMetaId, getSender, getSenderById, insertSender, newSenderRow, updateSender } from '../store/senders.js';
import { emitEvent } from './events.js';
import { senderSettings } from './outbound-policy.js';
import type { PipelineContext } from './context.js';

export interface ConnectInput {
  access_token: string;
  /** The Page id; when absent the token's own Page (`/me`) is used. */
  page_id?: string;
  /** `instagram` connects the Instagram professional account linked to the Page. */
  channel?: Channel;
  name?: string;
}

interface PageInfo {
  id: string;
  name?: string;
  instagram_business_account?: { id: string; username?: string; name?: string };
}

/** Meta refusals while connecting become errors the user sees, with Meta's words attached. */
function connectError(err: unknown, step: string): GatewayError {
  if (err instanceof GatewayError) return err;
  if (err instanceof MetaApiError) {
    const c = classifyMetaError(err);
    return new GatewayError(c.gatewayCode, { step, meta_code: err.code, meta_subcode: err.subcode ?? null, meta_message: err.message }, `Meta refused the ${step}: ${err.message}`);
  }
  if (err instanceof MetaTransportError) return new GatewayError('UPSTREAM_UNAVAILABLE', { step, reason: err.message }, `Meta could not be reached for the ${step}: ${err.message}`);
  return new GatewayError('UPSTREAM_UNAVAILABLE', { step }, `The ${step} failed: ${(err as Error).message}`);
}

async function lookupPage(ctx: PipelineContext, token: string, pageId: string | undefined): Promise<PageInfo> {
  try {
    const page = (await ctx.graph.getPage(pageId ?? 'me', token, ['id', 'name', 'instagram_business_account'])) as unknown as PageInfo;
    if (!page?.id) throw new GatewayError('META_INVALID_PARAMETER', { step: 'token check' }, 'Meta did not return a Page for this token.');
    const ig = page.instagram_business_account;
    if (ig?.id && !ig.username) {
      // The Page answers with the linked account's id only; its name is a second, optional look-up.
      try {
        const details = (await ctx.graph.getPage(ig.id, token, ['id', 'username', 'name'])) as unknown as { username?: string; name?: string };
        page.instagram_business_account = { id: ig.id, ...(details.username ? { username: details.username } : {}), ...(details.name ? { name: details.name } : {}) };
      } catch {
        // The username is cosmetic; the id is what routing needs.
      }
    }
    return page;
  } catch (err) {
    throw connectError(err, 'token check');
  }
}

export async function connectSender(ctx: PipelineContext, accountId: string, input: ConnectInput): Promise<SenderRow> {
  const channel: Channel = input.channel ?? 'messenger';
  const page = await lookupPage(ctx, input.access_token, input.page_id);
  if (input.page_id && page.id !== input.page_id) {
    throw new GatewayError('VALIDATION_FAILED', { field: 'body.page_id', reason: `the token belongs to Page ${page.id}, not ${input.page_id}` });
  }
  let metaId = page.id;
  let name = input.name ?? page.name ?? null;
  let username: string | null = null;
  if (channel === 'instagram') {
    const ig = page.instagram_business_account;
    if (!ig?.id) throw new GatewayError('VALIDATION_FAILED', { field: 'body.channel', reason: `Page ${page.id} has no linked Instagram professional account` });
    metaId = ig.id;
    name = input.name ?? ig.name ?? ig.username ?? name;
    username = ig.username ?? null;
  }
  const existing = await findLiveSenderByMetaId(ctx.store.db, channel, metaId);
  if (existing) {
    throw new GatewayError(
      'SENDER_ALREADY_CONNECTED',
      { meta_id: metaId, ...(existing.account_id === accountId ? { sender_id: existing.id } : {}) },
      existing.account_id === accountId
        ? `This ${channel === 'instagram' ? 'Instagram account' : 'Page'} is already connected as ${existing.id}; use POST /v1/senders/${existing.id}/reconnect to give it a new token.`
        : `This ${channel === 'instagram' ? 'Instagram account' : 'Page'} is connected to another account; it must be disconnected there first.`,
    );
  }
  // Subscribing is what makes Meta send webhooks; a failure here must reach the user, not a log line.
  try {
    await ctx.graph.subscribeApp(page.id, input.access_token, PAGE_SUBSCRIBED_FIELDS);
  } catch (err) {
    throw connectError(err, 'webhook subscription (subscribed_apps)');
  }
  const now = ctx.now();
  const row = newSenderRow({
    id: newId('snd'),
    account_id: accountId,
    channel,
    meta_id: metaId,
    page_id: page.id,
    name,
    username,
    token_enc: ctx.secrets.seal(input.access_token),
    now,
    last_checked_at: now,
  });
  try {
    await insertSender(ctx.store.db, row);
  } catch (err) {
    // Two connects of the same id racing: the unique index decides, the loser hears why.
    if (await findLiveSenderByMetaId(ctx.store.db, channel, metaId)) throw new GatewayError('SENDER_ALREADY_CONNECTED', { meta_id: metaId });
    throw err;
  }
  ctx.logger.info({ account: accountId, sender: row.id, channel, meta_id: metaId }, 'sender connected');
  return row;
}

/** A new token for a sender (after `reauth_required`, or a rotated token). */
export async function reconnectSender(ctx: PipelineContext, accountId: string, senderId: string, token: string): Promise<SenderRow> {
  const sender = await getSender(ctx.store.db, accountId, senderId);
  if (!sender || sender.health === 'disconnected') throw new GatewayError('NOT_FOUND', { resource: 'sender' });
  const page = await lookupPage(ctx, token, sender.page_id);
  if (page.id !== sender.page_id) throw new GatewayError('VALIDATION_FAILED', { field: 'body.access_token', reason: `the token belongs to Page ${page.id}, not ${sender.page_id}` });
  try {
    await ctx.graph.subscribeApp(sender.page_id, token, PAGE_SUBSCRIBED_FIELDS);
  } catch (err) {
    throw connectError(err, 'webhook subscription (subscribed_apps)');
  }
  await updateSender(ctx.store.db, accountId, senderId, { token_enc: ctx.secrets.seal(token), updated_at: ctx.now(), last_checked_at: ctx.now() });
  await setSenderHealth(ctx, { ...sender }, 'active', 'reconnected');
  return (await getSender(ctx.store.db, accountId, senderId)) as SenderRow;
}

/** Moves a sender's health and emits `sender.health_changed`, in one transaction; a no-op when unchanged. */
export async function setSenderHealth(ctx: PipelineContext, sender: SenderRow, health: SenderHealth, reason: string | null, trx?: Db): Promise<boolean> {
  const run = async (db: Db): Promise<boolean> => {
    const now = ctx.now();
    const res = await db
      .updateTable('senders')
      .set({ health, health_reason: reason, health_changed_at: now, updated_at: now })
      .where('id', '=', sender.id)
      .where('health', '<>', health)
      // Only the business disconnects; Meta's errors never move a disconnected sender back.
      .where('health', '<>', 'disconnected')
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) === 0) return false;
    await emitEvent(db, ctx.queue, {
      account_id: sender.account_id,
      type: 'sender.health_changed',
      sender_id: sender.id,
      data: { sender_id: sender.id, channel: sender.channel, meta_id: sender.meta_id, previous: sender.health, health, reason, changed_at: new Date(now).toISOString() },
    });
    return true;
  };
  const changed = trx ? await run(trx) : await ctx.queue.transaction(run);
  if (changed) ctx.logger.warn({ account: sender.account_id, sender: sender.id, health, reason }, 'sender health changed');
  return changed;
}

/**
 * Pauses sending from a sender (Meta blocked its Page for a policy violation, code 368): the send
 * policy refuses with `SENDER_PAUSED` until someone resumes it with `PATCH /v1/senders/{id}`
 * `{"settings": {"paused": false}}`. Meta lifts such a block after a time it does not announce, and
 * every send meanwhile would fail at Meta and count against the Page, so a person decides. Inbound
 * keeps flowing. Runs in the caller's transaction; returns whether the sender was not paused before.
 */
export async function pauseSender(db: Db, senderId: string, reason: string, now: number): Promise<boolean> {
  const row = await db.selectFrom('senders').select('settings').where('id', '=', senderId).executeTakeFirst();
  if (!row) return false;
  // An unreadable settings value reads as none and is replaced by one that says paused.
  const settings = senderSettings(row);
  if (settings['paused'] === true) return false;
  const next = { ...settings, paused: true, paused_reason: reason, paused_at: new Date(now).toISOString() };
  await db.updateTable('senders').set({ settings: JSON.stringify(next), updated_at: now }).where('id', '=', senderId).execute();
  return true;
}

/** Disconnect: unsubscribe at Meta (best effort: the token may already be dead) and stop routing. */
export async function disconnectSender(ctx: PipelineContext, accountId: string, senderId: string, why = 'disconnected by the account'): Promise<SenderRow> {
  const sender = await getSender(ctx.store.db, accountId, senderId);
  if (!sender || sender.health === 'disconnected') throw new GatewayError('NOT_FOUND', { resource: 'sender' });
  let unsubscribed = true;
  // An Instagram sender shares the Page's subscription; only unsubscribe when no other live sender uses the Page.
  const siblings = await ctx.store.db
    .selectFrom('senders')
    .select('id')
    .where('page_id', '=', sender.page_id)
    .where('id', '<>', sender.id)
    .where('health', '<>', 'disconnected')
    .execute();
  if (siblings.length === 0) {
    try {
      await ctx.graph.unsubscribeApp(sender.page_id, ctx.secrets.open(sender.token_enc));
    } catch (err) {
      unsubscribed = false;
      ctx.logger.warn({ account: accountId, sender: senderId, err: (err as Error).message }, 'unsubscribing at Meta failed; the sender is disconnected here anyway');
    }
  }
  await ctx.queue.transaction(async (trx) => {
    const now = ctx.now();
    await trx.updateTable('senders').set({ health: 'disconnected', health_reason: unsubscribed ? why : `${why} (Meta unsubscribe failed)`, health_changed_at: now, updated_at: now }).where('id', '=', sender.id).execute();
    await emitEvent(trx, ctx.queue, {
      account_id: accountId,
      type: 'sender.health_changed',
      sender_id: sender.id,
      data: { sender_id: sender.id, channel: sender.channel, meta_id: sender.meta_id, previous: sender.health, health: 'disconnected', reason: why, changed_at: new Date(now).toISOString() },
    });
  });
  return (await getSender(ctx.store.db, accountId, senderId)) as SenderRow;
}

/**
 * Closing an account disconnects every sender it still has (unsubscribing the app from their Pages
 * at Meta), so its Pages stop routing to it and can be connected by another account. Returns how
 * many were disconnected.
 */
export async function disconnectAccountSenders(ctx: PipelineContext, accountId: string): Promise<number> {
  const live = await ctx.store.db.selectFrom('senders').select('id').where('account_id', '=', accountId).where('health', '<>', 'disconnected').orderBy('id').execute();
  for (const s of live) await disconnectSender(ctx, accountId, s.id, 'the account was closed');
  return live.length;
}

/**
 * The periodic check: is the token still valid, and is our app still subscribed to the Page?
 * A dead token -> reauth_required; a lost subscription is restored; Meta unreachable -> degraded.
 */
export async function checkSender(ctx: PipelineContext, senderId: string): Promise<SenderRow | undefined> {
  const sender = await getSenderById(ctx.store.db, senderId);
  if (!sender || sender.health === 'disconnected') return sender;
  const token = ctx.secrets.open(sender.token_enc);
  try {
    const info = await ctx.graph.debugToken(token);
    const scopes = Array.isArray(info['scopes']) ? (info['scopes'] as unknown[]).filter((x): x is string => typeof x === 'string') : [];
    const needed = sender.channel === 'instagram' ? 'instagram_manage_messages' : 'pages_messaging';
    if (!info.is_valid) {
      await setSenderHealth(ctx, sender, 'reauth_required', 'the Page token is no longer valid');
    } else if (scopes.length > 0 && !scopes.includes(needed)) {
      // A token without the messaging permission cannot send: degraded until someone grants it,
      // rather than active until the next send fails (and back again at the next check).
      await setSenderHealth(ctx, sender, 'degraded', `the Page token lacks the ${needed} permission`);
    } else {
      const apps = await ctx.graph.getSubscribedApps(sender.page_id, token);
      const ours = apps.find((a) => a.id === ctx.graph.appId);
      const missing = PAGE_SUBSCRIBED_FIELDS.filter((f) => !(ours?.subscribed_fields ?? []).includes(f));
      if (!ours || missing.length > 0) await ctx.graph.subscribeApp(sender.page_id, token, PAGE_SUBSCRIBED_FIELDS);
      if (sender.health !== 'active') await setSenderHealth(ctx, sender, 'active', 'check passed');
    }
  } catch (err) {
    if (err instanceof MetaApiError) {
      const c = classifyMetaError(err);
      if (c.senderEffect === 'reauth_required') await setSenderHealth(ctx, sender, 'reauth_required', err.message);
      else await setSenderHealth(ctx, sender, 'degraded', err.message);
    } else {
      await setSenderHealth(ctx, sender, 'degraded', `Meta could not be reached: ${(err as Error).message}`);
    }
  }
  await ctx.store.db.updateTable('senders').set({ last_checked_at: ctx.now() }).where('id', '=', sender.id).execute();
  return getSenderById(ctx.store.db, senderId);
}

/** The sender as the API shows it: never the token. */
export function presentSender(s: SenderRow) {
  let settings: Record<string, unknown> = {};
  try {
    settings = JSON.parse(s.settings) as Record<string, unknown>;
  } catch {
    settings = {};
  }
  return {
    id: s.id,
    account_id: s.account_id,
    channel: s.channel as Channel,
    meta_id: s.meta_id,
    page_id: s.page_id,
    name: s.name,
    username: s.username,
    health: s.health as SenderHealth,
    health_reason: s.health_reason,
    health_changed_at: new Date(s.health_changed_at).toISOString(),
    inbound_url: s.inbound_url,
    inbound_method: s.inbound_method,
    fallback_url: s.fallback_url,
    fallback_method: s.fallback_method,
    status_url: s.status_url,
    status_method: s.status_method,
    format: s.format,
    human_agent: s.human_agent === 1,
    settings,
    last_checked_at: s.last_checked_at === null ? null : new Date(s.last_checked_at).toISOString(),
    created_at: new Date(s.created_at).toISOString(),
    updated_at: new Date(s.updated_at).toISOString(),
  };
}
