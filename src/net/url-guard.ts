/**
 * The URL guard: callback and media URLs must not reach the gateway's own network (SSRF). A URL is
 * refused when its scheme is not http(s), when it carries credentials, or when its host is or
 * resolves to a loopback, private, link-local, unspecified, multicast or reserved address
 * (including the IPv4-mapped, NAT64 and 6to4 forms of those), unless the operator allows it.
 *
 * Two checks, because DNS answers can change between them (DNS rebinding):
 * - `check(url)` when a URL is accepted (endpoint create/update, sender settings): every address the
 *   name resolves to must be allowed, so a person learns at once that a URL cannot work;
 * - `lookup`, a `net.connect` lookup function for undici's `connect` option: the addresses checked
 *   are the very addresses the socket connects to, so a name that resolves to a public address at
 *   creation and to 127.0.0.1 at delivery time is still refused. IP-literal hosts skip `lookup` in
 *   Node, so `checkSyntax` (which refuses refused literals) runs before every request too.
 */
import { lookup as dnsLookup } from 'node:dns';
import type { LookupAddress, LookupOptions } from 'node:dns';
import { isIP } from 'node:net';
import type { LookupFunction } from 'node:net';
import { GatewayError } from '../domain/errors.js';

/** The kinds of non-public address; each may be allowed by name. */
export type AddressCategory = 'loopback' | 'private' | 'link-local' | 'unspecified' | 'multicast' | 'reserved';

export interface UrlGuardOptions {
  /**
   * `true` (or a list containing `'all'`) allows every address; a list may name categories
   * (`'loopback'`, `'private'`, `'link-local'`, …) and CIDRs (`'10.1.0.0/16'`, `'fd00::/8'`).
   * `false` or an empty list allows only public addresses.
   */
  allowPrivate: boolean | readonly string[];
}

/** Why an address is refused, or null when it is public or allowed. */
export interface AddressRefusal {
  address: string;
  category: AddressCategory;
  reason: string;
}

/** Thrown by `lookup` inside a connection attempt; its message is what the attempt log shows. */
export class UrlNotAllowedError extends Error {
  readonly code = 'URL_NOT_ALLOWED';
  constructor(message: string) {
    super(message);
    this.name = 'UrlNotAllowedError';
  }
}

interface Rule {
  base: bigint;
  bits: number;
  category: AddressCategory;
  what: string;
}

// IPv4 ranges that are not the public Internet, each with its source.
const V4_RULES: Array<[string, AddressCategory, string]> = [
  ['0.0.0.0/8', 'unspecified', 'the "this network" range (RFC 1122); 0.0.0.0 reaches the local host on Linux'],
  ['10.0.0.0/8', 'private', 'a private range (RFC 1918)'],
  ['100.64.0.0/10', 'private', 'the carrier-grade NAT range (RFC 6598)'],
  ['127.0.0.0/8', 'loopback', 'a loopback address (RFC 1122)'],
  ['169.254.0.0/16', 'link-local', 'a link-local address (RFC 3927), where cloud metadata services live'],
  ['172.16.0.0/12', 'private', 'a private range (RFC 1918)'],
  ['192.0.0.0/24', 'reserved', 'the IETF protocol assignments range (RFC 6890)'],
  ['192.168.0.0/16', 'private', 'a private range (RFC 1918)'],
  ['198.18.0.0/15', 'reserved', 'the benchmarking range (RFC 2544)'],
  ['224.0.0.0/4', 'multicast', 'a multicast address (RFC 5771)'],
  ['240.0.0.0/4', 'reserved', 'a reserved range (RFC 1112), including the broadcast address'],
];

// IPv6 ranges that are not the public Internet. Forms that embed an IPv4 address are handled apart.
const V6_RULES: Array<[string, AddressCategory, string]> = [
  ['::/128', 'unspecified', 'the unspecified address'],
  ['::1/128', 'loopback', 'the loopback address'],
  ['fc00::/7', 'private', 'a unique local address (RFC 4193)'],
  ['fec0::/10', 'private', 'a site-local address (deprecated by RFC 3879, still routed inside some networks)'],
  ['fe80::/10', 'link-local', 'a link-local address (RFC 4291)'],
  ['ff00::/8', 'multicast', 'a multicast address (RFC 4291)'],
  // Translation prefixes whose IPv4 part reaches whatever a local translator maps it to.
  ['::ffff:0:0:0/96', 'reserved', 'an IPv4-translated address (RFC 2765), reached through a local translator'],
  ['64:ff9b:1::/48', 'private', 'the local-use NAT64 prefix (RFC 8215)'],
  ['100::/64', 'reserved', 'the discard-only prefix (RFC 6666)'],
  ['2001:db8::/32', 'reserved', 'the documentation prefix (RFC 3849)'],
];

// IPv4 a.b.c.d is handled as ::ffff:a.b.c.d, so one 128-bit comparison serves both families.
const V4_MAPPED_BASE = 0xffffn << 32n;
const V4_RULE_TABLE: Rule[] = V4_RULES.map(([cidr, category, what]) => ({ ...parseCidrOrThrow(cidr), category, what }));
const V6_RULE_TABLE: Rule[] = V6_RULES.map(([cidr, category, what]) => ({ ...parseCidrOrThrow(cidr), category, what }));
const CATEGORIES: readonly AddressCategory[] = ['loopback', 'private', 'link-local', 'unspecified', 'multicast', 'reserved'];

export class UrlGuard {
  readonly #allowAll: boolean;
  readonly #allowedCategories = new Set<AddressCategory>();
  readonly #allowedCidrs: Array<{ base: bigint; bits: number }> = [];

  constructor(options: UrlGuardOptions) {
    const allow = options.allowPrivate;
    this.#allowAll = allow === true || (Array.isArray(allow) && allow.includes('all'));
    if (Array.isArray(allow)) {
      for (const entry of allow as readonly string[]) {
        const item = entry.trim().toLowerCase();
        if (item === '' || item === 'all') continue;
        if ((CATEGORIES as readonly string[]).includes(item)) {
          this.#allowedCategories.add(item as AddressCategory);
          continue;
        }
        const cidr = parseCidr(item);
        if (!cidr) throw new Error(`allowed private addresses: "${entry}" is neither a CIDR nor one of all, ${CATEGORIES.join(', ')}`);
        this.#allowedCidrs.push(cidr);
      }
    }
  }

  /**
   * Checks the URL's form (scheme, credentials, an IP-literal host) without DNS and returns it
   * parsed. Throws `URL_NOT_ALLOWED`.
   */
  checkSyntax(url: string): URL {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw refuse('it is not an absolute URL');
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw refuse(`the scheme ${parsed.protocol.replace(/:$/, '')} is not http or https`, parsed.hostname);
    // Credentials in a URL end up in logs and in the attempt log; the signature authenticates us instead.
    if (parsed.username !== '' || parsed.password !== '') throw refuse('it contains a user name or password', parsed.hostname);
    const host = hostOf(parsed);
    if (host === '') throw refuse('it has no host');
    if (isIP(host) !== 0) {
      const refusal = this.refusal(host);
      if (refusal) throw refuse(`${host} is ${refusal.reason}`, host);
    }
    return parsed;
  }

  /**
   * Checks the URL and every address its host resolves to. Throws `URL_NOT_ALLOWED` with
   * `details.reason`; a host that does not resolve is refused too (it could never be delivered to).
   */
  async check(url: string): Promise<void> {
    const parsed = this.checkSyntax(url);
    const host = hostOf(parsed);
    if (isIP(host) !== 0 || this.#allowAll) return;
    let addresses: LookupAddress[];
    try {
      addresses = await resolveAll(host);
    } catch (err) {
      throw refuse(`the host name ${host} does not resolve (${(err as NodeJS.ErrnoException).code ?? 'lookup failed'})`, host);
    }
    for (const a of addresses) {
      const refusal = this.refusal(a.address);
      if (refusal) throw refuse(`${host} resolves to ${a.address}, ${refusal.reason}`, host);
    }
  }

  /** Why this IP address is refused, or null when it may be reached. */
  refusal(address: string): AddressRefusal | null {
    if (this.#allowAll) return null;
    const found = classifyAddress(address);
    if (!found) return null;
    if (this.#allowedCategories.has(found.category)) return null;
    for (const form of found.forms) {
      if (this.#allowedCidrs.some((c) => inCidr(form, c))) return null;
    }
    return { address, category: found.category, reason: found.reason };
  }

  /**
   * A lookup function for `net.connect` (undici `connect: { lookup }`): resolves the name and refuses
   * the connection when any address is not allowed, so the address checked is the address used.
   */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) {
        callback(err, '', undefined);
        return;
      }
      for (const a of addresses) {
        const refusal = this.refusal(a.address);
        if (refusal) {
          callback(new UrlNotAllowedError(`URL not allowed: ${hostname} resolves to ${a.address}, ${refusal.reason}`), '', undefined);
          return;
        }
      }
      const first = addresses[0];
      if (!first) {
        callback(Object.assign(new Error(`${hostname} has no addresses`), { code: 'ENOTFOUND' }), '', undefined);
        return;
      }
      if ((options as LookupOptions).all) callback(null, addresses);
      else callback(null, first.address, first.family);
    });
  };
}

function refuse(reason: string, host?: string): GatewayError {
  return new GatewayError('URL_NOT_ALLOWED', host === undefined ? { reason } : { reason, host });
}

/** The URL's host without IPv6 brackets. */
function hostOf(url: URL): string {
  const h = url.hostname;
  return h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
}

function resolveAll(host: string): Promise<LookupAddress[]> {
  return new Promise((resolve, reject) => {
    dnsLookup(host, { all: true, verbatim: true }, (err, addresses) => (err ? reject(err) : resolve(addresses)));
  });
}

// ---------------------------------------------------------------------------------------------
// Addresses as 128-bit numbers: IPv4 a.b.c.d is ::ffff:a.b.c.d, so one CIDR test serves both.
// ---------------------------------------------------------------------------------------------

interface Classified {
  category: AddressCategory;
  reason: string;
  /** The address as 128-bit values to test against allowed CIDRs: itself and any embedded IPv4. */
  forms: bigint[];
}

/** Classifies an IP address; null when it is public. */
export function classifyAddress(address: string): Classified | null {
  const value = parseIp(address);
  if (value === null) return { category: 'reserved', reason: 'not an IP address', forms: [] };
  const embedded = isIP(address.split('%')[0] ?? '') === 6 && isV4Mapped(value) ? { v4: value & 0xffffffffn, form: 'IPv4-mapped' } : embeddedV4(value);
  if (embedded) {
    const inner = matchRule(V4_MAPPED_BASE | embedded.v4, V4_RULE_TABLE);
    if (!inner) return null;
    return {
      category: inner.category,
      reason: `the ${embedded.form} form of ${formatV4(embedded.v4)}, ${inner.what}`,
      forms: [value, V4_MAPPED_BASE | embedded.v4],
    };
  }
  const rule = matchRule(value, isV4Mapped(value) ? V4_RULE_TABLE : V6_RULE_TABLE);
  return rule ? { category: rule.category, reason: rule.what, forms: [value] } : null;
}

function matchRule(value: bigint, rules: Rule[]): Rule | undefined {
  return rules.find((r) => inCidr(value, r));
}

function inCidr(value: bigint, cidr: { base: bigint; bits: number }): boolean {
  const shift = BigInt(128 - cidr.bits);
  return value >> shift === cidr.base >> shift;
}

function isV4Mapped(value: bigint): boolean {
  return value >> 32n === 0xffffn;
}

/**
 * IPv6 forms that carry an IPv4 address a connection may end up at: IPv4-mapped (`::ffff:a.b.c.d`,
 * written as IPv6), IPv4-compatible (`::a.b.c.d`, deprecated), NAT64 (`64:ff9b::/96`, RFC 6052) and
 * 6to4 (`2002:aabb:ccdd::/48`, RFC 3056). Plain IPv4 input is not "embedded" (it is checked directly).
 */
function embeddedV4(value: bigint): { v4: bigint; form: string } | null {
  const low32 = value & 0xffffffffn;
  if (value >> 32n === 0n && low32 > 1n) return { v4: low32, form: 'IPv4-compatible' };
  if (value >> 32n === 0x64ff9b0000000000000000n) return { v4: low32, form: 'NAT64' };
  if (value >> 112n === 0x2002n) return { v4: (value >> 80n) & 0xffffffffn, form: '6to4' };
  return null;
}

/** An IPv4 or IPv6 address as a 128-bit number (IPv4 as IPv4-mapped), or null. */
export function parseIp(text: string): bigint | null {
  const address = text.split('%')[0] ?? '';
  const kind = isIP(address);
  if (kind === 4) return V4_MAPPED_BASE | parseV4(address);
  if (kind === 6) return parseV6(address);
  return null;
}

function parseV4(address: string): bigint {
  return address.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function parseV6(address: string): bigint | null {
  let text = address.toLowerCase();
  // A trailing dotted quad stands for the last two groups.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted?.[1]) {
    const v4 = parseV4(dotted[1]);
    text = `${text.slice(0, dotted.index)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const missing = 8 - head.length - tail.length;
  if (missing < 0 || (halves.length === 1 && missing !== 0)) return null;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail];
  let value = 0n;
  for (const g of groups) {
    if (!/^[0-9a-f]{1,4}$/.test(g)) return null;
    value = (value << 16n) | BigInt(parseInt(g, 16));
  }
  return value;
}

function formatV4(v4: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((v4 >> s) & 0xffn)).join('.');
}

/** `a.b.c.d/n` or `x:y::/n` (a bare address means a single host); null when malformed. */
export function parseCidr(text: string): { base: bigint; bits: number } | null {
  const [addr, len] = text.split('/');
  if (addr === undefined) return null;
  const value = parseIp(addr);
  if (value === null) return null;
  const v4 = isIP(addr) === 4;
  const max = v4 ? 32 : 128;
  const n = len === undefined ? max : /^\d{1,3}$/.test(len) ? Number(len) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > max) return null;
  return { base: value, bits: v4 ? 96 + n : n };
}

function parseCidrOrThrow(text: string): { base: bigint; bits: number } {
  const cidr = parseCidr(text);
  if (!cidr) throw new Error(`bad built-in CIDR ${text}`);
  return cidr;
}
