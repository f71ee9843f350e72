import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UrlGuard } from '../../src/net/url-guard.js';
import { DeliveryClient } from '../../src/delivery/http.js';
import { GatewayError } from '../../src/domain/errors.js';
import { startReceiver } from './support.js';
import type { Receiver } from './support.js';

async function refusal(guard: UrlGuard, url: string): Promise<string | null> {
  try {
    await guard.check(url);
    return null;
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).code).toBe('URL_NOT_ALLOWED');
    return String((err as GatewayError).details.reason);
  }
}

describe('the URL guard', () => {
  const strict = new UrlGuard({ allowPrivate: false });

  it.each([
    ['http://127.0.0.1/hook', 'loopback'],
    ['http://127.9.9.9:8080/', 'loopback'],
    ['http://10.1.2.3/', 'private'],
    ['http://172.16.0.1/', 'private'],
    ['http://192.168.1.10/', 'private'],
    ['http://100.64.0.1/', 'carrier-grade NAT'],
    ['http://169.254.169.254/latest/meta-data/', 'link-local'],
    ['http://0.0.0.0/', 'this network'],
    ['http://224.0.0.1/', 'multicast'],
    ['http://[::1]/', 'loopback'],
    ['http://[::]/', 'unspecified'],
    ['http://[fd12:3456::1]/', 'unique local'],
    ['http://[fe80::1]/', 'link-local'],
    ['http://[ff02::1]/', 'multicast'],
    ['http://[::ffff:127.0.0.1]/', 'IPv4-mapped form of 127.0.0.1'],
    ['http://[::ffff:a00:1]/', 'IPv4-mapped form of 10.0.0.1'],
    ['http://[64:ff9b::a9fe:a9fe]/', 'NAT64 form of 169.254.169.254'],
    ['http://[2002:7f00:1::]/', '6to4 form of 127.0.0.1'],
    ['http://[::ffff:0:7f00:1]/', 'IPv4-translated'],
    ['http://[64:ff9b:1::a00:1]/', 'local-use NAT64'],
    ['http://[100::1]/', 'discard-only'],
    ['http://[2001:db8::1]/', 'documentation'],
    // WHATWG URL parsing turns these spellings into 127.0.0.1 before the guard sees them.
    ['http://0x7f.0.0.1/', 'loopback'],
    ['http://2130706433/', 'loopback'],
  ])('refuses %s', async (url, why) => {
    expect(await refusal(strict, url)).toContain(why);
  });

  it('refuses a host name that resolves to a loopback address', async () => {
    expect(await refusal(strict, 'http://localhost:9/')).toMatch(/localhost resolves to .*loopback/);
  });

  it('refuses schemes other than http and https, credentials, and what is not a URL', async () => {
    expect(await refusal(strict, 'ftp://example.com/x')).toContain('scheme ftp');
    expect(await refusal(strict, 'file:///etc/passwd')).toContain('scheme file');
    expect(await refusal(strict, 'https://user:pass@example.com/')).toContain('user name or password');
    expect(await refusal(strict, 'not a url')).toContain('not an absolute URL');
  });

  it('accepts public addresses', async () => {
    expect(await refusal(strict, 'https://93.184.216.34/hook')).toBeNull();
    expect(await refusal(strict, 'http://[2606:4700:4700::1111]/')).toBeNull();
    expect(await refusal(strict, 'http://[::ffff:8.8.8.8]/')).toBeNull();
  });

  it('accepts loopback when the operator allows loopback, and nothing more', async () => {
    const guard = new UrlGuard({ allowPrivate: ['loopback'] });
    expect(await refusal(guard, 'http://127.0.0.1:3000/hook')).toBeNull();
    expect(await refusal(guard, 'http://[::1]/')).toBeNull();
    expect(await refusal(guard, 'http://[::ffff:127.0.0.1]/')).toBeNull();
    expect(await refusal(guard, 'http://localhost:3000/')).toBeNull();
    expect(await refusal(guard, 'http://10.0.0.1/')).toContain('private');
    expect(await refusal(guard, 'http://169.254.169.254/')).toContain('link-local');
  });

  it('accepts the CIDRs the operator lists, including their IPv4-mapped forms', async () => {
    const guard = new UrlGuard({ allowPrivate: ['10.1.0.0/16', 'fd00::/8'] });
    expect(await refusal(guard, 'http://10.1.2.3/')).toBeNull();
    expect(await refusal(guard, 'http://[::ffff:10.1.2.3]/')).toBeNull();
    expect(await refusal(guard, 'http://[fd00::5]/')).toBeNull();
    expect(await refusal(guard, 'http://10.2.0.1/')).toContain('private');
    expect(await refusal(guard, 'http://127.0.0.1/')).toContain('loopback');
  });

  it('accepts everything but bad schemes and credentials when all is allowed', async () => {
    for (const guard of [new UrlGuard({ allowPrivate: true }), new UrlGuard({ allowPrivate: ['all'] })]) {
      expect(await refusal(guard, 'http://127.0.0.1/')).toBeNull();
      expect(await refusal(guard, 'http://169.254.169.254/')).toBeNull();
      expect(await refusal(guard, 'gopher://127.0.0.1/')).toContain('scheme gopher');
    }
  });

  it('refuses a configuration it cannot read', () => {
    expect(() => new UrlGuard({ allowPrivate: ['loopbak'] })).toThrow(/neither a CIDR/);
    expect(() => new UrlGuard({ allowPrivate: ['10.0.0.0/33'] })).toThrow(/neither a CIDR/);
  });
});

describe('the delivery client', () => {
  let receiver: Receiver;
  beforeAll(async () => {
    receiver = await startReceiver();
  });
  afterAll(async () => {
    await receiver.close();
  });

  it('checks the address at connect time, so a name resolving to loopback is refused even after a check passed', async () => {
    const port = new URL(receiver.url).port;
    const client = new DeliveryClient({ urlGuard: new UrlGuard({ allowPrivate: false }) });
    try {
      // The name is not an IP literal, so only the lookup inside net.connect sees 127.0.0.1.
      const result = await client.send({ url: `http://localhost:${port}/hook`, method: 'POST', headers: {}, body: '{}' });
      expect(result.ok).toBe(false);
      expect(result.statusCode).toBeNull();
      expect(result.error).toMatch(/URL not allowed: localhost resolves to .*loopback/);
      expect(receiver.requests).toHaveLength(0);
    } finally {
      await client.close();
    }
  });

  it('reaches the same receiver when loopback is allowed, and keeps a capped excerpt of the answer', async () => {
    const port = new URL(receiver.url).port;
    const client = new DeliveryClient({ urlGuard: new UrlGuard({ allowPrivate: ['loopback'] }), excerptBytes: 4 });
    try {
      const result = await client.send({ url: `http://localhost:${port}/hook`, method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
      expect(result).toMatchObject({ ok: true, statusCode: 200, excerpt: 'ok', error: null });
      receiver.respond = () => 500;
      const failed = await client.send({ url: `${receiver.url}/hook`, method: 'POST', headers: {}, body: '{}' });
      expect(failed).toMatchObject({ ok: false, statusCode: 500, excerpt: 'refu', error: 'HTTP 500' });
    } finally {
      receiver.respond = () => 200;
      await client.close();
    }
  });
});
