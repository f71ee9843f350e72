import { readFile } from 'node:fs/promises';

/**
 * The chat page is plain HTML next to the sources. Compiled code runs from `dist/emulator/`,
 * where the build copies nothing, so the file is looked up beside the module first and then in
 * the source tree.
 */
const CANDIDATES = [new URL('./public/index.html', import.meta.url), new URL('../../emulator/public/index.html', import.meta.url)];

let cached: string | null = null;

export async function chatPageHtml(): Promise<string> {
  if (cached !== null) return cached;
  for (const candidate of CANDIDATES) {
    try {
      cached = await readFile(candidate, 'utf8');
      return cached;
    } catch {
      // Try the next location.
    }
  }
  throw new Error('emulator/public/index.html was not found next to the emulator module');
}
