import { graphErrors } from '../errors.js';
import type { Channel } from '../state.js';
import { authenticate, pageFromPath } from './auth.js';
import { decodeParam, json, type GraphAnswer, type GraphCall } from './route.js';

/** The Messenger Profile API: Get Started button, greeting, persistent menu, ice breakers. */

export const PROFILE_PROPERTIES = [
  'get_started',
  'greeting',
  'persistent_menu',
  'ice_breakers',
  'whitelisted_domains',
  'account_linking_url',
  'home_url',
  'commands',
  'title',
  'description',
] as const;

// Greeting text is limited to 160 characters.
const MAX_GREETING_CHARS = 160;
// A Get Started payload is a postback payload: up to 1000 characters.
const MAX_PAYLOAD_CHARS = 1000;

function platformOf(call: GraphCall): Channel {
  return call.params.platform === 'instagram' ? 'instagram' : 'messenger';
}

function fieldsParam(value: unknown): string[] {
  const decoded = decodeParam(value, 'fields');
  if (Array.isArray(decoded)) return decoded.map(String);
  if (typeof decoded === 'string') return decoded.split(',').map((f) => f.trim()).filter(Boolean);
  return [];
}

function checkProperty(name: string): void {
  if (!(PROFILE_PROPERTIES as readonly string[]).includes(name)) {
    throw graphErrors.invalidParam(`Param fields must be one of {${PROFILE_PROPERTIES.join(', ')}} - got "${name}"`);
  }
}

export function handleMessengerProfile(call: GraphCall): GraphAnswer {
  const method = call.request.method as 'GET' | 'POST' | 'DELETE';
  const caller = authenticate(call);
  const page = pageFromPath(call, caller, method);
  const profile = page.messengerProfile[platformOf(call)];

  if (method === 'GET') {
    const fields = fieldsParam(call.params.fields);
    if (fields.length === 0) throw graphErrors.requiredParam('fields');
    fields.forEach(checkProperty);
    const found: Record<string, unknown> = {};
    for (const field of fields) if (profile[field] !== undefined) found[field] = profile[field];
    return json({ data: Object.keys(found).length > 0 ? [found] : [] });
  }

  if (method === 'DELETE') {
    const fields = fieldsParam(call.params.fields);
    if (fields.length === 0) throw graphErrors.requiredParam('fields');
    fields.forEach(checkProperty);
    if (fields.includes('get_started') && profile.persistent_menu !== undefined && !fields.includes('persistent_menu')) {
      throw graphErrors.invalidParam('You must delete the persistent menu before deleting the Get Started button.');
    }
    for (const field of fields) delete profile[field];
    return json({ result: 'success' });
  }

  const updates: Record<string, unknown> = {};
  for (const [key, raw] of Object.entries(call.params)) {
    if (key === 'access_token' || key === 'appsecret_proof' || key === 'platform') continue;
    checkProperty(key);
    updates[key] = decodeParam(raw, key);
  }
  if (Object.keys(updates).length === 0) throw graphErrors.invalidParam('Must set at least one Messenger Profile property');
  const getStarted = updates.get_started;
  if (getStarted !== undefined) {
    const payload = (getStarted as { payload?: unknown } | null)?.payload;
    if (typeof payload !== 'string' || payload.length === 0 || payload.length > MAX_PAYLOAD_CHARS) {
      throw graphErrors.invalidParam('param get_started[payload] must be a non-empty string of at most 1000 characters');
    }
  }
  if (updates.greeting !== undefined) {
    const greeting = updates.greeting;
    const valid =
      Array.isArray(greeting) &&
      greeting.every(
        (g: unknown) =>
          typeof g === 'object' &&
          g !== null &&
          typeof (g as { locale?: unknown }).locale === 'string' &&
          typeof (g as { text?: unknown }).text === 'string' &&
          (g as { text: string }).text.length <= MAX_GREETING_CHARS,
      );
    if (!valid) throw graphErrors.invalidParam(`param greeting must be a list of {locale, text} with text up to ${MAX_GREETING_CHARS} characters`);
  }
  if (updates.persistent_menu !== undefined) {
    if (!Array.isArray(updates.persistent_menu)) throw graphErrors.invalidParam('param persistent_menu must be an array');
    if (platformOf(call) === 'messenger' && profile.get_started === undefined && updates.get_started === undefined) {
      throw graphErrors.invalidParam('You must set a Get Started button if you also wish to use persistent menu.');
    }
  }
  if (updates.ice_breakers !== undefined && !Array.isArray(updates.ice_breakers)) {
    throw graphErrors.invalidParam('param ice_breakers must be an array');
  }
  Object.assign(profile, updates);
  return json({ result: 'success' });
}
