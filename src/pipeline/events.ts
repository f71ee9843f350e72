/**
 * Events: the pipeline's way to tell the business something happened. `emitEvent` stores the
 * event and fans it out to the account's endpoints in the caller's transaction (see
 * `src/delivery/fanout.ts`); the rest is what the native routes need to manage endpoints and to
 * send events again. Events flow from the pipeline into delivery, so this module is the one door.
 */
export { emitEvent } from '../delivery/fanout.js';
export type { NewEvent } from '../delivery/fanout.js';
export {
  accountSigningEndpoint,
  createEndpoint,
  PREVIOUS_SECRET_GRACE_MS,
  rotateSecret,
  syncSenderEndpoints,
} from '../delivery/endpoints.js';
export type { EndpointInput, SenderCallbackSettings } from '../delivery/endpoints.js';
export { MAX_REPLAY_EVENTS, redeliverEvent, replayEndpoint } from '../delivery/replay.js';
export type { ReplayResult } from '../delivery/replay.js';
export { checkFormatName, formatNames } from '../delivery/formats/index.js';
