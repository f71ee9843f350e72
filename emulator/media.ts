import { crc32, deflateSync } from 'node:zlib';
import type { IdFactory } from './ids.js';
import type { EmulatorState, MediaItem } from './state.js';

/**
 * Media the emulator serves itself under `/_emulator/media/...`: the files people "send" in
 * inbound messages, uploads the app made, and profile pictures. Every file has real bytes in a
 * real format, so a gateway can download and inspect them like Meta's CDN files.
 */

export type MediaKind = 'image' | 'audio' | 'video' | 'file' | 'sticker';

// Meta's CDN links carry an expiry (`oe`); a few days is what apps observe.
export const MEDIA_LINK_LIFETIME_MS = 3 * 24 * 60 * 60 * 1000;

export class MediaLibrary {
  constructor(
    private readonly state: EmulatorState,
    private readonly ids: IdFactory,
    private readonly baseUrl: () => string,
  ) {}

  store(filename: string, contentType: string, bytes: Buffer): MediaItem {
    const item: MediaItem = { id: this.ids.opaque(9), filename: safeFilename(filename), contentType, bytes };
    this.state.media.set(item.id, item);
    return item;
  }

  /** A freshly generated sample of the given kind. */
  sample(kind: MediaKind, seed: string = this.ids.opaque(4)): MediaItem {
    switch (kind) {
      case 'image':
        return this.store('image.png', 'image/png', png(64, 48, colourFrom(seed)));
      case 'sticker':
        return this.store('sticker.png', 'image/png', png(32, 32, [255, 200, 40]));
      case 'audio':
        return this.store('audio.wav', 'audio/wav', wav());
      case 'video':
        return this.store('video.mp4', 'video/mp4', mp4());
      case 'file':
        return this.store('document.pdf', 'application/pdf', pdf(`Sample document ${seed}`));
    }
  }

  /** The URL a webhook carries for a stored item: absolute, with a CDN-like expiry. */
  url(item: MediaItem, now: number): string {
    const expires = Math.floor((now + MEDIA_LINK_LIFETIME_MS) / 1000).toString(16);
    return `${this.baseUrl()}/_emulator/media/${item.id}/${encodeURIComponent(item.filename)}?oe=${expires}`;
  }

  /** The profile picture of a person, generated once per person. */
  avatar(personId: string): MediaItem {
    const id = `avatar-${personId}`;
    let item = this.state.media.get(id);
    if (!item) {
      item = { id, filename: 'profile.png', contentType: 'image/png', bytes: png(48, 48, colourFrom(personId)) };
      this.state.media.set(id, item);
    }
    return item;
  }
}

function safeFilename(name: string): string {
  const cleaned = name.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 100);
  return cleaned.length > 0 ? cleaned : 'file';
}

function colourFrom(seed: string): [number, number, number] {
  let hash = 0;
  for (const char of seed) hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  return [hash & 0xff, (hash >> 8) & 0xff, (hash >> 16) & 0xff];
}

/** A valid PNG: a solid colour with a lighter diagonal so it is visibly an image. */
export function png(width: number, height: number, [r, g, b]: [number, number, number]): Buffer {
  const rowLength = 1 + width * 3;
  const raw = Buffer.alloc(rowLength * height);
  for (let y = 0; y < height; y++) {
    raw[y * rowLength] = 0; // filter type "none"
    for (let x = 0; x < width; x++) {
      const offset = y * rowLength + 1 + x * 3;
      const stripe = Math.abs(x - y) < 3;
      raw[offset] = stripe ? 255 : r;
      raw[offset + 1] = stripe ? 255 : g;
      raw[offset + 2] = stripe ? 255 : b;
    }
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // colour type: truecolour
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', header),
    pngChunk('IDAT', deflateSync(raw)),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const typeAndData = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typeAndData) >>> 0);
  return Buffer.concat([length, typeAndData, crc]);
}

/** A quarter second of a 440 Hz tone, 8 kHz 8-bit mono PCM. */
function wav(): Buffer {
  const sampleRate = 8000;
  const samples = sampleRate / 4;
  const data = Buffer.alloc(samples);
  for (let i = 0; i < samples; i++) data[i] = 128 + Math.round(60 * Math.sin((2 * Math.PI * 440 * i) / sampleRate));
  const header = Buffer.alloc(44);
  header.write('RIFF', 0, 'ascii');
  header.writeUInt32LE(36 + data.length, 4);
  header.write('WAVE', 8, 'ascii');
  header.write('fmt ', 12, 'ascii');
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(sampleRate, 24);
  header.writeUInt32LE(sampleRate, 28);
  header.writeUInt16LE(1, 32);
  header.writeUInt16LE(8, 34);
  header.write('data', 36, 'ascii');
  header.writeUInt32LE(data.length, 40);
  return Buffer.concat([header, data]);
}

/** An ISO base media file: `ftyp` and an empty `mdat`, enough for type sniffing. */
function mp4(): Buffer {
  const ftyp = Buffer.alloc(24);
  ftyp.writeUInt32BE(24, 0);
  ftyp.write('ftypisom', 4, 'ascii');
  ftyp.writeUInt32BE(0x200, 12);
  ftyp.write('isomiso2', 16, 'ascii');
  const mdat = Buffer.alloc(8);
  mdat.writeUInt32BE(8, 0);
  mdat.write('mdat', 4, 'ascii');
  return Buffer.concat([ftyp, mdat]);
}

/** A one-page PDF showing a line of text. */
function pdf(text: string): Buffer {
  const escaped = text.replace(/[()\\]/g, (c) => `\\${c}`);
  const stream = `BT /F1 18 Tf 40 100 Td (${escaped}) Tj ET`;
  const objects = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 400 200] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>',
    `<< /Length ${stream.length} >>\nstream\n${stream}\nendstream`,
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
  ];
  let body = '%PDF-1.4\n';
  const offsets: number[] = [];
  objects.forEach((object, index) => {
    offsets.push(body.length);
    body += `${index + 1} 0 obj\n${object}\nendobj\n`;
  });
  const xref = body.length;
  body += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  for (const offset of offsets) body += `${String(offset).padStart(10, '0')} 00000 n \n`;
  body += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(body, 'latin1');
}
