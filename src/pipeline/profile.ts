/**
 * Profile enrichment (`profile.fetch` jobs): a contact's name, picture and locale from the Graph
 * API, in its own job so it never holds up the message that created the contact.
 * - cached: a profile fetched within `PROFILE_TTL_MS` (a day) is not fetched again;
 * - paced: jobs are keyed per sender (one fetch at a time per Page); a rate-limit answer, or usage
 *   headers near the limit, reschedule the job without counting a failure;
 * - truthful: Meta's 2018218 ("no profile available") marks the profile `hidden` and every name
 *   stays null; the gateway never makes one up.
 * Messenger asks for `locale` too, which needs an approved permission; when Meta refuses the field
 * the basic fields are asked for alone.
 */
import type { JsonObject } from '../domain/glossary.js';
import type { JobHandler } from '../jobs/job.js';
import { RetryableJobError } from '../jobs/job.js';
import { classifyMetaError, retryDelayMs } from '../meta/errors.js';
import { MetaApiError, MetaTransportError } from '../meta/graph.js';
import { getContactById, updateContactProfile } from '../store/contacts.js';
import type { ContactProfileUpdate } from '../store/contacts.js';
import type { SenderRow } from '../store/schema.js';
import { getSenderById } from '../store/senders.js';
import type { PipelineContext } from './context.js';
import { PROFILE_TTL_MS } from './inbound-contacts.js';
import type { ProfileFetchPayload } from './inbound-contacts.js';

export const MESSENGER_PROFILE_FIELDS_WITH_LOCALE = ['first_name', 'last_name', 'profile_pic', 'locale'] as const;
export const MESSENGER_PROFILE_FIELDS_BASIC = ['first_name', 'last_name', 'profile_pic'] as const;
export const INSTAGRAM_PROFILE_FIELDS = ['name', 'username', 'profile_pic'] as const;

/** Meta's "no profile available for this person": normal for many people, not a fault. */
const NO_PROFILE_SUBCODE = 2018218;
// Above this share of a usage quota, profiles wait: sends matter more than names.
const USAGE_BACKOFF_PERCENT = 90;
// Wait at least a minute when usage is high: Meta's usage percentages are computed over an hour.
const USAGE_BACKOFF_MIN_MS = 60_000;

export type ProfileOutcome = 'fetched' | 'hidden' | 'cached' | 'skipped' | 'failed' | { retryAt: number };

function text(profile: JsonObject, key: string): string | null {
  const value = profile[key];
  return typeof value === 'string' && value !== '' ? value : null;
}

/** A field Meta will not give this app (not approved, or unknown on this version). */
function fieldRefused(err: MetaApiError): boolean {
  if (err.subcode === NO_PROFILE_SUBCODE) return false;
  return err.code === 100 || (err.code !== null && err.code >= 200 && err.code < 300);
}

async function fetchFields(ctx: PipelineContext, sender: SenderRow, psid: string, token: string): Promise<ContactProfileUpdate> {
  if (sender.channel === 'instagram') {
    const p = await ctx.graph.getProfile(psid, token, INSTAGRAM_PROFILE_FIELDS, sender.page_id);
    return { profile_status: 'fetched', name: text(p, 'name'), username: text(p, 'username'), profile_pic: text(p, 'profile_pic') };
  }
  let p: JsonObject;
  let locale = true;
  try {
    p = await ctx.graph.getProfile(psid, token, MESSENGER_PROFILE_FIELDS_WITH_LOCALE, sender.page_id);
  } catch (err) {
    if (!(err instanceof MetaApiError) || !fieldRefused(err)) throw err;
    locale = false;
    p = await ctx.graph.getProfile(psid, token, MESSENGER_PROFILE_FIELDS_BASIC, sender.page_id);
  }
  const first = text(p, 'first_name');
  const last = text(p, 'last_name');
  const joined = [first, last].filter((s): s is string => s !== null).join(' ');
  return {
    profile_status: 'fetched',
    first_name: first,
    last_name: last,
    name: text(p, 'name') ?? (joined === '' ? null : joined),
    profile_pic: text(p, 'profile_pic'),
    ...(locale ? { locale: text(p, 'locale') } : {}),
  };
}

const HIDDEN: ContactProfileUpdate = {
  profile_status: 'hidden',
  name: null,
  first_name: null,
  last_name: null,
  username: null,
  profile_pic: null,
  locale: null,
};

/**
 * Fetches and stores one contact's profile. `attempt` is the job's try number (for backoff);
 * `lastAttempt` marks the profile `failed` when a retryable error ends the job's tries.
 */
export async function fetchContactProfile(
  ctx: PipelineContext,
  contactId: string,
  opts: { attempt?: number; lastAttempt?: boolean } = {},
): Promise<ProfileOutcome> {
  const db = ctx.store.db;
  const contact = await getContactById(db, contactId);
  if (!contact || contact.psid === null) return 'skipped';
  const now = ctx.now();
  if (contact.profile_status !== 'pending' && contact.profile_fetched_at !== null && now - contact.profile_fetched_at < PROFILE_TTL_MS) {
    return 'cached';
  }
  const sender = await getSenderById(db, contact.sender_id);
  if (!sender || sender.health === 'disconnected') return 'skipped';

  const usage = ctx.graph.usageFor(sender.page_id);
  if (usage && usage.maxPercent >= USAGE_BACKOFF_PERCENT) {
    return { retryAt: now + Math.max(USAGE_BACKOFF_MIN_MS, usage.regainAccessMinutes * 60_000) };
  }

  let update: ContactProfileUpdate;
  try {
    update = await fetchFields(ctx, sender, contact.psid, ctx.secrets.open(sender.token_enc));
  } catch (err) {
    if (err instanceof MetaApiError && err.subcode === NO_PROFILE_SUBCODE) {
      await updateContactProfile(db, contact.id, { ...HIDDEN, profile_fetched_at: ctx.now() }, ctx.now());
      return 'hidden';
    }
    const failed = async () => updateContactProfile(db, contact.id, { profile_status: 'failed', profile_fetched_at: ctx.now() }, ctx.now());
    if (err instanceof MetaApiError) {
      const cls = classifyMetaError(err);
      if (cls.backoff === 'rate_limit') return { retryAt: ctx.now() + retryDelayMs(cls, opts.attempt ?? 1, { usage: err.usage }) };
      if (!cls.retryable) {
        // Refused for good (token, permission): try again after the TTL rather than now.
        ctx.logger.warn({ account: sender.account_id, sender: sender.id, contact: contact.id, code: err.code, subcode: err.subcode }, 'profile fetch refused by Meta');
        await failed();
        return 'failed';
      }
    } else if (!(err instanceof MetaTransportError)) {
      throw err;
    }
    if (opts.lastAttempt) await failed();
    throw new RetryableJobError(`profile fetch failed: ${(err as Error).message}`, { cause: err });
  }
  await updateContactProfile(db, contact.id, { ...update, profile_fetched_at: ctx.now() }, ctx.now());
  return 'fetched';
}

export function profileFetchHandler(ctx: PipelineContext): JobHandler {
  return async (job) => {
    const payload = (typeof job.payload === 'string' ? JSON.parse(job.payload) : job.payload) as ProfileFetchPayload;
    const outcome = await fetchContactProfile(ctx, payload.contact_id, { attempt: job.attempts, lastAttempt: job.attempts >= job.maxAttempts });
    if (typeof outcome === 'object') return outcome;
  };
}
