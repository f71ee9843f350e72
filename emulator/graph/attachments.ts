import type { EmulatorContext } from '../context.js';
import { graphErrors } from '../errors.js';
import type { Page, StoredAttachment } from '../state.js';
import { authenticate, pageFromPath } from './auth.js';
import { MEDIA_TYPES } from './content.js';
import { decodeParam, json, MAX_ATTACHMENT_BYTES, type GraphAnswer, type GraphCall } from './route.js';

/**
 * Attachments: the emulator fetches URL attachments itself (as Meta does), keeps a copy it serves
 * under `/_emulator/media/...`, and hands out reusable `attachment_id`s per Page.
 */

export interface FetchedMedia {
  /** Where the person (and the echo) sees the file: the emulator's copy. */
  url: string;
}

/** Downloads an attachment URL like Meta's fetcher; failures answer 100/2018047. */
export async function fetchAttachment(ctx: EmulatorContext, url: string): Promise<FetchedMedia> {
  let response: Response;
  try {
    response = await fetch(url, { redirect: 'follow', signal: AbortSignal.timeout(ctx.options.attachmentFetchTimeoutMs) });
  } catch {
    throw graphErrors.uploadFailure();
  }
  if (!response.ok || !response.body) {
    await response.body?.cancel();
    throw graphErrors.uploadFailure();
  }
  const declared = Number(response.headers.get('content-length') ?? '0');
  if (declared > MAX_ATTACHMENT_BYTES) {
    await response.body.cancel();
    throw graphErrors.attachmentTooLarge();
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of response.body) {
      size += chunk.byteLength;
      if (size > MAX_ATTACHMENT_BYTES) throw graphErrors.attachmentTooLarge();
      chunks.push(Buffer.from(chunk));
    }
  } catch (error) {
    if (error instanceof Error && error.name === 'GraphError') throw error;
    throw graphErrors.uploadFailure();
  }
  const contentType = response.headers.get('content-type')?.split(';')[0]?.trim() || 'application/octet-stream';
  const filename = decodeURIComponent(new URL(url).pathname.split('/').pop() || 'attachment');
  const item = ctx.media.store(filename, contentType, Buffer.concat(chunks));
  return { url: ctx.media.url(item, ctx.clock.now()) };
}

export function storeAttachment(ctx: EmulatorContext, page: Page, type: string, url: string): StoredAttachment {
  const stored: StoredAttachment = { id: ctx.ids.attachmentId(), pageId: page.id, type, url };
  ctx.state.attachments.set(stored.id, stored);
  return stored;
}

/** `POST /{page-id}/message_attachments` with a URL or a multipart `filedata`. */
export async function handleAttachmentUpload(call: GraphCall): Promise<GraphAnswer> {
  const { ctx } = call;
  const caller = authenticate(call);
  const page = pageFromPath(call, caller, 'POST');
  const message = decodeParam(call.params.message, 'message');
  if (message === undefined) throw graphErrors.requiredParam('message');
  const attachment = typeof message === 'object' && message !== null ? (message as { attachment?: unknown }).attachment : undefined;
  if (typeof attachment !== 'object' || attachment === null) throw graphErrors.requiredParam('message[attachment]');
  const { type, payload } = attachment as { type?: unknown; payload?: unknown };
  if (typeof type !== 'string' || !(MEDIA_TYPES as readonly string[]).includes(type)) {
    throw graphErrors.invalidParam(`param message[attachment][type] must be one of {${MEDIA_TYPES.join(', ')}}`);
  }
  const upload = call.files.find((file) => file.field === 'filedata');
  const url = typeof payload === 'object' && payload !== null ? (payload as { url?: unknown }).url : undefined;
  let fetched: FetchedMedia;
  if (upload) {
    if (upload.bytes.length === 0) throw graphErrors.uploadFailure();
    fetched = { url: ctx.media.url(ctx.media.store(upload.filename, upload.contentType, upload.bytes), ctx.clock.now()) };
  } else if (typeof url === 'string' && /^https?:\/\//i.test(url)) {
    fetched = await fetchAttachment(ctx, url);
  } else {
    throw graphErrors.invalidParam('param message[attachment][payload][url] or a filedata upload is required');
  }
  const stored = storeAttachment(ctx, page, type, fetched.url);
  return json({ attachment_id: stored.id });
}
