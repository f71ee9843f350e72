import type { EmulatorClock } from './clock.js';
import type { FaultRegistry } from './faults.js';
import type { IdFactory } from './ids.js';
import type { MediaLibrary } from './media.js';
import type { ResolvedOptions } from './options.js';
import type { EmulatorState } from './state.js';
import type { TimerSet } from './timers.js';
import type { UsageMeter } from './usage.js';
import type { WebhookDispatcher } from './webhooks.js';

/** Everything one running emulator is made of, handed to the route modules. */
export interface EmulatorContext {
  options: ResolvedOptions;
  clock: EmulatorClock;
  ids: IdFactory;
  state: EmulatorState;
  webhooks: WebhookDispatcher;
  faults: FaultRegistry;
  usage: UsageMeter;
  media: MediaLibrary;
  timers: TimerSet;
  /** Aborted when the emulator closes, so waits (fault latency) end at once. */
  closing: AbortSignal;
  /** The emulator's own base URL, e.g. http://127.0.0.1:4000 (known once it listens). */
  baseUrl(): string;
}
