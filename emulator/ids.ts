import { randomBytes, randomInt } from 'node:crypto';

// Every message gets a mid, so their random bytes come from a pool filled 64 KiB at a time: one
// call into the system's generator per thousand mids instead of one each (it was 4 % of the
// emulator's busy time answering sends).
const POOL_BYTES = 64 * 1024;
let pool = Buffer.alloc(0);
let poolAt = 0;

function pooledRandom(n: number): Buffer {
  if (poolAt + n > pool.length) {
    pool = randomBytes(POOL_BYTES);
    poolAt = 0;
  }
  const out = pool.subarray(poolAt, poolAt + n);
  poolAt += n;
  return out;
}

/**
 * Identifiers shaped like Meta's: numeric strings for apps, Pages, people and scoped ids, `m_`
 * mids, `EAA` tokens. Every id handed out is unique within one emulator.
 */
export class IdFactory {
  private readonly used = new Set<string>();

  /** A numeric id of exactly `digits` digits that has not been handed out before. */
  numeric(digits: number, prefix = ''): string {
    for (;;) {
      let id = prefix;
      // The first free digit is never 0 so the id keeps its length when read as a number.
      if (id.length === 0) id += String(randomInt(1, 10));
      while (id.length < digits) id += String(randomInt(0, 10));
      if (!this.used.has(id)) {
        this.used.add(id);
        return id;
      }
    }
  }

  /** Claims an id chosen by the caller; false when it is already taken. */
  claim(id: string): boolean {
    if (this.used.has(id)) return false;
    this.used.add(id);
    return true;
  }

  // App ids are 15 or 16 digits at Meta; 15 keeps them below 2^53 like real ones.
  appId(): string {
    return this.numeric(15);
  }

  // Page ids are 15 digits at Meta (for example 104217156637689).
  pageId(): string {
    return this.numeric(15, '1');
  }

  // Instagram professional account ids start with 1784 and have 17 digits.
  instagramAccountId(): string {
    return this.numeric(17, '1784');
  }

  // PSIDs are 16 digits (for example 1254477777772919).
  psid(): string {
    return this.numeric(16);
  }

  // IGSIDs get 17 or more digits so they exceed 2^53 and catch code that parses ids as numbers.
  igsid(): string {
    return this.numeric(18);
  }

  // The emulator's own id for a person (the global Facebook user id, never shown to apps).
  userId(): string {
    return this.numeric(15, '100');
  }

  attachmentId(): string {
    return this.numeric(16);
  }

  messengerMid(): string {
    return `m_${pooledRandom(60).toString('base64url')}`;
  }

  /** Instagram mids are base64 of an internal item key. */
  instagramMid(igAccountId: string): string {
    const key = `ig_item:1:IGMessage:${igAccountId}:${pooledRandom(24).toString('hex')}`;
    return Buffer.from(key).toString('base64url');
  }

  accessToken(): string {
    // Meta tokens are `EAA` followed by about 180 alphanumerics.
    return `EAA${alphanumeric(180)}`;
  }

  oauthCode(): string {
    return `AQ${randomBytes(96).toString('base64url')}`;
  }

  secret(): string {
    return randomBytes(16).toString('hex');
  }

  fbtraceId(): string {
    return alphanumeric(11);
  }

  opaque(bytes = 12): string {
    return randomBytes(bytes).toString('base64url');
  }
}

const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

function alphanumeric(length: number): string {
  const bytes = randomBytes(length);
  let out = '';
  for (const byte of bytes) out += ALPHANUMERIC[byte % ALPHANUMERIC.length];
  return out;
}
