/**
 * `Idempotency-Key`: the same key and the same body within 24 hours return the first result and do
 * nothing new; the same key with another body is a 409 `IDEMPOTENCY_KEY_REUSED`.
 *
 * The key's row is inserted in the same transaction as the work it guards (a message and its send
 * job), so two concurrent duplicates cannot both act: the second insert finds the key taken (on
 * PostgreSQL it waits on the unique index until the first commits), its transaction rolls back and
 * it answers with the first one's result.
 *
 * Only accepted requests are recorded. A refusal (a closed window, an unknown contact) creates and
 * sends nothing, so repeating it with the same key checks again: a customer who wrote since makes
 * the same request succeed, and no refusal is ever replayed over a request that would now work.
 */
import { createHash } from 'node:crypto';
import { GatewayError } from '../domain/errors.js';
import type { Db } from '../store/db.js';
import { deleteExpiredIdempotencyRecord, getIdempotencyRecord, insertIdempotencyRecord } from '../store/idempotency.js';

/** Keys are remembered for 24 hours (the contract of the API, as Stripe's and others'). */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
/** Keys are meant to be UUIDs or similar; 255 bounds the row and the index. */
export const IDEMPOTENCY_KEY_MAX_LENGTH = 255;

export interface IdempotentResult<T> {
  status: number;
  body: T;
  /** True when the result is the stored one of an earlier request. */
  replayed: boolean;
}

export interface IdempotentRequest {
  accountId: string;
  /** The header's value; undefined runs the work without a record. */
  key: string | undefined;
  /** What the key guards (e.g. `POST /v1/messages`): the same key on another route is another body. */
  scope: string;
  body: unknown;
  now: number;
}

/** Called by the work inside its transaction, with the response it is about to give. */
export type RecordResult = (trx: Db, status: number, body: unknown) => Promise<void>;

/** JSON with object keys sorted, so `{a, b}` and `{b, a}` are the same body. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

export function requestHash(scope: string, body: unknown): string {
  return createHash('sha256').update(scope).update('\n').update(canonicalJson(body)).digest('hex');
}

/** A visible ASCII string of 1..255 characters. */
export function checkIdempotencyKey(key: string): void {
  if (key.length === 0 || key.length > IDEMPOTENCY_KEY_MAX_LENGTH || !/^[\x21-\x7e]+$/.test(key)) {
    throw new GatewayError('VALIDATION_FAILED', {
      field: 'headers.idempotency-key',
      reason: `Idempotency-Key must be 1 to ${IDEMPOTENCY_KEY_MAX_LENGTH} visible ASCII characters`,
    });
  }
}

class IdempotencyKeyTaken extends Error {
  constructor() {
    super('the idempotency key was taken by a concurrent request');
    this.name = 'IdempotencyKeyTaken';
  }
}

async function storedResult<T>(db: Db, request: IdempotentRequest, hash: string): Promise<IdempotentResult<T> | null> {
  const record = await getIdempotencyRecord(db, request.accountId, request.key as string);
  if (record === undefined || record.created_at < request.now - IDEMPOTENCY_TTL_MS) return null;
  if (record.request_hash !== hash) throw new GatewayError('IDEMPOTENCY_KEY_REUSED', { key: request.key });
  if (record.status_code === null || record.response === null) {
    throw new GatewayError('IDEMPOTENCY_KEY_IN_PROGRESS', { key: request.key });
  }
  return { status: record.status_code, body: JSON.parse(record.response) as T, replayed: true };
}

/**
 * Runs `work` once per key: a repeat returns the stored result. `work` must call `record` inside
 * the transaction that does its writes, with the response it returns.
 */
export async function runIdempotent<T>(
  db: Db,
  request: IdempotentRequest,
  work: (record: RecordResult) => Promise<{ status: number; body: T }>,
): Promise<IdempotentResult<T>> {
  if (request.key === undefined) {
    const result = await work(async () => undefined);
    return { ...result, replayed: false };
  }
  checkIdempotencyKey(request.key);
  const hash = requestHash(request.scope, request.body);
  const earlier = await storedResult<T>(db, request, hash);
  if (earlier !== null) return earlier;
  const key = request.key;
  try {
    const result = await work(async (trx, status, body) => {
      await deleteExpiredIdempotencyRecord(trx, request.accountId, key, request.now - IDEMPOTENCY_TTL_MS);
      const inserted = await insertIdempotencyRecord(trx, {
        account_id: request.accountId,
        key,
        request_hash: hash,
        status_code: status,
        response: JSON.stringify(body),
        created_at: request.now,
      });
      if (!inserted) throw new IdempotencyKeyTaken();
    });
    return { ...result, replayed: false };
  } catch (err) {
    if (!(err instanceof IdempotencyKeyTaken)) throw err;
    // A concurrent duplicate committed first: answer with its result (or its conflict).
    const winner = await storedResult<T>(db, request, hash);
    if (winner !== null) return winner;
    throw new GatewayError('IDEMPOTENCY_KEY_IN_PROGRESS', { key });
  }
}
