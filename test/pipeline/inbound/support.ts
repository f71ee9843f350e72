/**
 * The inbound suites' harness: a real store (SQLite or PostgreSQL), the real job queue, event
 * fan-out and Graph client, an account with a connected sender, and a settable clock. Webhook
 * bodies are stored as ingress stores them and processed by the real `inbound.batch` step.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { newId } from '../../../src/domain/ids.js';
import { JobQueue } from '../../../src/jobs/queue.js';
import { GraphClient } from '../../../src/meta/graph.js';
import { UrlGuard } from '../../../src/net/url-guard.js';
import type { PipelineContext } from '../../../src/pipeline/context.js';
import { processInboundBatch } from '../../../src/pipeline/inbound.js';
import type { BatchResult } from '../../../src/pipeline/inbound.js';
import { createAccount } from '../../../src/store/accounts.js';
import type { Engine } from '../../../src/store/db.js';
import { insertInboundBatches } from '../../../src/store/inbound-batches.js';
import { MediaFiles } from '../../../src/store/media-files.js';
import type { AccountRow, EventRow, MessageRow, SenderRow } from '../../../src/store/schema.js';
import { SecretBox } from '../../../src/store/secrets.js';
import { insertSender, newSenderRow } from '../../../src/store/senders.js';
import { openTestStore } from '../../support/db.js';
import { outboundMessageRow } from '../../support/rows.js';
import type { TestStore } from '../../support/db.js';

export const PAGE_TOKEN = 'EAAG-page-token-for-tests';
const FIXTURES = new URL('../../fixtures/meta/', import.meta.url);

/** A fixture exactly as stored (bytes untouched). */
export function fixture(name: string): string {
  return readFileSync(new URL(name, FIXTURES), 'utf8');
}

export interface Harness {
  store: TestStore;
  ctx: PipelineContext;
  account: AccountRow;
  sender: SenderRow;
  clock: { now: number };
  dataDir: string;
  addSender(input: { channel?: 'messenger' | 'instagram'; metaId: string; settings?: unknown; accountId?: string }): Promise<SenderRow>;
  /** Stores the body as ingress does and runs the `inbound.batch` step on it. */
  ingest(body: string | object): Promise<BatchResult & { batchId: number }>;
  events(type?: string): Promise<(EventRow & { data: Record<string, unknown> })[]>;
  messages(): Promise<MessageRow[]>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  graphUrl?: string;
  /** The first sender's Meta id and channel. */
  metaId?: string;
  channel?: 'messenger' | 'instagram';
  settings?: unknown;
  now?: number;
}

export async function openHarness(engine: Engine, options: HarnessOptions = {}): Promise<Harness> {
  const store = await openTestStore(engine);
  const dataDir = mkdtempSync(join(tmpdir(), 'switchboard-media-'));
  const clock = { now: options.now ?? Date.UTC(2026, 0, 15, 12, 0, 0) };
  const secrets = SecretBox.fromString('inbound-test-key');
  const graph = new GraphClient({ baseUrl: options.graphUrl ?? 'http://127.0.0.1:9', version: 'v25.0', appId: '111', appSecret: 'app-secret', timeoutMs: 5000 });
  const ctx: PipelineContext = {
    store,
    queue: new JobQueue(store, { now: () => clock.now }),
    graph,
    secrets,
    logger: pino({ level: 'silent' }),
    urlGuard: new UrlGuard({ allowPrivate: ['loopback'] }),
    media: new MediaFiles(dataDir),
    now: () => clock.now,
    dialogUrl: 'https://www.facebook.com',
    publicUrl: 'https://gateway.test',
  };
  const account = await createAccount(store.db, { name: 'Acme' }, clock.now);

  const addSender: Harness['addSender'] = async (input) => {
    const row: SenderRow = newSenderRow({
      id: newId('snd'),
      account_id: input.accountId ?? account.id,
      channel: input.channel ?? 'messenger',
      meta_id: input.metaId,
      page_id: input.metaId,
      name: 'Test Page',
      token_enc: secrets.seal(PAGE_TOKEN),
      now: clock.now,
      settings: (input.settings ?? {}) as Record<string, unknown>,
    });
    await insertSender(store.db, row);
    return row;
  };
  const sender = await addSender({ metaId: options.metaId ?? '1691462197845448', channel: options.channel ?? 'messenger', settings: options.settings });

  return {
    store,
    ctx,
    account,
    sender,
    clock,
    dataDir,
    addSender,
    async ingest(body) {
      const text = typeof body === 'string' ? body : JSON.stringify(body);
      const [batchId] = await insertInboundBatches(store.db, [text], clock.now);
      if (batchId === undefined) throw new Error('no batch id');
      const result = await processInboundBatch(ctx, batchId);
      return { ...result, batchId };
    },
    async events(type) {
      let q = store.db.selectFrom('events').selectAll().orderBy('id');
      if (type !== undefined) q = q.where('type', '=', type);
      const rows = await q.execute();
      return rows.map((r) => ({ ...r, data: JSON.parse(r.payload) as Record<string, unknown> }));
    },
    async messages() {
      return store.db.selectFrom('messages').selectAll().orderBy('id').execute();
    },
    async close() {
      await graph.close();
      await store.dispose();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A Messenger envelope around items for one Page. */
export function pageEnvelope(pageId: string, items: unknown[], object: 'page' | 'instagram' = 'page'): object {
  return { object, entry: [{ id: pageId, time: 1_768_478_400_000, messaging: items }] };
}

export function textItem(pageId: string, psid: string, mid: string, text: string, timestamp: number): object {
  return { sender: { id: psid }, recipient: { id: pageId }, timestamp, message: { mid, text } };
}

/** A small real HTTP server on 127.0.0.1 for Meta-side endpoints the gateway calls (Graph, CDN). */
export interface LocalServer {
  url: string;
  requests: { method: string; url: string }[];
  close(): Promise<void>;
}

export async function startLocalServer(handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<LocalServer> {
  const requests: { method: string; url: string }[] = [];
  const server: Server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '' });
    handle(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  server.keepAliveTimeout = 1000;
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** An outbound message as the sending side stores it, for the echo and receipt suites. */
export async function insertOutbound(
  h: Harness,
  input: { contactId: string; conversationId: string; status: string; mid?: string | null; sentAt?: number | null; statusCallback?: string | null; raw?: string | null; id?: string },
): Promise<MessageRow> {
  const now = h.clock.now;
  const row = outboundMessageRow({ account_id: h.account.id, sender_id: h.sender.id, contact_id: input.contactId, conversation_id: input.conversationId }, now, {
    id: input.id ?? newId('msg'),
    mid: input.mid ?? null,
    content: JSON.stringify({ text: 'reply' }),
    raw: input.raw ?? null,
    status: input.status,
    status_callback: input.statusCallback ?? null,
    sent_at: input.sentAt ?? null,
  });
  await h.store.db.insertInto('messages').values(row).execute();
  return row;
}

/** Ingests one text message from `psid` and returns its contact and conversation ids. */
export async function seedContact(h: Harness, pageId: string, psid: string, at: number): Promise<{ contactId: string; conversationId: string }> {
  await h.ingest(pageEnvelope(pageId, [textItem(pageId, psid, `m_seed_${psid}_${at}`, 'hello', at)], h.sender.channel === 'instagram' ? 'instagram' : 'page'));
  const contact = await h.store.db.selectFrom('contacts').selectAll().where('psid', '=', psid).where('sender_id', '=', h.sender.id).executeTakeFirstOrThrow();
  const conversation = await h.store.db.selectFrom('conversations').selectAll().where('contact_id', '=', contact.id).executeTakeFirstOrThrow();
  return { contactId: contact.id, conversationId: conversation.id };
}
