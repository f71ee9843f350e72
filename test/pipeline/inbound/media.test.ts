import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { afterEach, expect, it } from 'vitest';
import { GatewayError } from '../../../src/domain/errors.js';
import { PermanentJobError, RetryableJobError } from '../../../src/jobs/job.js';
import type { Job } from '../../../src/jobs/job.js';
import { UrlGuard } from '../../../src/net/url-guard.js';
import { MEDIA_MAX_BYTES, mediaDownloadHandler, openMedia, processMediaDownload } from '../../../src/pipeline/media.js';
import { describeEachEngine } from '../../support/db.js';
import { openHarness, pageEnvelope, startLocalServer } from './support.js';
import type { Harness, LocalServer } from './support.js';

const PAGE = '1691462197845448';
const PSID = '1134343043305865';
const T0 = 1_768_478_400_000;
const IMAGE = Buffer.from('\xff\xd8\xff\xe0 not really a jpeg but bytes all the same', 'latin1');

describeEachEngine('inbound media', (engine) => {
  let h: Harness | undefined;
  let cdn: LocalServer | undefined;
  let failuresLeft = 0;
  afterEach(async () => {
    await h?.close();
    await cdn?.close();
    h = undefined;
    cdn = undefined;
  });

  async function startCdn(): Promise<LocalServer> {
    return startLocalServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (path === '/flaky.jpg' && failuresLeft > 0) {
        failuresLeft -= 1;
        res.writeHead(503).end('try later');
        return;
      }
      if (path === '/image.jpg' || path === '/flaky.jpg') {
        res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': String(IMAGE.length) }).end(IMAGE);
        return;
      }
      if (path === '/redirect') {
        res.writeHead(302, { location: '/image.jpg' }).end();
        return;
      }
      if (path === '/huge.mp4') {
        res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': String(MEDIA_MAX_BYTES + 1) });
        res.write(Buffer.alloc(1024));
        return;
      }
      res.writeHead(404).end('gone');
    });
  }

  async function messageWith(url: string, type = 'image'): Promise<{ messageId: string; mediaId: string }> {
    const item = { sender: { id: PSID }, recipient: { id: PAGE }, timestamp: T0, message: { mid: `m_${url}`, attachments: [{ type, payload: { url } }] } };
    await h!.ingest(pageEnvelope(PAGE, [item]));
    const message = await h!.store.db.selectFrom('messages').selectAll().where('mid', '=', `m_${url}`).executeTakeFirstOrThrow();
    const content = JSON.parse(message.content) as { attachments: { media_id: string }[] };
    return { messageId: message.id, mediaId: content.attachments[0]!.media_id };
  }

  function jobFor(mediaId: string, attempts = 1): Job {
    return { id: 1, kind: 'media.download', key: null, payload: { media_id: mediaId }, attempts, maxAttempts: 5, runAt: 0, createdAt: 0, lastError: null };
  }
  const jobContext = { signal: new AbortController().signal, workerId: 'test' };

  it('copy the bytes into the data directory, record them and point the attachment at the gateway', async () => {
    cdn = await startCdn();
    h = await openHarness(engine, { metaId: PAGE });
    const { messageId, mediaId } = await messageWith(`${cdn.url}/redirect`);
    expect(await processMediaDownload(h.ctx, mediaId)).toBe('stored');

    const media = await h.store.db.selectFrom('media').selectAll().where('id', '=', mediaId).executeTakeFirstOrThrow();
    expect(media).toMatchObject({
      status: 'stored',
      content_type: 'image/jpeg',
      size: IMAGE.length,
      sha256: createHash('sha256').update(IMAGE).digest('hex'),
      storage_key: `media/${h.account.id}/${mediaId}`,
      attempts: 1,
      error: null,
    });
    expect(readFileSync(join(h.dataDir, 'media', h.account.id, mediaId))).toEqual(IMAGE);
    const message = await h.store.db.selectFrom('messages').selectAll().where('id', '=', messageId).executeTakeFirstOrThrow();
    const content = JSON.parse(message.content) as { attachments: { url: string; media_id: string; payload: { url: string } }[] };
    expect(content.attachments[0]).toMatchObject({ url: `https://gateway.test/v1/media/${mediaId}`, media_id: mediaId, payload: { url: `${cdn.url}/redirect` } });

    const opened = await openMedia(h.ctx, h.account.id, mediaId);
    expect(opened.size).toBe(IMAGE.length);
    expect(await buffer(opened.stream)).toEqual(IMAGE);
    expect(await processMediaDownload(h.ctx, mediaId)).toBe('already_stored');
  });

  it('keep the message, record a failed download and succeed on a later try', async () => {
    cdn = await startCdn();
    h = await openHarness(engine, { metaId: PAGE });
    failuresLeft = 1;
    const { messageId, mediaId } = await messageWith(`${cdn.url}/flaky.jpg`);
    const handler = mediaDownloadHandler(h.ctx);
    await expect(handler(jobFor(mediaId, 1), jobContext)).rejects.toBeInstanceOf(RetryableJobError);
    const failed = await h.store.db.selectFrom('media').selectAll().where('id', '=', mediaId).executeTakeFirstOrThrow();
    expect(failed).toMatchObject({ status: 'failed', attempts: 1, error: expect.stringContaining('503') });
    expect(await h.store.db.selectFrom('messages').select('id').where('id', '=', messageId).executeTakeFirst()).toBeDefined();
    await expect(openMedia(h.ctx, h.account.id, mediaId)).rejects.toMatchObject({ code: 'CONFLICT', details: { status: 'failed', reason: expect.stringContaining('it is retried') } });

    await handler(jobFor(mediaId, 2), jobContext);
    const stored = await h.store.db.selectFrom('media').selectAll().where('id', '=', mediaId).executeTakeFirstOrThrow();
    expect(stored).toMatchObject({ status: 'stored', attempts: 2, error: null });
  });

  it('mark the media unavailable when its last try fails', async () => {
    cdn = await startCdn();
    h = await openHarness(engine, { metaId: PAGE });
    failuresLeft = 10;
    const { mediaId } = await messageWith(`${cdn.url}/flaky.jpg`);
    const handler = mediaDownloadHandler(h.ctx);
    await expect(handler(jobFor(mediaId, 4), jobContext)).rejects.toBeInstanceOf(RetryableJobError);
    expect((await h.store.db.selectFrom('media').select('status').where('id', '=', mediaId).executeTakeFirstOrThrow()).status).toBe('failed');
    await expect(handler(jobFor(mediaId, 5), jobContext)).rejects.toBeInstanceOf(RetryableJobError);
    expect((await h.store.db.selectFrom('media').select('status').where('id', '=', mediaId).executeTakeFirstOrThrow()).status).toBe('unavailable');
  });

  it('give up at once on a link that is gone, too large or not allowed', async () => {
    cdn = await startCdn();
    h = await openHarness(engine, { metaId: PAGE });
    const handler = mediaDownloadHandler(h.ctx);
    const gone = await messageWith(`${cdn.url}/expired.jpg`);
    await expect(handler(jobFor(gone.mediaId), jobContext)).rejects.toBeInstanceOf(PermanentJobError);
    const huge = await messageWith(`${cdn.url}/huge.mp4`, 'video');
    await expect(handler(jobFor(huge.mediaId), jobContext)).rejects.toBeInstanceOf(PermanentJobError);
    const hugeRow = await h.store.db.selectFrom('media').selectAll().where('id', '=', huge.mediaId).executeTakeFirstOrThrow();
    expect(hugeRow).toMatchObject({ status: 'unavailable', error: expect.stringContaining('bytes') });
    // Asked for, it says it will not be tried again (not that it is retried).
    await expect(openMedia(h.ctx, h.account.id, gone.mediaId)).rejects.toMatchObject({ code: 'CONFLICT', details: { status: 'unavailable', reason: expect.stringContaining('will not be tried again') } });

    // With private addresses refused, a loopback link is never fetched.
    const strict = { ...h.ctx, urlGuard: new UrlGuard({ allowPrivate: false }) };
    const local = await messageWith(`${cdn.url}/image.jpg`);
    const before = cdn.requests.length;
    await expect(mediaDownloadHandler(strict)(jobFor(local.mediaId), jobContext)).rejects.toBeInstanceOf(PermanentJobError);
    expect(cdn.requests.length).toBe(before);
    const refused = await h.store.db.selectFrom('media').selectAll().where('id', '=', local.mediaId).executeTakeFirstOrThrow();
    expect(refused).toMatchObject({ status: 'unavailable', error: expect.stringContaining('loopback') });
  });

  it('serve media only to the account that owns it', async () => {
    cdn = await startCdn();
    h = await openHarness(engine, { metaId: PAGE });
    const { mediaId } = await messageWith(`${cdn.url}/image.jpg`);
    await processMediaDownload(h.ctx, mediaId);
    const err = await openMedia(h.ctx, 'acc_someone_else', mediaId).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).code).toBe('NOT_FOUND');
  });
});
