import { describe, expect, it } from 'vitest';
import { endpointWants } from '../../src/domain/events.js';
import { EVENT_TYPES } from '../../src/domain/glossary.js';

describe("an endpoint's event filter", () => {
  it('lets every event type through when it is absent, empty or "*"', () => {
    for (const type of EVENT_TYPES) {
      expect(endpointWants(undefined, type)).toBe(true);
      expect(endpointWants(null, type)).toBe(true);
      expect(endpointWants([], type)).toBe(true);
      expect(endpointWants(['*'], type)).toBe(true);
    }
  });

  it('lets only the listed types through otherwise', () => {
    expect(endpointWants(['message.received', 'message.status'], 'message.status')).toBe(true);
    expect(endpointWants(['message.received'], 'message.echo')).toBe(false);
    expect(endpointWants(['message.received'], 'raw')).toBe(false);
  });
});
