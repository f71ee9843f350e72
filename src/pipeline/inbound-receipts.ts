/**
 * Delivery and read receipts. Messenger sends a watermark: every message sent at or before it is
 * delivered (or read); a delivery may also list `mids`. Instagram's read names one `mid` instead:
 * that message and every earlier one are read. Moves follow the lifecycle in `message-status.ts`
 * (forward only; each move a history row and a `message.status` event, to the message's own
 * status callback too). A read of a message never reported delivered records the delivery first,
 * so subscribers always see the whole sequence.
 */
import type { JsonObject } from '../domain/glossary.js';
import type { MetaDeliveryEvent, MetaReadEvent } from '../meta/webhook.js';
import type { Db } from '../store/db.js';
import { findContactByPsid } from '../store/contacts.js';
import { findMessageByMid, listOutboundByMids, listOutboundUpToWatermark } from '../store/messages.js';
import type { MessageRow } from '../store/schema.js';
import { itemTime } from './inbound-context.js';
import type { InboundItemContext, ItemOutcome } from './inbound-context.js';
import { advanceStatus, statusesBefore } from './message-status.js';
import type { StatusChange } from './message-status.js';
import { groupCommitFor } from '../jobs/group-commit.js';

interface ReceiptScope {
  contactId: string | null;
  watermark: number | null;
  mids: readonly string[];
  to: 'delivered' | 'read';
  at: number;
  source: 'delivery' | 'read';
}

function byTimeSent(a: MessageRow, b: MessageRow): number {
  return (a.sent_at ?? 0) - (b.sent_at ?? 0) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

async function applyReceipt(trx: Db, ic: InboundItemContext, scope: ReceiptScope): Promise<number> {
  const { ctx, sender } = ic;
  const movable = statusesBefore(scope.to);
  const byWatermark =
    scope.watermark !== null && scope.contactId !== null
      ? await listOutboundUpToWatermark(trx, scope.contactId, sender.id, scope.watermark, movable)
      : [];
  const byMid = await listOutboundByMids(trx, sender.id, scope.mids, movable);
  const all = new Map<string, MessageRow>();
  for (const m of [...byWatermark, ...byMid]) all.set(m.id, m);
  const info: JsonObject = { source: scope.source };
  if (scope.watermark !== null) info['watermark'] = scope.watermark;
  const change: StatusChange = { at: scope.at, now: ctx.now(), info, channel: ic.channel };
  let moved = 0;
  // Oldest first, so the events of one conversation leave in the order the messages went out.
  for (let message of [...all.values()].sort(byTimeSent)) {
    if (scope.to === 'read' && message.status !== 'delivered') {
      message = (await advanceStatus(trx, ctx.queue, message, 'delivered', change)) ?? message;
    }
    if (await advanceStatus(trx, ctx.queue, message, scope.to, change)) moved += 1;
  }
  return moved;
}

export async function handleDelivery(ic: InboundItemContext, ev: MetaDeliveryEvent): Promise<ItemOutcome> {
  const { ctx, sender } = ic;
  const contact = await findContactByPsid(ctx.store.db, sender.id, ev.sender_id);
  if (!contact && ev.mids.length === 0) return 'ignored';
  // Grouped commits: every outbound message brings back a delivery and a read (see outbound-commit.ts).
  const moved = await groupCommitFor(ctx).run((trx) =>
    applyReceipt(trx, ic, {
      contactId: contact?.id ?? null,
      watermark: ev.watermark,
      mids: ev.mids,
      to: 'delivered',
      at: itemTime(ev.timestamp, ctx.now()),
      source: 'delivery',
    }),
  );
  return moved > 0 ? 'updated' : 'ignored';
}

export async function handleRead(ic: InboundItemContext, ev: MetaReadEvent): Promise<ItemOutcome> {
  const { ctx, sender } = ic;
  const contact = await findContactByPsid(ctx.store.db, sender.id, ev.sender_id);
  if (!contact && ev.mid === null) return 'ignored';
  const moved = await groupCommitFor(ctx).run(async (trx) => {
    let watermark = ev.watermark;
    const mids: string[] = [];
    if (ev.mid !== null) {
      // Instagram: the message seen and everything sent before it.
      mids.push(ev.mid);
      const seen = await findMessageByMid(trx, sender.id, ev.mid);
      if (seen && seen.direction === 'outbound' && seen.sent_at !== null) watermark = Math.max(watermark ?? 0, seen.sent_at);
    }
    return applyReceipt(trx, ic, {
      contactId: contact?.id ?? null,
      watermark,
      mids,
      to: 'read',
      at: itemTime(ev.timestamp, ctx.now()),
      source: 'read',
    });
  });
  return moved > 0 ? 'updated' : 'ignored';
}
