import { createHmac, randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { Pool } from 'undici';
import type { Dispatcher } from 'undici';
import type { JsonObject, JsonValue, SenderAction } from '../domain/glossary.js';
import { idString, parseJsonExact } from './json.js';
import type { GraphUsage } from './usage.js';
import { NO_USAGE, parseUsageHeaders } from './usage.js';

/**
 * The Graph API client: Send API, sender actions, profiles, attachment upload, Page subscription,
 * token checks and the Facebook Login exchanges. One undici Pool with keep-alive per origin:
 * Node 20's global fetch costs about 13x more CPU per call on this path. The emulator is just
 * another base URL.
 */

/** Every field a Page is subscribed to, so no event type is silently missing. Source: Webhooks for Messenger Platform, field list. */
export const PAGE_SUBSCRIBED_FIELDS: readonly string[] = [
  'messages',
  'message_echoes',
  'message_deliveries',
  'message_reads',
  'message_reactions',
  'message_edits',
  'messaging_postbacks',
  'messaging_optins',
  'messaging_referrals',
  'messaging_handovers',
  'messaging_policy_enforcement',
  'standby',
];

/** Permissions a Page connection asks for in Facebook Login for Business. */
export const MESSENGER_LOGIN_SCOPES: readonly string[] = [
  'pages_messaging',
  'pages_manage_metadata',
  'pages_show_list',
  'pages_read_engagement',
  'business_management',
];
/** Instagram adds these to the Page scopes. */
export const INSTAGRAM_LOGIN_SCOPES: readonly string[] = ['instagram_basic', 'instagram_manage_messages'];

/** Fields a Messenger profile lookup may read without extra approval. Source: User Profile API. */
export const MESSENGER_PROFILE_FIELDS: readonly string[] = ['first_name', 'last_name', 'name', 'profile_pic'];
/** Fields an Instagram profile lookup may read after the person wrote first. Source: Instagram User Profile API. */
export const INSTAGRAM_PROFILE_FIELDS: readonly string[] = ['name', 'username', 'profile_pic', 'is_verified_user'];

/** Meta gives up on a webhook after 20 s; a Graph call waiting longer than this is treated as lost. */
const DEFAULT_TIMEOUT_MS = 20_000;
/** Concurrent connections per origin: 300 sends/s per Page at ~200 ms each keeps about 60 in flight. */
const DEFAULT_CONNECTIONS = 64;
/** Graph answers are small JSON; anything bigger than this is not a Graph answer and is cut off. */
const DEFAULT_MAX_RESPONSE_BYTES = 5 * 1024 * 1024;
/** `/me/accounts` pages are followed at most this many times, so a looping cursor cannot spin forever. */
const MAX_PAGES_FOLLOWED = 50;

export interface GraphClientOptions {
  /** e.g. `https://graph.facebook.com` or the emulator's URL. */
  baseUrl: string;
  /** e.g. `v25.0`. */
  version: string;
  appId: string;
  appSecret: string;
  timeoutMs?: number;
  /** Send `appsecret_proof` (HMAC of the token with the app secret) on calls made with a token. */
  appsecretProof?: boolean;
  connections?: number;
  maxResponseBytes?: number;
  /**
   * Awaited before every call that changes something at Meta (POST, DELETE): the store's
   * durability barrier (`Store.sync`), so what a send or a subscription follows from is on disk
   * before Meta acts on it. A GET changes nothing there and does not wait.
   */
  beforeWrite?: () => Promise<void>;
}

/** Meta answered with an error. */
export class MetaApiError extends Error {
  readonly httpStatus: number;
  /** Meta's `error.code`; null when the answer was not a Graph error body. */
  readonly code: number | null;
  readonly subcode: number | null;
  /** `OAuthException`, `IGApiException`, … */
  readonly type: string | null;
  readonly fbtraceId: string | null;
  readonly usage: GraphUsage;
  /** The error body as received (parsed JSON, or text when it was not JSON). */
  readonly body: JsonValue;

  constructor(init: {
    httpStatus: number;
    code: number | null;
    subcode: number | null;
    type: string | null;
    message: string;
    fbtraceId: string | null;
    usage: GraphUsage;
    body: JsonValue;
  }) {
    super(init.message);
    this.name = 'MetaApiError';
    this.httpStatus = init.httpStatus;
    this.code = init.code;
    this.subcode = init.subcode;
    this.type = init.type;
    this.fbtraceId = init.fbtraceId;
    this.usage = init.usage;
    this.body = init.body;
  }
}

export type TransportErrorKind = 'timeout' | 'connection' | 'reset' | 'invalid_response';

/**
 * The call did not produce a Graph answer. `maybeDelivered` is true once the request was handed
 * to a connected socket: Meta may have acted on it (a send may have gone out), so the gateway
 * reconciles through the echo's metadata before any retry.
 */
export class MetaTransportError extends Error {
  readonly kind: TransportErrorKind;
  readonly maybeDelivered: boolean;

  constructor(kind: TransportErrorKind, maybeDelivered: boolean, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MetaTransportError';
    this.kind = kind;
    this.maybeDelivered = maybeDelivered;
  }
}

export type MetaRecipient =
  | { id: string }
  | { user_ref: string }
  | { comment_id: string }
  | { post_id: string }
  | { notification_messages_token: string };

/** A Send API body. `message` is what `buildMetaMessages` produced (or a raw passthrough). */
export interface MetaSendBody {
  recipient: MetaRecipient;
  message: JsonObject;
  messaging_type?: string;
  tag?: string;
  notification_type?: string;
  reply_to?: { mid: string };
  persona_id?: string;
}

export interface SendResult {
  /** Absent for `user_ref` sends. */
  recipient_id?: string;
  /** The `mid` that echoes and receipts will carry. */
  message_id: string;
  /** A media part sent by URL with `is_reusable`: the id to send the same file again by. */
  attachment_id?: string;
  usage: GraphUsage;
}

export type UploadInput =
  | { type: 'image' | 'audio' | 'video' | 'file'; url: string }
  | { type: 'image' | 'audio' | 'video' | 'file'; data: Buffer; filename: string; contentType: string };

export interface SubscribedApp {
  id: string;
  name?: string;
  subscribed_fields: string[];
}

export interface DebugTokenData {
  is_valid: boolean;
  app_id?: string;
  type?: string;
  scopes?: string[];
  /** Epoch seconds; 0 means it does not expire. */
  expires_at?: number;
  profile_id?: string;
  user_id?: string;
  [key: string]: JsonValue | undefined;
}

export interface AccessTokenResult {
  access_token: string;
  token_type?: string;
  expires_in?: number;
}

export interface ManagedPage {
  id: string;
  name?: string;
  access_token?: string;
  tasks?: string[];
  category?: string;
  instagram_business_account?: { id: string; username?: string; name?: string };
}

interface GraphResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

interface CallOptions {
  token?: string;
  query?: Record<string, string | undefined>;
  json?: JsonValue;
  raw?: { body: Buffer; contentType: string };
  /** The Page whose usage this call reports (for `usageFor`). */
  pageId?: string;
  /** Overrides the client's timeout for this call. */
  timeoutMs?: number;
}

/** Per-call settings. */
export interface CallSettings {
  /** Overrides the client's timeout (e.g. longer for uploads Meta fetches by URL). */
  timeoutMs?: number;
}

const CONNECTION_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
]);
const TIMEOUT_ERROR_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * One request over a pool. Resolves with the whole answer or rejects with a MetaTransportError.
 * The dispatch handler tells us when the request reaches a connected socket (`onRequestStart`),
 * which is what decides `maybeDelivered`.
 */
function dispatch(pool: Pool, options: Dispatcher.DispatchOptions, timeoutMs: number, maxBytes: number): Promise<GraphResponse> {
  return new Promise<GraphResponse>((resolve, reject) => {
    let started = false;
    let settled = false;
    let controller: Dispatcher.DispatchController | null = null;
    let status = 0;
    let headers: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    let size = 0;

    const fail = (err: MetaTransportError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(err);
    };

    const timer = setTimeout(() => {
      fail(new MetaTransportError('timeout', started, `no answer from the Graph API within ${timeoutMs} ms`));
      // Abort what is on the wire; a request still queued is aborted when it reaches a socket.
      controller?.abort(new Error('timed out'));
    }, timeoutMs);

    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(ctrl) {
        if (settled) {
          // We already gave up on it: it must never be written.
          ctrl.abort(new Error('abandoned after timeout'));
          return;
        }
        started = true;
        controller = ctrl;
      },
      onResponseStart(_ctrl, statusCode, responseHeaders) {
        status = statusCode;
        headers = responseHeaders;
      },
      onResponseData(ctrl, chunk) {
        size += chunk.length;
        if (size > maxBytes) {
          fail(new MetaTransportError('invalid_response', started, `the Graph answer exceeded ${maxBytes} bytes`));
          ctrl.abort(new Error('response too large'));
          return;
        }
        chunks.push(chunk);
      },
      onResponseEnd() {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ status, headers, body: Buffer.concat(chunks) });
      },
      onResponseError(_ctrl, err) {
        const code = errorCode(err) ?? errorCode((err as { cause?: unknown }).cause);
        let kind: TransportErrorKind = 'reset';
        if (code !== undefined && CONNECTION_ERROR_CODES.has(code)) kind = 'connection';
        else if (code !== undefined && TIMEOUT_ERROR_CODES.has(code)) kind = 'timeout';
        fail(new MetaTransportError(kind, started, `Graph API request failed (${code ?? err.message})`, { cause: err }));
      },
    };

    try {
      pool.dispatch(options, handler);
    } catch (err) {
      fail(new MetaTransportError('connection', false, `Graph API request could not start: ${(err as Error).message}`, { cause: err }));
    }
  });
}

function multipartBody(fields: { name: string; value: string }[], file: { name: string; filename: string; contentType: string; data: Buffer }): { body: Buffer; contentType: string } {
  const boundary = `----switchboard${randomBytes(12).toString('hex')}`;
  const parts: Buffer[] = [];
  for (const field of fields) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${field.name}"\r\n\r\n${field.value}\r\n`));
  }
  const safeName = file.filename.replace(/["\r\n]/g, '_');
  parts.push(
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="${file.name}"; filename="${safeName}"\r\nContent-Type: ${file.contentType}\r\n\r\n`,
    ),
  );
  parts.push(file.data);
  parts.push(Buffer.from(`\r\n--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` };
}

export class GraphClient {
  readonly appId: string;
  readonly version: string;
  readonly baseUrl: string;
  private readonly appSecret: string;
  private readonly timeoutMs: number;
  private readonly appsecretProof: boolean;
  private readonly connections: number;
  private readonly maxResponseBytes: number;
  private readonly beforeWrite: (() => Promise<void>) | undefined;
  private readonly origin: string;
  private readonly pathPrefix: string;
  private readonly pools = new Map<string, Pool>();
  private readonly usageByPage = new Map<string, GraphUsage>();
  private lastUsageSeen: GraphUsage = NO_USAGE;

  constructor(options: GraphClientOptions) {
    const base = new URL(options.baseUrl);
    this.origin = base.origin;
    this.pathPrefix = base.pathname.replace(/\/+$/, '');
    this.baseUrl = `${this.origin}${this.pathPrefix}`;
    this.version = options.version.replace(/^\/+|\/+$/g, '');
    this.appId = options.appId;
    this.appSecret = options.appSecret;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.appsecretProof = options.appsecretProof ?? false;
    this.connections = options.connections ?? DEFAULT_CONNECTIONS;
    this.maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    this.beforeWrite = options.beforeWrite;
  }

  /** The usage Meta last reported on a call for this Page (for pacing). */
  usageFor(pageId: string): GraphUsage | undefined {
    return this.usageByPage.get(pageId);
  }

  /** The usage Meta reported on the most recent call of any kind. */
  lastUsage(): GraphUsage {
    return this.lastUsageSeen;
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((pool) => pool.close()));
  }

  private pool(origin: string): Pool {
    let pool = this.pools.get(origin);
    if (pool === undefined) {
      pool = new Pool(origin, {
        connections: this.connections,
        pipelining: 1,
        connect: { timeout: Math.min(this.timeoutMs, 10_000) },
        // Our own timer governs; undici's must not fire first and blur timeout vs reset.
        headersTimeout: this.timeoutMs + 1_000,
        bodyTimeout: this.timeoutMs + 1_000,
      });
      this.pools.set(origin, pool);
    }
    return pool;
  }

  private proof(token: string): string {
    return createHmac('sha256', this.appSecret).update(token).digest('hex');
  }

  private async call(method: 'GET' | 'POST' | 'DELETE', path: string, options: CallOptions = {}): Promise<JsonValue> {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) params.set(key, value);
    }
    const headers: Record<string, string> = { accept: 'application/json' };
    if (options.token !== undefined) {
      // The token travels in a header, not the URL, so it never lands in access logs.
      headers['authorization'] = `Bearer ${options.token}`;
      if (this.appsecretProof) params.set('appsecret_proof', this.proof(options.token));
    }
    let body: Buffer | undefined;
    if (options.json !== undefined) {
      body = Buffer.from(JSON.stringify(options.json));
      headers['content-type'] = 'application/json';
    } else if (options.raw !== undefined) {
      body = options.raw.body;
      headers['content-type'] = options.raw.contentType;
    }
    const query = params.toString();
    const fullPath = `${this.pathPrefix}/${this.version}/${path.replace(/^\/+/, '')}${query === '' ? '' : `?${query}`}`;
    const dispatchOptions: Dispatcher.DispatchOptions = { origin: this.origin, method, path: fullPath, headers };
    if (body !== undefined) dispatchOptions.body = body;
    if (method !== 'GET' && this.beforeWrite !== undefined) await this.beforeWrite();
    const response = await dispatch(this.pool(this.origin), dispatchOptions, options.timeoutMs ?? this.timeoutMs, this.maxResponseBytes);

    const usage = parseUsageHeaders(response.headers);
    this.lastUsageSeen = usage;
    if (options.pageId !== undefined) this.usageByPage.set(options.pageId, usage);

    const text = response.body.toString('utf8');
    let parsed: JsonValue | undefined;
    try {
      parsed = text === '' ? null : parseJsonExact(text);
    } catch {
      parsed = undefined;
    }
    const ok = response.status >= 200 && response.status < 300;
    if (parsed !== undefined && isObject(parsed) && isObject(parsed['error'])) {
      throw apiError(response.status, parsed, usage);
    }
    if (!ok) {
      throw new MetaApiError({
        httpStatus: response.status,
        code: null,
        subcode: null,
        type: null,
        message: `the Graph API answered HTTP ${response.status} without an error body`,
        fbtraceId: null,
        usage,
        body: parsed ?? text.slice(0, 1_000),
      });
    }
    if (parsed === undefined) {
      throw new MetaTransportError('invalid_response', method !== 'GET', 'the Graph API answered 2xx with a body that is not JSON');
    }
    return parsed;
  }

  /** `POST /{page-id}/messages`. */
  async sendMessage(pageId: string, token: string, body: MetaSendBody, settings: CallSettings = {}): Promise<SendResult> {
    const json = (await this.call('POST', `${pageId}/messages`, { ...settings, token, json: body as unknown as JsonValue, pageId })) ?? {};
    const messageId = isObject(json) ? idString(json['message_id']) : null;
    if (messageId === null) {
      // The call succeeded but we cannot tell which mid it produced: reconcile, do not resend.
      throw new MetaTransportError('invalid_response', true, 'the Send API answered without a message_id');
    }
    const result: SendResult = { message_id: messageId, usage: this.usageFor(pageId) ?? NO_USAGE };
    const recipientId = isObject(json) ? idString(json['recipient_id']) : null;
    if (recipientId !== null) result.recipient_id = recipientId;
    const attachmentId = isObject(json) ? idString(json['attachment_id']) : null;
    if (attachmentId !== null) result.attachment_id = attachmentId;
    return result;
  }

  /** `POST /{page-id}/messages` with `sender_action` (typing_on, typing_off, mark_seen, react, unreact). */
  async senderAction(
    pageId: string,
    token: string,
    recipient: MetaRecipient,
    action: SenderAction,
    payload?: { message_id: string; reaction?: string },
  ): Promise<{ recipient_id?: string; usage: GraphUsage }> {
    const body: JsonObject = { recipient: { ...recipient }, sender_action: action };
    if (payload !== undefined) body['payload'] = { ...payload };
    const json = await this.call('POST', `${pageId}/messages`, { token, json: body, pageId });
    const result: { recipient_id?: string; usage: GraphUsage } = { usage: this.usageFor(pageId) ?? NO_USAGE };
    const recipientId = isObject(json) ? idString(json['recipient_id']) : null;
    if (recipientId !== null) result.recipient_id = recipientId;
    return result;
  }

  /** `GET /{psid-or-igsid}?fields=…`. Hidden profiles answer error 2018218, which is normal. */
  async getProfile(id: string, token: string, fields: readonly string[], pageId?: string): Promise<JsonObject & { id: string }> {
    const options: CallOptions = { token, query: { fields: fields.join(',') } };
    if (pageId !== undefined) options.pageId = pageId;
    const json = await this.call('GET', encodeURIComponent(id), options);
    if (!isObject(json)) throw new MetaTransportError('invalid_response', false, 'the profile answer is not an object');
    return { ...json, id: idString(json['id']) ?? id };
  }

  /** `POST /{page-id}/message_attachments`: by URL, or the bytes as multipart `filedata`. */
  async uploadAttachment(pageId: string, token: string, input: UploadInput, settings: CallSettings = {}): Promise<{ attachment_id: string }> {
    let json: JsonValue;
    if ('url' in input) {
      json = await this.call('POST', `${pageId}/message_attachments`, {
        ...settings,
        token,
        pageId,
        json: { message: { attachment: { type: input.type, payload: { url: input.url, is_reusable: true } } } },
      });
    } else {
      const form = multipartBody(
        [{ name: 'message', value: JSON.stringify({ attachment: { type: input.type, payload: { is_reusable: true } } }) }],
        { name: 'filedata', filename: input.filename, contentType: input.contentType, data: input.data },
      );
      json = await this.call('POST', `${pageId}/message_attachments`, {
        ...settings,
        token,
        pageId,
        raw: { body: form.body, contentType: form.contentType },
      });
    }
    const attachmentId = isObject(json) ? idString(json['attachment_id']) : null;
    if (attachmentId === null) throw new MetaTransportError('invalid_response', true, 'the upload answered without an attachment_id');
    return { attachment_id: attachmentId };
  }

  /** `GET /{page-id}/subscribed_apps`: the apps subscribed to the Page and their fields. */
  async getSubscribedApps(pageId: string, token: string): Promise<SubscribedApp[]> {
    const json = await this.call('GET', `${pageId}/subscribed_apps`, { token, pageId });
    const data = isObject(json) && Array.isArray(json['data']) ? json['data'] : [];
    return data.filter(isObject).map((app) => {
      const out: SubscribedApp = {
        id: idString(app['id']) ?? '',
        subscribed_fields: Array.isArray(app['subscribed_fields'])
          ? app['subscribed_fields'].filter((f): f is string => typeof f === 'string')
          : [],
      };
      if (typeof app['name'] === 'string') out.name = app['name'];
      return out;
    });
  }

  /** `POST /{page-id}/subscribed_apps?subscribed_fields=…`. Throws unless Meta confirms. */
  async subscribeApp(pageId: string, token: string, fields: readonly string[] = PAGE_SUBSCRIBED_FIELDS): Promise<{ success: true }> {
    const json = await this.call('POST', `${pageId}/subscribed_apps`, {
      token,
      pageId,
      query: { subscribed_fields: fields.join(',') },
    });
    return this.confirm(json, 'subscribe the app to the Page');
  }

  /** `DELETE /{page-id}/subscribed_apps`. */
  async unsubscribeApp(pageId: string, token: string): Promise<{ success: true }> {
    const json = await this.call('DELETE', `${pageId}/subscribed_apps`, { token, pageId });
    return this.confirm(json, 'unsubscribe the app from the Page');
  }

  private confirm(json: JsonValue, what: string): { success: true } {
    if (isObject(json) && json['success'] === true) return { success: true };
    throw new MetaApiError({
      httpStatus: 200,
      code: null,
      subcode: null,
      type: null,
      message: `Meta did not confirm the request to ${what}`,
      fbtraceId: null,
      usage: this.lastUsageSeen,
      body: json,
    });
  }

  /** `GET /debug_token` with the app token (`app id|app secret`): is a token valid, with which scopes. */
  async debugToken(inputToken: string): Promise<DebugTokenData> {
    const json = await this.call('GET', 'debug_token', {
      query: { input_token: inputToken, access_token: `${this.appId}|${this.appSecret}` },
    });
    const data = isObject(json) && isObject(json['data']) ? json['data'] : null;
    if (data === null) throw new MetaTransportError('invalid_response', false, 'debug_token answered without data');
    const out: DebugTokenData = { ...data, is_valid: data['is_valid'] === true };
    for (const key of ['app_id', 'profile_id', 'user_id'] as const) {
      const id = idString(data[key]);
      if (id !== null) out[key] = id;
    }
    return out;
  }

  /** `GET /{page-id}?fields=…` (`me` works with a Page token). */
  async getPage(pageId: string, token: string, fields: readonly string[]): Promise<JsonObject & { id: string }> {
    const json = await this.call('GET', encodeURIComponent(pageId), { token, query: { fields: fields.join(',') } });
    if (!isObject(json)) throw new MetaTransportError('invalid_response', false, 'the Page answer is not an object');
    return { ...json, id: idString(json['id']) ?? pageId };
  }

  /** Facebook Login: the dialog's `code` -> a short-lived user token. */
  async exchangeCode(code: string, redirectUri: string): Promise<AccessTokenResult> {
    const json = await this.call('GET', 'oauth/access_token', {
      query: { client_id: this.appId, client_secret: this.appSecret, redirect_uri: redirectUri, code },
    });
    return accessToken(json);
  }

  /** A short-lived user token -> a 60-day one. */
  async exchangeLongLived(userToken: string): Promise<AccessTokenResult> {
    const json = await this.call('GET', 'oauth/access_token', {
      query: {
        grant_type: 'fb_exchange_token',
        client_id: this.appId,
        client_secret: this.appSecret,
        fb_exchange_token: userToken,
      },
    });
    return accessToken(json);
  }

  /** `GET /me/accounts`: the Pages the user granted, with their Page tokens, following every page of results. */
  async listPages(userToken: string): Promise<ManagedPage[]> {
    const pages: ManagedPage[] = [];
    let after: string | undefined;
    for (let i = 0; i < MAX_PAGES_FOLLOWED; i += 1) {
      const json = await this.call('GET', 'me/accounts', {
        token: userToken,
        query: {
          fields: 'id,name,access_token,tasks,category,instagram_business_account{id,username,name}',
          limit: '100',
          after,
        },
      });
      if (!isObject(json)) break;
      const data = Array.isArray(json['data']) ? json['data'] : [];
      for (const item of data) {
        const page = managedPage(item);
        if (page !== null) pages.push(page);
      }
      const paging = isObject(json['paging']) ? json['paging'] : null;
      const cursors = paging !== null && isObject(paging['cursors']) ? paging['cursors'] : null;
      const next = cursors !== null && typeof cursors['after'] === 'string' ? cursors['after'] : undefined;
      if (paging === null || paging['next'] === undefined || next === undefined || next === after || data.length === 0) break;
      after = next;
    }
    return pages;
  }

  /**
   * The Facebook Login for Business dialog URL. `dialogBaseUrl` replaces `https://www.facebook.com`
   * (the emulator serves the dialog itself).
   */
  oauthDialogUrl(options: { redirectUri: string; state: string; scopes: readonly string[]; dialogBaseUrl?: string }): string {
    const base = (options.dialogBaseUrl ?? 'https://www.facebook.com').replace(/\/+$/, '');
    const params = new URLSearchParams({
      client_id: this.appId,
      redirect_uri: options.redirectUri,
      state: options.state,
      scope: options.scopes.join(','),
      response_type: 'code',
    });
    return `${base}/${this.version}/dialog/oauth?${params.toString()}`;
  }
}

function apiError(httpStatus: number, body: JsonObject, usage: GraphUsage): MetaApiError {
  const error = body['error'] as JsonObject;
  const code = typeof error['code'] === 'number' ? error['code'] : Number.parseInt(String(error['code'] ?? ''), 10);
  const subcode =
    typeof error['error_subcode'] === 'number'
      ? error['error_subcode']
      : Number.parseInt(String(error['error_subcode'] ?? ''), 10);
  return new MetaApiError({
    httpStatus,
    code: Number.isFinite(code) ? code : null,
    subcode: Number.isFinite(subcode) ? subcode : null,
    type: typeof error['type'] === 'string' ? error['type'] : null,
    message: typeof error['message'] === 'string' ? error['message'] : `Graph API error (HTTP ${httpStatus})`,
    fbtraceId: typeof error['fbtrace_id'] === 'string' ? error['fbtrace_id'] : null,
    usage,
    body,
  });
}

/** Reads a Graph error body such as Meta's `{"error": {message, type, code, error_subcode, fbtrace_id}}`. */
export function metaApiErrorFromBody(httpStatus: number, body: JsonValue, usage: GraphUsage = NO_USAGE): MetaApiError | null {
  if (!isObject(body) || !isObject(body['error'])) return null;
  return apiError(httpStatus, body, usage);
}

function accessToken(json: JsonValue): AccessTokenResult {
  if (!isObject(json) || typeof json['access_token'] !== 'string') {
    throw new MetaTransportError('invalid_response', false, 'the token exchange answered without an access_token');
  }
  const out: AccessTokenResult = { access_token: json['access_token'] };
  if (typeof json['token_type'] === 'string') out.token_type = json['token_type'];
  if (typeof json['expires_in'] === 'number') out.expires_in = json['expires_in'];
  return out;
}

function managedPage(item: JsonValue): ManagedPage | null {
  if (!isObject(item)) return null;
  const id = idString(item['id']);
  if (id === null) return null;
  const page: ManagedPage = { id };
  if (typeof item['name'] === 'string') page.name = item['name'];
  if (typeof item['access_token'] === 'string') page.access_token = item['access_token'];
  if (typeof item['category'] === 'string') page.category = item['category'];
  if (Array.isArray(item['tasks'])) page.tasks = item['tasks'].filter((t): t is string => typeof t === 'string');
  const ig = item['instagram_business_account'];
  if (isObject(ig)) {
    const igId = idString(ig['id']);
    if (igId !== null) {
      page.instagram_business_account = { id: igId };
      if (typeof ig['username'] === 'string') page.instagram_business_account.username = ig['username'];
      if (typeof ig['name'] === 'string') page.instagram_business_account.name = ig['name'];
    }
  }
  return page;
}
