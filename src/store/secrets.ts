/**
 * Secrets at rest: Page tokens and endpoint signing secrets are sealed with AES-256-GCM under a key
 * from the environment (`SWITCHBOARD_SECRET_KEY`). A sealed value is `v1.<iv>.<tag>.<ciphertext>`
 * in base64url, so a later key rotation can add `v2` without guessing.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

const VERSION = 'v1';
// 96-bit IVs are GCM's native size; a random one per value is safe far beyond our volumes.
const IV_BYTES = 12;

export class SecretBox {
  readonly #key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== 32) throw new Error('the secret key must be 32 bytes (AES-256)');
    this.#key = key;
  }

  /**
   * Accepts 64 hex characters or 43/44 base64 characters for 32 bytes; any other string is
   * stretched with SHA-256 so a passphrase still works (the docs recommend 32 random bytes).
   */
  static fromString(value: string): SecretBox {
    const text = value.trim();
    if (/^[0-9a-f]{64}$/i.test(text)) return new SecretBox(Buffer.from(text, 'hex'));
    const b64 = Buffer.from(text, 'base64');
    if (b64.length === 32 && /^[A-Za-z0-9+/_-]{43}=?$/.test(text)) return new SecretBox(b64);
    return new SecretBox(createHash('sha256').update(text, 'utf8').digest());
  }

  static generateKey(): string {
    return randomBytes(32).toString('hex');
  }

  seal(plain: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return [VERSION, iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), body.toString('base64url')].join('.');
  }

  open(sealed: string): string {
    const [version, iv, tag, body] = sealed.split('.');
    if (version !== VERSION || !iv || !tag || body === undefined) throw new Error('not a sealed secret');
    const decipher = createDecipheriv('aes-256-gcm', this.#key, Buffer.from(iv, 'base64url'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
  }
}
