import { describe, expect, it } from 'vitest';
import { idFloor, idTime, isId, newId } from '../../src/domain/ids.js';

describe('resource ids', () => {
  it('carry their prefix and the millisecond they were made', () => {
    const at = Date.parse('2026-03-01T12:00:00.123Z');
    const id = newId('msg', at);
    expect(id).toMatch(/^msg_[0-9a-hjkmnp-tv-z]{26}$/);
    expect(idTime(id)).toBe(at);
    expect(isId(id, 'msg')).toBe(true);
    expect(isId(id, 'con')).toBe(false);
  });

  it('sort lexicographically in creation order, also within one millisecond', () => {
    const at = Date.parse('2030-01-01T00:00:00Z');
    const ids = Array.from({ length: 2000 }, (_, i) => newId('evt', at + Math.floor(i / 500)));
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('sort across times regardless of when the process started', () => {
    const early = newId('acc', Date.parse('2031-01-01T00:00:00Z'));
    const later = newId('acc', Date.parse('2031-01-01T00:00:00.001Z'));
    expect(early < later).toBe(true);
    expect(idFloor('acc', Date.parse('2031-01-01T00:00:00Z')) <= early).toBe(true);
    expect(idFloor('acc', Date.parse('2031-01-01T00:00:00.001Z')) > early).toBe(true);
  });

  it('refuse a prefix that would break the format', () => {
    expect(() => newId('Msg')).toThrow(TypeError);
    expect(() => newId('')).toThrow(TypeError);
    expect(() => newId('a_b')).toThrow(TypeError);
  });

  it('report no time for strings that are not ids', () => {
    expect(idTime('hello')).toBeNull();
    expect(idTime('msg_!!!!!!!!!!!!!!!!!!!!!!!!!!')).toBeNull();
  });
});
