import { GatewayError } from './errors.js';
import type { Channel, MessagingType, SenderHealth } from './glossary.js';
import { MESSAGING_TYPES } from './glossary.js';
import { dayStartUtc, tagStateAt } from './tags.js';

/**
 * The one policy module: may this sender message this contact now, and how? Pure: it takes the
 * facts (times in epoch ms) and answers. It runs when the API accepts a message and again just
 * before the send, so a window that closed while the message queued is still caught.
 */

const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;

/** 24 h after the person's last message or interaction (message, postback, reaction, referral, opt-in). Source: Messenger Platform docs, "Messaging window". */
export const STANDARD_WINDOW_MS = 24 * HOUR_MS;
/** HUMAN_AGENT: a human may answer up to 7 days after the last message. Source: Messenger Platform docs, "Message Tags" > HUMAN_AGENT. */
export const HUMAN_AGENT_WINDOW_MS = 7 * DAY_MS;
/** A first message from a click-to-Messenger ad opens a window of up to 7 days. Source: Messenger Platform docs, "Click to Messenger ads". */
export const AD_WINDOW_MS = 7 * DAY_MS;
/** A checkbox opt-in (`user_ref`) may be answered once, within 24 h. Source: Messenger Platform docs, "Checkbox plugin". */
export const USER_REF_WINDOW_MS = 24 * HOUR_MS;

/** The facts about a contact the policy needs. */
export interface ContactPolicyState {
  /** Last message or interaction from the person (epoch ms); null when they never wrote. */
  last_inbound_at: number | null;
  /** End of the 7-day window opened by a first message from an ad (see `adWindowUntil`). */
  ad_window_until?: number | null;
  /** When Meta reported the person blocked the Page. */
  blocked_at: number | null;
  /** When the person sent a stop word. Only a start word clears it. */
  opted_out_at: number | null;
  /** When Meta reported the person unavailable (551). */
  unreachable_at?: number | null;
  /** The send goes to a checkbox `user_ref` (no PSID yet); `last_inbound_at` is then the opt-in time. */
  has_user_ref?: boolean;
  /** When the one message a `user_ref` allows was sent. */
  user_ref_used_at?: number | null;
}

export interface WindowState {
  /** Whether a standard message (RESPONSE, UPDATE) may be sent now. */
  open: boolean;
  /** When the standard window closes (or closed); null when the person never wrote. */
  open_until: number | null;
  /** When the 7-day HUMAN_AGENT window closes (or closed); null when the person never wrote. */
  human_agent_until: number | null;
}

/** End of the ad window for a first message from a click-to-Messenger ad received at `at`. */
export function adWindowUntil(at: number): number {
  return at + AD_WINDOW_MS;
}

export function windowState(contact: ContactPolicyState, now: number): WindowState {
  const last = contact.last_inbound_at;
  if (contact.has_user_ref === true) {
    // A user_ref opens no HUMAN_AGENT window: the person has not written, they ticked a box.
    const until = last === null ? null : last + USER_REF_WINDOW_MS;
    return { open: until !== null && now < until, open_until: until, human_agent_until: null };
  }
  const standard = last === null ? null : last + STANDARD_WINDOW_MS;
  const ad = contact.ad_window_until ?? null;
  const openUntil = standard === null ? ad : ad === null ? standard : Math.max(standard, ad);
  return {
    open: openUntil !== null && now < openUntil,
    open_until: openUntil,
    human_agent_until: last === null ? null : last + HUMAN_AGENT_WINDOW_MS,
  };
}

export interface SenderPolicyState {
  health: SenderHealth;
  /** Whether the sender may use HUMAN_AGENT (the app holds Meta's Human Agent permission). */
  human_agent: boolean;
  /** Paused by Meta (error 368) or an operator. */
  paused?: boolean;
}

export interface SendPolicyInput {
  now: number;
  channel: Channel;
  sender: SenderPolicyState;
  contact: ContactPolicyState;
  messaging_type?: string | null;
  tag?: string | null;
  /** typing_on/typing_off/mark_seen/react: no message, but the same contact rules. */
  is_sender_action?: boolean;
  /** The template type of the message, when it is one (CUSTOMER_FEEDBACK needs `customer_feedback`). */
  template_type?: string | null;
  /** The one confirmation sent after a stop word may reach a contact who just opted out. */
  is_opt_out_confirmation?: boolean;
}

export type SendPolicyResult =
  | { ok: true; messaging_type: MessagingType; tag: string | null; window: WindowState }
  | { ok: false; error: GatewayError; window: WindowState };

function refuse(window: WindowState, error: GatewayError): SendPolicyResult {
  return { ok: false, error, window };
}

/** A later message from the person shows they can be reached again. */
function stillApplies(markedAt: number | null | undefined, lastInbound: number | null): boolean {
  if (markedAt === null || markedAt === undefined) return false;
  return lastInbound === null || lastInbound <= markedAt;
}

function windowClosed(window: WindowState, contact: ContactPolicyState, sender: SenderPolicyState, now: number): GatewayError {
  const humanAgentOpen = window.human_agent_until !== null && now < window.human_agent_until;
  return new GatewayError('WINDOW_CLOSED', {
    closed_at: window.open_until,
    last_inbound_at: contact.last_inbound_at,
    human_agent_until: humanAgentOpen ? window.human_agent_until : undefined,
    human_agent_allowed: humanAgentOpen ? sender.human_agent : undefined,
    reason: contact.last_inbound_at === null ? 'the contact has never written to this sender' : undefined,
  });
}

export function checkSendPolicy(input: SendPolicyInput): SendPolicyResult {
  const { now, channel, sender, contact } = input;
  const window = windowState(contact, now);

  // The sender first: nothing leaves a sender Meta will refuse anyway.
  if (sender.health === 'disconnected') return refuse(window, new GatewayError('SENDER_DISCONNECTED'));
  if (sender.health === 'reauth_required') {
    return refuse(window, new GatewayError('SENDER_REAUTH_REQUIRED', { health: sender.health }));
  }
  if (sender.paused === true) return refuse(window, new GatewayError('SENDER_PAUSED'));

  // Then the person: blocked and opted-out contacts get nothing, sender actions included.
  if (stillApplies(contact.blocked_at, contact.last_inbound_at)) {
    return refuse(window, new GatewayError('CONTACT_BLOCKED', { blocked_at: contact.blocked_at }));
  }
  if (contact.opted_out_at !== null && input.is_opt_out_confirmation !== true) {
    return refuse(window, new GatewayError('CONTACT_OPTED_OUT', { opted_out_at: contact.opted_out_at }));
  }
  if (stillApplies(contact.unreachable_at, contact.last_inbound_at)) {
    return refuse(window, new GatewayError('CONTACT_UNREACHABLE', { unreachable_at: contact.unreachable_at }));
  }

  const rawType = input.messaging_type ?? null;
  if (rawType !== null && !(MESSAGING_TYPES as readonly string[]).includes(rawType)) {
    return refuse(
      window,
      new GatewayError('VALIDATION_FAILED', {
        field: 'messaging_type',
        reason: `messaging_type must be one of ${MESSAGING_TYPES.join(', ')}`,
      }),
    );
  }
  const tag = input.tag === null || input.tag === undefined || input.tag === '' ? null : input.tag.toUpperCase();

  if (input.is_sender_action === true) {
    // Sender actions carry no tag: they need the standard window.
    if (!window.open) return refuse(window, windowClosed(window, contact, sender, now));
    return { ok: true, messaging_type: 'RESPONSE', tag: null, window };
  }

  if (contact.has_user_ref === true) {
    if (contact.user_ref_used_at !== null && contact.user_ref_used_at !== undefined) {
      return refuse(window, new GatewayError('USER_REF_ALREADY_USED', { used_at: contact.user_ref_used_at }));
    }
    if (tag !== null) {
      return refuse(
        window,
        new GatewayError('TAG_NOT_ALLOWED', { tag, reason: 'a checkbox opt-in is answered within 24 hours, without a tag' }),
      );
    }
    if (!window.open) return refuse(window, windowClosed(window, contact, sender, now));
    return { ok: true, messaging_type: asMessagingType(rawType) ?? 'RESPONSE', tag: null, window };
  }

  if (tag === null) {
    if (rawType === 'MESSAGE_TAG') return refuse(window, new GatewayError('TAG_REQUIRED', { field: 'tag' }));
    // Outside the window only tagged messages may go (utility and marketing messages need their own opt-ins).
    if (!window.open) return refuse(window, windowClosed(window, contact, sender, now));
    return { ok: true, messaging_type: asMessagingType(rawType) ?? 'RESPONSE', tag: null, window };
  }

  if (rawType !== null && rawType !== 'MESSAGE_TAG') {
    return refuse(
      window,
      new GatewayError('VALIDATION_FAILED', {
        field: 'messaging_type',
        reason: 'a message with a tag must have messaging_type MESSAGE_TAG (or leave it out)',
      }),
    );
  }

  const state = tagStateAt(tag, now);
  if (state.state === 'unknown') {
    return refuse(window, new GatewayError('TAG_NOT_ALLOWED', { tag, reason: 'Meta has no such message tag' }));
  }
  if (state.state === 'retired') {
    return refuse(
      window,
      new GatewayError('TAG_RETIRED', {
        tag,
        retired_on: state.retired_on,
        retired_at: dayStartUtc(state.retired_on),
      }),
    );
  }
  const rule = state.rule;
  if (!rule.channels.includes(channel)) {
    return refuse(
      window,
      new GatewayError('TAG_NOT_ALLOWED', {
        tag,
        channel,
        reason: channel === 'instagram' ? 'Instagram accepts only HUMAN_AGENT' : `${channel} does not accept this tag`,
      }),
    );
  }

  const last = contact.last_inbound_at;
  if (rule.requires === 'human_agent_permission') {
    if (!sender.human_agent) {
      return refuse(
        window,
        new GatewayError('HUMAN_AGENT_NOT_ALLOWED', {
          tag,
          open_until: window.open ? window.open_until : undefined,
        }),
      );
    }
    if (last === null || rule.window_ms === null || now >= last + rule.window_ms) {
      return refuse(
        window,
        new GatewayError('HUMAN_AGENT_WINDOW_CLOSED', {
          tag,
          closed_at: window.human_agent_until,
          last_inbound_at: last,
        }),
      );
    }
    return { ok: true, messaging_type: 'MESSAGE_TAG', tag, window };
  }

  if (rule.requires === 'feedback_template' && input.template_type !== 'customer_feedback') {
    return refuse(
      window,
      new GatewayError('TAG_NOT_ALLOWED', { tag, reason: 'CUSTOMER_FEEDBACK is only for the customer feedback template' }),
    );
  }
  if (rule.window_ms !== null && (last === null || now >= last + rule.window_ms)) {
    return refuse(
      window,
      new GatewayError('WINDOW_CLOSED', {
        tag,
        closed_at: last === null ? null : last + rule.window_ms,
        last_inbound_at: last,
      }),
    );
  }
  return { ok: true, messaging_type: 'MESSAGE_TAG', tag, window };
}

function asMessagingType(value: string | null): MessagingType | null {
  return value !== null && (MESSAGING_TYPES as readonly string[]).includes(value) ? (value as MessagingType) : null;
}
