import { EventEmitter } from 'node:events';
import type { EmulatorClock } from './clock.js';
import type { IdFactory } from './ids.js';

/**
 * The emulator's world, in memory. Words as Meta uses them:
 * - app: a Meta app with a secret, a webhook callback and a verify token;
 * - Page: a Facebook Page, owned by one app here, optionally linked to an Instagram account;
 * - person: a human; Meta never shows apps their global id, only scoped ids;
 * - PSID / IGSID: the id one Page (or one Instagram account) sees for a person; they differ per
 *   Page and per Instagram account for the same person;
 * - thread: what one person and one Page (or Instagram account) said to each other;
 * - token: a Page token belongs to (app, Page); a user token to (app, person) and lists the
 *   Pages that person granted.
 */

export type Channel = 'messenger' | 'instagram';

export interface VerificationResult {
  ok: boolean;
  status?: number;
  error?: string;
  at: number;
}

export interface App {
  id: string;
  name: string;
  secret: string;
  verifyToken: string;
  callbackUrl: string | null;
  humanAgent: boolean;
  requireAppsecretProof: boolean;
  verification: VerificationResult | null;
  createdAt: number;
}

export interface InstagramAccount {
  id: string;
  username: string;
  name: string;
  pageId: string;
}

export interface Page {
  id: string;
  name: string;
  appId: string;
  category: string;
  instagram: InstagramAccount | null;
  /** The Page token the control API last handed out; OAuth may issue more. */
  currentToken: string;
  /** App id -> subscribed webhook fields, as set through `subscribed_apps`. */
  subscriptions: Map<string, Set<string>>;
  messengerProfile: Record<Channel, Record<string, unknown>>;
  /** Person ids that blocked this Page. */
  blocked: Set<string>;
  createdAt: number;
}

export interface Person {
  id: string;
  firstName: string;
  lastName: string;
  username: string;
  hiddenProfile: boolean;
  locale: string;
  timezone: number;
  gender: string;
  createdAt: number;
}

export interface ScopedId {
  id: string;
  personId: string;
  pageId: string;
  channel: Channel;
}

export type MessageSender = 'page' | 'user';

export interface ThreadMessage {
  mid: string;
  from: MessageSender;
  timestamp: number;
  text?: string;
  attachment?: Record<string, unknown>;
  attachments?: Array<Record<string, unknown>>;
  quick_replies?: Array<Record<string, unknown>>;
  quick_reply?: { payload: string };
  postback?: { title: string; payload: string };
  reply_to?: { mid: string };
  tag?: string;
  messaging_type?: string;
  metadata?: string;
  app_id?: string;
  persona_id?: string;
  reactions?: Array<{ by: MessageSender; reaction: string; emoji: string }>;
  edits?: number;
  deleted?: boolean;
  delivered?: boolean;
  read?: boolean;
}

export interface Thread {
  key: string;
  pageId: string;
  channel: Channel;
  scopedId: string;
  personId: string;
  messages: ThreadMessage[];
  /** Emulator-clock time of the person's last message, postback, reaction, referral or opt-in. */
  lastUserActivityAt: number | null;
  /** A click-to-Messenger ad opens a 7-day window. */
  adWindowUntil: number | null;
  typing: boolean;
  /** Real time at which Messenger hides the typing indicator by itself. */
  typingUntil: number;
  /** Timestamp of the person's last message the Page marked as seen. */
  pageSeenWatermark: number | null;
  /** Watermarks of the receipts the person's device sent. */
  deliveredWatermark: number | null;
  readWatermark: number | null;
  createdAt: number;
}

export type TokenKind = 'page' | 'user';

export interface TokenRecord {
  token: string;
  kind: TokenKind;
  appId: string;
  pageId?: string;
  personId?: string;
  /** Pages the person granted, for user tokens. */
  pageIds?: string[];
  scopes: string[];
  issuedAt: number;
  /** Emulator-clock expiry in ms; 0 means it never expires. */
  expiresAt: number;
  valid: boolean;
}

export interface StoredAttachment {
  id: string;
  pageId: string;
  type: string;
  url: string;
}

export interface MediaItem {
  id: string;
  filename: string;
  contentType: string;
  bytes: Buffer;
}

export interface OAuthCode {
  code: string;
  appId: string;
  redirectUri: string;
  personId: string;
  pageIds: string[];
  scopes: string[];
  createdAt: number;
  used: boolean;
}

export interface UserRef {
  userRef: string;
  pageId: string;
  ref: string | null;
  optedInAt: number;
  messagesSent: number;
}

export interface NotificationToken {
  token: string;
  pageId: string;
  scopedId: string;
  expiresAt: number;
}

/** Emitted as 'thread' with the thread key whenever a thread changes (the chat page listens). */
export type ThreadListener = (key: string) => void;

export class EmulatorState {
  readonly apps = new Map<string, App>();
  readonly pages = new Map<string, Page>();
  /** Instagram account id -> Page id. */
  readonly instagramAccounts = new Map<string, string>();
  readonly people = new Map<string, Person>();
  readonly scopedIds = new Map<string, ScopedId>();
  /** `${pageId}:${channel}:${personId}` -> scoped id. */
  private readonly scopedByPerson = new Map<string, string>();
  readonly threads = new Map<string, Thread>();
  private readonly threadsPerPage = new Map<string, number>();
  readonly tokens = new Map<string, TokenRecord>();
  readonly attachments = new Map<string, StoredAttachment>();
  readonly media = new Map<string, MediaItem>();
  readonly oauthCodes = new Map<string, OAuthCode>();
  readonly userRefs = new Map<string, UserRef>();
  readonly notificationTokens = new Map<string, NotificationToken>();
  /** The person who logs in through the OAuth dialog: the Pages' admin. */
  adminPersonId: string | null = null;
  private readonly changes = new EventEmitter();

  constructor(
    readonly ids: IdFactory,
    readonly clock: EmulatorClock,
  ) {
    // Every open chat page stream listens; the default cap of 10 would warn for no reason.
    this.changes.setMaxListeners(0);
  }

  clear(): void {
    this.apps.clear();
    this.pages.clear();
    this.instagramAccounts.clear();
    this.people.clear();
    this.scopedIds.clear();
    this.scopedByPerson.clear();
    this.threads.clear();
    this.threadsPerPage.clear();
    this.tokens.clear();
    this.attachments.clear();
    this.media.clear();
    this.oauthCodes.clear();
    this.userRefs.clear();
    this.notificationTokens.clear();
    this.adminPersonId = null;
  }

  onThreadChange(listener: ThreadListener): () => void {
    this.changes.on('thread', listener);
    return () => this.changes.off('thread', listener);
  }

  touchThread(thread: Thread): void {
    this.changes.emit('thread', thread.key);
  }

  issueToken(record: Omit<TokenRecord, 'token' | 'issuedAt' | 'valid'>): TokenRecord {
    const full: TokenRecord = { ...record, token: this.ids.accessToken(), issuedAt: this.clock.now(), valid: true };
    this.tokens.set(full.token, full);
    return full;
  }

  issuePageToken(appId: string, pageId: string, scopes: string[]): TokenRecord {
    return this.issueToken({ kind: 'page', appId, pageId, scopes, expiresAt: 0 });
  }

  /** The Page a Graph path id names: a Page id or its linked Instagram account id. */
  pageForObjectId(id: string): Page | undefined {
    const page = this.pages.get(id);
    if (page) return page;
    const pageId = this.instagramAccounts.get(id);
    return pageId === undefined ? undefined : this.pages.get(pageId);
  }

  /** The scoped id the Page (or its Instagram account) sees for a person; created on first contact. */
  scopedIdFor(personId: string, pageId: string, channel: Channel): ScopedId {
    const key = `${pageId}:${channel}:${personId}`;
    const existing = this.scopedByPerson.get(key);
    if (existing !== undefined) {
      const scoped = this.scopedIds.get(existing);
      if (scoped) return scoped;
    }
    const id = channel === 'instagram' ? this.ids.igsid() : this.ids.psid();
    const scoped: ScopedId = { id, personId, pageId, channel };
    this.scopedIds.set(id, scoped);
    this.scopedByPerson.set(key, id);
    return scoped;
  }

  existingScopedId(personId: string, pageId: string, channel: Channel): ScopedId | undefined {
    const id = this.scopedByPerson.get(`${pageId}:${channel}:${personId}`);
    return id === undefined ? undefined : this.scopedIds.get(id);
  }

  threadKey(pageId: string, scopedId: string): string {
    return `${pageId}:${scopedId}`;
  }

  threadFor(scoped: ScopedId): Thread {
    const key = this.threadKey(scoped.pageId, scoped.id);
    let thread = this.threads.get(key);
    if (!thread) {
      thread = {
        key,
        pageId: scoped.pageId,
        channel: scoped.channel,
        scopedId: scoped.id,
        personId: scoped.personId,
        messages: [],
        lastUserActivityAt: null,
        adWindowUntil: null,
        typing: false,
        typingUntil: 0,
        pageSeenWatermark: null,
        deliveredWatermark: null,
        readWatermark: null,
        createdAt: this.clock.now(),
      };
      this.threads.set(key, thread);
      this.threadsPerPage.set(scoped.pageId, this.threadCount(scoped.pageId) + 1);
    }
    return thread;
  }

  /** How many people have a thread with the Page (Meta's "engaged users"). */
  threadCount(pageId: string): number {
    return this.threadsPerPage.get(pageId) ?? 0;
  }

  existingThread(pageId: string, scopedId: string): Thread | undefined {
    return this.threads.get(this.threadKey(pageId, scopedId));
  }

  adminPerson(): Person {
    if (this.adminPersonId !== null) {
      const admin = this.people.get(this.adminPersonId);
      if (admin) return admin;
    }
    const admin = this.createPerson({ firstName: 'Emulator', lastName: 'Admin' });
    this.adminPersonId = admin.id;
    return admin;
  }

  createPerson(input: {
    id?: string;
    firstName?: string;
    lastName?: string;
    username?: string;
    hiddenProfile?: boolean;
    locale?: string;
    timezone?: number;
    gender?: string;
  }): Person {
    const id = input.id ?? this.ids.userId();
    const firstName = input.firstName ?? pick(FIRST_NAMES);
    const lastName = input.lastName ?? pick(LAST_NAMES);
    const person: Person = {
      id,
      firstName,
      lastName,
      username: input.username ?? `${firstName}.${lastName}`.toLowerCase().replace(/[^a-z0-9._]/g, ''),
      hiddenProfile: input.hiddenProfile ?? false,
      locale: input.locale ?? 'en_US',
      timezone: input.timezone ?? 0,
      gender: input.gender ?? 'unknown',
      createdAt: this.clock.now(),
    };
    this.people.set(id, person);
    return person;
  }
}

const FIRST_NAMES = ['Ada', 'Grace', 'Alan', 'Katherine', 'Linus', 'Margaret', 'Dennis', 'Barbara', 'Ken', 'Frances'];
const LAST_NAMES = ['Lovelace', 'Hopper', 'Turing', 'Johnson', 'Torvalds', 'Hamilton', 'Ritchie', 'Liskov', 'Thompson', 'Allen'];

function pick(list: string[]): string {
  return list[Math.floor(Math.random() * list.length)] ?? 'Sam';
}
