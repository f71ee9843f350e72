import type { IdFactory } from './ids.js';

/**
 * Faults on demand for Graph API calls. A fault matches calls by Page (or Instagram account) and
 * by a substring of the path, and fires `count` times (0: until cleared).
 *
 * - latency: the call waits `ms` before it is handled (other faults may still fire);
 * - http_500: answers `status` (default 500) with Meta's transient error body (code 2);
 * - drop: the connection is destroyed before anything is done;
 * - rate_limit: answers `code` (default 613) and the usage headers show the limit reached;
 * - graph_error: answers the given `status`, `code`, `subcode`, `message`;
 * - accept_then_drop: the call is carried out (a send reaches the thread, echoes and receipts
 *   follow), then the response is withheld for `ms` (default 0) and the connection destroyed.
 */

export const FAULT_KINDS = ['latency', 'http_500', 'drop', 'rate_limit', 'graph_error', 'accept_then_drop'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface FaultInput {
  kind: FaultKind;
  page?: string;
  path?: string;
  count?: number;
  ms?: number;
  status?: number;
  code?: number;
  subcode?: number;
  message?: string;
}

export interface Fault {
  id: string;
  kind: FaultKind;
  page: string | null;
  path: string | null;
  /** Remaining firings; null fires until cleared. */
  remaining: number | null;
  ms: number;
  status: number | null;
  code: number | null;
  subcode: number | null;
  message: string | null;
  fired: number;
}

export interface FaultPlan {
  latencyMs: number;
  terminal: Fault | null;
}

export class FaultRegistry {
  private faults: Fault[] = [];

  constructor(private readonly ids: IdFactory) {}

  add(input: FaultInput): Fault {
    const fault: Fault = {
      id: this.ids.opaque(6),
      kind: input.kind,
      page: input.page ?? null,
      path: input.path ?? null,
      remaining: input.count === 0 ? null : (input.count ?? 1),
      ms: input.ms ?? 0,
      status: input.status ?? null,
      code: input.code ?? null,
      subcode: input.subcode ?? null,
      message: input.message ?? null,
      fired: 0,
    };
    this.faults.push(fault);
    return fault;
  }

  list(): Fault[] {
    return [...this.faults];
  }

  remove(id: string): boolean {
    const before = this.faults.length;
    this.faults = this.faults.filter((fault) => fault.id !== id);
    return this.faults.length !== before;
  }

  clear(): void {
    this.faults = [];
  }

  /**
   * Consumes the faults that apply to one call: every matching latency fault adds up, and the
   * oldest matching fault of another kind ends the call its way.
   */
  plan(objectIds: readonly string[], path: string): FaultPlan {
    const plan: FaultPlan = { latencyMs: 0, terminal: null };
    for (const fault of this.faults) {
      if (fault.page !== null && !objectIds.includes(fault.page)) continue;
      if (fault.path !== null && !path.includes(fault.path)) continue;
      if (fault.kind === 'latency') {
        plan.latencyMs += fault.ms;
        this.consume(fault);
      } else if (plan.terminal === null) {
        plan.terminal = fault;
        this.consume(fault);
      }
    }
    this.faults = this.faults.filter((fault) => fault.remaining === null || fault.remaining > 0);
    return plan;
  }

  private consume(fault: Fault): void {
    fault.fired += 1;
    if (fault.remaining !== null) fault.remaining -= 1;
  }
}
