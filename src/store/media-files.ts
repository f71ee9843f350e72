/**
 * The bytes of media the gateway keeps, as files under the data directory. Keys are relative paths
 * (`media/<account>/<media id>`); a file is written under a temporary name and renamed into place,
 * so a reader never sees half a file and a crashed download leaves no partial media behind.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import type { ReadStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export class MediaTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`the media is larger than ${limit} bytes`);
    this.name = 'MediaTooLargeError';
  }
}

export interface StoredFile {
  key: string;
  size: number;
  /** Hex SHA-256 of the bytes. */
  sha256: string;
}

// Keys are built from our own ids, but a key must never climb out of the media root all the same.
const KEY_PATTERN = /^[A-Za-z0-9_-]+(\/[A-Za-z0-9_.-]+)*$/;

export class MediaFiles {
  readonly root: string;

  constructor(dataDir: string) {
    this.root = resolve(dataDir);
  }

  /** Where a media row's bytes go. */
  static keyFor(accountId: string, mediaId: string): string {
    return `media/${accountId}/${mediaId}`;
  }

  path(key: string): string {
    if (!KEY_PATTERN.test(key) || key.split('/').includes('..')) throw new Error(`invalid media key: ${key}`);
    const full = join(this.root, ...key.split('/'));
    if (!full.startsWith(this.root + sep)) throw new Error(`invalid media key: ${key}`);
    return full;
  }

  /**
   * Streams `source` into the file for `key`, hashing as it goes; more than `maxBytes` aborts with
   * `MediaTooLargeError` and leaves nothing behind.
   */
  async write(key: string, source: AsyncIterable<Uint8Array> | Buffer, maxBytes: number): Promise<StoredFile> {
    const target = this.path(key);
    await mkdir(dirname(target), { recursive: true });
    const temp = `${target}.${randomBytes(6).toString('hex')}.part`;
    const hash = createHash('sha256');
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        size += chunk.length;
        if (size > maxBytes) {
          done(new MediaTooLargeError(maxBytes));
          return;
        }
        hash.update(chunk);
        done(null, chunk);
      },
    });
    const input = Buffer.isBuffer(source) ? [source] : source;
    try {
      await pipeline(input, meter, createWriteStream(temp));
      await rename(temp, target);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
    return { key, size, sha256: hash.digest('hex') };
  }

  /** A stream of the stored bytes; rejects with ENOENT when the file is missing. */
  async open(key: string): Promise<{ stream: ReadStream; size: number }> {
    const path = this.path(key);
    const info = await stat(path);
    return { stream: createReadStream(path), size: info.size };
  }

  async exists(key: string): Promise<boolean> {
    try {
      await stat(this.path(key));
      return true;
    } catch {
      return false;
    }
  }

  async remove(key: string): Promise<void> {
    await rm(this.path(key), { force: true });
  }
}
