import Fastify, { type FastifyInstance } from 'fastify';
import { chatPageHtml } from './chat-page.js';
import type { EmulatorContext } from './context.js';
import { registerControl } from './control.js';
import { graphErrors } from './errors.js';
import { registerGraph } from './graph/routes.js';
import { sendAnswer, setUsageHeaders } from './graph/route.js';

// Attachments may be 25 MB; multipart and JSON bodies get a little headroom above that.
const BODY_LIMIT_BYTES = 32 * 1024 * 1024;
const GRAPH_PATH = /^\/v\d+\.\d+(\/|$)/;

export async function buildServer(ctx: EmulatorContext): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    bodyLimit: BODY_LIMIT_BYTES,
    // Open chat streams and withheld responses must not keep close() waiting.
    forceCloseConnections: true,
    // Meta ids and tokens are long; the default 100-character parameter limit is too small.
    routerOptions: { maxParamLength: 500 },
  });

  await app.register(async (control) => registerControl(control, ctx));
  await app.register(async (graph) => registerGraph(graph, ctx));

  app.get('/', async (_request, reply) => {
    const html = await chatPageHtml();
    return reply.header('content-type', 'text/html; charset=utf-8').header('cache-control', 'no-store').send(html);
  });

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? request.url;
    if (GRAPH_PATH.test(path)) {
      const rest = path.replace(/^\/v\d+\.\d+/, '');
      setUsageHeaders(ctx, reply, null, null);
      sendAnswer(reply, { kind: 'json', status: 400, body: graphErrors.unknownPath(rest || '/').body() });
      return;
    }
    void reply.status(404).send({ error: { code: 'not_found', message: `${request.method} ${path} is not a route of the emulator` } });
  });

  return app;
}
