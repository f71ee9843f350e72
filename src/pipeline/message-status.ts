/**
 * The outbound status lifecycle, shared by the sender (accepted, queued, sending, sent, failed) and
 * the receipts (delivered, read):
 *
 *   accepted -> queued -> sending -> sent -> delivered -> read      or   failed
 *
 * A status only moves forward. `failed` is final, except that a later echo or receipt proves the
 * message went out after all (a send that timed out and was given up on): then it moves on to
 * sent, delivered or read and its error is cleared. Every move appends to the message's status log
 * (`status_log`, in the same UPDATE as the status) and emits a `message.status` event (to the endpoints and to the message's own `status_callback`) in the
 * same transaction, so events leave in the order the moves were made.
 */
import type { MessageFailure, MessageStatusData } from '../domain/events.js';
import type { GatewayError } from '../domain/errors.js';
import type { Channel, JsonObject, JsonValue, MessageStatus } from '../domain/glossary.js';
import { OUTBOUND_STATUS_RANK } from '../domain/glossary.js';
import { isoTime } from '../domain/time.js';
import type { JobQueue } from '../jobs/queue.js';
import { sql } from 'kysely';
import { compiledByShape } from '../store/compiled.js';
import type { Db } from '../store/db.js';
import { getMessageById } from '../store/messages.js';
import type { MessageRow } from '../store/schema.js';
import { emitEvent } from './events.js';
import { messageResource } from './inbound-resources.js';
import { parseSendState, serializeSendState } from './outbound-state.js';

export type OutboundStatus = Exclude<MessageStatus, 'received'>;
type RankedStatus = keyof typeof OUTBOUND_STATUS_RANK;

export interface StatusChange {
  /** When it happened (epoch ms): Meta's timestamp or watermark for receipts, the clock otherwise. */
  at: number;
  /** The clock, for `updated_at`; `at` when absent. */
  now?: number;
  /** Why it failed (`failed` only). */
  error?: MessageFailure;
  /** Meta's mid, set when the message has none yet. */
  mid?: string;
  meta_timestamp?: number;
  /** More facts for the history row (watermark, source, part). */
  info?: JsonObject;
  /** The sender's channel when the caller knows it (saves a lookup for the event). */
  channel?: Channel;
  /** The outbound send state (`raw`), written in the same update. */
  raw?: string;
}

const PROVEN_SENT: readonly OutboundStatus[] = ['sent', 'delivered', 'read'];

/** The statuses a message may leave to reach `to`. */
export function statusesBefore(to: OutboundStatus): OutboundStatus[] {
  if (to === 'failed') return ['accepted', 'queued', 'sending'];
  const rank = OUTBOUND_STATUS_RANK[to];
  const earlier = (Object.keys(OUTBOUND_STATUS_RANK) as RankedStatus[]).filter((s) => OUTBOUND_STATUS_RANK[s] < rank);
  // An echo or receipt is proof it went out, even after the gateway gave up on it.
  return PROVEN_SENT.includes(to) ? [...earlier, 'failed'] : earlier;
}

export function canMove(from: string, to: OutboundStatus): boolean {
  return (statusesBefore(to) as string[]).includes(from);
}

/** The failure a message records, from the GatewayError that decided it. */
export function failureFromError(err: GatewayError): MessageFailure {
  const d = err.details;
  const metaMessage = typeof d['meta_message'] === 'string' ? d['meta_message'] : null;
  const failure: MessageFailure = {
    code: err.code,
    message: metaMessage !== null && !err.message.includes(metaMessage) ? `${err.message} Meta said: ${metaMessage}` : err.message,
  };
  if (typeof d['meta_code'] === 'number') failure.meta_code = d['meta_code'];
  if (typeof d['meta_subcode'] === 'number') failure.meta_subcode = d['meta_subcode'];
  if (metaMessage !== null) failure.meta_message = metaMessage;
  if (typeof d['fbtrace_id'] === 'string') failure.fbtrace_id = d['fbtrace_id'];
  return failure;
}

// A sender's channel never changes; looking it up once per process saves a query per event.
const channelBySender = new Map<string, Channel>();
// Bounded so a process serving many thousands of senders does not grow without end.
const CHANNEL_CACHE_LIMIT = 10_000;

async function channelOf(db: Db, senderId: string, known?: Channel): Promise<Channel> {
  if (known !== undefined) return known;
  const cached = channelBySender.get(senderId);
  if (cached !== undefined) return cached;
  const row = await db.selectFrom('senders').select('channel').where('id', '=', senderId).executeTakeFirst();
  const channel: Channel = row?.channel === 'instagram' ? 'instagram' : 'messenger';
  if (channelBySender.size >= CHANNEL_CACHE_LIMIT) channelBySender.clear();
  channelBySender.set(senderId, channel);
  return channel;
}

function historyDetail(change: StatusChange): JsonObject | null {
  const detail: JsonObject = { ...(change.info ?? {}) };
  if (change.error !== undefined) detail['error'] = change.error as unknown as JsonValue;
  if (change.mid !== undefined) detail['mid'] = change.mid;
  return Object.keys(detail).length === 0 ? null : detail;
}

/**
 * `log` with one more entry. Appended as text: the stored array is only ever written here, so
 * its end is known, and a message's log is not parsed again on every move.
 */
export function appendStatusLog(log: string | null, status: string, at: number, detail: JsonObject | null): string {
  const entry = JSON.stringify(detail === null ? { status, at } : { status, at, detail });
  return log === null || log.length <= 2 ? `[${entry}]` : `${log.slice(0, -1)},${entry}]`;
}

/** The status log of a message created with these statuses, for its insert. */
export function initialStatusLog(statuses: readonly string[], change: StatusChange): string {
  let log: string | null = null;
  for (const status of statuses) log = appendStatusLog(log, status, change.at, historyDetail(change));
  return log ?? '[]';
}

/** Emits the event for a move already made on `row` (its log written with it). */
async function recordMove(
  trx: Db,
  queue: JobQueue,
  row: MessageRow,
  previous: OutboundStatus | null,
  change: StatusChange,
): Promise<void> {
  const channel = await channelOf(trx, row.sender_id, change.channel);
  const resource = messageResource(row, channel);
  const data: MessageStatusData = {
    message_id: row.id,
    status: row.status as MessageStatus,
    previous_status: previous,
    timestamp: isoTime(change.at),
    error: resource.error ?? null,
    message: resource,
  };
  await emitEvent(trx, queue, {
    account_id: row.account_id,
    type: 'message.status',
    sender_id: row.sender_id,
    conversation_id: row.conversation_id,
    message_id: row.id,
    data,
    callback_url: row.status_callback,
    created_at: change.now ?? change.at,
  });
}

/**
 * Emits the first statuses of a message just inserted with the last of them and its
 * `initialStatusLog` (e.g. a new message inserted as `queued` emits `accepted` then `queued`).
 */
export async function recordInitialStatuses(
  trx: Db,
  queue: JobQueue,
  row: MessageRow,
  statuses: readonly OutboundStatus[],
  change: StatusChange,
): Promise<void> {
  let previous: OutboundStatus | null = null;
  for (const status of statuses) {
    await recordMove(trx, queue, { ...row, status }, previous, change);
    previous = status;
  }
}

// The update of a move, one compiled statement per set of columns (a handful: one per target
// status, with or without mid, raw and a cleared error).
const moveStatement = compiledByShape((shape: string) => {
  const columns = shape.split(',');
  return {
    arity: columns.length + 2,
    // Arguments: each column's value, then the id and the status moved from.
    build: (db: Db, ...args: unknown[]) =>
      db
        .updateTable('messages')
        .set(Object.fromEntries(columns.map((c, i) => [c, sql.val(args[i])])) as Partial<MessageRow>)
        .where('id', '=', args[columns.length] as string)
        .where('status', '=', args[columns.length + 1] as string),
  };
});

/**
 * Moves an outbound message to `to` when the lifecycle allows it; returns the updated row, or
 * null when the message is already there or beyond (nothing written, no event). `message` may be
 * stale: the update only applies to the status it read, and is retried once on a fresh read.
 */
export async function advanceStatus(
  trx: Db,
  queue: JobQueue,
  message: MessageRow,
  to: OutboundStatus,
  change: StatusChange,
): Promise<MessageRow | null> {
  let current: MessageRow | undefined = message;
  for (let tries = 0; tries < 2 && current !== undefined; tries += 1) {
    const from = current.status as OutboundStatus;
    if (current.direction !== 'outbound' || !canMove(from, to)) return null;
    const now = change.now ?? change.at;
    const set: Partial<MessageRow> = { status: to, updated_at: now };
    // A time already set is left out of the update: SQLite rewrites an index entry whenever its
    // column is in the SET list, changed or not (`sent_at` is in the receipts' index).
    if (to === 'sent' || to === 'delivered' || to === 'read') {
      if (current.sent_at === null) set.sent_at = change.at;
    }
    if (to === 'delivered') set.delivered_at = change.at;
    if (to === 'read') {
      set.read_at = change.at;
      if (current.delivered_at === null) set.delivered_at = change.at;
    }
    if (to === 'failed' && change.error !== undefined) {
      set.error_code = change.error.code;
      set.error_message = change.error.message;
      set.meta_error_code = change.error.meta_code ?? null;
      set.meta_error_subcode = change.error.meta_subcode ?? null;
    }
    if (from === 'failed') {
      // Proven sent after all: the earlier failure no longer describes the message.
      set.error_code = null;
      set.error_message = null;
      set.meta_error_code = null;
      set.meta_error_subcode = null;
    }
    if (change.mid !== undefined && current.mid === null) set.mid = change.mid;
    if (change.meta_timestamp !== undefined) set.meta_timestamp = change.meta_timestamp;
    if (change.raw !== undefined) set.raw = change.raw;
    set.status_log = appendStatusLog(current.status_log, to, change.at, historyDetail(change));
    const columns = Object.keys(set) as (keyof MessageRow)[];
    const result = await moveStatement(columns.join(',')).run(trx, ...columns.map((c) => set[c]), current.id, from);
    if (Number(result.numAffectedRows ?? 0n) > 0) {
      const updated: MessageRow = { ...current, ...set };
      await recordMove(trx, queue, updated, from, change);
      return updated;
    }
    current = await getMessageById(trx, current.id);
  }
  return null;
}

export interface OutboundEcho {
  mid: string;
  /** The part named by the echo's metadata (`p`); 0 when absent. */
  part?: number;
  /** Meta's timestamp of the echo. */
  at: number;
  /** The clock. */
  now: number;
}

/**
 * An echo of a message the gateway sent (matched by mid or by the `sb` id in its metadata):
 * remembers the part's mid, settles a send whose answer was lost, and moves the message to `sent`
 * once every part is known to have gone out. Returns the row when its status moved.
 */
export async function applyOutboundEcho(trx: Db, queue: JobQueue, message: MessageRow, echo: OutboundEcho): Promise<MessageRow | null> {
  const state = parseSendState(message.raw);
  const parts = state.parts ?? [];
  const index = echo.part ?? 0;
  const part = parts[index];
  let stateChanged = false;
  if (part !== undefined && (part.sent_at === undefined || part.mid === undefined)) {
    part.mid = echo.mid;
    part.sent_at ??= echo.at;
    stateChanged = true;
  }
  if (state.uncertain !== undefined && state.uncertain.part === index) {
    delete state.uncertain;
    stateChanged = true;
  }
  const allSent = parts.every((p) => p.sent_at !== undefined);
  const raw = stateChanged ? serializeSendState(state) : undefined;
  if (allSent) {
    const firstMid = parts[0]?.mid ?? echo.mid;
    const moved = await advanceStatus(trx, queue, message, 'sent', {
      at: echo.at,
      now: echo.now,
      mid: firstMid,
      meta_timestamp: echo.at,
      info: { source: 'echo' },
      ...(raw !== undefined ? { raw } : {}),
    });
    if (moved !== null || raw === undefined) return moved;
  }
  if (raw !== undefined) await trx.updateTable('messages').set({ raw, updated_at: echo.now }).where('id', '=', message.id).execute();
  return null;
}

/** The status history of a message, oldest first, as the API shows it. */
export function statusHistory(message: Pick<MessageRow, 'status_log'>): { status: string; at: string; detail: JsonValue }[] {
  if (message.status_log === null) return [];
  let entries: unknown;
  try {
    entries = JSON.parse(message.status_log);
  } catch {
    return [];
  }
  if (!Array.isArray(entries)) return [];
  return entries.map((e: { status?: unknown; at?: unknown; detail?: JsonValue }) => ({
    status: String(e.status),
    at: isoTime(Number(e.at)),
    detail: e.detail ?? null,
  }));
}
