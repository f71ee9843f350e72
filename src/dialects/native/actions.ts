/** `POST /v1/senders/{id}/actions`: typing on, typing off and mark seen, sent to Meta at once. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { PipelineContext } from '../../pipeline/context.js';
import { API_SENDER_ACTIONS, sendSenderAction } from '../../pipeline/outbound-actions.js';
import { IdParams, NullableString, commonErrors } from './schemas.js';

const Recipient = Type.Object(
  {
    contact_id: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    psid: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    user_ref: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  },
  { additionalProperties: false, description: 'Exactly one of contact_id, psid or user_ref.' },
);

export function actionRoutes(ctx: PipelineContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.post(
      '/senders/:id/actions',
      {
        schema: {
          tags: ['senders'],
          summary: 'Show typing, stop showing it, or mark the conversation seen',
          description: 'The same contact rules as messages apply (open window; blocked and opted-out contacts refused). Meta errors come back with their gateway code.',
          params: IdParams,
          body: Type.Object(
            { to: Recipient, action: Type.Enum([...API_SENDER_ACTIONS]) },
            { additionalProperties: false },
          ),
          response: {
            200: Type.Object({ sender_id: Type.String(), contact_id: Type.String(), action: Type.String(), recipient_id: NullableString }),
            ...commonErrors,
            422: Type.Ref('Error'),
            429: Type.Ref('Error'),
            502: Type.Ref('Error'),
          },
        },
      },
      async (req) => sendSenderAction(ctx, req.account.id, req.params.id, req.body),
    );
  };
}
