/** `GET /v1/media/{id}`: the bytes of media the gateway stored (inbound downloads and uploads), for the owning account only. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { PipelineContext } from '../../pipeline/context.js';
import { openMedia } from '../../pipeline/media.js';
import { IdParams, commonErrors } from './schemas.js';

/** Quotes a file name for Content-Disposition (ASCII fallback plus RFC 5987 for the rest). */
function disposition(filename: string): string {
  const ascii = filename.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `inline; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(filename)}`;
}

export function mediaRoutes(ctx: PipelineContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/media/:id',
      {
        schema: {
          tags: ['media'],
          summary: 'Download stored media',
          description: 'The bytes of an inbound attachment the gateway downloaded from Meta, or of an uploaded file. 409 while a download has not succeeded yet.',
          params: IdParams,
          response: { 200: Type.Unknown({ description: 'The media bytes, with their content type.' }), ...commonErrors, 409: Type.Ref('Error') },
        },
      },
      async (req, reply) => {
        const opened = await openMedia(ctx, req.account.id, req.params.id);
        const { media } = opened;
        reply.header('content-type', media.content_type ?? 'application/octet-stream');
        reply.header('content-length', String(opened.size));
        // Private: the bytes belong to one account and the request was authenticated.
        reply.header('cache-control', 'private, max-age=3600');
        if (media.sha256 !== null) reply.header('etag', `"${media.sha256}"`);
        if (media.filename !== null) reply.header('content-disposition', disposition(media.filename));
        return reply.send(opened.stream);
      },
    );
  };
}
