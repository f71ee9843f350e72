/**
 * `POST /v1/media`: upload a file to send later by its `media_id`. Either `multipart/form-data`
 * (one file part; the fields `sender_id`, `pre_upload`, `type` before it, or as query parameters),
 * or the bytes as the body with their own content type (`?filename=` names them). Size and type
 * are checked against Meta's attachment limits; `pre_upload=true` uploads the file to the
 * sender's Page at once and keeps Meta's reusable `attachment_id`.
 */
import type { Readable } from 'node:stream';
import multipart from '@fastify/multipart';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { GatewayError } from '../../domain/errors.js';
import type { OutboundMediaType } from '../../domain/glossary.js';
import type { PipelineContext } from '../../pipeline/context.js';
import { UPLOAD_MAX_BYTES, mediaResource, uploadMedia } from '../../pipeline/outbound-media.js';
import type { UploadInput } from '../../pipeline/outbound-media.js';
import { NullableString, Timestamp, commonErrors } from './schemas.js';

const MediaType = Type.Union([Type.Literal('image'), Type.Literal('audio'), Type.Literal('video'), Type.Literal('file')]);

const UploadQuery = Type.Object(
  {
    sender_id: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'The sender the media is for (required with pre_upload).' })),
    pre_upload: Type.Optional(Type.Boolean({ description: "Upload to the sender's Page now and keep Meta's reusable attachment_id." })),
    type: Type.Optional(MediaType),
    filename: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  },
  { additionalProperties: false },
);

const MediaSchema = Type.Object({
  id: Type.String(),
  type: Type.Union([MediaType, Type.Null()]),
  content_type: NullableString,
  filename: NullableString,
  size: Type.Union([Type.Integer(), Type.Null()]),
  sha256: NullableString,
  sender_id: NullableString,
  meta_attachment_id: NullableString,
  url: Type.String({ description: 'Where the gateway serves the bytes (with an API key).' }),
  created_at: Timestamp,
});

/** A form field's text value, when the part is a field. */
function fieldValue(fields: Record<string, unknown>, name: string): string | undefined {
  const entry = fields[name];
  const first = Array.isArray(entry) ? entry[0] : entry;
  if (typeof first !== 'object' || first === null) return undefined;
  const part = first as { type?: string; value?: unknown };
  return part.type === 'field' && typeof part.value === 'string' ? part.value : undefined;
}

function booleanOf(value: string | boolean | undefined, name: string): boolean | undefined {
  if (value === undefined || typeof value === 'boolean') return value;
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  throw new GatewayError('VALIDATION_FAILED', { field: name, reason: `${name} must be true or false` });
}

function mediaTypeOf(value: string | undefined): OutboundMediaType | undefined {
  if (value === undefined) return undefined;
  if (value === 'image' || value === 'audio' || value === 'video' || value === 'file') return value;
  throw new GatewayError('VALIDATION_FAILED', { field: 'type', reason: 'type must be image, audio, video or file' });
}

// A form holds the file and at most these fields (`sender_id`, `pre_upload`, `type` and a few spare).
const MAX_FORM_FIELDS = 10;

/**
 * What a form the multipart reader refused becomes: a 400 naming the problem. Busboy throws plain
 * errors for a form it cannot read (no boundary, a broken part header, a truncated body) and
 * @fastify/multipart coded ones for its limits.
 */
function multipartError(err: unknown): unknown {
  if (err instanceof GatewayError) return err;
  const code = (err as { code?: unknown }).code;
  if (code === 'FST_REQ_FILE_TOO_LARGE') return new GatewayError('MEDIA_TOO_LARGE', { limit: UPLOAD_MAX_BYTES });
  if (code === 'FST_FIELDS_LIMIT') return new GatewayError('VALIDATION_FAILED', { field: 'body', reason: `the form has more than ${MAX_FORM_FIELDS} fields` });
  if (code === 'FST_FILES_LIMIT' || code === 'FST_PARTS_LIMIT') return new GatewayError('VALIDATION_FAILED', { field: 'body', reason: 'the form has more than one file' });
  const message = err instanceof Error ? err.message : String(err);
  return new GatewayError('VALIDATION_FAILED', { field: 'body', reason: `the multipart form cannot be read (${message})` });
}

export function mediaUploadRoutes(ctx: PipelineContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    // One file per request; the size check itself is ours (MediaFiles aborts past the limit), so
    // busboy's limit sits one byte above it only as a backstop.
    await app.register(multipart, { limits: { files: 1, fields: MAX_FORM_FIELDS + 1, fileSize: UPLOAD_MAX_BYTES + 1 } });
    // Any other content type, JSON and plain text included, is the file itself, streamed to storage
    // (never buffered whole); whether its type may be sent is the upload's check.
    app.removeContentTypeParser(['application/json', 'text/plain']);
    app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));

    app.post(
      '/media',
      {
        schema: {
          tags: ['media'],
          summary: 'Upload media to send by media_id',
          description: `multipart/form-data with one file, or the raw bytes with their content type. At most ${UPLOAD_MAX_BYTES} bytes; images (jpeg, png, gif, webp), audio, video and document files.`,
          querystring: UploadQuery,
          response: { 201: MediaSchema, ...commonErrors, 413: Type.Ref('Error'), 415: Type.Ref('Error'), 422: Type.Ref('Error'), 502: Type.Ref('Error') },
        },
      },
      async (req, reply) => {
        const q = req.query;
        let input: UploadInput;
        if (req.isMultipart()) {
          const file = await req.file().catch((err: unknown) => {
            throw multipartError(err);
          });
          if (file === undefined) throw new GatewayError('VALIDATION_FAILED', { field: 'body', reason: 'the form has no file part' });
          const fields = file.fields as Record<string, unknown>;
          // Busboy reads one field past the limit; past it, it stops feeding the file part, which
          // would then never end: a form with too many fields is refused before its file is read.
          const fieldCount = Object.values(fields).flat().filter((p) => (p as { type?: string }).type === 'field').length;
          if (fieldCount > MAX_FORM_FIELDS) {
            file.file.resume();
            throw new GatewayError('VALIDATION_FAILED', { field: 'body', reason: `the form has more than ${MAX_FORM_FIELDS} fields` });
          }
          input = {
            accountId: req.account.id,
            source: file.file,
            contentType: file.mimetype,
            filename: q.filename ?? (file.filename || null),
          };
          const senderId = q.sender_id ?? fieldValue(fields, 'sender_id');
          const preUpload = booleanOf(q.pre_upload ?? fieldValue(fields, 'pre_upload'), 'pre_upload');
          const type = q.type ?? mediaTypeOf(fieldValue(fields, 'type'));
          if (senderId !== undefined) input.senderId = senderId;
          if (preUpload !== undefined) input.preUpload = preUpload;
          if (type !== undefined) input.type = type;
        } else {
          const contentType = req.headers['content-type'];
          if (contentType === undefined || req.body === undefined || req.body === null) {
            throw new GatewayError('VALIDATION_FAILED', { field: 'body', reason: 'send the file as multipart/form-data or as the body with its content type' });
          }
          input = { accountId: req.account.id, source: req.body as Readable, contentType, filename: q.filename ?? null };
          if (q.sender_id !== undefined) input.senderId = q.sender_id;
          if (q.pre_upload !== undefined) input.preUpload = q.pre_upload;
          if (q.type !== undefined) input.type = q.type;
        }
        try {
          const uploaded = await uploadMedia(ctx, input);
          return reply.status(201).send(mediaResource(ctx, uploaded.row, uploaded.type));
        } catch (err) {
          if ((err as { code?: unknown }).code === 'FST_REQ_FILE_TOO_LARGE') throw new GatewayError('MEDIA_TOO_LARGE', { limit: UPLOAD_MAX_BYTES });
          throw err;
        }
      },
    );
  };
}
