/**
 * A Page pushed at full speed stays under Meta's per-second limit, end to end over real sockets on
 * SQLite and PostgreSQL: the emulator refuses a Page's Send API calls past its limit within any one
 * second with a 613, as Meta may, and a backlog of replies to one Page goes out without a single
 * refusal (a refusal pauses the Page and holds every conversation on it back). The limit here is
 * 50 a second, set on both sides (Meta's is 300), so a test machine reaches it.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachEngine } from '../support/db.js';
import { startWorld } from '../pipeline/outbound/support.js';
import type { Customer, World } from '../pipeline/outbound/support.js';

const CUSTOMERS = 20;
const LIMIT_PER_SECOND = 50;
// Three seconds' allowance: the limit is reached, and kept to, for a while.
const MESSAGES = 3 * LIMIT_PER_SECOND;

describeEachEngine('pacing a Page at full speed', (engine) => {
  let world: World;
  beforeAll(async () => {
    world = await startWorld(engine, {
      emulator: { sendRateLimitPerSecond: LIMIT_PER_SECOND },
      senderSettings: { pacing: { text_per_second: LIMIT_PER_SECOND } },
    });
  });
  afterAll(async () => {
    await world?.close();
  });

  it("sends a backlog to one Page without one rate-limit answer from Meta's per-second limit", async () => {
    const customers: Customer[] = [];
    for (let i = 0; i < CUSTOMERS; i += 1) customers.push(await world.customer(`hello ${i}`));
    // Held until all are queued, so the backlog leaves as fast as the pacing allows.
    world.hold.sends = true;
    const ids: string[] = [];
    for (let i = 0; i < MESSAGES; i += 1) {
      const to = customers[i % CUSTOMERS] as Customer;
      const res = await world.api<{ id: string }>('POST', '/messages', { sender_id: world.senderId, to: { psid: to.psid }, text: `update ${i}` });
      expect(res.status).toBe(202);
      ids.push(res.body.id);
    }
    world.hold.sends = false;
    for (const id of ids) await world.waitForSent(id, 30_000);

    // The emulator counts every call it refused for the per-second limit.
    const page = await world.control<{ rate_limited_sends: number }>('GET', `/_emulator/pages/${world.pageId}`);
    expect(page.body.rate_limited_sends).toBe(0);
  }, 90_000);
});
