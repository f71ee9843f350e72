import formbody from '@fastify/formbody';
import multipart from '@fastify/multipart';
import type { FastifyInstance } from 'fastify';
import type { EmulatorContext } from '../context.js';
import { graphErrors } from '../errors.js';
import { handleAttachmentUpload } from './attachments.js';
import { handleMessengerProfile } from './messenger-profile.js';
import { handleAccessToken, handleAccounts, handleDebugToken, handleDialog, handleDialogDecision } from './oauth.js';
import { handleObjectGet } from './profile.js';
import { errorAnswer, graphRoute, MAX_ATTACHMENT_BYTES, sendAnswer, setUsageHeaders, type GraphCall } from './route.js';
import { handleSend } from './send.js';
import { handleAppSubscriptions, handleSubscribedApps } from './subscriptions.js';

/** The Graph API subset, under `/{version}/` for any `vNN.N`, plus the login dialog. */
export async function registerGraph(instance: FastifyInstance, ctx: EmulatorContext): Promise<void> {
  await instance.register(formbody);
  await instance.register(multipart, { limits: { fileSize: MAX_ATTACHMENT_BYTES } });
  // Meta reads any body it is given; bodies of other types are parsed (or refused) per route.
  instance.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
  instance.setErrorHandler((error, request, reply) => {
    setUsageHeaders(ctx, reply, null, null);
    sendAnswer(reply, errorAnswer(ctx, error, request));
  });

  const route = (handler: Parameters<typeof graphRoute>[1], options?: { isSend?: boolean }) => graphRoute(ctx, handler, options);
  const methods: Array<'GET' | 'POST' | 'DELETE'> = ['GET', 'POST', 'DELETE'];

  instance.post('/:version/:id/messages', route(handleSend, { isSend: true }));
  instance.post('/:version/:id/message_attachments', route(handleAttachmentUpload));
  instance.route({ method: methods, url: '/:version/:id/subscribed_apps', handler: route(handleSubscribedApps) });
  instance.route({ method: methods, url: '/:version/:id/messenger_profile', handler: route(handleMessengerProfile) });
  instance.route({ method: methods, url: '/:version/:id/subscriptions', handler: route(handleAppSubscriptions) });
  instance.get('/:version/:id/accounts', route(handleAccounts));
  instance.get('/:version/oauth/access_token', route(handleAccessToken));
  instance.get('/:version/debug_token', route(handleDebugToken));
  instance.get('/dialog/oauth', route(handleDialog));
  instance.get('/:version/dialog/oauth', route(handleDialog));
  instance.post('/dialog/oauth/approve', route(handleDialogDecision));
  instance.get('/:version/:id', route(handleObjectGet));
  instance.post('/:version/:id', route(unsupported));
  instance.delete('/:version/:id', route(unsupported));
}

function unsupported(call: GraphCall): never {
  const id = call.pathId ?? '';
  throw call.request.method === 'GET' ? graphErrors.unsupportedGet(id) : graphErrors.unsupportedPost(id);
}
