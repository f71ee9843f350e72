import { describe, expect, it } from 'vitest';
import { isoOrNull, isoTime } from '../../src/domain/time.js';

describe('isoTime', () => {
  it('writes exactly what Date#toISOString writes', () => {
    const edges = [0, 1, 9, 10, 99, 100, 999, 1000, 1001, -1, -999, -1000, -1001, 1.9, -1.9, 1_700_000_000_000, 1_700_000_000_999, 253_402_300_799_999, 253_402_300_800_000, -62_167_219_200_000, 8.64e15, -8.64e15];
    for (const ms of edges) expect(isoTime(ms)).toBe(new Date(ms).toISOString());
    // Random times, near one another (the second's text is reused) and far apart (it is not).
    let seed = 42;
    const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    let near = 1_764_000_000_000;
    for (let i = 0; i < 5000; i++) {
      near += Math.floor(random() * 700);
      const far = Math.floor((random() - 0.5) * 2e13);
      expect(isoTime(near)).toBe(new Date(near).toISOString());
      expect(isoTime(far)).toBe(new Date(far).toISOString());
    }
  });

  it('throws as Date#toISOString does for a time that is not one', () => {
    for (const ms of [Number.NaN, Number.POSITIVE_INFINITY, 8.64e15 + 1]) {
      expect(() => new Date(ms).toISOString()).toThrow(RangeError);
      expect(() => isoTime(ms)).toThrow(RangeError);
    }
  });

  it('passes null through', () => {
    expect(isoOrNull(null)).toBeNull();
    expect(isoOrNull(1000)).toBe('1970-01-01T00:00:01.000Z');
  });
});
