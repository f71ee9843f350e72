import { describe, expect, it } from 'vitest';
import { CpuShare } from '../../emulator/usage.js';

/** Keeps this thread busy until the process has used at least `ms` more CPU. */
function burn(ms: number): void {
  const start = process.cpuUsage();
  let x = 0;
  for (;;) {
    for (let i = 0; i < 10_000; i++) x += Math.sqrt(x + i);
    const used = process.cpuUsage(start);
    if (used.user + used.system >= ms * 1000) break;
  }
  if (x < 0) throw new Error('unreachable');
}

describe('CpuShare (the CPU charged to each Graph call)', () => {
  it('charges nothing until a period has passed, then splits that period\'s CPU between its calls', () => {
    let clock = 0;
    const share = new CpuShare(() => clock);
    burn(40);
    // Within the first period: no reading yet.
    expect(share.charge()).toBe(0);
    expect(share.charge()).toBe(0);
    expect(share.charge()).toBe(0);
    clock = 150;
    // The fourth call closes the period: at least the 40 ms burnt, over four calls.
    const perCall = share.charge();
    expect(perCall).toBeGreaterThanOrEqual(10);
    expect(perCall).toBeLessThan(1000);
    // Until the next period ends, every call is charged that same share.
    clock = 200;
    expect(share.charge()).toBe(perCall);
  });

  it('charges an idle period\'s calls almost nothing', () => {
    let clock = 0;
    const share = new CpuShare(() => clock);
    burn(40);
    clock = 150;
    const busy = share.charge();
    clock = 300;
    const idle = share.charge();
    expect(busy).toBeGreaterThanOrEqual(30);
    expect(idle).toBeLessThan(busy / 4);
  });
});
