import type { Channel } from './glossary.js';

/**
 * Meta's message tags as data with dates. A tag lets a Page message a person outside the 24-hour
 * window for one narrow purpose. Tags stop working on given days, so their fate is data here,
 * never a branch in code: when Meta retires another tag, add its date below.
 */

const DAY_MS = 24 * 60 * 60 * 1000;

export type TagRequirement =
  /** The app needs Meta's Human Agent permission (App Review); the sender setting `human_agent` says so. */
  | 'human_agent_permission'
  /** The message must be the customer feedback template. */
  | 'feedback_template';

export interface TagRule {
  tag: string;
  /** Channels that accept the tag. */
  channels: readonly Channel[];
  /** How long after the person's last message the tag may be used. */
  window_ms: number | null;
  /** First day (UTC, `YYYY-MM-DD`) on which Meta refuses the tag; absent while it works. */
  retired_on?: string;
  requires?: TagRequirement;
  why: string;
  source: string;
}

const RETIRED_2020 = '2020-03-04';
const RETIRED_2020_WHY = 'Meta removed the tag when it narrowed tags to four use cases.';
const RETIRED_2020_SOURCE = 'Messenger Platform changelog, "message tags" changes effective 2020-03-04';

function retired2020(tag: string): TagRule {
  return {
    tag,
    channels: ['messenger'],
    window_ms: null,
    retired_on: RETIRED_2020,
    why: RETIRED_2020_WHY,
    source: RETIRED_2020_SOURCE,
  };
}

export const MESSAGE_TAGS: readonly TagRule[] = [
  {
    tag: 'HUMAN_AGENT',
    channels: ['messenger', 'instagram'],
    // 7 days: a human agent may answer a person's question for a week after their last message.
    window_ms: 7 * DAY_MS,
    requires: 'human_agent_permission',
    why: 'Lets a person (not automation) answer within 7 days; needs the Human Agent permission. The only tag Instagram accepts.',
    source: 'Messenger Platform docs, "Message Tags" > HUMAN_AGENT; Instagram Messaging docs, "Human Agent"',
  },
  {
    tag: 'ACCOUNT_UPDATE',
    channels: ['messenger'],
    window_ms: null,
    // Usable until 2026-04-26; from 2026-04-27 every request with the tag fails with error 100.
    retired_on: '2026-04-27',
    why: 'Non-recurring account changes; Meta retires it in favour of utility messages.',
    source: 'Messenger Platform docs, "Message Tags" deprecation notice (usable until 2026-04-26)',
  },
  {
    tag: 'CONFIRMED_EVENT_UPDATE',
    channels: ['messenger'],
    window_ms: null,
    // Usable until 2026-04-26; from 2026-04-27 every request with the tag fails with error 100.
    retired_on: '2026-04-27',
    why: 'Reminders for an event the person registered for; Meta retires it in favour of utility messages.',
    source: 'Messenger Platform docs, "Message Tags" deprecation notice (usable until 2026-04-26)',
  },
  {
    tag: 'POST_PURCHASE_UPDATE',
    channels: ['messenger'],
    window_ms: null,
    // Usable until 2026-04-26; from 2026-04-27 every request with the tag fails with error 100.
    retired_on: '2026-04-27',
    why: 'Updates about a purchase; Meta retires it in favour of utility messages.',
    source: 'Messenger Platform docs, "Message Tags" deprecation notice (usable until 2026-04-26)',
  },
  {
    tag: 'CUSTOMER_FEEDBACK',
    channels: ['messenger'],
    // 7 days after the last message, and only with the customer feedback template.
    window_ms: 7 * DAY_MS,
    requires: 'feedback_template',
    why: "Asks for feedback with Meta's customer feedback template within 7 days (status after April 2026 unconfirmed).",
    source: 'Messenger Platform docs, "Customer Feedback Template"',
  },
  retired2020('SHIPPING_UPDATE'),
  retired2020('ISSUE_RESOLUTION'),
  retired2020('NON_PROMOTIONAL_SUBSCRIPTION'),
  retired2020('RESERVATION_UPDATE'),
  retired2020('APPOINTMENT_UPDATE'),
  retired2020('GAME_EVENT'),
  retired2020('TRANSPORTATION_UPDATE'),
  retired2020('FEATURE_FUNCTIONALITY_UPDATE'),
  retired2020('TICKET_UPDATE'),
  retired2020('PAYMENT_UPDATE'),
  retired2020('PERSONAL_FINANCE_UPDATE'),
  retired2020('PAIRING_UPDATE'),
  retired2020('APPLICATION_UPDATE'),
  retired2020('COMMUNITY_ALERT'),
];

const BY_NAME = new Map(MESSAGE_TAGS.map((rule) => [rule.tag, rule]));

export function findTag(tag: string): TagRule | undefined {
  return BY_NAME.get(tag.toUpperCase());
}

/** Midnight UTC at the start of a `YYYY-MM-DD` day, in epoch ms. */
export function dayStartUtc(day: string): number {
  return Date.parse(`${day}T00:00:00.000Z`);
}

export type TagState =
  | { state: 'usable'; rule: TagRule }
  | { state: 'retired'; rule: TagRule; retired_on: string }
  | { state: 'unknown' };

/** Whether a tag works at `now` (epoch ms). Retirement days start at midnight UTC. */
export function tagStateAt(tag: string, now: number): TagState {
  const rule = findTag(tag);
  if (!rule) return { state: 'unknown' };
  if (rule.retired_on !== undefined && now >= dayStartUtc(rule.retired_on)) {
    return { state: 'retired', rule, retired_on: rule.retired_on };
  }
  return { state: 'usable', rule };
}

/** The tags that work at `now` on a channel. */
export function usableTags(channel: Channel, now: number): string[] {
  return MESSAGE_TAGS.filter((rule) => rule.channels.includes(channel))
    .filter((rule) => tagStateAt(rule.tag, now).state === 'usable')
    .map((rule) => rule.tag);
}
