import type { FastifyReply, FastifyRequest } from 'fastify';
import type { EmulatorContext } from '../context.js';
import { GraphError, graphErrors } from '../errors.js';
import { metaStringify } from '../meta-json.js';
import type { TokenRecord } from '../state.js';

/**
 * The frame every Graph API call runs in: parameters merged from the query and any body (JSON,
 * form or multipart), faults applied, Meta's error bodies, usage headers, and Meta's JSON
 * serialisation.
 */

export interface UploadedFile {
  field: string;
  filename: string;
  contentType: string;
  bytes: Buffer;
}

export interface GraphCall {
  ctx: EmulatorContext;
  request: FastifyRequest;
  version: string;
  /** The object id in the path (`me`, a Page id, a PSID ...) when the route has one. */
  pathId: string | undefined;
  params: Record<string, unknown>;
  files: UploadedFile[];
  /** Who the call is billed to in the usage headers; handlers refine it once they know. */
  account: { appId: string | null; pageId: string | null };
}

export type GraphAnswer =
  | { kind: 'json'; status?: number; body: unknown }
  | { kind: 'html'; status?: number; html: string }
  | { kind: 'redirect'; location: string };

export type GraphHandler = (call: GraphCall) => Promise<GraphAnswer> | GraphAnswer;

export const json = (body: unknown, status = 200): GraphAnswer => ({ kind: 'json', status, body });

// Meta accepts attachments up to 25 MB.
export const MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024;
const VERSION_PATTERN = /^v\d{1,2}\.\d{1,2}$/;

/** Form and multipart callers send nested objects as JSON strings. */
export function decodeParam(value: unknown, name: string): unknown {
  if (typeof value !== 'string') return value;
  const trimmed = value.trim();
  if (!trimmed.startsWith('{') && !trimmed.startsWith('[')) return value;
  try {
    return JSON.parse(trimmed) as unknown;
  } catch {
    throw graphErrors.invalidParam(`param ${name} must be valid JSON`);
  }
}

export function graphRoute(ctx: EmulatorContext, handler: GraphHandler, options: { isSend?: boolean } = {}) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const started = Date.now();
    const routeParams = (request.params ?? {}) as Record<string, string | undefined>;
    if (routeParams.version === '_emulator') {
      // An unknown control path that fell through to the Graph routes.
      void reply.status(404).send({ error: { code: 'not_found', message: `${request.method} ${request.url.split('?')[0]} is not a route of the emulator` } });
      return;
    }
    const version = routeParams.version ?? ctx.options.graphVersion;
    const call: GraphCall = {
      ctx,
      request,
      version,
      pathId: routeParams.id,
      params: {},
      files: [],
      account: { appId: null, pageId: null },
    };
    let answer: GraphAnswer;
    let dropAfterMs: number | null = null;
    try {
      if (routeParams.version !== undefined && !VERSION_PATTERN.test(routeParams.version)) {
        throw request.method === 'GET'
          ? graphErrors.unsupportedGet(routeParams.version)
          : graphErrors.unsupportedPost(routeParams.version);
      }
      call.params = await readParams(request, call.files);
      const peeked = peekToken(ctx, call.params, request);
      if (peeked) {
        call.account.appId = peeked.appId;
        call.account.pageId = peeked.pageId ?? null;
      }
      const objectIds = faultTargets(ctx, call.pathId, peeked);
      const plan = ctx.faults.plan(objectIds, request.url.split('?')[0] ?? request.url);
      if (plan.latencyMs > 0) await sleep(plan.latencyMs, ctx.closing);
      const fault = plan.terminal;
      if (fault) {
        ctx.options.logger(`fault: ${fault.kind} on ${request.method} ${request.url.split('?')[0]}`);
        switch (fault.kind) {
          case 'drop':
            destroy(request, reply);
            return;
          case 'http_500': {
            const transient = graphErrors.transient();
            throw new GraphError(fault.status ?? 500, fault.code ?? transient.code, fault.message ?? transient.message, fault.subcode ?? undefined, 'OAuthException', { is_transient: true });
          }
          case 'rate_limit': {
            const pageId = call.account.pageId ?? (call.pathId && ctx.state.pageForObjectId(call.pathId)?.id) ?? null;
            // Meta reports the time to regain access in minutes; a minute unless told otherwise.
            if (pageId) ctx.usage.throttle(pageId, fault.ms > 0 ? fault.ms : 60_000);
            const limited = graphErrors.rateLimited();
            throw new GraphError(fault.status ?? 400, fault.code ?? limited.code, fault.message ?? (fault.code ? `(#${fault.code}) Application request limit reached` : limited.message), fault.subcode ?? undefined);
          }
          case 'graph_error':
            throw new GraphError(fault.status ?? 400, fault.code ?? 1, fault.message ?? 'An unknown error has occurred.', fault.subcode ?? undefined);
          case 'accept_then_drop':
            dropAfterMs = fault.ms;
            break;
          case 'latency':
            break;
        }
      }
      answer = await handler(call);
    } catch (error) {
      answer = errorAnswer(ctx, error, request);
    }
    ctx.usage.record({
      appId: call.account.appId,
      pageId: call.account.pageId,
      isSend: options.isSend === true,
      timeMs: Date.now() - started,
      cpuMs: ctx.usage.cpu.charge(),
    });
    if (dropAfterMs !== null) {
      if (dropAfterMs > 0) await sleep(dropAfterMs, ctx.closing);
      destroy(request, reply);
      return;
    }
    setUsageHeaders(ctx, reply, call.account.appId, call.account.pageId);
    reply.header('facebook-api-version', version);
    sendAnswer(reply, answer);
  };
}

export function sendAnswer(reply: FastifyReply, answer: GraphAnswer): void {
  switch (answer.kind) {
    case 'json': {
      const body = answer.body as { error?: { code?: number } } | null;
      if (body && typeof body === 'object' && body.error?.code === 190) {
        // Meta names the token problem in this header too.
        reply.header('www-authenticate', 'OAuth "Facebook Platform" "invalid_token" "Invalid OAuth access token"');
      }
      void reply
        .status(answer.status ?? 200)
        .header('content-type', 'application/json; charset=UTF-8')
        .send(metaStringify(answer.body));
      return;
    }
    case 'html':
      void reply
        .status(answer.status ?? 200)
        .header('content-type', 'text/html; charset=utf-8')
        .send(answer.html);
      return;
    case 'redirect':
      void reply.status(302).header('location', answer.location).send();
      return;
  }
}

export function errorAnswer(ctx: EmulatorContext, error: unknown, request: FastifyRequest): GraphAnswer {
  if (error instanceof GraphError) return json(error.body(), error.status);
  const status = (error as { statusCode?: unknown }).statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    // Fastify's own refusals (bad JSON, body too large, bad content type) in Meta's shape.
    const text = status === 413 ? 'Request body is too large' : `Invalid request: ${(error as Error).message}`;
    return json(graphErrors.invalidParam(text).body(), 400);
  }
  ctx.options.logger(`graph: ${request.method} ${request.url.split('?')[0]} failed: ${(error as Error)?.stack ?? String(error)}`);
  return json(new GraphError(500, 1, 'An unknown error has occurred.', undefined, 'OAuthException', { is_transient: true }).body(), 500);
}

export function setUsageHeaders(ctx: EmulatorContext, reply: FastifyReply, appId: string | null, pageId: string | null): void {
  reply.header('x-app-usage', JSON.stringify(ctx.usage.appUsage(appId)));
  reply.header('x-business-use-case-usage', JSON.stringify(pageId ? ctx.usage.businessUseCaseUsage(pageId) : {}));
  if (pageId) reply.header('x-page-usage', JSON.stringify(ctx.usage.pageUsage(pageId)));
}

/** The access token of a call: `access_token` parameter, or `Authorization: Bearer|OAuth`. */
export function tokenOf(params: Record<string, unknown>, request: FastifyRequest): string | undefined {
  const fromParams = params.access_token;
  if (typeof fromParams === 'string' && fromParams.length > 0) return fromParams;
  const header = request.headers.authorization;
  if (typeof header === 'string') {
    const match = /^(?:Bearer|OAuth)\s+(.+)$/i.exec(header.trim());
    if (match?.[1]) return match[1];
  }
  return undefined;
}

function peekToken(ctx: EmulatorContext, params: Record<string, unknown>, request: FastifyRequest): TokenRecord | undefined {
  const token = tokenOf(params, request);
  if (token === undefined) return undefined;
  const record = ctx.state.tokens.get(token);
  if (record) return record;
  const appId = token.split('|')[0];
  if (appId && token.includes('|') && ctx.state.apps.has(appId)) {
    return { token, kind: 'user', appId, scopes: [], issuedAt: 0, expiresAt: 0, valid: true };
  }
  return undefined;
}

function faultTargets(ctx: EmulatorContext, pathId: string | undefined, token: TokenRecord | undefined): string[] {
  const targets: string[] = [];
  const add = (id: string | undefined) => {
    if (id === undefined || targets.includes(id)) return;
    targets.push(id);
    const page = ctx.state.pageForObjectId(id);
    if (page) {
      if (!targets.includes(page.id)) targets.push(page.id);
      if (page.instagram && !targets.includes(page.instagram.id)) targets.push(page.instagram.id);
    }
  };
  if (pathId !== undefined && pathId !== 'me') add(pathId);
  add(token?.pageId);
  return targets;
}

async function readParams(request: FastifyRequest, files: UploadedFile[]): Promise<Record<string, unknown>> {
  const params: Record<string, unknown> = {};
  const query = request.query as Record<string, unknown> | undefined;
  if (query && typeof query === 'object') Object.assign(params, query);
  if (request.isMultipart()) {
    try {
      for await (const part of request.parts({ limits: { fileSize: MAX_ATTACHMENT_BYTES, files: 5, fields: 50 } })) {
        if (part.type === 'file') {
          const bytes = await part.toBuffer();
          files.push({ field: part.fieldname, filename: part.filename, contentType: part.mimetype, bytes });
        } else {
          params[part.fieldname] = part.value;
        }
      }
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === 'FST_REQ_FILE_TOO_LARGE') throw graphErrors.attachmentTooLarge();
      throw graphErrors.invalidParam(`Invalid multipart body: ${(error as Error).message}`);
    }
    return params;
  }
  const body: unknown = request.body;
  if (typeof body === 'string' || Buffer.isBuffer(body)) {
    const text = body.toString().trim();
    if (text.length > 0) {
      try {
        const parsed: unknown = JSON.parse(text);
        if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) Object.assign(params, parsed);
        else throw new Error('not an object');
      } catch {
        throw graphErrors.invalidParam('The request body must be a JSON object or form parameters');
      }
    }
  } else if (body && typeof body === 'object') {
    Object.assign(params, body);
  }
  return params;
}

function destroy(request: FastifyRequest, reply: FastifyReply): void {
  reply.hijack();
  request.raw.socket.destroy();
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      resolve();
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
