/**
 * Items the gateway has no type for (new Meta event kinds, handover, policy enforcement, `changes`
 * such as comments): forwarded as a `raw` event with the item as received, never dropped. An
 * unknown item from a person is also stored as a message of kind `raw` in their conversation, so
 * it shows in the thread and Meta's retries of it are dropped like any message; any other is
 * remembered by a hash of the item (`inbound_item_keys`) so its retries are dropped too.
 */
import type { MetaEvent } from '../meta/webhook.js';
import type { Db } from '../store/db.js';
import type { RawEventData } from '../domain/events.js';
import { emitEvent } from './events.js';
import { openInboundConversation, upsertInboundContact } from './inbound-contacts.js';
import { derivedMid, DuplicateItem, itemTime } from './inbound-context.js';
import type { InboundItemContext, ItemOutcome } from './inbound-context.js';
import { messageExistsByMid } from '../store/messages.js';
import { rememberInboundItem } from '../store/inbound-item-keys.js';
import { inboundMessageRow, insertInboundOrRollback } from './inbound-rows.js';

export async function emitRawEvent(
  trx: Db,
  ic: InboundItemContext,
  ev: MetaEvent,
  ids: { conversation_id?: string | null; message_id?: string | null } = {},
): Promise<void> {
  const data: RawEventData = {
    object: ic.object,
    entry_id: ic.entryId,
    source: ev.source,
    sender_id: ev.sender_id,
    item: ev.raw,
  };
  await emitEvent(trx, ic.ctx.queue, {
    created_at: ic.ctx.now(),
    account_id: ic.sender.account_id,
    type: 'raw',
    sender_id: ic.sender.id,
    conversation_id: ids.conversation_id ?? null,
    message_id: ids.message_id ?? null,
    data,
  });
}

/** Whether the item's sender is a person (not the Page or account itself, not missing). */
function personOf(ic: InboundItemContext, ev: MetaEvent): string | null {
  if (ev.kind !== 'unknown' || ev.source === 'changes') return null;
  const id = ev.sender_id;
  return id !== null && id !== '' && id !== ic.entryId && id !== ic.sender.meta_id ? id : null;
}

export async function handleRaw(ic: InboundItemContext, ev: MetaEvent): Promise<ItemOutcome> {
  const { ctx } = ic;
  const psid = personOf(ic, ev);
  if (psid === null) {
    // No message row to be unique: the item's own key makes Meta's retries of it forward nothing more.
    const forwarded = await ctx.queue.transaction(async (trx) => {
      if (!(await rememberInboundItem(trx, ic.sender.id, derivedMid('raw', ev.raw), ctx.now()))) return false;
      await emitRawEvent(trx, ic, ev);
      return true;
    });
    return forwarded ? 'forwarded' : 'duplicate';
  }
  const mid = derivedMid('raw', ev.raw);
  if (await messageExistsByMid(ctx.store.db, ic.sender.id, mid)) return 'duplicate';
  try {
    await ctx.queue.transaction(async (trx) => {
      const now = ctx.now();
      const at = itemTime(ev.timestamp, now);
      // Not a known interaction, so the window is left alone: only the contact and thread are needed.
      const contact = await upsertInboundContact(trx, ic, { psid }, {});
      const conversation = await openInboundConversation(trx, ic, contact, { at, reopen: false });
      const row = inboundMessageRow(ic, { contact, conversation, mid, kind: 'raw', content: {}, raw: ev.raw, at }, now);
      await insertInboundOrRollback(trx, row);
      await emitRawEvent(trx, ic, ev, { conversation_id: conversation.id, message_id: row.id });
    });
  } catch (err) {
    if (err instanceof DuplicateItem) return 'duplicate';
    throw err;
  }
  return 'stored';
}
