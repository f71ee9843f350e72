import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { isErrorCode } from '../../src/domain/errors.js';
import { GatewayError } from '../../src/domain/errors.js';
import { META_ERROR_TABLE, classifyError, classifyMetaError, classifyTransportError, metaFailureToGatewayError, retryDelayMs } from '../../src/meta/errors.js';
import { MetaTransportError, metaApiErrorFromBody } from '../../src/meta/graph.js';
import { parseJsonExact } from '../../src/meta/json.js';
import { NO_USAGE } from '../../src/meta/usage.js';

const classify = (code: number | null, subcode: number | null = null, httpStatus = 400) => classifyMetaError({ code, subcode, httpStatus });

describe("Meta's error table", () => {
  it('names only gateway codes that exist in the catalogue', () => {
    for (const rule of META_ERROR_TABLE) expect(isErrorCode(rule.gatewayCode), rule.gatewayCode).toBe(true);
  });

  it('retries transient errors 1, 2 and 1200 with backoff', () => {
    for (const code of [1, 2, 1200]) expect(classify(code)).toMatchObject({ gatewayCode: 'META_TEMPORARY', retryable: true, backoff: 'transient' });
  });

  it('never blindly retries 1/1357046: it may already be delivered', () => {
    expect(classify(1, 1357046)).toMatchObject({ gatewayCode: 'META_DELIVERY_UNCERTAIN', retryable: false, reconcile: true });
  });

  it('treats 4, 17, 32, 341, 613 and 80000-80014 as rate limits that slow the sender', () => {
    for (const code of [4, 17, 32, 341, 613, 80000, 80006, 80014]) {
      expect(classify(code), String(code)).toMatchObject({ gatewayCode: 'META_RATE_LIMITED', retryable: true, senderEffect: 'rate_limited', backoff: 'rate_limit' });
    }
    expect(classify(80015).gatewayCode).toBe('META_UNKNOWN');
  });

  it('maps the window errors of Messenger and Instagram to WINDOW_CLOSED', () => {
    expect(classify(10, 2018278)).toMatchObject({ gatewayCode: 'WINDOW_CLOSED', retryable: false });
    expect(classify(10, 2534022, 403)).toMatchObject({ gatewayCode: 'WINDOW_CLOSED', retryable: false });
  });

  it('marks the contact blocked or unavailable for 10/2018108, 200/1545041 and 551/1545041', () => {
    expect(classify(10, 2018108)).toMatchObject({ gatewayCode: 'META_USER_UNAVAILABLE', contactEffect: 'unavailable', retryable: false });
    expect(classify(200, 1545041)).toMatchObject({ gatewayCode: 'META_USER_UNAVAILABLE', contactEffect: 'blocked' });
    expect(classify(551, 1545041)).toMatchObject({ gatewayCode: 'META_USER_UNAVAILABLE', contactEffect: 'unavailable' });
  });

  it('reads the recorded 551 error body', () => {
    const body = parseJsonExact(readFileSync(fileURLToPath(new URL('../fixtures/meta/19_error_551_user_unavailable.json', import.meta.url))));
    const err = metaApiErrorFromBody(400, body);
    expect(err).toMatchObject({ code: 551, subcode: 1545041, type: 'OAuthException', fbtraceId: 'GZLdPD3DuDR', message: "(#551) This person isn't available right now." });
    expect(classifyError(err).contactEffect).toBe('unavailable');
    expect(metaFailureToGatewayError(err).details).toMatchObject({ meta_code: 551, meta_subcode: 1545041, fbtrace_id: 'GZLdPD3DuDR' });
  });

  it("tells a window Meta found closed in Meta's words, not with a time only the gateway's check knows", () => {
    const err = metaApiErrorFromBody(400, { error: { message: '(#10) This message is sent outside of allowed window.', type: 'OAuthException', code: 10, error_subcode: 2018278, fbtrace_id: 'A1' } });
    const gatewayError = metaFailureToGatewayError(err);
    expect(gatewayError.code).toBe('WINDOW_CLOSED');
    expect(gatewayError.message).toBe('Meta refused the send: (#10) This message is sent outside of allowed window.');
    expect(metaFailureToGatewayError(metaApiErrorFromBody(400, { error: { message: '(#100) Invalid parameter', type: 'OAuthException', code: 100, fbtrace_id: 'A2' } })).message).toBe(
      new GatewayError('META_INVALID_PARAMETER', { meta_message: '(#100) Invalid parameter' }).message,
    );
  });

  it('distinguishes the code 100 subcodes', () => {
    expect(classify(100, 2018001).gatewayCode).toBe('META_RECIPIENT_NOT_FOUND');
    expect(classify(100, 2018109).gatewayCode).toBe('META_ATTACHMENT_TOO_LARGE');
    expect(classify(100, 2018047).gatewayCode).toBe('META_ATTACHMENT_FAILED');
    expect(classify(100).gatewayCode).toBe('META_INVALID_PARAMETER');
    expect(classify(100, 33).gatewayCode).toBe('META_INVALID_PARAMETER');
  });

  it('sends the sender to reauthorisation for 190 with any subcode', () => {
    for (const subcode of [null, 458, 459, 460, 463, 464, 467, 492, 999]) {
      expect(classify(190, subcode)).toMatchObject({ gatewayCode: 'META_TOKEN_INVALID', senderEffect: 'reauth_required', retryable: false });
    }
  });

  it('marks permission errors 10, 200-299 and 230 as a misconfigured sender', () => {
    for (const code of [10, 200, 230, 299]) expect(classify(code)).toMatchObject({ gatewayCode: 'META_PERMISSION_MISSING', senderEffect: 'degraded' });
  });

  it('pauses the sender on 368, and knows 2300052 and 2018218', () => {
    expect(classify(368)).toMatchObject({ gatewayCode: 'META_POLICY_BLOCK', senderEffect: 'paused' });
    expect(classify(100, 2300052).gatewayCode).toBe('META_MARKETING_LIMIT');
    expect(classify(2300052).gatewayCode).toBe('META_MARKETING_LIMIT');
    expect(classify(100, 2018218)).toMatchObject({ gatewayCode: 'META_PROFILE_UNAVAILABLE', retryable: false });
  });

  it('reconciles a 5xx without a Graph error body (the send may have gone out), retries one with it, and gives up on unknown codes', () => {
    expect(classify(null, null, 503)).toMatchObject({ gatewayCode: 'META_TEMPORARY', retryable: true, reconcile: true });
    expect(classify(1, null, 500)).toMatchObject({ gatewayCode: 'META_TEMPORARY', retryable: true, reconcile: false });
    expect(classify(null, null, 429)).toMatchObject({ gatewayCode: 'META_RATE_LIMITED', retryable: true });
    expect(classify(424242)).toMatchObject({ gatewayCode: 'META_UNKNOWN', retryable: false });
  });
});

describe('transport errors', () => {
  it('reconcile before retrying when the request may have reached Meta', () => {
    expect(classifyTransportError({ kind: 'timeout', maybeDelivered: true })).toMatchObject({ gatewayCode: 'UPSTREAM_TIMEOUT', retryable: true, reconcile: true });
    expect(classifyTransportError({ kind: 'connection', maybeDelivered: false })).toMatchObject({ gatewayCode: 'UPSTREAM_UNAVAILABLE', retryable: true, reconcile: false });
    expect(classifyError(new MetaTransportError('reset', true, 'reset'))).toMatchObject({ gatewayCode: 'UPSTREAM_UNAVAILABLE', reconcile: true });
  });

  it('are internal errors when they are not Graph failures at all', () => {
    expect(classifyError(new Error('bug'))).toMatchObject({ gatewayCode: 'INTERNAL', retryable: false });
  });
});

describe('retry delays', () => {
  it('grow exponentially with jitter and stay within their caps', () => {
    const low = () => 0;
    const high = () => 1;
    expect(retryDelayMs({ backoff: 'transient' }, 1, { random: low })).toBe(500);
    expect(retryDelayMs({ backoff: 'transient' }, 1, { random: high })).toBe(1000);
    expect(retryDelayMs({ backoff: 'transient' }, 4, { random: high })).toBe(8000);
    expect(retryDelayMs({ backoff: 'transient' }, 30, { random: high })).toBe(60_000);
    expect(retryDelayMs({ backoff: 'rate_limit' }, 1, { random: high })).toBe(10_000);
    expect(retryDelayMs({ backoff: 'rate_limit' }, 30, { random: high })).toBe(15 * 60_000);
  });

  it('never come sooner than the time Meta says access returns', () => {
    const usage = { ...NO_USAGE, regainAccessMinutes: 5 };
    expect(retryDelayMs({ backoff: 'rate_limit' }, 1, { random: () => 0, usage })).toBe(5 * 60_000);
  });
});
