import type { Logger } from "pino";
import type { AuditSink } from "../audit/audit-log.js";
import type { CallerDirectory } from "../auth/caller-directory.js";
import type { ServeConfig } from "../config/serve-config.js";
import type { Ambient } from "../core/lifecycle.js";
import type { ReadCache } from "../store/read-cache.js";
import type { Closers } from "./closers.js";
import type { OwnListeners } from "./forwarding.js";
import type { DaemonProviders } from "./providers.js";

/** What the metadata listeners are started with. */
export interface MetadataDeps {
  config: ServeConfig;
  providers: DaemonProviders;
  callers: CallerDirectory;
  reads: ReadCache;
  ambient: Ambient;
  log: Logger;
  audit: AuditSink;
  /** Each listener started is closed by what is pushed here. */
  closers: Closers;
  /** Each listener started is recorded here (ForwardRequest never reaches them). */
  own: OwnListeners;
}
