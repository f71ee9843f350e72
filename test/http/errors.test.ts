import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../src/domain/errors.js';
import { installErrorHandling } from '../../src/http/errors.js';

describe('error answers', () => {
  it('carry Retry-After in whole seconds when the error says when to come back, and not otherwise', async () => {
    const app = Fastify();
    installErrorHandling(app);
    app.get('/paced', async () => {
      throw new GatewayError('RATE_LIMITED', { retry_after_ms: 1_500 });
    });
    app.get('/refused', async () => {
      throw new GatewayError('VALIDATION_FAILED', { reason: 'no', field: 'x' });
    });
    const paced = await app.inject({ method: 'GET', url: '/paced' });
    expect(paced.statusCode).toBe(429);
    expect(paced.headers['retry-after']).toBe('2');
    expect(paced.json()).toMatchObject({ error: { code: 'RATE_LIMITED', details: { retry_after_ms: 1_500 } } });
    const refused = await app.inject({ method: 'GET', url: '/refused' });
    expect(refused.statusCode).toBe(400);
    expect(refused.headers['retry-after']).toBeUndefined();
    await app.close();
  });
});
