import type { JsonValue } from '../domain/glossary.js';

/**
 * JSON parsing that keeps long integers exact. Instagram ids are JSON numbers in some payloads and
 * exceed 2^53, where `JSON.parse` silently rounds them (17841400000000001 becomes 17841400000000000)
 * and two people would share an id. A pre-pass quotes every integer literal of 16 or more digits
 * that stands outside a string, so it reaches us as the exact digits; shorter integers
 * (timestamps, watermarks, `seq`) stay numbers. 16 digits because Number.MAX_SAFE_INTEGER has 16.
 */

const LONG_INTEGER_DIGITS = 16;
const HAS_LONG_DIGIT_RUN = new RegExp(`\\d{${LONG_INTEGER_DIGITS}}`);

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}

/** Quotes long integer literals outside strings; returns the text unchanged when there are none. */
export function quoteLongIntegers(text: string): string {
  // Fast path: most payloads have no 16-digit run at all (mids are strings, but so is everything else).
  if (!HAS_LONG_DIGIT_RUN.test(text)) return text;
  let out = '';
  let copiedUpTo = 0;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 34 /* " */) {
      // Skip the string, honouring escapes.
      i += 1;
      while (i < n) {
        const s = text.charCodeAt(i);
        if (s === 92 /* \ */) i += 2;
        else if (s === 34) {
          i += 1;
          break;
        } else i += 1;
      }
      continue;
    }
    if (c === 45 /* - */ || isDigit(c)) {
      const start = i;
      if (c === 45) i += 1;
      const digitsStart = i;
      while (i < n && isDigit(text.charCodeAt(i))) i += 1;
      const digits = i - digitsStart;
      let isInteger = true;
      // A fraction or exponent makes it a float: leave the whole literal alone.
      while (i < n) {
        const d = text.charCodeAt(i);
        if (d === 46 /* . */ || d === 101 /* e */ || d === 69 /* E */ || d === 43 /* + */ || d === 45 || isDigit(d)) {
          isInteger = false;
          i += 1;
        } else break;
      }
      if (isInteger && digits >= LONG_INTEGER_DIGITS) {
        out += text.slice(copiedUpTo, start) + '"' + text.slice(start, i) + '"';
        copiedUpTo = i;
      }
      continue;
    }
    i += 1;
  }
  return copiedUpTo === 0 ? text : out + text.slice(copiedUpTo);
}

/** `JSON.parse` that keeps long integers as exact strings. Throws SyntaxError like `JSON.parse`. */
export function parseJsonExact(raw: string | Buffer | Uint8Array): JsonValue {
  const text = typeof raw === 'string' ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('utf8');
  return JSON.parse(quoteLongIntegers(text)) as JsonValue;
}

/** An id as a string, whether Meta sent a string or a (safe) number; null otherwise. */
export function idString(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isInteger(value)) return String(value);
  return null;
}
