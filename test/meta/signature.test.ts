import { createSecretKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { signBody, verifyMetaSignature } from '../../src/meta/signature.js';

const secret = 'app-secret-for-tests';
// Meta escapes "/" and non-ASCII, so this is what arrives on the wire.
const raw = Buffer.from('{"object":"page","entry":[{"id":"1","messaging":[{"message":{"text":"caf\\u00e9 \\/ ok"}}]}]}');

describe('verifyMetaSignature', () => {
  it('accepts the sha256 signature of the raw bytes', () => {
    expect(verifyMetaSignature(raw, { 'x-hub-signature-256': signBody(raw, secret) }, secret)).toBe(true);
  });

  it('accepts header names in any case and an upper-case hex digest', () => {
    const sig = signBody(raw, secret);
    expect(verifyMetaSignature(raw, { 'X-Hub-Signature-256': sig.toUpperCase().replace('SHA256=', 'sha256=') }, secret)).toBe(true);
  });

  it('takes the secret as a key made once, with the same answers', () => {
    const key = createSecretKey(Buffer.from(secret, 'utf8'));
    expect(verifyMetaSignature(raw, { 'x-hub-signature-256': signBody(raw, secret) }, key)).toBe(true);
    expect(verifyMetaSignature(raw, { 'x-hub-signature-256': signBody(raw, 'other') }, key)).toBe(false);
    expect(verifyMetaSignature(raw, { 'x-hub-signature-256': signBody(raw, secret) }, createSecretKey(Buffer.from('other', 'utf8')))).toBe(false);
    expect(verifyMetaSignature(raw, { 'x-hub-signature-256': signBody(raw, '') }, createSecretKey(Buffer.alloc(0)))).toBe(false);
  });

  it('accepts a fetch-style Headers object', () => {
    const headers = new Headers({ 'X-Hub-Signature-256': signBody(raw, secret) });
    expect(verifyMetaSignature(raw, headers, secret)).toBe(true);
  });

  it('refuses a signature made with another secret', () => {
    expect(verifyMetaSignature(raw, { 'x-hub-signature-256': signBody(raw, 'other') }, secret)).toBe(false);
  });

  it('refuses a missing signature', () => {
    expect(verifyMetaSignature(raw, {}, secret)).toBe(false);
    expect(verifyMetaSignature(raw, { 'x-hub-signature-256': '' }, secret)).toBe(false);
  });

  it('refuses a signature of the wrong length or with non-hex characters, without throwing', () => {
    const good = signBody(raw, secret);
    expect(verifyMetaSignature(raw, { 'x-hub-signature-256': good.slice(0, -2) }, secret)).toBe(false);
    expect(verifyMetaSignature(raw, { 'x-hub-signature-256': `${good}00` }, secret)).toBe(false);
    expect(verifyMetaSignature(raw, { 'x-hub-signature-256': `sha256=${'zz'.repeat(32)}` }, secret)).toBe(false);
    expect(verifyMetaSignature(raw, { 'x-hub-signature-256': 'sha256=' }, secret)).toBe(false);
    expect(verifyMetaSignature(raw, { 'x-hub-signature-256': 'garbage' }, secret)).toBe(false);
  });

  it('refuses a body that was parsed and re-serialised', () => {
    const reserialised = Buffer.from(JSON.stringify(JSON.parse(raw.toString('utf8'))));
    expect(reserialised.equals(raw)).toBe(false);
    expect(verifyMetaSignature(reserialised, { 'x-hub-signature-256': signBody(raw, secret) }, secret)).toBe(false);
  });

  it('needs the sha256 header: a right sha1 signature alone, or beside a wrong or empty sha256 one, is refused', () => {
    expect(verifyMetaSignature(raw, { 'x-hub-signature': signBody(raw, secret, 'sha1') }, secret)).toBe(false);
    expect(verifyMetaSignature(raw, { 'x-hub-signature-256': '', 'x-hub-signature': signBody(raw, secret, 'sha1') }, secret)).toBe(false);
    expect(verifyMetaSignature(raw, { 'x-hub-signature-256': signBody(raw, secret), 'x-hub-signature': signBody(raw, secret, 'sha1') }, secret)).toBe(true);
    expect(
      verifyMetaSignature(raw, { 'x-hub-signature-256': signBody(raw, 'other'), 'x-hub-signature': signBody(raw, secret, 'sha1') }, secret),
    ).toBe(false);
    // A sha1 digest in the sha256 header does not pass.
    expect(verifyMetaSignature(raw, { 'x-hub-signature-256': signBody(raw, secret, 'sha1') }, secret)).toBe(false);
  });

  it('refuses everything when no app secret is configured', () => {
    expect(verifyMetaSignature(raw, { 'x-hub-signature-256': signBody(raw, '') }, '')).toBe(false);
  });

  it('verifies a real payload byte for byte', () => {
    const fixture = readFileSync(fileURLToPath(new URL('../fixtures/meta/05_page_echo.json', import.meta.url)));
    expect(verifyMetaSignature(fixture, { 'x-hub-signature-256': signBody(fixture, secret) }, secret)).toBe(true);
    const flipped = Buffer.from(fixture);
    flipped[flipped.length - 3] = 0x20;
    expect(verifyMetaSignature(flipped, { 'x-hub-signature-256': signBody(fixture, secret) }, secret)).toBe(false);
  });
});
