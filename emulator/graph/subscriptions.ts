import { GraphError, graphErrors } from '../errors.js';
import { authenticate, pageFromPath } from './auth.js';
import { json, type GraphAnswer, type GraphCall } from './route.js';

/**
 * Webhook subscriptions: a Page's `subscribed_apps` (which app gets which fields for that Page)
 * and an app's `subscriptions` (its callback URL and verify token, checked by the handshake).
 */

export const WEBHOOK_FIELDS = [
  'messages',
  'message_echoes',
  'message_deliveries',
  'message_reads',
  'messaging_postbacks',
  'messaging_optins',
  'messaging_referrals',
  'message_reactions',
  'message_edits',
  'messaging_handovers',
  'messaging_policy_enforcement',
  'messaging_account_linking',
  'messaging_seen',
  'messaging_game_plays',
  'messaging_customer_information',
  'response_feedback',
  'standby',
  'inbox_labels',
  'feed',
] as const;

function fieldList(value: unknown): string[] | undefined {
  if (value === undefined) return undefined;
  if (Array.isArray(value)) return value.map(String).map((f) => f.trim()).filter(Boolean);
  const text = String(value).trim();
  if (text.startsWith('[')) {
    try {
      const parsed: unknown = JSON.parse(text);
      if (Array.isArray(parsed)) return parsed.map(String);
    } catch {
      throw graphErrors.invalidParam('param subscribed_fields must be a list of fields');
    }
  }
  return text.split(',').map((f) => f.trim()).filter(Boolean);
}

export function handleSubscribedApps(call: GraphCall): GraphAnswer {
  const { state } = call.ctx;
  const method = call.request.method as 'GET' | 'POST' | 'DELETE';
  const caller = authenticate(call);
  const page = pageFromPath(call, caller, method);
  if (method === 'GET') {
    const data = [...page.subscriptions.entries()].map(([appId, fields]) => {
      const app = state.apps.get(appId);
      return {
        category: 'Business',
        link: `https://www.facebook.com/apps/${appId}`,
        name: app?.name ?? appId,
        id: appId,
        subscribed_fields: [...fields],
      };
    });
    return json({ data });
  }
  if (method === 'DELETE') {
    page.subscriptions.delete(caller.app.id);
    call.ctx.options.logger(`subscribed_apps: app ${caller.app.id} unsubscribed from page ${page.id}`);
    return json({ success: true });
  }
  const fields = fieldList(call.params.subscribed_fields);
  if (fields === undefined || fields.length === 0) throw graphErrors.requiredParam('subscribed_fields');
  for (const field of fields) {
    if (!(WEBHOOK_FIELDS as readonly string[]).includes(field)) {
      throw graphErrors.invalidParam(`Param subscribed_fields must be one of {${WEBHOOK_FIELDS.join(', ')}} - got "${field}"`);
    }
  }
  page.subscriptions.set(caller.app.id, new Set(fields));
  call.ctx.options.logger(`subscribed_apps: app ${caller.app.id} subscribed to page ${page.id}: ${fields.join(',')}`);
  return json({ success: true });
}

/** `/{app-id}/subscriptions` with an app token: where the app's webhooks go. */
export async function handleAppSubscriptions(call: GraphCall): Promise<GraphAnswer> {
  const { state, webhooks } = call.ctx;
  const caller = authenticate(call);
  const appId = call.pathId ?? '';
  const app = state.apps.get(appId);
  if (!app) throw graphErrors.unsupportedGet(appId);
  if (!caller.isAppToken || caller.app.id !== app.id) {
    throw new GraphError(400, 15, '(#15) This method must be called with an app access_token.');
  }
  const method = call.request.method;
  if (method === 'GET') {
    const data = app.callbackUrl
      ? [
          {
            object: 'page',
            callback_url: app.callbackUrl,
            active: true,
            fields: WEBHOOK_FIELDS.map((name) => ({ name, version: call.version })),
          },
        ]
      : [];
    return json({ data });
  }
  if (method === 'DELETE') {
    app.callbackUrl = null;
    return json({ success: true });
  }
  const callbackUrl = call.params.callback_url;
  if (typeof callbackUrl !== 'string' || callbackUrl.length === 0) throw graphErrors.requiredParam('callback_url');
  const object = call.params.object ?? 'page';
  if (object !== 'page' && object !== 'instagram') throw graphErrors.invalidParam('param object must be one of {page, instagram}');
  const verifyToken = typeof call.params.verify_token === 'string' ? call.params.verify_token : app.verifyToken;
  const result = await webhooks.verify({ ...app, callbackUrl, verifyToken });
  if (!result.ok) {
    throw new GraphError(
      400,
      2200,
      `(#2200) callback verification failed: ${result.error ?? 'unknown error'}`,
    );
  }
  app.callbackUrl = callbackUrl;
  app.verifyToken = verifyToken;
  app.verification = result;
  return json({ success: true });
}
