import { describe, expect, it } from 'vitest';
import { MESSAGE_TAGS, findTag, tagStateAt, usableTags } from '../../src/domain/tags.js';

describe('the message tag table', () => {
  it('gives every tag a why and a source', () => {
    for (const rule of MESSAGE_TAGS) {
      expect(rule.why.length, rule.tag).toBeGreaterThan(10);
      expect(rule.source.length, rule.tag).toBeGreaterThan(10);
    }
  });

  it('lists the 14 tags removed on 2020-03-04', () => {
    const removed = MESSAGE_TAGS.filter((rule) => rule.retired_on === '2020-03-04').map((rule) => rule.tag);
    expect(removed).toHaveLength(14);
    expect(removed).toContain('SHIPPING_UPDATE');
    expect(removed).toContain('COMMUNITY_ALERT');
  });

  it('retires ACCOUNT_UPDATE at midnight UTC on 2026-04-27', () => {
    expect(tagStateAt('ACCOUNT_UPDATE', Date.parse('2026-04-26T23:59:59.999Z')).state).toBe('usable');
    expect(tagStateAt('ACCOUNT_UPDATE', Date.parse('2026-04-27T00:00:00.000Z'))).toMatchObject({ state: 'retired', retired_on: '2026-04-27' });
  });

  it('does not know made-up tags, and finds real ones in any case', () => {
    expect(tagStateAt('MADE_UP', 0).state).toBe('unknown');
    expect(findTag('human_agent')?.tag).toBe('HUMAN_AGENT');
  });

  it('offers only HUMAN_AGENT on Instagram and four tags on Messenger before the 2026 retirement', () => {
    const before = Date.parse('2026-01-01T00:00:00Z');
    const after = Date.parse('2026-05-01T00:00:00Z');
    expect(usableTags('instagram', before)).toEqual(['HUMAN_AGENT']);
    expect(usableTags('messenger', before).sort()).toEqual(
      ['ACCOUNT_UPDATE', 'CONFIRMED_EVENT_UPDATE', 'CUSTOMER_FEEDBACK', 'HUMAN_AGENT', 'POST_PURCHASE_UPDATE'].sort(),
    );
    expect(usableTags('messenger', after).sort()).toEqual(['CUSTOMER_FEEDBACK', 'HUMAN_AGENT']);
  });
});
