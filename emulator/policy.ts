import { type GraphError, graphErrors } from './errors.js';
import type { App, Channel, Thread } from './state.js';

/**
 * Meta's rules for when a Page may message a person: the 24-hour window, message tags with the
 * dates they stop working, and HUMAN_AGENT's 7 days for apps that hold the permission.
 */

const HOUR_MS = 60 * 60 * 1000;
// Standard messaging window: 24 h after the person's last message or interaction.
export const STANDARD_WINDOW_MS = 24 * HOUR_MS;
// HUMAN_AGENT lets a human answer up to 7 days after the person's last message.
export const HUMAN_AGENT_WINDOW_MS = 7 * 24 * HOUR_MS;
// A thread opened from a click-to-Messenger ad may be answered for 7 days.
export const AD_WINDOW_MS = 7 * 24 * HOUR_MS;
// CUSTOMER_FEEDBACK: the feedback template only, within 7 days of the last message.
export const CUSTOMER_FEEDBACK_WINDOW_MS = 7 * 24 * HOUR_MS;
// Meta retired ACCOUNT_UPDATE, CONFIRMED_EVENT_UPDATE and POST_PURCHASE_UPDATE on 2026-04-27
// (taken as 00:00 UTC); from then every request carrying one fails with error 100.
export const UPDATE_TAGS_RETIRED_AT = Date.UTC(2026, 3, 27);

export const MESSAGING_TYPES = ['RESPONSE', 'UPDATE', 'MESSAGE_TAG', 'UTILITY'] as const;

/** The tags that still exist, and until when (epoch ms, null for no end). */
export const CURRENT_TAGS: Record<string, { until: number | null }> = {
  HUMAN_AGENT: { until: null },
  CUSTOMER_FEEDBACK: { until: null },
  ACCOUNT_UPDATE: { until: UPDATE_TAGS_RETIRED_AT },
  CONFIRMED_EVENT_UPDATE: { until: UPDATE_TAGS_RETIRED_AT },
  POST_PURCHASE_UPDATE: { until: UPDATE_TAGS_RETIRED_AT },
};

// Removed on 2020-03-04; Meta answers error 100 for each.
export const TAGS_REMOVED_IN_2020 = [
  'BUSINESS_PRODUCTIVITY',
  'COMMUNITY_ALERT',
  'APPLICATION_UPDATE',
  'FEATURE_FUNCTIONALITY_UPDATE',
  'GAME_EVENT',
  'ISSUE_RESOLUTION',
  'NON_PROMOTIONAL_SUBSCRIPTION',
  'PAIRING_UPDATE',
  'PAYMENT_UPDATE',
  'PERSONAL_FINANCE_UPDATE',
  'RESERVATION_UPDATE',
  'SHIPPING_UPDATE',
  'TICKET_UPDATE',
  'TRANSPORTATION_UPDATE',
  'APPOINTMENT_UPDATE',
];

export interface PolicyInput {
  channel: Channel;
  messagingType: string;
  tag: string | undefined;
  templateType: string | undefined;
  thread: Thread | undefined;
  app: App;
  now: number;
}

/** Null when the message may go out; otherwise the error Meta answers. */
export function checkPolicy(input: PolicyInput): GraphError | null {
  const { channel, tag, thread, app, now } = input;
  // Made only when answered: an Error captures its stack trace, a cost every allowed send would pay.
  const windowError = (): GraphError => (channel === 'instagram' ? graphErrors.outsideWindowInstagram() : graphErrors.outsideWindow());
  const sinceLast = thread?.lastUserActivityAt == null ? Number.POSITIVE_INFINITY : now - thread.lastUserActivityAt;
  const inStandardWindow = sinceLast <= STANDARD_WINDOW_MS || (thread?.adWindowUntil != null && now <= thread.adWindowUntil);

  if (tag !== undefined) {
    if (channel === 'instagram' && tag !== 'HUMAN_AGENT') {
      return graphErrors.invalidParam(`Param tag must be HUMAN_AGENT for Instagram messages, got "${tag}"`).forInstagram();
    }
    if (TAGS_REMOVED_IN_2020.includes(tag)) {
      return graphErrors.invalidParam(`Message tag ${tag} is no longer supported`);
    }
    const rule = CURRENT_TAGS[tag];
    if (!rule) {
      return graphErrors.invalidParam(`Param tag must be one of {${Object.keys(CURRENT_TAGS).join(', ')}} - got "${tag}"`);
    }
    if (rule.until !== null && now >= rule.until) {
      return graphErrors.invalidParam(`Message tag ${tag} is no longer supported`);
    }
    switch (tag) {
      case 'HUMAN_AGENT': {
        // Without the Human Agent permission the tag extends nothing: the standard window applies.
        const limit = app.humanAgent ? HUMAN_AGENT_WINDOW_MS : STANDARD_WINDOW_MS;
        return sinceLast <= limit || inStandardWindow ? null : windowError();
      }
      case 'CUSTOMER_FEEDBACK':
        if (input.templateType !== 'customer_feedback') {
          return graphErrors.invalidParam('Tag CUSTOMER_FEEDBACK may only be used with the customer feedback template');
        }
        return sinceLast <= CUSTOMER_FEEDBACK_WINDOW_MS ? null : windowError();
      default:
        // The update tags may reach a person who wrote before, at any time, until they retire.
        return thread?.lastUserActivityAt == null ? windowError() : null;
    }
  }
  if (input.messagingType === 'MESSAGE_TAG') {
    return graphErrors.invalidParam('Param tag is required when messaging_type is MESSAGE_TAG');
  }
  return inStandardWindow ? null : windowError();
}
