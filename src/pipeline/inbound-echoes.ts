/**
 * Echoes: Meta's copy of every message the Page sent. One the gateway sent is matched to its
 * outbound message, first by the gateway's own id in the echo's `metadata` (the outbound side
 * sends `{"sb":"msg_…","m":<caller metadata>,"p":<part>}`; this works even when the send's answer
 * was lost), then by `mid`; `applyOutboundEcho` records the part's mid and moves the message to
 * `sent` once every part went out.
 * An echo nothing matches was sent elsewhere (Page inbox, Messenger app, another tool): it becomes
 * an outbound message with origin `external` and a `message.echo` event.
 */
import type { MessageEchoData } from '../domain/events.js';
import type { MetaEchoEvent } from '../meta/webhook.js';
import type { Db } from '../store/db.js';
import { findMessageByMid, getMessageById } from '../store/messages.js';
import type { MessageRow } from '../store/schema.js';
import { emitEvent } from './events.js';
import { openInboundConversation, upsertInboundContact } from './inbound-contacts.js';
import { DuplicateItem, itemTime } from './inbound-context.js';
import type { InboundItemContext, ItemOutcome } from './inbound-context.js';
import { messageKind } from './inbound-messages.js';
import { contactResource, messageResource } from './inbound-resources.js';
import { inboundMessageRow, insertInboundOrRollback } from './inbound-rows.js';
import { applyOutboundEcho, initialStatusLog } from './message-status.js';
import { parseEchoMetadata, parseSendState } from './outbound-state.js';
import { groupCommitFor } from '../jobs/group-commit.js';

async function matchOutbound(trx: Db, ic: InboundItemContext, ev: MetaEchoEvent): Promise<MessageRow | 'inbound' | null> {
  const gatewayId = parseEchoMetadata(ev.metadata)?.sb ?? null;
  if (gatewayId !== null) {
    const own = await getMessageById(trx, gatewayId);
    if (own && own.sender_id === ic.sender.id && own.direction === 'outbound') return own;
  }
  const byMid = await findMessageByMid(trx, ic.sender.id, ev.mid);
  if (!byMid) return null;
  return byMid.direction === 'outbound' ? byMid : 'inbound';
}

/** Which part of a multi-part send this echo is: named in the metadata, else found by its mid. */
function partOf(message: MessageRow, ev: MetaEchoEvent): number {
  const named = parseEchoMetadata(ev.metadata)?.p;
  if (named !== undefined) return named;
  const index = (parseSendState(message.raw).parts ?? []).findIndex((p) => p.mid === ev.mid);
  return index === -1 ? 0 : index;
}

export async function handleEcho(ic: InboundItemContext, ev: MetaEchoEvent): Promise<ItemOutcome> {
  const { ctx, sender } = ic;
  try {
    // Grouped with the other small transactions of the moment (one commit for many; see outbound-commit.ts):
    // every outbound message brings back an echo, a delivery and a read, each one transaction.
    return await groupCommitFor(ctx).run(async (trx): Promise<ItemOutcome> => {
      const now = ctx.now();
      const at = itemTime(ev.timestamp, now);
      const match = await matchOutbound(trx, ic, ev);
      if (match === 'inbound') return 'ignored';
      // An external echo stored before: this is Meta's retry of it.
      if (match !== null && match.origin === 'external') return 'duplicate';
      if (match !== null) {
        await applyOutboundEcho(trx, ctx.queue, match, { mid: ev.mid, part: partOf(match, ev), at, now });
        return 'updated';
      }

      // Sent outside Switchboard. The person did not write, so the window is left alone.
      const contact = await upsertInboundContact(trx, ic, { psid: ev.recipient_id }, {});
      const conversation = await openInboundConversation(trx, ic, contact, { at, reopen: false });
      const base = inboundMessageRow(ic, { contact, conversation, mid: ev.mid, kind: messageKind(ev.content), content: ev.content, raw: ev.raw, at }, now);
      const row: MessageRow = {
        ...base,
        direction: 'outbound',
        status: 'sent',
        origin: 'external',
        metadata: ev.metadata,
        sent_at: at,
        status_log: initialStatusLog(['sent'], { at, info: { source: 'echo', app_id: ev.app_id } }),
      };
      await insertInboundOrRollback(trx, row);
      const data: MessageEchoData & { app_id: string | null } = {
        message: messageResource(row, ic.channel, ev.content),
        contact: contactResource(contact, now),
        external: true,
        app_id: ev.app_id,
      };
      await emitEvent(trx, ctx.queue, {
        created_at: now,
        account_id: sender.account_id,
        type: 'message.echo',
        sender_id: sender.id,
        conversation_id: conversation.id,
        message_id: row.id,
        data,
      });
      return 'stored';
    });
  } catch (err) {
    if (err instanceof DuplicateItem) return 'duplicate';
    throw err;
  }
}
