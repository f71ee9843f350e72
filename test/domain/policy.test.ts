import { describe, expect, it } from 'vitest';
import type { ContactPolicyState, SendPolicyInput } from '../../src/domain/policy.js';
import { adWindowUntil, checkSendPolicy, windowState } from '../../src/domain/policy.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

const LAST = Date.parse('2026-03-01T12:00:00Z');

function contact(over: Partial<ContactPolicyState> = {}): ContactPolicyState {
  return { last_inbound_at: LAST, blocked_at: null, opted_out_at: null, ...over };
}

function check(over: Partial<SendPolicyInput> = {}) {
  return checkSendPolicy({
    now: LAST + HOUR,
    channel: 'messenger',
    sender: { health: 'active', human_agent: false },
    contact: contact(),
    ...over,
  });
}

function refusal(result: ReturnType<typeof checkSendPolicy>) {
  if (result.ok) throw new Error(`expected a refusal, got ${JSON.stringify(result)}`);
  return result.error;
}

describe('the standard 24-hour window', () => {
  it('allows any message 23 h 59 min after the last inbound message, as RESPONSE by default', () => {
    const result = check({ now: LAST + 24 * HOUR - MIN });
    expect(result).toMatchObject({ ok: true, messaging_type: 'RESPONSE', tag: null });
  });

  it('keeps the messaging_type the caller chose inside the window', () => {
    expect(check({ messaging_type: 'UPDATE' })).toMatchObject({ ok: true, messaging_type: 'UPDATE' });
  });

  it('refuses 24 h 1 min later with WINDOW_CLOSED saying when it closed and until when HUMAN_AGENT would work', () => {
    const error = refusal(check({ now: LAST + 24 * HOUR + MIN }));
    expect(error.code).toBe('WINDOW_CLOSED');
    expect(error.status).toBe(422);
    expect(error.details).toMatchObject({
      closed_at: LAST + 24 * HOUR,
      last_inbound_at: LAST,
      human_agent_until: LAST + 7 * DAY,
      human_agent_allowed: false,
    });
    expect(error.message).toContain('2026-03-02T12:00:00.000Z');
  });

  it('closes at exactly 24 h (the boundary belongs to the closed side)', () => {
    expect(refusal(check({ now: LAST + 24 * HOUR })).code).toBe('WINDOW_CLOSED');
  });

  it('refuses a contact who never wrote, saying so', () => {
    const error = refusal(check({ contact: contact({ last_inbound_at: null }) }));
    expect(error.code).toBe('WINDOW_CLOSED');
    expect(error.details['reason']).toMatch(/never written/);
  });

  it('refuses an unknown messaging_type as a validation error', () => {
    const error = refusal(check({ messaging_type: 'PROMOTION' }));
    expect(error.code).toBe('VALIDATION_FAILED');
    expect(error.details['field']).toBe('messaging_type');
  });
});

describe('windowState', () => {
  it('reports open, open_until and human_agent_until from the last inbound message', () => {
    expect(windowState(contact(), LAST + HOUR)).toEqual({
      open: true,
      open_until: LAST + DAY,
      human_agent_until: LAST + 7 * DAY,
    });
    expect(windowState(contact(), LAST + 2 * DAY).open).toBe(false);
  });

  it('extends the standard window to 7 days after a first message from an ad', () => {
    const state = contact({ ad_window_until: adWindowUntil(LAST) });
    expect(windowState(state, LAST + 6 * DAY)).toMatchObject({ open: true, open_until: LAST + 7 * DAY });
    expect(check({ contact: state, now: LAST + 6 * DAY })).toMatchObject({ ok: true, messaging_type: 'RESPONSE' });
    expect(refusal(check({ contact: state, now: LAST + 7 * DAY + MIN })).code).toBe('WINDOW_CLOSED');
  });

  it('has nothing open when the person never wrote', () => {
    expect(windowState(contact({ last_inbound_at: null }), LAST)).toEqual({
      open: false,
      open_until: null,
      human_agent_until: null,
    });
  });
});

describe('HUMAN_AGENT', () => {
  const allowed = { health: 'active' as const, human_agent: true };

  it('works on day 6 where the sender is allowed it, as MESSAGE_TAG', () => {
    const result = check({ sender: allowed, tag: 'HUMAN_AGENT', now: LAST + 6 * DAY });
    expect(result).toMatchObject({ ok: true, messaging_type: 'MESSAGE_TAG', tag: 'HUMAN_AGENT' });
  });

  it('works one minute before day 7 ends and not one minute after', () => {
    expect(check({ sender: allowed, tag: 'HUMAN_AGENT', now: LAST + 7 * DAY - MIN }).ok).toBe(true);
    const error = refusal(check({ sender: allowed, tag: 'HUMAN_AGENT', now: LAST + 7 * DAY + MIN }));
    expect(error.code).toBe('HUMAN_AGENT_WINDOW_CLOSED');
    expect(error.details).toMatchObject({ closed_at: LAST + 7 * DAY });
  });

  it('is refused with HUMAN_AGENT_NOT_ALLOWED where the sender lacks the permission, even inside 24 h', () => {
    expect(refusal(check({ tag: 'HUMAN_AGENT', now: LAST + 2 * DAY })).code).toBe('HUMAN_AGENT_NOT_ALLOWED');
    expect(refusal(check({ tag: 'HUMAN_AGENT', now: LAST + HOUR })).code).toBe('HUMAN_AGENT_NOT_ALLOWED');
  });

  it('accepts the tag in lower case', () => {
    expect(check({ sender: allowed, tag: 'human_agent', now: LAST + 2 * DAY })).toMatchObject({ ok: true, tag: 'HUMAN_AGENT' });
  });

  it('reports human_agent_allowed in WINDOW_CLOSED so the caller knows whether to retry with the tag', () => {
    const error = refusal(check({ sender: allowed, now: LAST + 2 * DAY }));
    expect(error.details).toMatchObject({ human_agent_allowed: true, human_agent_until: LAST + 7 * DAY });
  });

  it('is the only tag Instagram accepts', () => {
    expect(check({ channel: 'instagram', sender: allowed, tag: 'HUMAN_AGENT', now: LAST + 3 * DAY }).ok).toBe(true);
    const error = refusal(check({ channel: 'instagram', tag: 'ACCOUNT_UPDATE', now: Date.parse('2026-04-01T00:00:00Z') }));
    expect(error.code).toBe('TAG_NOT_ALLOWED');
    expect(error.details['reason']).toMatch(/Instagram accepts only HUMAN_AGENT/);
  });

  it('refuses an Instagram message outside 24 h without a tag', () => {
    expect(refusal(check({ channel: 'instagram', sender: allowed, now: LAST + 2 * DAY })).code).toBe('WINDOW_CLOSED');
  });
});

describe('tags retired on 2026-04-27', () => {
  for (const tag of ['ACCOUNT_UPDATE', 'CONFIRMED_EVENT_UPDATE', 'POST_PURCHASE_UPDATE']) {
    it(`${tag} works outside the window on 2026-04-26 23:59 UTC`, () => {
      const now = Date.parse('2026-04-26T23:59:00Z');
      const result = check({ tag, now, contact: contact({ last_inbound_at: now - 30 * DAY }) });
      expect(result).toMatchObject({ ok: true, messaging_type: 'MESSAGE_TAG', tag });
    });

    it(`${tag} is refused with TAG_RETIRED from 2026-04-27 00:00 UTC, even inside the window`, () => {
      const now = Date.parse('2026-04-27T00:00:00Z');
      const error = refusal(check({ tag, now, contact: contact({ last_inbound_at: now - HOUR }) }));
      expect(error.code).toBe('TAG_RETIRED');
      expect(error.details).toMatchObject({ tag, retired_on: '2026-04-27', retired_at: now });
    });
  }

  it('refuses the tags removed in 2020 at any time', () => {
    const error = refusal(check({ tag: 'SHIPPING_UPDATE', now: Date.parse('2021-01-01T00:00:00Z') }));
    expect(error.code).toBe('TAG_RETIRED');
    expect(error.details['retired_on']).toBe('2020-03-04');
  });
});

describe('other tag rules', () => {
  it('refuses a tag Meta never had with TAG_NOT_ALLOWED', () => {
    const error = refusal(check({ tag: 'BIRTHDAY_GREETING' }));
    expect(error.code).toBe('TAG_NOT_ALLOWED');
  });

  it('needs a tag when messaging_type is MESSAGE_TAG', () => {
    expect(refusal(check({ messaging_type: 'MESSAGE_TAG' })).code).toBe('TAG_REQUIRED');
  });

  it('refuses a tag with a messaging_type other than MESSAGE_TAG', () => {
    const error = refusal(check({ messaging_type: 'RESPONSE', tag: 'HUMAN_AGENT', sender: { health: 'active', human_agent: true } }));
    expect(error.code).toBe('VALIDATION_FAILED');
  });

  it('allows CUSTOMER_FEEDBACK within 7 days only with the feedback template', () => {
    const now = LAST + 3 * DAY;
    expect(check({ tag: 'CUSTOMER_FEEDBACK', template_type: 'customer_feedback', now }).ok).toBe(true);
    expect(refusal(check({ tag: 'CUSTOMER_FEEDBACK', template_type: 'button', now })).code).toBe('TAG_NOT_ALLOWED');
    expect(refusal(check({ tag: 'CUSTOMER_FEEDBACK', template_type: 'customer_feedback', now: LAST + 8 * DAY })).code).toBe('WINDOW_CLOSED');
  });
});

describe('senders', () => {
  it('refuses a sender that needs reauthorisation', () => {
    expect(refusal(check({ sender: { health: 'reauth_required', human_agent: true } })).code).toBe('SENDER_REAUTH_REQUIRED');
  });

  it('refuses a disconnected sender', () => {
    expect(refusal(check({ sender: { health: 'disconnected', human_agent: true } })).code).toBe('SENDER_DISCONNECTED');
  });

  it('refuses a paused sender', () => {
    expect(refusal(check({ sender: { health: 'active', human_agent: false, paused: true } })).code).toBe('SENDER_PAUSED');
  });

  it('lets a degraded sender send (Meta trouble that may pass)', () => {
    expect(check({ sender: { health: 'degraded', human_agent: false } }).ok).toBe(true);
  });
});

describe('contacts', () => {
  it('refuses a contact who blocked the Page, sender actions too', () => {
    const blocked = contact({ blocked_at: LAST + MIN });
    expect(refusal(check({ contact: blocked, now: LAST + 2 * MIN })).code).toBe('CONTACT_BLOCKED');
    expect(refusal(check({ contact: blocked, now: LAST + 2 * MIN, is_sender_action: true })).code).toBe('CONTACT_BLOCKED');
  });

  it('treats a message after the block as proof the person can be reached again', () => {
    expect(check({ contact: contact({ blocked_at: LAST - HOUR }) }).ok).toBe(true);
  });

  it('refuses an opted-out contact, sender actions too, until a start word clears it', () => {
    const optedOut = contact({ opted_out_at: LAST });
    expect(refusal(check({ contact: optedOut })).code).toBe('CONTACT_OPTED_OUT');
    expect(refusal(check({ contact: optedOut, is_sender_action: true })).code).toBe('CONTACT_OPTED_OUT');
  });

  it('lets the one opt-out confirmation through', () => {
    expect(check({ contact: contact({ opted_out_at: LAST }), is_opt_out_confirmation: true }).ok).toBe(true);
  });

  it('refuses a contact Meta reported unavailable until they write again', () => {
    expect(refusal(check({ contact: contact({ unreachable_at: LAST + MIN }), now: LAST + 2 * MIN })).code).toBe('CONTACT_UNREACHABLE');
    expect(check({ contact: contact({ unreachable_at: LAST - MIN }) }).ok).toBe(true);
  });
});

describe('sender actions', () => {
  it('are allowed inside the window', () => {
    expect(check({ is_sender_action: true }).ok).toBe(true);
  });

  it('are refused outside the window (they cannot carry a tag)', () => {
    expect(refusal(check({ is_sender_action: true, now: LAST + 2 * DAY, sender: { health: 'active', human_agent: true } })).code).toBe('WINDOW_CLOSED');
  });
});

describe('checkbox opt-ins (user_ref)', () => {
  const optin = contact({ has_user_ref: true, last_inbound_at: LAST });

  it('allow one message within 24 h of the opt-in', () => {
    expect(check({ contact: optin, now: LAST + 23 * HOUR })).toMatchObject({ ok: true, messaging_type: 'RESPONSE' });
  });

  it('refuse a second message', () => {
    const used = { ...optin, user_ref_used_at: LAST + MIN };
    expect(refusal(check({ contact: used, now: LAST + HOUR })).code).toBe('USER_REF_ALREADY_USED');
  });

  it('refuse after 24 h, and HUMAN_AGENT does not extend it', () => {
    expect(refusal(check({ contact: optin, now: LAST + 25 * HOUR })).code).toBe('WINDOW_CLOSED');
    const error = refusal(check({ contact: optin, now: LAST + 2 * HOUR, tag: 'HUMAN_AGENT', sender: { health: 'active', human_agent: true } }));
    expect(error.code).toBe('TAG_NOT_ALLOWED');
  });
});
