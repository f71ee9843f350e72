import { randomBytes } from 'node:crypto';

/**
 * Resource ids: `<prefix>_<10 chars of time><16 chars of randomness>`, in lower-case Crockford
 * base32 (the ULID layout). Ids sort lexicographically in creation order, which cursor pagination
 * relies on; ids made in the same millisecond by this process still sort in creation order.
 */

/** The prefixes in use, one per resource kind. */
export const ID_PREFIXES = {
  msg: 'message',
  acc: 'account',
  snd: 'sender',
  con: 'contact',
  cnv: 'conversation',
  evt: 'event',
  ep: 'endpoint',
  key: 'API key',
  med: 'media',
  dlv: 'delivery attempt',
  job: 'job',
  wh: 'webhook batch',
  prf: 'profile',
  agt: 'agent',
  ses: 'session',
  rul: 'auto-reply rule',
  idm: 'idempotency record',
} as const;

export type KnownIdPrefix = keyof typeof ID_PREFIXES;
/** Known prefixes autocomplete; another short lower-case prefix is accepted for new resource kinds. */
export type IdPrefix = KnownIdPrefix | (string & Record<never, never>);

/** Crockford's base32 in lower case: its ASCII order equals its numeric order, so strings sort like numbers. */
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
const TIME_CHARS = 10; // 10 x 5 bits = 50 bits of milliseconds: enough until the year 10889.
const RANDOM_CHARS = 16; // 16 x 5 bits = 80 bits: collisions between processes are not a concern.
const PREFIX_PATTERN = /^[a-z][a-z0-9]{0,7}$/;

let lastTime = -1;
let lastRandom: number[] = [];

function encodeTime(ms: number): string {
  let out = '';
  let rest = ms;
  for (let i = 0; i < TIME_CHARS; i += 1) {
    out = ALPHABET[rest % 32] + out;
    rest = Math.floor(rest / 32);
  }
  return out;
}

// Random bytes are drawn 256 ids at a time: a call per id cost about a microsecond,
// and a message takes six or seven ids on its way through (measured in the outbound benchmark).
const POOL_IDS = 256;
let pool = Buffer.alloc(0);
let poolAt = 0;

function freshRandom(): number[] {
  if (poolAt + RANDOM_CHARS > pool.length) {
    pool = randomBytes(RANDOM_CHARS * POOL_IDS);
    poolAt = 0;
  }
  const digits = new Array<number>(RANDOM_CHARS);
  for (let i = 0; i < RANDOM_CHARS; i += 1) digits[i] = (pool[poolAt + i] ?? 0) & 31;
  poolAt += RANDOM_CHARS;
  return digits;
}

/** Adds one to the random part so a second id in the same millisecond sorts after the first. */
function increment(digits: number[]): number[] | null {
  const next = digits.slice();
  for (let i = next.length - 1; i >= 0; i -= 1) {
    const d = next[i] ?? 0;
    if (d < 31) {
      next[i] = d + 1;
      return next;
    }
    next[i] = 0;
  }
  return null;
}

/** A new time-sortable id, e.g. `newId('msg')` -> `msg_01jd3v8f2k9x7m4q6r0s2t5w8y`. */
export function newId(prefix: IdPrefix, now: number = Date.now()): string {
  if (!PREFIX_PATTERN.test(prefix)) {
    throw new TypeError(`id prefix must be 1-8 lower-case letters or digits, got ${JSON.stringify(prefix)}`);
  }
  let time = Math.max(0, Math.floor(now));
  let random: number[];
  if (time <= lastTime) {
    // Same millisecond (or the clock stepped back): continue after the last id instead of guessing.
    time = lastTime;
    const next = increment(lastRandom);
    if (next === null) {
      time += 1;
      random = freshRandom();
    } else {
      random = next;
    }
  } else {
    random = freshRandom();
  }
  lastTime = time;
  lastRandom = random;
  return `${prefix}_${encodeTime(time)}${random.map((d) => ALPHABET[d]).join('')}`;
}

/** The millisecond an id was made, or null when the string is not one of our ids. */
export function idTime(id: string): number | null {
  const underscore = id.indexOf('_');
  const body = id.slice(underscore + 1);
  if (underscore < 1 || body.length !== TIME_CHARS + RANDOM_CHARS) return null;
  let ms = 0;
  for (let i = 0; i < TIME_CHARS; i += 1) {
    const v = ALPHABET.indexOf(body[i] ?? '');
    if (v < 0) return null;
    ms = ms * 32 + v;
  }
  return ms;
}

/** Whether a string has the shape of an id with this prefix (cheap check before a lookup). */
export function isId(value: string, prefix: IdPrefix): boolean {
  if (!value.startsWith(`${prefix}_`)) return false;
  const body = value.slice(prefix.length + 1);
  if (body.length !== TIME_CHARS + RANDOM_CHARS) return false;
  for (const ch of body) if (!ALPHABET.includes(ch)) return false;
  return true;
}

/**
 * The smallest id with this prefix made at or after `ms`: a cursor for "created since" queries
 * (`id >= idFloor('msg', since)`).
 */
export function idFloor(prefix: IdPrefix, ms: number): string {
  return `${prefix}_${encodeTime(Math.max(0, Math.floor(ms)))}${'0'.repeat(RANDOM_CHARS)}`;
}
