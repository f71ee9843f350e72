import { Writable } from 'node:stream';
import Fastify from 'fastify';
import type { FastifyBaseLogger, FastifyServerOptions } from 'fastify';
import type { Logger } from 'pino';
import { describe, expect, it } from 'vitest';
import { createLogger, requestLoggerFactory } from '../../src/logger.js';

function capture(): { stream: Writable; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return { stream, lines: () => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

async function app(level: string) {
  const out = capture();
  const logger = createLogger(level, out.stream);
  const fastify = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    disableRequestLogging: true,
    childLoggerFactory: requestLoggerFactory as unknown as NonNullable<FastifyServerOptions['childLoggerFactory']>,
  });
  fastify.get('/warn', async (request) => {
    request.log.warn({ token: 'EAAB-secret', page: 'p1' }, 'something to see');
    return 'ok';
  });
  fastify.get('/quiet', { logLevel: 'warn' }, async (request) => {
    request.log.info('not at this route level');
    request.log.error('but this one');
    return 'ok';
  });
  fastify.get('/child', async (request) => {
    request.log.child({ job: 'j1' }).info('from a child');
    return { enabled: (request.log as unknown as Logger).isLevelEnabled('debug'), level: request.log.level };
  });
  return { fastify, lines: out.lines };
}

describe('request loggers made on first write', () => {
  it('write with the request id, the service and redaction, like a pino child', async () => {
    const { fastify, lines } = await app('info');
    const res = await fastify.inject({ method: 'GET', url: '/warn' });
    expect(res.statusCode).toBe(200);
    const line = lines().find((l) => l['msg'] === 'something to see');
    expect(line).toMatchObject({ level: 40, service: 'switchboard', page: 'p1', token: '[redacted]' });
    expect(typeof line?.['reqId']).toBe('string');
    await fastify.close();
  });

  it('honour a route log level and write nothing below it', async () => {
    const { fastify, lines } = await app('info');
    await fastify.inject({ method: 'GET', url: '/quiet' });
    const msgs = lines().map((l) => l['msg']);
    expect(msgs).toContain('but this one');
    expect(msgs).not.toContain('not at this route level');
    await fastify.close();
  });

  it('answer for their level and make children that carry the request id', async () => {
    const { fastify, lines } = await app('info');
    const res = await fastify.inject({ method: 'GET', url: '/child' });
    expect(res.json()).toEqual({ enabled: false, level: 'info' });
    const line = lines().find((l) => l['msg'] === 'from a child');
    expect(line).toMatchObject({ job: 'j1', service: 'switchboard' });
    expect(typeof line?.['reqId']).toBe('string');
    await fastify.close();
  });

  it('write nothing when the logger is silent and the route sets no level', async () => {
    const { fastify, lines } = await app('silent');
    await fastify.inject({ method: 'GET', url: '/warn' });
    await fastify.inject({ method: 'GET', url: '/child' });
    expect(lines()).toEqual([]);
    await fastify.close();
  });
});
