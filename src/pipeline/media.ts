/**
 * Inbound media (`media.download` jobs). Meta's CDN links expire within hours or days, so the
 * bytes of every image, audio, video, file, sticker and story mention a customer sends are copied
 * into storage the gateway owns. The message is stored first, with a `media_id` on each such
 * attachment; this job downloads the link (undici, URL guard on every hop, size cap, timeouts)
 * into `MediaFiles`, records content type, size and SHA-256, and points the attachment at
 * `{publicUrl}/v1/media/{id}`. A failure is recorded on the media row (status, error, attempts)
 * and retried by the job; the message never depends on it.
 */
import type { ReadStream } from 'node:fs';
import { Agent, request } from 'undici';
import type { Dispatcher } from 'undici';
import { GatewayError, isGatewayError } from '../domain/errors.js';
import type { JobHandler } from '../jobs/job.js';
import { PermanentJobError, RetryableJobError } from '../jobs/job.js';
import type { UrlGuard } from '../net/url-guard.js';
import { getMedia, getMediaById, markMediaFailed, markMediaStored } from '../store/media.js';
import { MediaFiles, MediaTooLargeError } from '../store/media-files.js';
import { getMessageById, updateMessageContent } from '../store/messages.js';
import type { MediaRow } from '../store/schema.js';
import type { PipelineContext } from './context.js';
import { parseContent } from './inbound-resources.js';

export const MEDIA_DOWNLOAD_JOB = 'media.download';

export interface MediaDownloadPayload {
  media_id: string;
}

/** Meta's own limit for attachments is 25 MB; anything larger is not a Messenger attachment. */
export const MEDIA_MAX_BYTES = 25 * 1024 * 1024;
// A CDN that has not started answering in 15 s is failing; the job retries later.
const HEADERS_TIMEOUT_MS = 15_000;
// 25 MB at a slow 1 MB/s fits; a stalled transfer is cut and retried.
const DOWNLOAD_TIMEOUT_MS = 60_000;
// Meta's lookaside links redirect once or twice to the CDN; more is a loop.
const MAX_REDIRECTS = 5;

/** A download failure; `permanent` ones (refused URL, too large, link gone) are not retried. */
export class MediaDownloadError extends Error {
  constructor(
    message: string,
    readonly permanent: boolean,
  ) {
    super(message);
    this.name = 'MediaDownloadError';
  }
}

// One keep-alive agent per URL guard: its lookup refuses private addresses at connect time, so the
// address checked is the address used (a name cannot resolve to a public address, then a private one).
const agents = new WeakMap<UrlGuard, Agent>();

function agentFor(guard: UrlGuard): Agent {
  let agent = agents.get(guard);
  if (!agent) {
    agent = new Agent({ connect: { lookup: guard.lookup }, headersTimeout: HEADERS_TIMEOUT_MS, bodyTimeout: DOWNLOAD_TIMEOUT_MS });
    agents.set(guard, agent);
  }
  return agent;
}

export function mediaUrl(publicUrl: string, mediaId: string): string {
  return `${publicUrl.replace(/\/+$/, '')}/v1/media/${mediaId}`;
}

function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
}

/** A refusal by the URL guard, wherever undici wrapped it. */
function urlRefusal(err: unknown): string | null {
  let e: unknown = err;
  for (let depth = 0; depth < 5 && e !== null && typeof e === 'object'; depth += 1) {
    if (isGatewayError(e) && e.code === 'URL_NOT_ALLOWED') return e.message;
    if ((e as { code?: unknown }).code === 'URL_NOT_ALLOWED') return (e as Error).message;
    e = (e as { cause?: unknown }).cause;
  }
  return null;
}

interface Downloaded {
  contentType: string | null;
  size: number;
  sha256: string;
  key: string;
}

/** Downloads the media row's source URL into `MediaFiles`. Throws `MediaDownloadError`. */
export async function downloadMedia(ctx: PipelineContext, media: MediaRow, signal?: AbortSignal): Promise<Downloaded> {
  if (media.source_url === null) throw new MediaDownloadError('the media has no source URL', true);
  const key = MediaFiles.keyFor(media.account_id, media.id);
  const timeout = AbortSignal.timeout(DOWNLOAD_TIMEOUT_MS);
  const abort = signal ? AbortSignal.any([signal, timeout]) : timeout;
  let url = media.source_url;
  try {
    for (let hop = 0; hop <= MAX_REDIRECTS; hop += 1) {
      ctx.urlGuard.checkSyntax(url);
      const res: Dispatcher.ResponseData = await request(url, { method: 'GET', dispatcher: agentFor(ctx.urlGuard), signal: abort });
      if (isRedirect(res.statusCode)) {
        await res.body.dump();
        const location = res.headers.location;
        const next = Array.isArray(location) ? location[0] : location;
        if (next === undefined || next === '') throw new MediaDownloadError(`HTTP ${res.statusCode} without a Location`, false);
        url = new URL(next, url).href;
        continue;
      }
      if (res.statusCode !== 200) {
        await res.body.dump();
        // An expired or removed link stays so (4xx); 408, 429 and 5xx may pass.
        const permanent = res.statusCode >= 400 && res.statusCode < 500 && res.statusCode !== 408 && res.statusCode !== 429;
        throw new MediaDownloadError(`the media URL answered HTTP ${res.statusCode}`, permanent);
      }
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > MEDIA_MAX_BYTES) {
        await res.body.dump();
        throw new MediaDownloadError(`the media is ${declared} bytes, more than the ${MEDIA_MAX_BYTES} allowed`, true);
      }
      const type = res.headers['content-type'];
      const stored = await ctx.media.write(key, res.body, MEDIA_MAX_BYTES);
      return { contentType: (Array.isArray(type) ? type[0] : type) ?? null, size: stored.size, sha256: stored.sha256, key };
    }
    throw new MediaDownloadError(`more than ${MAX_REDIRECTS} redirects`, true);
  } catch (err) {
    if (err instanceof MediaDownloadError) throw err;
    if (err instanceof MediaTooLargeError) throw new MediaDownloadError(`the media is more than the ${MEDIA_MAX_BYTES} bytes allowed`, true);
    const refused = urlRefusal(err);
    if (refused !== null) throw new MediaDownloadError(refused, true);
    throw new MediaDownloadError(`download failed: ${(err as Error).message}`, false);
  }
}

/** Points the message's attachment(s) with this media id at the gateway's copy. */
async function pointAttachmentAtCopy(ctx: PipelineContext, media: MediaRow, trx = ctx.store.db): Promise<void> {
  if (media.message_id === null) return;
  const message = await getMessageById(trx, media.message_id);
  if (!message) return;
  const content = parseContent(message.content);
  let changed = false;
  for (const attachment of content.attachments ?? []) {
    if (attachment.media_id === media.id) {
      attachment.url = mediaUrl(ctx.publicUrl, media.id);
      changed = true;
    }
  }
  if (changed) await updateMessageContent(trx, message.id, JSON.stringify(content), ctx.now());
}

export type MediaOutcome = 'stored' | 'already_stored' | 'missing';

/** Downloads one media row and records the outcome. Throws `MediaDownloadError` after recording a failure. */
export async function processMediaDownload(ctx: PipelineContext, mediaId: string, signal?: AbortSignal, lastTry = false): Promise<MediaOutcome> {
  const media = await getMediaById(ctx.store.db, mediaId);
  if (!media) return 'missing';
  if (media.status === 'stored') return 'already_stored';
  let downloaded: Downloaded;
  try {
    downloaded = await downloadMedia(ctx, media, signal);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    await markMediaFailed(ctx.store.db, media.id, message, ctx.now(), lastTry || (err instanceof MediaDownloadError && err.permanent));
    ctx.logger.warn({ account: media.account_id, media: media.id, message: media.message_id, err: message }, 'media download failed');
    throw err;
  }
  await ctx.queue.transaction(async (trx) => {
    await markMediaStored(trx, media.id, { storage_key: downloaded.key, content_type: downloaded.contentType, size: downloaded.size, sha256: downloaded.sha256 }, ctx.now());
    await pointAttachmentAtCopy(ctx, media, trx);
  });
  return 'stored';
}

export function mediaDownloadHandler(ctx: PipelineContext): JobHandler {
  return async (job, jobContext) => {
    const payload = (typeof job.payload === 'string' ? JSON.parse(job.payload) : job.payload) as MediaDownloadPayload;
    try {
      await processMediaDownload(ctx, payload.media_id, jobContext.signal, job.attempts >= job.maxAttempts);
    } catch (err) {
      if (err instanceof MediaDownloadError && err.permanent) throw new PermanentJobError(err.message, { cause: err });
      throw new RetryableJobError((err as Error).message, { cause: err });
    }
  };
}

export interface OpenedMedia {
  media: MediaRow;
  stream: ReadStream;
  size: number;
}

/**
 * The bytes of a stored media item of this account, for `GET /v1/media/{id}`. Throws `NOT_FOUND`
 * for another account's or an unknown id, `CONFLICT` while the download has not succeeded yet.
 */
export async function openMedia(ctx: PipelineContext, accountId: string, mediaId: string): Promise<OpenedMedia> {
  const media = await getMedia(ctx.store.db, accountId, mediaId);
  if (!media) throw new GatewayError('NOT_FOUND', { resource: 'media' });
  if (media.status !== 'stored' || media.storage_key === null) {
    throw new GatewayError('CONFLICT', {
      reason:
        media.status === 'unavailable'
          ? `the media could not be downloaded and will not be tried again (${media.error ?? 'unknown error'}); Meta's link may have expired`
          : media.status === 'failed'
            ? `the media could not be downloaded yet (${media.error ?? 'unknown error'}); it is retried`
            : 'the media is still being downloaded',
      status: media.status,
      attempts: media.attempts,
    });
  }
  try {
    const { stream, size } = await ctx.media.open(media.storage_key);
    return { media, stream, size };
  } catch {
    throw new GatewayError('NOT_FOUND', { resource: 'media' }, 'The media record exists but its bytes are missing from storage.');
  }
}
