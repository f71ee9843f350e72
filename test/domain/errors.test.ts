import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE, ERROR_CODES, GatewayError, isErrorCode, renderErrorMessage } from '../../src/domain/errors.js';

const docs = readFileSync(fileURLToPath(new URL('../../docs/errors.md', import.meta.url)), 'utf8');

describe('the error catalogue', () => {
  it('lists every code in docs/errors.md with its HTTP status', () => {
    for (const code of ERROR_CODES) {
      const row = docs.split('\n').find((line) => line.startsWith(`| \`${code}\` |`));
      expect(row, `docs/errors.md has no row for ${code}`).toBeDefined();
      expect(row).toContain(`| ${ERROR_CATALOGUE[code].status} |`);
    }
  });

  it('documents no code that the table lacks', () => {
    const documented = [...docs.matchAll(/^\| `([A-Z_]+)` \| \d{3} \|/gm)].map((m) => m[1] ?? '');
    expect(documented.filter((code) => !isErrorCode(code))).toEqual([]);
  });

  it('holds the statuses the API contract names', () => {
    const expected: Record<string, number> = {
      VALIDATION_FAILED: 400,
      UNAUTHENTICATED: 401,
      FORBIDDEN: 403,
      NOT_FOUND: 404,
      CONFLICT: 409,
      IDEMPOTENCY_KEY_REUSED: 409,
      SENDER_ALREADY_CONNECTED: 409,
      ACCOUNT_SUSPENDED: 403,
      ACCOUNT_CLOSED: 403,
      WINDOW_CLOSED: 422,
      TAG_RETIRED: 422,
      CONTENT_TOO_LONG: 422,
      MEDIA_TOO_LARGE: 413,
      MEDIA_TYPE_UNSUPPORTED: 415,
      META_RATE_LIMITED: 429,
      UPSTREAM_UNAVAILABLE: 502,
      RATE_LIMITED: 429,
      INTERNAL: 500,
    };
    for (const [code, status] of Object.entries(expected)) {
      expect(isErrorCode(code)).toBe(true);
      if (isErrorCode(code)) expect(ERROR_CATALOGUE[code].status).toBe(status);
    }
  });

  it('gives every code a message and an action a person can read', () => {
    for (const code of ERROR_CODES) {
      expect(ERROR_CATALOGUE[code].message.length).toBeGreaterThan(10);
      expect(ERROR_CATALOGUE[code].action.length).toBeGreaterThan(5);
    }
  });
});

describe('GatewayError', () => {
  it('fills the message template from details and serialises as the API error body', () => {
    const err = new GatewayError('CONTENT_TOO_LONG', { field: 'text', limit: 1999, unit: 'characters', length: 2500 });
    expect(err.status).toBe(422);
    expect(err.message).toBe('text is too long: the limit is 1999 characters.');
    expect(err.toJSON()).toEqual({
      error: { code: 'CONTENT_TOO_LONG', message: err.message, details: { field: 'text', limit: 1999, unit: 'characters', length: 2500 } },
    });
    expect(JSON.parse(JSON.stringify(err))).toEqual(err.toJSON());
  });

  it('renders *_at details as ISO times and drops names without a value cleanly', () => {
    expect(renderErrorMessage('closed at {closed_at}.', { closed_at: Date.parse('2026-03-02T12:00:00Z') })).toBe(
      'closed at 2026-03-02T12:00:00.000Z.',
    );
    expect(renderErrorMessage('The request is not valid: {reason}', {})).toBe('The request is not valid.');
  });

  it('keeps a custom message and drops undefined details', () => {
    const err = new GatewayError('NOT_FOUND', { resource: 'sender', extra: undefined }, 'No such sender.');
    expect(err.message).toBe('No such sender.');
    expect(err.details).toEqual({ resource: 'sender' });
    expect(err).toBeInstanceOf(Error);
  });
});
