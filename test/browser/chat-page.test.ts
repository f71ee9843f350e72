/**
 * The emulator's chat page in a real (headless) Chromium: a person chats as the customer with a
 * business that answers through the gateway. Skipped with a printed reason when Chromium is not
 * installed, except under CI=true (CI installs it).
 */
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { eventually, startStack } from '../support/stack.js';
import type { Stack } from '../support/stack.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const available = existsSync(CHROMIUM);
if (!available && process.env.CI === 'true') throw new Error(`CI=true requires Chromium at ${CHROMIUM} for the browser tests`);
if (!available) console.warn(`[skip] browser tests skipped: no Chromium at ${CHROMIUM} (install Debian's chromium package)`);

(available ? describe : describe.skip)('the emulator chat page', () => {
  let s: Stack;
  let browser: Browser;
  let tab: Page;
  let senderId: string;
  let pageId: string;

  beforeAll(async () => {
    s = await startStack();
    const { page, sender } = await s.connectPage({ name: 'Browser Bakery' });
    senderId = sender.id;
    pageId = page.id;
    await s.emu('POST', '/_emulator/users', { first_name: 'Pat', last_name: 'Browser' });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    tab = await browser.newPage();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await s?.close();
  });

  interface Listed {
    data: { id: string; direction: string; contact_id: string; content: { text?: string; quick_reply?: { payload: string }; postback?: { payload: string } } }[];
  }
  const inbound = async () => (await s.api<Listed>('GET', `/v1/messages?sender_id=${senderId}&direction=inbound`)).body.data;

  it('sends what the customer types to the gateway', async () => {
    await tab.goto(s.emulator.url);
    await tab.locator('#page').selectOption(`${pageId}|messenger`, { timeout: 10_000 });
    await tab.locator('#user').locator('option', { hasText: 'Pat' }).waitFor({ state: 'attached' });
    const pat = await tab.locator('#user option', { hasText: 'Pat' }).getAttribute('value');
    await tab.locator('#user').selectOption(pat ?? '', { timeout: 10_000 });
    await tab.locator('#text').fill('Do you have sourdough today?');
    await tab.locator('#composer button[type=submit]').click();
    const got = await eventually(async () => (await inbound()).find((m) => m.content.text === 'Do you have sourdough today?'), 15_000, 'the typed message at the gateway');
    expect(got.direction).toBe('inbound');
  });

  it('shows the business reply with quick replies and buttons, and taps them', async () => {
    const contactId = (await inbound())[0]?.contact_id ?? '';
    const reply = await s.api('POST', '/v1/messages', {
      sender_id: senderId,
      to: { contact_id: contactId },
      text: 'Yes! How many loaves?',
      quick_replies: [
        { title: 'One', payload: 'LOAVES_1' },
        { title: 'Two', payload: 'LOAVES_2' },
      ],
    });
    expect(reply.status).toBe(202);
    await tab.getByText('Yes! How many loaves?').waitFor({ timeout: 15_000 });
    await tab.locator('#quick button', { hasText: 'Two' }).click();
    await eventually(async () => (await inbound()).find((m) => m.content.quick_reply?.payload === 'LOAVES_2'), 15_000, 'the quick reply at the gateway');

    const template = await s.api('POST', '/v1/messages', {
      sender_id: senderId,
      to: { contact_id: contactId },
      template: { template_type: 'button', text: 'Pick-up or delivery?', buttons: [{ type: 'postback', title: 'Pick-up', payload: 'PICKUP' }] },
    });
    expect(template.status).toBe(202);
    await tab.getByText('Pick-up or delivery?').waitFor({ timeout: 15_000 });
    await tab.getByRole('button', { name: 'Pick-up' }).click();
    await eventually(async () => (await inbound()).find((m) => m.content.postback?.payload === 'PICKUP'), 15_000, 'the postback at the gateway');
    await tab.screenshot({ path: join(process.env.SCREENSHOT_DIR ?? tmpdir(), 'switchboard-chat-page.png') }).catch(() => undefined);
  });
});
