/**
 * Meta's usage headers say how close the app and the Page are to their rate limits, in percent:
 * `X-App-Usage` and `X-Page-Usage` (`{call_count, total_time, total_cputime}`), and
 * `X-Business-Use-Case-Usage` (`{"<page id>": [{type, call_count, total_cputime, total_time,
 * estimated_time_to_regain_access}]}`). Pacing slows a sender down as they climb. A malformed
 * header counts as no information, never as an error.
 */

export interface UsageReading {
  /** The highest of call_count, total_time and total_cputime, in percent. */
  maxPercent: number;
  /** Minutes until Meta lifts a block; 0 when not blocked. */
  regainAccessMinutes: number;
}

export interface GraphUsage extends UsageReading {
  app: UsageReading | null;
  page: UsageReading | null;
  /** Per business object id (usually the Page id). */
  businessUseCase: Record<string, UsageReading>;
}

export const NO_USAGE: GraphUsage = Object.freeze({
  maxPercent: 0,
  regainAccessMinutes: 0,
  app: null,
  page: null,
  businessUseCase: {},
}) as GraphUsage;

type HeaderSource = Record<string, string | string[] | undefined> | { get(name: string): string | null };

function headerValue(headers: HeaderSource, name: string): string | undefined {
  if (typeof (headers as { get?: unknown }).get === 'function') {
    return (headers as { get(name: string): string | null }).get(name) ?? undefined;
  }
  const record = headers as Record<string, string | string[] | undefined>;
  const value = record[name] ?? record[Object.keys(record).find((k) => k.toLowerCase() === name) ?? ''];
  return Array.isArray(value) ? value[0] : value;
}

function percent(value: unknown): number {
  const n = typeof value === 'string' ? Number(value) : value;
  // Percentages beyond 100 happen (Meta reports overshoot); negative or non-numbers are noise.
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : 0;
}

function readingOf(value: unknown): UsageReading | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const v = value as Record<string, unknown>;
  return {
    maxPercent: Math.max(percent(v['call_count']), percent(v['total_time']), percent(v['total_cputime'])),
    regainAccessMinutes: percent(v['estimated_time_to_regain_access']),
  };
}

function parseJson(text: string | undefined): unknown {
  if (text === undefined || text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** One `X-App-Usage` / `X-Page-Usage` value. */
export function parseUsageHeader(text: string | undefined): UsageReading | null {
  return readingOf(parseJson(text));
}

/** One `X-Business-Use-Case-Usage` value, per business object id; the worst reading of each id's list. */
export function parseBusinessUseCaseHeader(text: string | undefined): Record<string, UsageReading> {
  const value = parseJson(text);
  const out: Record<string, UsageReading> = {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return out;
  for (const [id, list] of Object.entries(value as Record<string, unknown>)) {
    const readings = (Array.isArray(list) ? list : [list]).map(readingOf).filter((r): r is UsageReading => r !== null);
    if (readings.length === 0) continue;
    out[id] = {
      maxPercent: Math.max(...readings.map((r) => r.maxPercent)),
      regainAccessMinutes: Math.max(...readings.map((r) => r.regainAccessMinutes)),
    };
  }
  return out;
}

/** All three headers of a response, summarised as the worst of them. */
export function parseUsageHeaders(headers: HeaderSource): GraphUsage {
  const app = parseUsageHeader(headerValue(headers, 'x-app-usage'));
  const page = parseUsageHeader(headerValue(headers, 'x-page-usage'));
  const businessUseCase = parseBusinessUseCaseHeader(headerValue(headers, 'x-business-use-case-usage'));
  const all = [app, page, ...Object.values(businessUseCase)].filter((r): r is UsageReading => r !== null);
  return {
    maxPercent: all.reduce((m, r) => Math.max(m, r.maxPercent), 0),
    regainAccessMinutes: all.reduce((m, r) => Math.max(m, r.regainAccessMinutes), 0),
    app,
    page,
    businessUseCase,
  };
}
