import { afterEach, expect, it } from 'vitest';
import { sql } from 'kysely';
import { RetryableJobError } from '../../../src/jobs/job.js';
import { inboundJobHandlers } from '../../../src/pipeline/inbound.js';
import { closeConversation } from '../../../src/store/conversations.js';
import { listUnroutable } from '../../../src/store/unroutable.js';
import { describeEachEngine } from '../../support/db.js';
import { fixture, openHarness, pageEnvelope, textItem } from './support.js';
import type { Harness } from './support.js';

const PAGE = '1691462197845448';
const PSID = '1134343043305865';

describeEachEngine('inbound messages', (engine) => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('store a text message with its contact, an open conversation and both events', async () => {
    h = await openHarness(engine, { metaId: '123123123' });
    const result = await h.ingest(fixture('01_page_text_message.json'));
    expect(result.failed).toEqual([]);
    expect(result.outcomes).toEqual(['stored']);

    const [message] = await h.messages();
    expect(message).toMatchObject({
      direction: 'inbound',
      kind: 'text',
      status: 'received',
      mid: 'Q3znCzp31iKkarGcToiQWSJGtmSVjUPs7GtwB7WEjVRcg9MxG8TT09Z0wimdrcCHxQCRpMSKZcHBthhqXsonoA',
      meta_timestamp: 1570649960249,
      account_id: h.account.id,
      sender_id: h.sender.id,
    });
    expect(JSON.parse(message!.content)).toEqual({ text: 'asd' });
    expect(JSON.parse(message!.raw!)).toMatchObject({ message: { text: 'asd' } });

    const contact = await h.store.db.selectFrom('contacts').selectAll().executeTakeFirstOrThrow();
    expect(contact).toMatchObject({ psid: '123123123', last_inbound_at: 1570649960249, profile_status: 'pending', channel: 'messenger' });
    const conversation = await h.store.db.selectFrom('conversations').selectAll().executeTakeFirstOrThrow();
    expect(conversation).toMatchObject({ status: 'open', contact_id: contact.id, id: message!.conversation_id });

    const events = await h.events();
    expect(events.map((e) => e.type)).toEqual(['conversation.created', 'message.received']);
    const received = events[1]!;
    expect(received.message_id).toBe(message!.id);
    expect(received.data).toMatchObject({
      message: { id: message!.id, content: { text: 'asd' }, channel: 'messenger', direction: 'inbound' },
      contact: { id: contact.id, psid: '123123123' },
      conversation: { id: conversation.id, status: 'open' },
    });
    // The profile is fetched by its own job, queued with the message.
    const jobs = await h.store.db.selectFrom('jobs').select(['kind', 'key']).where('kind', '=', 'profile.fetch').execute();
    expect(jobs).toEqual([{ kind: 'profile.fetch', key: `profile:${h.sender.id}` }]);
  });

  it('turn three deliveries of the same batch into one message and one event', async () => {
    h = await openHarness(engine, { metaId: '123123123' });
    const body = fixture('01_page_text_message.json');
    const outcomes = [];
    for (let i = 0; i < 3; i += 1) outcomes.push(...(await h.ingest(body)).outcomes);
    expect(outcomes).toEqual(['stored', 'duplicate', 'duplicate']);
    expect(await h.messages()).toHaveLength(1);
    expect((await h.events('message.received')).length).toBe(1);
    expect((await h.events('conversation.created')).length).toBe(1);
    const batches = await h.store.db.selectFrom('inbound_batches').select(['processed_at', 'error']).execute();
    expect(batches).toHaveLength(3);
    for (const b of batches) expect(b).toEqual({ processed_at: h.clock.now, error: null });
  });

  it('route each entry of a batch on its own and keep the entry no sender owns as unroutable', async () => {
    h = await openHarness(engine, { metaId: '1895382890692545' });
    const result = await h.ingest(fixture('03_page_batch_two_entries.json'));
    expect(result.outcomes).toEqual(['stored']);
    expect(result.unroutable).toBe(1);
    const [message] = await h.messages();
    expect(message?.mid).toBe('mid.1486464322190:cb04e5a654');
    const unroutable = await listUnroutable(h.store.db, { limit: 10 });
    expect(unroutable).toHaveLength(1);
    expect(unroutable[0]).toMatchObject({ object: 'page', entry_id: '189538289069256' });
    expect(JSON.parse(unroutable[0]!.item)).toMatchObject({ message: { mid: 'mid.1486464322190:cb04e5a656', text: 'test 2' } });
    // Meta delivering the same batch again (a new batch row, the same items) stores nothing more.
    expect((await h.ingest(fixture('03_page_batch_two_entries.json'))).unroutable).toBe(0);
    expect(await listUnroutable(h.store.db, { entryId: '189538289069256', limit: 10 })).toHaveLength(1);
  });

  it('handle every item of an Instagram batch', async () => {
    h = await openHarness(engine, { metaId: '123', channel: 'instagram' });
    const body = JSON.stringify(
      pageEnvelope(
        '123',
        ['567', '444', '666'].map((psid, i) => textItem('123', psid, `aWdfZAG1faXRlbToxOk${i}`, `message from ${psid}`, 1569262485349 + i)),
        'instagram',
      ),
    );
    const result = await h.ingest(body);
    expect(result.outcomes).toEqual(['stored', 'stored', 'stored']);
    const contacts = await h.store.db.selectFrom('contacts').select(['psid', 'channel']).orderBy('psid').execute();
    expect(contacts).toEqual([
      { psid: '444', channel: 'instagram' },
      { psid: '567', channel: 'instagram' },
      { psid: '666', channel: 'instagram' },
    ]);
    const events = await h.events('message.received');
    expect(events.map((e) => (e.data['message'] as { channel: string }).channel)).toEqual(['instagram', 'instagram', 'instagram']);
  });

  it('treat a repeated mid as a retry, as in the documentation example that gives three people the same mid', async () => {
    h = await openHarness(engine, { metaId: '123', channel: 'instagram' });
    const result = await h.ingest(fixture('13_ig_messages_batch_three.json'));
    expect(result.outcomes).toEqual(['stored', 'duplicate', 'duplicate']);
    expect(result.failed).toEqual([]);
  });

  it('keep processing the good items when one item fails, record the failure and retry only that item', async () => {
    h = await openHarness(engine, { metaId: PAGE });
    const body = pageEnvelope(PAGE, [
      textItem(PAGE, PSID, 'm_good_1', 'one', 1_768_478_400_001),
      textItem(PAGE, PSID, 'm_bad', 'two', 1_768_478_400_002),
      textItem(PAGE, PSID, 'm_good_2', 'three', 1_768_478_400_003),
    ]);
    await plantFailure(h, 'm_bad');
    const first = await h.ingest(body);
    expect(first.outcomes).toEqual(['stored', 'stored']);
    expect(first.failed).toHaveLength(1);
    expect(first.failed[0]).toMatchObject({ entry: 0, item: 1, kind: 'message' });
    expect(first.failed[0]!.error).toContain('planted failure');
    const batch = await h.store.db.selectFrom('inbound_batches').selectAll().where('id', '=', first.batchId).executeTakeFirstOrThrow();
    expect(JSON.parse(batch.error!)).toMatchObject({ failed: [{ entry: 0, item: 1, kind: 'message' }] });
    expect((await h.messages()).map((m) => m.mid)).toEqual(['m_good_1', 'm_good_2']);

    // The job retries the batch: it fails while the fault lasts, then handles only the failed item.
    const handlers = inboundJobHandlers(h.ctx);
    const job = { id: 1, kind: 'inbound.batch', key: null, payload: { batch_id: first.batchId }, attempts: 2, maxAttempts: 5, runAt: 0, createdAt: 0, lastError: null };
    const context = { signal: new AbortController().signal, workerId: 'test' };
    await expect(handlers['inbound.batch']!(job, context)).rejects.toBeInstanceOf(RetryableJobError);
    await removeFailure(h);
    await handlers['inbound.batch']!(job, context);
    expect((await h.messages()).map((m) => m.mid)).toEqual(['m_good_1', 'm_good_2', 'm_bad']);
    expect((await h.events('message.received')).length).toBe(3);
    const done = await h.store.db.selectFrom('inbound_batches').selectAll().where('id', '=', first.batchId).executeTakeFirstOrThrow();
    expect(done.error).toBeNull();
  });

  it('reopen a closed conversation when the contact writes again', async () => {
    h = await openHarness(engine, { metaId: PAGE });
    await h.ingest(pageEnvelope(PAGE, [textItem(PAGE, PSID, 'm_1', 'hi', 1_768_478_400_000)]));
    const conversation = await h.store.db.selectFrom('conversations').selectAll().executeTakeFirstOrThrow();
    await closeConversation(h.store.db, h.account.id, conversation.id, h.clock.now);
    await h.ingest(pageEnvelope(PAGE, [textItem(PAGE, PSID, 'm_2', 'again', 1_768_478_460_000)]));
    const after = await h.store.db.selectFrom('conversations').selectAll().execute();
    expect(after).toHaveLength(1);
    expect(after[0]).toMatchObject({ id: conversation.id, status: 'open', closed_at: null, last_message_at: 1_768_478_460_000 });
    expect((await h.events('conversation.created')).length).toBe(1);
    const contact = await h.store.db.selectFrom('contacts').selectAll().executeTakeFirstOrThrow();
    expect(contact.last_inbound_at).toBe(1_768_478_460_000);
  });

  it('never move the window back for an older message that arrives late', async () => {
    h = await openHarness(engine, { metaId: PAGE });
    await h.ingest(pageEnvelope(PAGE, [textItem(PAGE, PSID, 'm_new', 'new', 1_768_478_460_000)]));
    await h.ingest(pageEnvelope(PAGE, [textItem(PAGE, PSID, 'm_old', 'old', 1_768_478_400_000)]));
    const contact = await h.store.db.selectFrom('contacts').selectAll().executeTakeFirstOrThrow();
    expect(contact.last_inbound_at).toBe(1_768_478_460_000);
  });

  it('mark a contact opted out on a stop word and back in on a start word, per the sender settings', async () => {
    h = await openHarness(engine, { metaId: PAGE, settings: { opt_out: { languages: ['en', 'fr'], stop_words: ['basta'] } } });
    await h.ingest(pageEnvelope(PAGE, [textItem(PAGE, PSID, 'm_1', ' Arrêt! ', 1_768_478_400_000)]));
    let contact = await h.store.db.selectFrom('contacts').selectAll().executeTakeFirstOrThrow();
    expect(contact.opted_out_at).toBe(1_768_478_400_000);
    await h.ingest(pageEnvelope(PAGE, [textItem(PAGE, PSID, 'm_2', 'please do not stop', 1_768_478_401_000)]));
    contact = await h.store.db.selectFrom('contacts').selectAll().executeTakeFirstOrThrow();
    expect(contact.opted_out_at).toBe(1_768_478_400_000);
    await h.ingest(pageEnvelope(PAGE, [textItem(PAGE, PSID, 'm_3', 'start', 1_768_478_402_000)]));
    contact = await h.store.db.selectFrom('contacts').selectAll().executeTakeFirstOrThrow();
    expect(contact.opted_out_at).toBeNull();
    await h.ingest(pageEnvelope(PAGE, [textItem(PAGE, PSID, 'm_4', 'BASTA', 1_768_478_403_000)]));
    contact = await h.store.db.selectFrom('contacts').selectAll().executeTakeFirstOrThrow();
    expect(contact.opted_out_at).toBe(1_768_478_403_000);

    const received = await h.events('message.received');
    expect(received.map((e) => e.data['opt_out'] ?? null)).toEqual(['stop', null, 'start', 'stop']);
    // Every message is still delivered to the business, keyword or not.
    expect(received).toHaveLength(4);
  });

  it('leave opt-out alone when the sender turned keywords off', async () => {
    h = await openHarness(engine, { metaId: PAGE, settings: { opt_out: { enabled: false } } });
    await h.ingest(pageEnvelope(PAGE, [textItem(PAGE, PSID, 'm_1', 'STOP', 1_768_478_400_000)]));
    const contact = await h.store.db.selectFrom('contacts').selectAll().executeTakeFirstOrThrow();
    expect(contact.opted_out_at).toBeNull();
  });

  it('open the 7-day ad window and remember the ad on a first message from a click-to-Messenger ad', async () => {
    h = await openHarness(engine, { metaId: PAGE });
    const at = 1_768_478_400_000;
    const item = { ...textItem(PAGE, PSID, 'm_ad', 'I saw your ad', at) } as Record<string, unknown>;
    (item['message'] as Record<string, unknown>)['referral'] = { ref: 'spring', source: 'ADS', type: 'OPEN_THREAD', ad_id: 120208000000000000 };
    await h.ingest(pageEnvelope(PAGE, [item]));
    const contact = await h.store.db.selectFrom('contacts').selectAll().executeTakeFirstOrThrow();
    expect(contact.ad_window_until).toBe(at + 7 * 24 * 60 * 60 * 1000);
    expect(JSON.parse(contact.refs)).toEqual([{ ref: 'spring', source: 'ADS', type: 'OPEN_THREAD', ad_id: '120208000000000000', at }]);
  });

  it('store attachments Meta hosts with a media id and queue their download with the message', async () => {
    h = await openHarness(engine, { metaId: '404217156637689' });
    const item = JSON.parse(fixture('12_messaging_item_image_attachment.json')) as object;
    await h.ingest(pageEnvelope('404217156637689', [item]));
    const [message] = await h.messages();
    expect(message?.kind).toBe('attachments');
    const content = JSON.parse(message!.content) as { attachments: { type: string; url: string; media_id: string }[] };
    expect(content.attachments[0]).toMatchObject({ type: 'image', url: expect.stringContaining('https://scontent.xx.fbcdn.net/') });
    const mediaId = content.attachments[0]!.media_id;
    expect(mediaId).toMatch(/^med_/);
    const media = await h.store.db.selectFrom('media').selectAll().executeTakeFirstOrThrow();
    expect(media).toMatchObject({ id: mediaId, message_id: message!.id, status: 'pending', origin: 'inbound', source_url: content.attachments[0]!.url });
    const jobs = await h.store.db.selectFrom('jobs').select(['kind', 'payload']).where('kind', '=', 'media.download').execute();
    expect(jobs.map((j) => JSON.parse(j.payload) as unknown)).toEqual([{ media_id: mediaId }]);
    const [event] = await h.events('message.received');
    expect(event!.data).toMatchObject({ message: { content: { attachments: [{ media_id: mediaId }] } } });
  });

  it('keep a malformed body with its error instead of failing the job', async () => {
    h = await openHarness(engine, { metaId: PAGE });
    const result = await h.ingest('{"object":"page","entry":[');
    expect(result.failed).toEqual([]);
    const batch = await h.store.db.selectFrom('inbound_batches').selectAll().where('id', '=', result.batchId).executeTakeFirstOrThrow();
    expect(batch.body).toBe('{"object":"page","entry":[');
    expect(batch.processed_at).not.toBeNull();
    expect(JSON.parse(batch.error!)).toMatchObject({ error: expect.stringContaining('not valid JSON') });
  });

  it('keep every item of an object type the gateway does not route as unroutable', async () => {
    h = await openHarness(engine, { metaId: PAGE });
    const result = await h.ingest({ object: 'whatsapp_business_account', entry: [{ id: PAGE, changes: [{ field: 'messages', value: { x: 1 } }] }] });
    expect(result.unroutable).toBe(1);
    expect(await h.messages()).toHaveLength(0);
    const [row] = await listUnroutable(h.store.db, { limit: 5 });
    expect(row).toMatchObject({ object: 'whatsapp_business_account', entry_id: PAGE });
  });
});

/** A real database fault for one mid: a trigger that refuses the insert. */
async function plantFailure(h: Harness, mid: string): Promise<void> {
  if (h.store.engine === 'sqlite') {
    await sql.raw(`create trigger planted_failure before insert on messages when new.mid = '${mid}' begin select raise(abort, 'planted failure'); end`).execute(h.store.db);
    return;
  }
  await sql.raw(`create function planted_failure() returns trigger language plpgsql as $$ begin if new.mid = '${mid}' then raise exception 'planted failure'; end if; return new; end $$`).execute(h.store.db);
  await sql.raw('create trigger planted_failure before insert on messages for each row execute function planted_failure()').execute(h.store.db);
}

async function removeFailure(h: Harness): Promise<void> {
  if (h.store.engine === 'sqlite') {
    await sql.raw('drop trigger planted_failure').execute(h.store.db);
    return;
  }
  await sql.raw('drop trigger planted_failure on messages').execute(h.store.db);
}
