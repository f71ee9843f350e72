import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createAccount } from '../../src/store/accounts.js';
import { getMedia, getMediaById, insertInboundMedia, listMessageMedia, markMediaFailed, markMediaStored } from '../../src/store/media.js';
import { MediaFiles, MediaTooLargeError } from '../../src/store/media-files.js';
import { describeEachEngine, openTestStore } from '../support/db.js';
import type { TestStore } from '../support/db.js';

const NOW = 1_768_478_400_000;

describe('media files', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('write a stream with its size and SHA-256 and read it back', async () => {
    dir = mkdtempSync(join(tmpdir(), 'media-files-'));
    const files = new MediaFiles(dir);
    const key = MediaFiles.keyFor('acc_1', 'med_1');
    const stored = await files.write(key, Readable.from([Buffer.from('hello '), Buffer.from('world')]), 1000);
    expect(stored).toEqual({ key, size: 11, sha256: 'b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9' });
    const opened = await files.open(key);
    expect(opened.size).toBe(11);
    expect((await buffer(opened.stream)).toString()).toBe('hello world');
    expect(await files.exists(key)).toBe(true);
    await files.remove(key);
    expect(await files.exists(key)).toBe(false);
  });

  it('stop at the size cap and leave no partial file behind', async () => {
    dir = mkdtempSync(join(tmpdir(), 'media-files-'));
    const files = new MediaFiles(dir);
    const key = MediaFiles.keyFor('acc_1', 'med_big');
    await expect(files.write(key, Readable.from([Buffer.alloc(600), Buffer.alloc(600)]), 1000)).rejects.toBeInstanceOf(MediaTooLargeError);
    expect(readdirSync(join(dir, 'media', 'acc_1'))).toEqual([]);
  });

  it('refuse keys that would leave the media directory', async () => {
    dir = mkdtempSync(join(tmpdir(), 'media-files-'));
    const files = new MediaFiles(dir);
    for (const key of ['../etc/passwd', 'media/../../x', '/abs', 'media//x', '']) expect(() => files.path(key)).toThrow('invalid media key');
  });
});

describeEachEngine('media repository', (engine) => {
  let store: TestStore | undefined;
  afterEach(async () => {
    await store?.dispose();
    store = undefined;
  });

  it('record failed attempts and then the stored bytes', async () => {
    store = await openTestStore(engine);
    const account = await createAccount(store.db, { name: 'A' }, NOW);
    const row = await insertInboundMedia(store.db, { account_id: account.id, sender_id: 'snd_1', message_id: 'msg_1', source_url: 'https://cdn.test/a.jpg' }, NOW);
    expect(row).toMatchObject({ status: 'pending', attempts: 0, origin: 'inbound' });
    await markMediaFailed(store.db, row.id, 'HTTP 503', NOW + 1);
    expect(await getMediaById(store.db, row.id)).toMatchObject({ status: 'failed', error: 'HTTP 503', attempts: 1 });
    await markMediaStored(store.db, row.id, { storage_key: 'media/x/y', content_type: 'image/jpeg', size: 3, sha256: 'abc' }, NOW + 2);
    expect(await getMedia(store.db, account.id, row.id)).toMatchObject({ status: 'stored', error: null, attempts: 2, size: 3, content_type: 'image/jpeg' });
    expect(await getMedia(store.db, 'acc_other', row.id)).toBeUndefined();
    expect((await listMessageMedia(store.db, 'msg_1')).map((m) => m.id)).toEqual([row.id]);
  });
});
