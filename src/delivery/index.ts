/**
 * Event delivery to the business's endpoints: formats, signing, sending, retry, fallback and
 * disabling. The server mounts `deliveryJobHandlers(ctx)` in its job runner; the pipeline emits
 * events through `emitEvent` (re-exported by `src/pipeline/events.ts`).
 */
import type { JobHandler } from '../jobs/job.js';
import { createDeliverer } from './deliver.js';
import type { DeliveryContext, DeliveryOptions } from './deliver.js';
import { DELIVER_JOB } from './fanout.js';

export { createDeliverer, DEFAULT_DISABLE_AFTER_MS } from './deliver.js';
export type { Deliverer, DeliveryContext, DeliveryOptions } from './deliver.js';
export { DeliveryClient } from './http.js';
export type { AttemptResult } from './http.js';
export { DELIVER_JOB, emitEvent } from './fanout.js';
export type { NewEvent } from './fanout.js';
export { formatNames, getFormat, registerFormat } from './formats/index.js';
export type { DeliveryFormat, FormatInput, OutgoingRequest } from './formats/index.js';

/** The job handlers this module owns: `deliver`. */
export function deliveryJobHandlers(ctx: DeliveryContext, options: DeliveryOptions = {}): Record<string, JobHandler> {
  return { [DELIVER_JOB]: createDeliverer(ctx, options).handler };
}
