/**
 * Media a business sends: files uploaded to the gateway (`POST /v1/media`), checked against Meta's
 * attachment limits, stored under the data directory and, on request, uploaded to Meta at once
 * (`pre_upload`) for a reusable `attachment_id`. A message that names a `media_id` is sent with
 * that attachment id when it belongs to the sender's Page; otherwise the send job uploads the
 * bytes to the Page first (Meta cannot fetch `/v1/media/…`: it needs an API key).
 */
import { GatewayError } from '../domain/errors.js';
import type { OutboundMediaType } from '../domain/glossary.js';
import { newId } from '../domain/ids.js';
import type { ResolvedMedia } from '../domain/content.js';
import { metaFailureToGatewayError } from '../meta/errors.js';
import { MetaApiError, MetaTransportError } from '../meta/graph.js';
import { getMediaById, insertMedia } from '../store/media.js';
import { MediaFiles, MediaTooLargeError } from '../store/media-files.js';
import { getSender } from '../store/senders.js';
import type { MediaRow, SenderRow } from '../store/schema.js';
import type { PipelineContext } from './context.js';
import { mediaUrl } from './media.js';

/** Meta takes attachments up to 25 MB (PLATFORM.md, Send API). */
export const UPLOAD_MAX_BYTES = 25 * 1024 * 1024;

/**
 * The content types Meta's Send API accepts per attachment type (Messenger Platform docs,
 * "Sending attachments": images jpg/png/gif, common audio and video containers; files of any
 * document type). Anything else is refused before it is stored.
 */
const IMAGE_TYPES = new Set(['image/jpeg', 'image/png', 'image/gif', 'image/webp']);
const AUDIO_TYPES = new Set(['audio/mpeg', 'audio/mp3', 'audio/mp4', 'audio/aac', 'audio/x-m4a', 'audio/wav', 'audio/x-wav', 'audio/ogg', 'audio/opus']);
const VIDEO_TYPES = new Set(['video/mp4', 'video/quicktime', 'video/3gpp', 'video/webm', 'video/x-msvideo']);
/** Files: documents and archives; executables and markup a browser would run are not attachments. */
const REFUSED_FILE_TYPES = new Set(['text/html', 'application/xhtml+xml', 'image/svg+xml', 'application/x-msdownload', 'application/x-sh', 'application/javascript', 'text/javascript']);

/** The bare media type, lower case, without parameters (`Image/PNG; x=y` -> `image/png`). */
export function bareContentType(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

/** The attachment type Meta will send this content type as, or null when it cannot be sent. */
export function attachmentTypeFor(contentType: string): OutboundMediaType | null {
  const type = bareContentType(contentType);
  if (IMAGE_TYPES.has(type)) return 'image';
  if (AUDIO_TYPES.has(type)) return 'audio';
  if (VIDEO_TYPES.has(type)) return 'video';
  if (REFUSED_FILE_TYPES.has(type)) return null;
  if (type.startsWith('application/') || type.startsWith('text/') || type.startsWith('image/')) return 'file';
  return null;
}

export interface UploadInput {
  accountId: string;
  /** The bytes, streamed; more than the limit aborts with MEDIA_TOO_LARGE. */
  source: AsyncIterable<Uint8Array> | Buffer;
  contentType: string;
  filename: string | null;
  /** Send as this attachment type (e.g. an image as a `file`); derived from the content type when absent. */
  type?: OutboundMediaType;
  /** The sender whose Page the media is for (needed for `preUpload`). */
  senderId?: string;
  /** Upload to Meta now and keep the reusable attachment id. */
  preUpload?: boolean;
}

export interface UploadedMedia {
  row: MediaRow;
  type: OutboundMediaType;
}

function metaError(err: unknown): GatewayError {
  if (err instanceof MetaApiError || err instanceof MetaTransportError) return metaFailureToGatewayError(err);
  return err instanceof GatewayError ? err : new GatewayError('INTERNAL', { reason: (err as Error).message });
}

/** Checks, stores and (optionally) pre-uploads one file. */
export async function uploadMedia(ctx: PipelineContext, input: UploadInput): Promise<UploadedMedia> {
  const contentType = bareContentType(input.contentType);
  const derived = attachmentTypeFor(contentType);
  if (derived === null) throw new GatewayError('MEDIA_TYPE_UNSUPPORTED', { content_type: contentType || '(none)', field: 'content-type' });
  const type = input.type ?? derived;
  if (type !== 'file' && type !== derived) {
    throw new GatewayError('VALIDATION_FAILED', { field: 'type', reason: `${contentType} cannot be sent as ${type}; send it as ${derived} or file` });
  }
  let sender: SenderRow | undefined;
  if (input.senderId !== undefined) {
    sender = await getSender(ctx.store.db, input.accountId, input.senderId);
    if (!sender || sender.health === 'disconnected') throw new GatewayError('NOT_FOUND', { resource: 'sender', field: 'sender_id' });
  }
  if (input.preUpload === true && sender === undefined) {
    throw new GatewayError('VALIDATION_FAILED', { field: 'sender_id', reason: 'pre_upload needs the sender_id of the Page to upload to' });
  }

  const now = ctx.now();
  const id = newId('med', now);
  const key = MediaFiles.keyFor(input.accountId, id);
  let stored;
  try {
    stored = await ctx.media.write(key, input.source, UPLOAD_MAX_BYTES);
  } catch (err) {
    if (err instanceof MediaTooLargeError) throw new GatewayError('MEDIA_TOO_LARGE', { limit: UPLOAD_MAX_BYTES });
    throw err;
  }
  if (stored.size === 0) {
    await ctx.media.remove(key);
    throw new GatewayError('VALIDATION_FAILED', { field: 'body', reason: 'the file is empty' });
  }

  let attachmentId: string | null = null;
  if (input.preUpload === true && sender !== undefined) {
    try {
      const data = await readStored(ctx, key);
      const filename = input.filename ?? `${id}`;
      ({ attachment_id: attachmentId } = await ctx.graph.uploadAttachment(sender.page_id, ctx.secrets.open(sender.token_enc), { type, data, filename, contentType }));
    } catch (err) {
      await ctx.media.remove(key);
      throw metaError(err);
    }
  }

  const row: MediaRow = {
    id,
    account_id: input.accountId,
    sender_id: sender?.id ?? null,
    message_id: null,
    origin: 'upload',
    source_url: null,
    content_type: contentType,
    filename: input.filename,
    size: stored.size,
    sha256: stored.sha256,
    storage_key: key,
    status: 'stored',
    error: null,
    attempts: 0,
    meta_attachment_id: attachmentId,
    created_at: now,
    updated_at: now,
  };
  await insertMedia(ctx.store.db, row);
  return { row, type };
}

async function readStored(ctx: PipelineContext, key: string): Promise<Buffer> {
  const { stream } = await ctx.media.open(key);
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * Where an uploaded `media_id` is for the sender's Page: its reusable attachment id when it was
 * uploaded to that Page, else the bytes are uploaded now (and the id kept when the media is the
 * Page's). Meta's errors are thrown as they come, for the send job to classify.
 */
export async function resolveMediaForSender(ctx: PipelineContext, mediaId: string, type: OutboundMediaType, sender: SenderRow, token: string): Promise<ResolvedMedia> {
  const media = await getMediaById(ctx.store.db, mediaId);
  if (!media || media.account_id !== sender.account_id) {
    throw new GatewayError('CONTENT_INVALID', { field: 'attachments.media_id', reason: `media ${mediaId} no longer exists` });
  }
  if (media.meta_attachment_id !== null && media.sender_id === sender.id) return { attachment_id: media.meta_attachment_id };
  if (media.status !== 'stored' || media.storage_key === null) {
    throw new GatewayError('CONTENT_INVALID', { field: 'attachments.media_id', reason: `media ${mediaId} is ${media.status}, not stored` });
  }
  const data = await readStored(ctx, media.storage_key);
  const { attachment_id } = await ctx.graph.uploadAttachment(sender.page_id, token, {
    type,
    data,
    filename: media.filename ?? media.id,
    contentType: media.content_type ?? 'application/octet-stream',
  });
  if (media.sender_id === null || media.sender_id === sender.id) {
    await ctx.store.db
      .updateTable('media')
      .set({ meta_attachment_id: attachment_id, sender_id: sender.id, updated_at: ctx.now() })
      .where('id', '=', media.id)
      .execute();
  }
  return { attachment_id };
}

/** The media as the API shows it. */
export function mediaResource(ctx: PipelineContext, row: MediaRow, type?: OutboundMediaType) {
  const resolvedType = type ?? (row.content_type === null ? null : attachmentTypeFor(row.content_type));
  return {
    id: row.id,
    type: resolvedType,
    content_type: row.content_type,
    filename: row.filename,
    size: row.size,
    sha256: row.sha256,
    sender_id: row.sender_id,
    meta_attachment_id: row.meta_attachment_id,
    url: mediaUrl(ctx.publicUrl, row.id),
    created_at: new Date(row.created_at).toISOString(),
  };
}
