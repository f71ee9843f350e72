import { afterEach, expect, it } from 'vitest';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fetchContactProfile } from '../../../src/pipeline/profile.js';
import { PROFILE_TTL_MS } from '../../../src/pipeline/inbound-contacts.js';
import { describeEachEngine } from '../../support/db.js';
import { PAGE_TOKEN, openHarness, pageEnvelope, startLocalServer, textItem } from './support.js';
import type { Harness, LocalServer } from './support.js';

const PAGE = '1691462197845448';
const T0 = 1_768_478_400_000;

/**
 * A Graph API stand-in on 127.0.0.1 with one person per behaviour: a full profile, a hidden one
 * (2018218), one whose locale the app may not read, and a rate-limited Page.
 */
function graph(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://x');
  const psid = url.pathname.split('/').pop() ?? '';
  const fields = (url.searchParams.get('fields') ?? '').split(',');
  const error = (status: number, code: number, subcode: number | null, message: string) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { message, type: 'OAuthException', code, ...(subcode === null ? {} : { error_subcode: subcode }), fbtrace_id: 'T' } }));
  };
  if (req.headers.authorization !== `Bearer ${PAGE_TOKEN}`) return error(400, 190, null, 'Invalid OAuth access token');
  const ok = (body: object) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ id: psid, ...body }));
  };
  switch (psid) {
    case 'full':
      return ok({ first_name: 'Ada', last_name: 'Lovelace', profile_pic: 'https://cdn.test/ada.jpg', locale: 'en_GB' });
    case 'hidden':
      return error(400, 100, 2018218, 'No profile available for this user.');
    case 'nolocale':
      if (fields.includes('locale')) return error(400, 100, null, '(#100) Tried accessing nonexisting field (locale)');
      return ok({ first_name: 'Grace', last_name: 'Hopper', profile_pic: 'https://cdn.test/grace.jpg' });
    case 'limited':
      return error(400, 613, null, 'Calls to this api have exceeded the rate limit.');
    case 'igsid':
      return ok({ name: 'Linus', username: 'linus.t', profile_pic: 'https://cdn.test/l.jpg' });
    default:
      return error(400, 100, 2018001, 'No matching user found');
  }
}

describeEachEngine('profile enrichment', (engine) => {
  let h: Harness | undefined;
  let server: LocalServer | undefined;
  afterEach(async () => {
    await h?.close();
    await server?.close();
    h = undefined;
    server = undefined;
  });

  async function contactFor(psid: string, channel: 'messenger' | 'instagram' = 'messenger') {
    await h!.ingest(pageEnvelope(PAGE, [textItem(PAGE, psid, `m_${psid}`, 'hi', T0)], channel === 'instagram' ? 'instagram' : 'page'));
    return h!.store.db.selectFrom('contacts').selectAll().where('psid', '=', psid).executeTakeFirstOrThrow();
  }

  it('fill the names, picture and locale of a Messenger contact', async () => {
    server = await startLocalServer(graph);
    h = await openHarness(engine, { metaId: PAGE, graphUrl: server.url });
    const contact = await contactFor('full');
    expect(await fetchContactProfile(h.ctx, contact.id)).toBe('fetched');
    const row = await h.store.db.selectFrom('contacts').selectAll().where('id', '=', contact.id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ profile_status: 'fetched', first_name: 'Ada', last_name: 'Lovelace', name: 'Ada Lovelace', profile_pic: 'https://cdn.test/ada.jpg', locale: 'en_GB', profile_fetched_at: h.clock.now });
    expect(server.requests[0]!.url).toContain('fields=first_name%2Clast_name%2Cprofile_pic%2Clocale');
  });

  it('keep every name null and mark the profile hidden when Meta has none (2018218)', async () => {
    server = await startLocalServer(graph);
    h = await openHarness(engine, { metaId: PAGE, graphUrl: server.url });
    const contact = await contactFor('hidden');
    expect(await fetchContactProfile(h.ctx, contact.id)).toBe('hidden');
    const row = await h.store.db.selectFrom('contacts').selectAll().where('id', '=', contact.id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ profile_status: 'hidden', name: null, first_name: null, last_name: null, username: null, profile_pic: null, locale: null });
  });

  it('ask for the basic fields alone when Meta refuses the locale', async () => {
    server = await startLocalServer(graph);
    h = await openHarness(engine, { metaId: PAGE, graphUrl: server.url });
    const contact = await contactFor('nolocale');
    expect(await fetchContactProfile(h.ctx, contact.id)).toBe('fetched');
    const row = await h.store.db.selectFrom('contacts').selectAll().where('id', '=', contact.id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ name: 'Grace Hopper', locale: null });
    expect(server.requests.map((r) => new URL(r.url, 'http://x').searchParams.get('fields'))).toEqual(['first_name,last_name,profile_pic,locale', 'first_name,last_name,profile_pic']);
  });

  it('reschedule instead of failing when the Page is rate limited', async () => {
    server = await startLocalServer(graph);
    h = await openHarness(engine, { metaId: PAGE, graphUrl: server.url });
    const contact = await contactFor('limited');
    const outcome = await fetchContactProfile(h.ctx, contact.id, { attempt: 1 });
    expect(outcome).toEqual({ retryAt: expect.any(Number) });
    expect((outcome as { retryAt: number }).retryAt).toBeGreaterThan(h.clock.now);
    const row = await h.store.db.selectFrom('contacts').selectAll().where('id', '=', contact.id).executeTakeFirstOrThrow();
    expect(row.profile_status).toBe('pending');
  });

  it('use the cached profile within a day and fetch again after', async () => {
    server = await startLocalServer(graph);
    h = await openHarness(engine, { metaId: PAGE, graphUrl: server.url });
    const contact = await contactFor('full');
    await fetchContactProfile(h.ctx, contact.id);
    expect(await fetchContactProfile(h.ctx, contact.id)).toBe('cached');
    expect(server.requests).toHaveLength(1);
    // A later message within the day queues no new fetch; one after the TTL does.
    const queued = async () => (await h!.store.db.selectFrom('jobs').select('id').where('kind', '=', 'profile.fetch').execute()).length;
    const before = await queued();
    h.clock.now += 60_000;
    await h.ingest(pageEnvelope(PAGE, [textItem(PAGE, 'full', 'm_full_2', 'again', T0 + 60_000)]));
    expect(await queued()).toBe(before);
    h.clock.now += PROFILE_TTL_MS;
    await h.ingest(pageEnvelope(PAGE, [textItem(PAGE, 'full', 'm_full_3', 'next day', T0 + PROFILE_TTL_MS + 60_000)]));
    expect(await queued()).toBe(before + 1);
    expect(await fetchContactProfile(h.ctx, contact.id)).toBe('fetched');
    expect(server.requests).toHaveLength(2);
  });

  it('read name and username for an Instagram contact', async () => {
    server = await startLocalServer(graph);
    h = await openHarness(engine, { metaId: PAGE, channel: 'instagram', graphUrl: server.url });
    const contact = await contactFor('igsid', 'instagram');
    expect(await fetchContactProfile(h.ctx, contact.id)).toBe('fetched');
    const row = await h.store.db.selectFrom('contacts').selectAll().where('id', '=', contact.id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ name: 'Linus', username: 'linus.t', profile_pic: 'https://cdn.test/l.jpg', first_name: null });
    expect(new URL(server.requests[0]!.url, 'http://x').searchParams.get('fields')).toBe('name,username,profile_pic');
  });
});
