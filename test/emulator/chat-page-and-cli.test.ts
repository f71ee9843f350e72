import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runEmulatorCli, startEmulator, type RunningEmulator } from '../../emulator/index.js';
import { createWorld, http, send, waitFor, type World } from './helpers.js';

// The chat page, its live thread stream, and the CLI entry point.

let emulator: RunningEmulator;
let world: World;

beforeAll(async () => {
  emulator = await startEmulator({ deliveryDelayMs: null, readDelayMs: null });
  world = await createWorld(emulator.url);
});

afterAll(async () => {
  await emulator.close();
});

describe('chat page', () => {
  it('serves the page at the root', async () => {
    const page = await http('GET', `${emulator.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(page.text).toContain('<title>Messenger Platform emulator</title>');
    expect(page.text).toContain('/_emulator/pages');
  });

  it('streams thread changes: replies, typing and seen', async () => {
    const controller = new AbortController();
    const response = await fetch(`${emulator.url}/_emulator/pages/${world.pageId}/threads/${world.psid}/stream`, { signal: controller.signal });
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    const reader = response.body!.getReader();
    const snapshots: Array<{ typing: boolean; seen_watermark: number | null; messages: Array<{ text?: string }> }> = [];
    let buffer = '';
    const pump = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += Buffer.from(value).toString('utf8');
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = event.split('\n').find((line) => line.startsWith('data: '));
          if (data) snapshots.push(JSON.parse(data.slice(6)));
        }
      }
    })().catch(() => undefined);

    await waitFor(() => snapshots.length >= 1, 'the first snapshot');
    expect(snapshots[0]!.messages.map((m) => m.text)).toEqual(['hello']);
    await send(emulator.url, world.token, { recipient: { id: world.psid }, sender_action: 'typing_on' });
    await waitFor(() => snapshots.some((s) => s.typing), 'typing');
    await send(emulator.url, world.token, { recipient: { id: world.psid }, sender_action: 'mark_seen' });
    await waitFor(() => snapshots.some((s) => s.seen_watermark !== null), 'seen');
    await send(emulator.url, world.token, { recipient: { id: world.psid }, message: { text: 'a reply' } });
    await waitFor(() => snapshots.some((s) => s.messages.some((m) => m.text === 'a reply') && !s.typing), 'the reply');
    controller.abort();
    await pump;
  });
});

describe('CLI', () => {
  it('starts on the given port, prints the URL and a curl hint, and stops when told', async () => {
    const lines: string[] = [];
    const controller = new AbortController();
    const running = runEmulatorCli(['--port', '0', '--host', '127.0.0.1', '--quiet'], { signal: controller.signal, out: (line) => lines.push(line) });
    const banner = await waitFor(() => lines.find((line) => line.includes('http://127.0.0.1:')), 'the banner');
    const url = /http:\/\/127\.0\.0\.1:\d+/.exec(banner)![0];
    expect(lines.some((line) => line.startsWith('Try: curl'))).toBe(true);
    expect((await http('GET', `${url}/_emulator/health`)).body).toEqual({ ok: true });
    controller.abort();
    await running;
    await expect(fetch(`${url}/_emulator/health`)).rejects.toThrow();
  });

  it('refuses a bad port', async () => {
    await expect(runEmulatorCli(['--port', 'lots'], { out: () => {} })).rejects.toThrow(/--port/);
  });
});
