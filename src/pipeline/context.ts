/** What every use case needs, assembled once by `src/server.ts` and passed down. */
import type { Logger } from 'pino';
import type { GraphClient } from '../meta/graph.js';
import type { Store } from '../store/db.js';
import type { SecretBox } from '../store/secrets.js';
import type { JobQueue } from '../jobs/queue.js';
import type { UrlGuard } from '../net/url-guard.js';
import type { MediaFiles } from '../store/media-files.js';

export interface PipelineContext {
  store: Store;
  queue: JobQueue;
  graph: GraphClient;
  secrets: SecretBox;
  logger: Logger;
  /** Checks callback and media URLs against private address ranges (unless the operator allows them). */
  urlGuard: UrlGuard;
  /** Bytes of inbound and uploaded media, under the data directory. */
  media: MediaFiles;
  /** The clock; tests and the emulator's clock offset never touch Date.now directly. */
  now(): number;
  /** Base URL of the Facebook Login dialog (Meta's, or the emulator's in development). */
  dialogUrl: string;
  /** The gateway's own public base URL (for media links in events). */
  publicUrl: string;
}
