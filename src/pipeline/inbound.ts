/**
 * The `inbound.batch` job: one stored webhook POST, parsed and handled entry by entry, item by
 * item. An entry is routed to the live sender with its Page or Instagram id; an entry no sender
 * owns is kept as unroutable. Each item is handled in its own transaction and its own try: one bad
 * item is recorded on the batch (`error`) and never hides the others. A batch with failed items is
 * retried by the job, and a retry handles only the items that failed.
 *
 * The steps live beside this file: contacts and conversations (`inbound-contacts.ts`), messages
 * (`inbound-messages.ts`), interactions (`inbound-interactions.ts`), echoes (`inbound-echoes.ts`),
 * receipts (`inbound-receipts.ts`) and everything else (`inbound-raw.ts`).
 */
import type { Channel } from '../domain/glossary.js';
import { groupCommitFor } from '../jobs/group-commit.js';
import type { Job, JobHandler } from '../jobs/job.js';
import { PermanentJobError, RetryableJobError } from '../jobs/job.js';
import { parseWebhook } from '../meta/webhook.js';
import type { MetaEvent, ParsedEntry } from '../meta/webhook.js';
import { getInboundBatch, markInboundBatchProcessed } from '../store/inbound-batches.js';
import type { InboundBatchRow } from '../store/inbound-batches.js';
import type { SenderRow } from '../store/schema.js';
import { findLiveSenderByMetaId } from '../store/senders.js';
import { hasUnroutableForBatch, insertUnroutable } from '../store/unroutable.js';
import type { NewUnroutableEvent } from '../store/unroutable.js';
import { rememberInboundItem } from '../store/inbound-item-keys.js';
import type { PipelineContext } from './context.js';
import { PROFILE_FETCH_JOB } from './inbound-contacts.js';
import { derivedMid } from './inbound-context.js';
import type { InboundItemContext, ItemOutcome } from './inbound-context.js';
import { handleEcho } from './inbound-echoes.js';
import { handleEdit, handleOptin, handlePostback, handleReaction, handleReferral } from './inbound-interactions.js';
import { handleMessage } from './inbound-messages.js';
import { handleRaw } from './inbound-raw.js';
import { handleDelivery, handleRead } from './inbound-receipts.js';
import { INBOUND_BATCH_JOB } from './ingress-writer.js';
import type { InboundBatchJobPayload } from './ingress-writer.js';
import { MEDIA_DOWNLOAD_JOB, mediaDownloadHandler } from './media.js';
import { profileFetchHandler } from './profile.js';

export { INBOUND_BATCH_JOB, PROFILE_FETCH_JOB, MEDIA_DOWNLOAD_JOB };

/** One failed item, as recorded on the batch. */
export interface ItemFailure {
  entry: number;
  item: number;
  kind: string;
  error: string;
}

/** What `inbound_batches.error` holds (JSON): the reason the body was unreadable, or the failed items. */
export type BatchError = { error: string } | { failed: ItemFailure[] };

export interface BatchResult {
  outcomes: ItemOutcome[];
  unroutable: number;
  failed: ItemFailure[];
}

/** The channel an envelope's `object` belongs to; other objects are not routed. */
export function channelOf(object: string | null): Channel | null {
  if (object === 'page') return 'messenger';
  if (object === 'instagram') return 'instagram';
  return null;
}

function failedItemsOf(batch: InboundBatchRow): Set<string> | null {
  if (batch.processed_at === null || batch.error === null) return null;
  try {
    const value = JSON.parse(batch.error) as Partial<{ failed: ItemFailure[] }>;
    if (!Array.isArray(value.failed)) return null;
    return new Set(value.failed.map((f) => `${f.entry}:${f.item}`));
  } catch {
    return null;
  }
}

export async function handleItem(ic: InboundItemContext, ev: MetaEvent): Promise<ItemOutcome> {
  switch (ev.kind) {
    case 'message':
      return handleMessage(ic, ev);
    case 'echo':
      return handleEcho(ic, ev);
    case 'delivery':
      return handleDelivery(ic, ev);
    case 'read':
      return handleRead(ic, ev);
    case 'reaction':
      return handleReaction(ic, ev);
    case 'edit':
      return handleEdit(ic, ev);
    case 'postback':
      return handlePostback(ic, ev);
    case 'optin':
      return handleOptin(ic, ev);
    case 'referral':
      return handleReferral(ic, ev);
    case 'handover':
    case 'policy_enforcement':
    case 'change':
    case 'unknown':
      return handleRaw(ic, ev);
  }
}

/**
 * Processes one stored batch. Never throws for a bad item (it is recorded and returned in
 * `failed`); throws only when the batch itself cannot be read or its outcome not recorded.
 */
export async function processInboundBatch(ctx: PipelineContext, batchId: number): Promise<BatchResult> {
  const db = ctx.store.db;
  const batch = await getInboundBatch(db, batchId);
  if (!batch) throw new PermanentJobError(`inbound batch ${batchId} does not exist`);
  const result: BatchResult = { outcomes: [], unroutable: 0, failed: [] };
  if (batch.processed_at !== null && batch.error === null) return result;
  const only = failedItemsOf(batch);
  if (batch.processed_at !== null && only === null) return result;

  const parsed = parseWebhook(batch.body);
  if (parsed.error !== undefined) {
    // Meta would retry a refused body for ever, so it was acknowledged; it stays stored, marked.
    ctx.logger.warn({ batch: batchId, reason: parsed.error }, 'unreadable webhook batch kept with its error');
    const reason = JSON.stringify({ error: parsed.error } satisfies BatchError);
    await groupCommitFor(ctx).run((trx) => markInboundBatchProcessed(trx, batchId, ctx.now(), reason));
    return result;
  }
  const channel = channelOf(parsed.object);
  const object = parsed.object ?? '';
  const senders = new Map<string, SenderRow | null>();

  for (const [e, entry] of parsed.entries.entries()) {
    const sender = channel === null ? null : await senderFor(ctx, senders, channel, entry.id);
    if (sender === null || channel === null) {
      if (only !== null && !only.has(`${e}:-1`)) continue;
      try {
        result.unroutable += await keepUnroutable(ctx, batch, object, entry);
      } catch (err) {
        result.failed.push({ entry: e, item: -1, kind: 'unroutable', error: messageOf(err) });
      }
      continue;
    }
    const ic: InboundItemContext = { ctx, sender, channel, object, entryId: entry.id, batchId };
    for (const [i, ev] of entry.items.entries()) {
      if (only !== null && !only.has(`${e}:${i}`)) continue;
      try {
        result.outcomes.push(await handleItem(ic, ev));
      } catch (err) {
        result.failed.push({ entry: e, item: i, kind: ev.kind, error: messageOf(err) });
        ctx.logger.error({ err, batch: batchId, account: sender.account_id, sender: sender.id, kind: ev.kind }, 'an inbound item failed; the others go on');
      }
    }
  }
  const error = result.failed.length > 0 ? JSON.stringify({ failed: result.failed } satisfies BatchError) : null;
  // In the process's group commit: alone it was a commit and a flush of its own for every batch
  // (three a message at low rates: the echo, the delivery and the read arrive one batch each).
  await groupCommitFor(ctx).run((trx) => markInboundBatchProcessed(trx, batchId, ctx.now(), error));
  return result;
}

async function senderFor(ctx: PipelineContext, cache: Map<string, SenderRow | null>, channel: Channel, metaId: string): Promise<SenderRow | null> {
  const cached = cache.get(metaId);
  if (cached !== undefined) return cached;
  const sender = metaId === '' ? null : ((await findLiveSenderByMetaId(ctx.store.db, channel, metaId)) ?? null);
  cache.set(metaId, sender);
  return sender;
}

/**
 * Stores the entry's items as unroutable: once per batch, even when the batch is processed again,
 * and once per item across Meta's retries of it (remembered by a hash of the item under the entry's
 * id, as forwarded items are).
 */
async function keepUnroutable(ctx: PipelineContext, batch: InboundBatchRow, object: string, entry: ParsedEntry): Promise<number> {
  if (entry.items.length === 0) return 0;
  if (await hasUnroutableForBatch(ctx.store.db, batch.id, entry.id)) return 0;
  const kept = await ctx.queue.transaction(async (trx) => {
    const fresh: NewUnroutableEvent[] = [];
    for (const item of entry.items) {
      const key = derivedMid('unroutable', item.raw);
      if (await rememberInboundItem(trx, `unroutable:${entry.id}`, key, ctx.now())) {
        fresh.push({ batch_id: batch.id, object, entry_id: entry.id, item: JSON.stringify(item.raw), received_at: batch.received_at });
      }
    }
    await insertUnroutable(trx, fresh);
    return fresh.length;
  });
  if (kept > 0) ctx.logger.warn({ batch: batch.id, object, entry: entry.id, items: kept }, 'webhook entry for a Page or account no sender owns kept as unroutable');
  return kept;
}

function messageOf(err: unknown): string {
  // One line per failed item on the batch row: enough to tell failures apart, never a stack.
  return (err instanceof Error ? err.message : String(err)).slice(0, 500);
}

/** Job payloads arrive parsed or as the JSON text they were stored as, depending on the runner. */
export function jobPayload<T>(job: Job): T {
  return (typeof job.payload === 'string' ? JSON.parse(job.payload) : job.payload) as T;
}

// The batches of one job are processed this many at a time: side by side, as when each batch was
// a job of its own, so their writes share group commits, yet one large group cannot flood the loop.
const BATCHES_AT_ONCE = 16;

function batchIdsOf(payload: InboundBatchJobPayload): number[] {
  if (Array.isArray(payload.batch_ids) && payload.batch_ids.every((id) => typeof id === 'number')) return payload.batch_ids;
  if (typeof payload.batch_id === 'number') return [payload.batch_id];
  throw new PermanentJobError('inbound.batch payload names no batch');
}

/**
 * The `inbound.batch` handler: processes the job's batches; items that failed make the job retry,
 * and a retry redoes only those items (finished batches are skipped).
 */
export function inboundBatchHandler(ctx: PipelineContext): JobHandler {
  return async (job) => {
    const ids = batchIdsOf(jobPayload<InboundBatchJobPayload>(job));
    const failures: string[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < ids.length) {
        const id = ids[next++] as number;
        const result = await processInboundBatch(ctx, id);
        if (result.failed.length > 0) failures.push(`${result.failed.length} item(s) of inbound batch ${id} failed: ${result.failed[0]?.error ?? ''}`);
      }
    };
    await Promise.all(Array.from({ length: Math.min(BATCHES_AT_ONCE, ids.length) }, worker));
    if (failures.length > 0) throw new RetryableJobError(failures.join('; '));
  };
}

/** The job kinds the inbound side owns, for the runner. */
export function inboundJobHandlers(ctx: PipelineContext): Record<string, JobHandler> {
  return {
    [INBOUND_BATCH_JOB]: inboundBatchHandler(ctx),
    [PROFILE_FETCH_JOB]: profileFetchHandler(ctx),
    [MEDIA_DOWNLOAD_JOB]: mediaDownloadHandler(ctx),
  };
}
