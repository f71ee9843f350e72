/**
 * What every inbound step gets: the pipeline context, the sender the entry was routed to, and
 * where the item came from. Also the helpers the steps share: dedupe keys for items Meta gives
 * no `mid`, and the sentinel that rolls back a transaction for an item already stored.
 */
import { createHash } from 'node:crypto';
import type { Channel, JsonValue } from '../domain/glossary.js';
import type { SenderRow } from '../store/schema.js';
import type { PipelineContext } from './context.js';

export interface InboundItemContext {
  ctx: PipelineContext;
  sender: SenderRow;
  channel: Channel;
  /** `page` or `instagram`. */
  object: string;
  /** The entry's id (the Page or Instagram account). */
  entryId: string;
  batchId: number;
}

/** What handling one item came to (for logs and tests). */
export type ItemOutcome = 'stored' | 'duplicate' | 'updated' | 'forwarded' | 'ignored';

/** Thrown inside an item's transaction when the item was stored before: rolls everything back. */
export class DuplicateItem extends Error {
  constructor() {
    super('item already stored');
    this.name = 'DuplicateItem';
  }
}

/**
 * Reactions, opt-ins, referrals and some postbacks carry no `mid` of their own, yet Meta retries
 * them like messages. They get a key derived from the item itself, stored in the `mid` column so
 * the same unique index drops the retry. The prefix cannot collide with Meta's mids (`m_…`, base64).
 */
export const DERIVED_MID_PREFIX = 'sb~';

export function derivedMid(kind: string, raw: JsonValue): string {
  const hash = createHash('sha256').update(kind).update('\n').update(JSON.stringify(raw)).digest('base64url');
  // 128 bits of the hash: collisions between distinct items are not a concern.
  return `${DERIVED_MID_PREFIX}${kind}~${hash.slice(0, 22)}`;
}

export function isDerivedMid(mid: string | null): boolean {
  return mid !== null && mid.startsWith(DERIVED_MID_PREFIX);
}

/** Meta's time for an item, or now when the item had none (the parser fills it from the entry). */
export function itemTime(timestamp: number | null | undefined, now: number): number {
  return typeof timestamp === 'number' && Number.isFinite(timestamp) && timestamp > 0 ? timestamp : now;
}
