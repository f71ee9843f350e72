import { graphErrors } from '../errors.js';
import type { Page, Person, ScopedId } from '../state.js';
import { authenticate, type Caller } from './auth.js';
import { json, type GraphAnswer, type GraphCall } from './route.js';

/**
 * `GET /{id}?fields=...`: a person's profile by PSID or IGSID, a Page, an Instagram account,
 * an app, or `me` (the token's Page, person or app).
 */

const MESSENGER_PROFILE_FIELDS = ['id', 'name', 'first_name', 'last_name', 'profile_pic', 'locale', 'timezone', 'gender'];
const INSTAGRAM_PROFILE_FIELDS = [
  'id',
  'name',
  'username',
  'profile_pic',
  'is_verified_user',
  'follower_count',
  'is_user_follow_business',
  'is_business_follow_user',
];
const PAGE_FIELDS = ['id', 'name', 'category', 'instagram_business_account', 'access_token', 'link', 'tasks'];
const INSTAGRAM_ACCOUNT_FIELDS = ['id', 'username', 'name', 'profile_picture_url'];
const PERSON_FIELDS = ['id', 'name', 'first_name', 'last_name'];
const APP_FIELDS = ['id', 'name'];

function requestedFields(call: GraphCall, defaults: string[]): string[] {
  const raw = call.params.fields;
  if (raw === undefined || raw === '') return defaults;
  const list = Array.isArray(raw) ? raw.map(String) : String(raw).split(',');
  return list.map((field) => field.trim()).filter((field) => field.length > 0);
}

function pick(fields: string[], allowed: string[], node: string, value: (field: string) => unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of fields) {
    if (!allowed.includes(field)) throw graphErrors.nonexistingField(field, node);
    const v = value(field);
    if (v !== undefined) out[field] = v;
  }
  if (!('id' in out)) out.id = value('id');
  return out;
}

export function handleObjectGet(call: GraphCall): GraphAnswer {
  const { state } = call.ctx;
  const caller = authenticate(call);
  const id = call.pathId ?? 'me';
  if (id === 'me') {
    if (caller.page) return json(pageFields(call, caller, caller.page));
    if (caller.isAppToken) return json(pick(requestedFields(call, ['id', 'name']), APP_FIELDS, 'Application', (f) => (f === 'id' ? caller.app.id : caller.app.name)));
    const person = caller.token?.personId === undefined ? undefined : state.people.get(caller.token.personId);
    if (!person) throw graphErrors.unsupportedGet(id);
    return json(personFields(call, person));
  }
  const scoped = state.scopedIds.get(id);
  if (scoped) return json(profile(call, caller, scoped));
  const page = state.pages.get(id);
  if (page) return json(pageFields(call, caller, page));
  const igPage = state.pageForObjectId(id);
  if (igPage?.instagram) {
    const ig = igPage.instagram;
    const media = call.ctx.media.avatar(ig.id);
    return json(
      pick(requestedFields(call, ['id', 'username']), INSTAGRAM_ACCOUNT_FIELDS, 'IGUser', (f) =>
        f === 'id' ? ig.id : f === 'username' ? ig.username : f === 'name' ? ig.name : call.ctx.media.url(media, call.ctx.clock.now()),
      ),
    );
  }
  const app = state.apps.get(id);
  if (app) return json(pick(requestedFields(call, ['id', 'name']), APP_FIELDS, 'Application', (f) => (f === 'id' ? app.id : app.name)));
  throw graphErrors.unsupportedGet(id);
}

function profile(call: GraphCall, caller: Caller, scoped: ScopedId): Record<string, unknown> {
  const { state, media, clock } = call.ctx;
  // PSIDs only mean something to their own Page.
  if (!caller.page || caller.page.id !== scoped.pageId) throw graphErrors.unsupportedGet(scoped.id);
  const person = state.people.get(scoped.personId);
  if (!person) throw graphErrors.unsupportedGet(scoped.id);
  if (scoped.channel === 'instagram') {
    const thread = state.existingThread(scoped.pageId, scoped.id);
    // Instagram shares a profile only after the person wrote to the account.
    if (!thread?.messages.some((m) => m.from === 'user')) throw graphErrors.userConsentRequired();
    if (person.hiddenProfile) throw graphErrors.noProfile().forInstagram();
    const fields = requestedFields(call, ['name', 'username', 'profile_pic']);
    return pick(fields, INSTAGRAM_PROFILE_FIELDS, 'User', (field) => {
      switch (field) {
        case 'id':
          return scoped.id;
        case 'name':
          return `${person.firstName} ${person.lastName}`;
        case 'username':
          return person.username;
        case 'profile_pic':
          return media.url(media.avatar(person.id), clock.now());
        case 'is_verified_user':
          return false;
        case 'follower_count':
          return 0;
        default:
          return false;
      }
    });
  }
  if (person.hiddenProfile) throw graphErrors.noProfile();
  const fields = requestedFields(call, ['first_name', 'last_name', 'profile_pic']);
  return pick(fields, MESSENGER_PROFILE_FIELDS, 'User', (field) => personField(call, person, scoped.id, field));
}

function personField(call: GraphCall, person: Person, id: string, field: string): unknown {
  const { media, clock } = call.ctx;
  switch (field) {
    case 'id':
      return id;
    case 'name':
      return `${person.firstName} ${person.lastName}`;
    case 'first_name':
      return person.firstName;
    case 'last_name':
      return person.lastName;
    case 'profile_pic':
      return media.url(media.avatar(person.id), clock.now());
    case 'locale':
      return person.locale;
    case 'timezone':
      return person.timezone;
    case 'gender':
      return person.gender;
    default:
      return undefined;
  }
}

function personFields(call: GraphCall, person: Person): Record<string, unknown> {
  return pick(requestedFields(call, ['id', 'name']), PERSON_FIELDS, 'User', (field) => personField(call, person, person.id, field));
}

function pageFields(call: GraphCall, caller: Caller, page: Page): Record<string, unknown> {
  const grantedByUser = caller.token?.kind === 'user' && (caller.token.pageIds ?? []).includes(page.id);
  const ownPage = caller.page?.id === page.id;
  if (ownPage || grantedByUser) call.account.pageId = page.id;
  return pick(requestedFields(call, ['name', 'id']), PAGE_FIELDS, 'Page', (field) => {
    switch (field) {
      case 'id':
        return page.id;
      case 'name':
        return page.name;
      case 'category':
        return page.category;
      case 'link':
        return `https://www.facebook.com/${page.id}`;
      case 'tasks':
        return grantedByUser ? ['ADVERTISE', 'ANALYZE', 'CREATE_CONTENT', 'MESSAGING', 'MODERATE', 'MANAGE'] : undefined;
      case 'instagram_business_account':
        if (!(ownPage || grantedByUser || caller.isAppToken)) return undefined;
        return page.instagram ? { id: page.instagram.id } : undefined;
      case 'access_token': {
        if (!grantedByUser || !caller.token) return undefined;
        return pageTokenFor(call, caller.token.appId, page, caller.token.scopes);
      }
      default:
        return undefined;
    }
  });
}

/** The Page token a person's grant yields: the Page's current one for this app, or a new one. */
export function pageTokenFor(call: GraphCall, appId: string, page: Page, scopes: string[]): string {
  const { state } = call.ctx;
  const current = state.tokens.get(page.currentToken);
  if (current && current.valid && current.appId === appId) return current.token;
  const issued = state.issuePageToken(appId, page.id, scopes);
  page.currentToken = issued.token;
  return issued.token;
}
