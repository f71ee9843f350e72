import { describe, expect, it } from 'vitest';
import { parseJsonExact, quoteLongIntegers } from '../../src/meta/json.js';

describe('exact JSON parsing', () => {
  it('keeps every digit of integers beyond 2^53 by turning them into strings', () => {
    const parsed = parseJsonExact('{"sender":{"id":17841400000000001},"n":-98765432109876543}') as Record<string, unknown>;
    expect(parsed).toEqual({ sender: { id: '17841400000000001' }, n: '-98765432109876543' });
    // What plain JSON.parse would have done: a different id.
    expect(String(JSON.parse('17841400000000001'))).not.toBe('17841400000000001');
  });

  it('leaves timestamps, floats and strings alone', () => {
    const text = '{"t":1570649960485,"f":12345678901234567.5,"e":1234567890123456789e2,"s":"12345678901234567890","q":"a\\"12345678901234567890"}';
    expect(quoteLongIntegers(text)).toBe(text);
    expect(parseJsonExact(text)).toEqual(JSON.parse(text));
  });

  it('handles long integers in arrays and next to escapes', () => {
    expect(parseJsonExact('["\\\\",12345678901234567,[9007199254740993]]')).toEqual(['\\', '12345678901234567', ['9007199254740993']]);
  });

  it('reads bytes as UTF-8', () => {
    expect(parseJsonExact(Buffer.from('{"text":"café"}'))).toEqual({ text: 'café' });
  });

  it('throws on invalid JSON like JSON.parse', () => {
    expect(() => parseJsonExact('{"a":')).toThrow(SyntaxError);
  });
});
