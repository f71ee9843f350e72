import { describe, expect, it } from 'vitest';
import { parseBusinessUseCaseHeader, parseUsageHeader, parseUsageHeaders } from '../../src/meta/usage.js';

describe('usage headers', () => {
  it('read X-App-Usage as the highest of its percentages', () => {
    expect(parseUsageHeader('{"call_count":28,"total_time":25,"total_cputime":31}')).toEqual({ maxPercent: 31, regainAccessMinutes: 0 });
  });

  it('read X-Business-Use-Case-Usage per Page, with the time to regain access', () => {
    const header = JSON.stringify({
      '1234567890': [
        { type: 'messenger', call_count: 95, total_cputime: 10, total_time: 12, estimated_time_to_regain_access: 0 },
        { type: 'pages', call_count: 100, total_cputime: 10, total_time: 12, estimated_time_to_regain_access: 7 },
      ],
    });
    expect(parseBusinessUseCaseHeader(header)).toEqual({ '1234567890': { maxPercent: 100, regainAccessMinutes: 7 } });
  });

  it('summarise all three headers as the worst reading', () => {
    const usage = parseUsageHeaders({
      'x-app-usage': '{"call_count":10,"total_time":5,"total_cputime":5}',
      'x-page-usage': '{"call_count":60,"total_time":5,"total_cputime":5}',
      'x-business-use-case-usage': '{"42":[{"type":"messenger","call_count":80,"total_time":1,"total_cputime":1,"estimated_time_to_regain_access":3}]}',
    });
    expect(usage.maxPercent).toBe(80);
    expect(usage.regainAccessMinutes).toBe(3);
    expect(usage.app?.maxPercent).toBe(10);
    expect(usage.page?.maxPercent).toBe(60);
  });

  it('treat malformed headers as no information', () => {
    expect(parseUsageHeader('not json')).toBeNull();
    expect(parseUsageHeader(undefined)).toBeNull();
    expect(parseUsageHeader('[1,2]')).toBeNull();
    expect(parseUsageHeader('{"call_count":"lots","total_time":-4}')).toEqual({ maxPercent: 0, regainAccessMinutes: 0 });
    expect(parseBusinessUseCaseHeader('{"1": "nope", "2": [null, 3]}')).toEqual({});
    const usage = parseUsageHeaders({ 'x-app-usage': '{', 'x-business-use-case-usage': 'x' });
    expect(usage).toMatchObject({ maxPercent: 0, regainAccessMinutes: 0, app: null, page: null, businessUseCase: {} });
  });
});
