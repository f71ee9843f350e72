/** Idempotency keys: the first result is kept for 24 hours, another body is a conflict, concurrent duplicates act once. */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, expect, it } from 'vitest';
import { GatewayError } from '../../../src/domain/errors.js';
import { IDEMPOTENCY_TTL_MS, canonicalJson, runIdempotent } from '../../../src/pipeline/idempotency.js';
import { describeEachEngine } from '../../support/db.js';
import type { TestStore } from '../../support/db.js';
import { openOutboundStore } from './support.js';

const NOW = Date.UTC(2026, 5, 1, 12);

describeEachEngine('idempotency keys', (engine) => {
  let store: TestStore | undefined;
  afterEach(async () => {
    await store?.dispose();
    store = undefined;
  });

  /** Work that counts how often it really ran (an account row per run) and answers with the count. */
  function counter(db: TestStore['db']) {
    let runs = 0;
    return {
      runs: () => runs,
      work: (pauseMs = 0) =>
        async (record: (trx: TestStore['db'], status: number, body: unknown) => Promise<void>) => {
          const body = await db.transaction().execute(async (trx) => {
            runs += 1;
            const id = `acc_run${runs}_${Math.random().toString(36).slice(2)}`;
            await trx.insertInto('accounts').values({ id, parent_id: null, name: 'run', status: 'active', created_at: NOW, updated_at: NOW }).execute();
            // Widens the window in which a concurrent duplicate could slip through.
            if (pauseMs > 0) await sleep(pauseMs);
            const answer = { id };
            await record(trx, 202, answer);
            return answer;
          });
          return { status: 202, body };
        },
    };
  }

  async function accountRows(): Promise<number> {
    const rows = await store!.db.selectFrom('accounts').select('id').where('name', '=', 'run').execute();
    return rows.length;
  }

  it('returns the first result for the same key and body, and refuses another body', async () => {
    store = await openOutboundStore(engine);
    const c = counter(store.db);
    const request = { accountId: 'acc_a', key: 'k-1', scope: 'POST /v1/messages', body: { text: 'hi', to: { psid: '1' } }, now: NOW };
    const first = await runIdempotent(store.db, request, c.work());
    const again = await runIdempotent(store.db, { ...request, body: { to: { psid: '1' }, text: 'hi' }, now: NOW + 60_000 }, c.work());
    expect(first.replayed).toBe(false);
    expect(again.replayed).toBe(true);
    expect(again.body).toEqual(first.body);
    expect(again.status).toBe(202);
    expect(c.runs()).toBe(1);
    await expect(runIdempotent(store.db, { ...request, body: { text: 'other' } }, c.work())).rejects.toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED', status: 409 });
    // The same key in another account is another key.
    const elsewhere = await runIdempotent(store.db, { ...request, accountId: 'acc_b' }, c.work());
    expect(elsewhere.replayed).toBe(false);
    expect(await accountRows()).toBe(2);
  });

  it('forgets a key after 24 hours', async () => {
    store = await openOutboundStore(engine);
    const c = counter(store.db);
    const request = { accountId: 'acc_a', key: 'k-2', scope: 's', body: { a: 1 }, now: NOW };
    await runIdempotent(store.db, request, c.work());
    const later = await runIdempotent(store.db, { ...request, body: { a: 2 }, now: NOW + IDEMPOTENCY_TTL_MS + 1 }, c.work());
    expect(later.replayed).toBe(false);
    expect(c.runs()).toBe(2);
  });

  it('lets only one of many concurrent duplicates act; the others answer with its result', async () => {
    store = await openOutboundStore(engine);
    const c = counter(store.db);
    const request = { accountId: 'acc_a', key: 'k-race', scope: 's', body: { a: 1 }, now: NOW };
    const results = await Promise.all(Array.from({ length: 8 }, () => runIdempotent(store!.db, request, c.work(30))));
    expect(new Set(results.map((r) => JSON.stringify(r.body))).size).toBe(1);
    expect(results.filter((r) => !r.replayed)).toHaveLength(1);
    expect(await accountRows()).toBe(1);
  });

  it('refuses keys that are empty, too long or not printable ASCII', async () => {
    store = await openOutboundStore(engine);
    const c = counter(store.db);
    for (const key of ['', 'x'.repeat(256), 'with space', 'ünïcode']) {
      await expect(runIdempotent(store.db, { accountId: 'acc_a', key, scope: 's', body: {}, now: NOW }, c.work())).rejects.toBeInstanceOf(GatewayError);
    }
    expect(c.runs()).toBe(0);
  });

  it('treats bodies with the same content in another key order as the same body', () => {
    expect(canonicalJson({ b: [1, { d: 2, c: 3 }], a: 'x', u: undefined })).toBe(canonicalJson({ a: 'x', b: [1, { c: 3, d: 2 }] }));
  });
});
