/** Settling a send whose answer was lost: wait for the echo, resend only when none came, never for a user_ref. */
import { describe, expect, it } from 'vitest';
import { awaitInboundBacklog, reconcileUncertain } from '../../../src/pipeline/outbound-reconcile.js';
import type { SendState } from '../../../src/pipeline/outbound-state.js';
import { checkCallerMetadata, echoMetadata, parseEchoMetadata } from '../../../src/pipeline/outbound-state.js';
import type { ContactRow, MessageRow } from '../../../src/store/schema.js';

const OPTIONS = { reconcileWaitMs: 10_000, reconcilePollMs: 1_000, maxLostAnswers: 3, backlogWaitMs: 60_000 };
const T = 1_000_000;

const message = (changes: Partial<MessageRow> = {}) => ({ id: 'msg_1', mid: null, status: 'sending', ...changes }) as MessageRow;
const contact = (changes: Partial<ContactRow> = {}) => ({ id: 'con_1', psid: '123', user_ref: null, ...changes }) as ContactRow;
const lostAt = (since: number, resend = true, lost = 1): SendState => ({
  parts: [{ message: { text: 'a' }, kind: 'text' }],
  uncertain: { part: 0, since, code: 'UPSTREAM_TIMEOUT', reason: 'reset', resend },
  lost,
});

describe('a send whose answer was lost', () => {
  it('waits for the echo, looking again every poll, until the wait is over', () => {
    expect(reconcileUncertain(message(), lostAt(T), contact(), T + 500, OPTIONS)).toEqual({ kind: 'wait', retryAt: T + 1_500 });
    expect(reconcileUncertain(message(), lostAt(T), contact(), T + 9_500, OPTIONS)).toEqual({ kind: 'wait', retryAt: T + 10_000 });
    expect(reconcileUncertain(message(), lostAt(T), contact(), T + 10_000, OPTIONS)).toEqual({ kind: 'resend' });
  });

  it('counts as sent once the echo marked the part or the message', () => {
    const state = lostAt(T);
    state.parts = [{ message: { text: 'a' }, kind: 'text', sent_at: T + 1, mid: 'm_x' }];
    expect(reconcileUncertain(message(), state, contact(), T + 1, OPTIONS)).toEqual({ kind: 'echoed', mid: 'm_x' });
    expect(reconcileUncertain(message({ mid: 'm_y', status: 'sent' }), lostAt(T), contact(), T + 1, OPTIONS)).toEqual({ kind: 'echoed', mid: 'm_y' });
  });

  it('gives up rather than risk a second copy: a user_ref gets no echo, Meta 1/1357046 is never retried blind, three lost answers are enough', () => {
    const noEcho = reconcileUncertain(message(), lostAt(T), contact({ psid: null, user_ref: 'r' }), T, OPTIONS);
    expect(noEcho.kind).toBe('give_up');
    const uncertain = reconcileUncertain(message(), { ...lostAt(T, false), uncertain: { part: 0, since: T, code: 'META_DELIVERY_UNCERTAIN', reason: 'x', resend: false } }, contact(), T + 10_000, OPTIONS);
    expect(uncertain).toMatchObject({ kind: 'give_up', error: { code: 'META_DELIVERY_UNCERTAIN' } });
    const tooMany = reconcileUncertain(message(), lostAt(T, true, 3), contact(), T + 10_000, OPTIONS);
    expect(tooMany).toMatchObject({ kind: 'give_up', error: { code: 'UPSTREAM_TIMEOUT', details: { maybe_delivered: true } } });
  });
});

describe('echo metadata', () => {
  it('waits longer while webhooks already received are not processed, up to the backlog wait, and only asks when the decision would be final', async () => {
    let asked = 0;
    const backlog = (value: boolean) => async () => ((asked += 1), value);
    const decide = (now: number, state: SendState, pending: boolean, who = contact()) => awaitInboundBacklog(reconcileUncertain(message(), state, who, now, OPTIONS), state, who, now, OPTIONS, backlog(pending));
    expect(await decide(T + 500, lostAt(T), true)).toEqual({ kind: 'wait', retryAt: T + 1_500 });
    expect(asked).toBe(0);
    expect(await decide(T + 10_000, lostAt(T), true)).toEqual({ kind: 'wait', retryAt: T + 11_000 });
    expect(await decide(T + 10_000, lostAt(T), false)).toEqual({ kind: 'resend' });
    expect(await decide(T + 69_999, lostAt(T), true)).toEqual({ kind: 'wait', retryAt: T + 70_999 });
    expect(await decide(T + 70_000, lostAt(T), true)).toEqual({ kind: 'resend' });
    // A give-up waits too (the echo would prove it sent), except for a user_ref, which has no echo.
    expect(await decide(T + 10_000, lostAt(T, true, 3), true)).toMatchObject({ kind: 'wait' });
    expect(await decide(T + 10_000, lostAt(T), true, contact({ psid: null, user_ref: 'r' }))).toMatchObject({ kind: 'give_up' });
  });

  it("wraps the caller's metadata with the message id and reads it back", () => {
    expect(parseEchoMetadata(echoMetadata('msg_abc', 'order 7', 2))).toEqual({ sb: 'msg_abc', m: 'order 7', p: 2 });
    expect(parseEchoMetadata(echoMetadata('msg_abc', null))).toEqual({ sb: 'msg_abc' });
    expect(parseEchoMetadata('plain text metadata')).toBeNull();
    expect(parseEchoMetadata('{"sb": 5}')).toBeNull();
  });

  it('refuses caller metadata that would not fit under 1000 characters once wrapped', () => {
    const id = 'msg_01jd3v8f2k9x7m4q6r0s2t5w8y';
    expect(() => checkCallerMetadata(id, 'x'.repeat(953), 1)).not.toThrow();
    expect(() => checkCallerMetadata(id, 'x'.repeat(954), 1)).toThrow(expect.objectContaining({ code: 'CONTENT_TOO_LONG' }));
    // Quotes are escaped in the wrapper, so they count twice.
    expect(() => checkCallerMetadata(id, '"'.repeat(490), 1)).toThrow(expect.objectContaining({ code: 'CONTENT_TOO_LONG' }));
  });
});
