import path from "node:path";
import type { Logger } from "pino";
import { loadConfigFile } from "../config/config-file.js";
import { declaredCredentials } from "../config/declared.js";
import { declaredCallers, reconcileCallers } from "../config/declared-callers.js";
import { ConfigInvalid } from "../config/problems.js";
import { type ReconcileResult, reconcile } from "../config/reconcile.js";
import type { ServeConfig } from "../config/serve-config.js";
import type { Ambient } from "../core/lifecycle.js";
import type { DaemonStore } from "./open-store.js";

export interface ReloadDeps {
  config: ServeConfig;
  store: DaemonStore;
  ambient: Ambient;
  log: Logger;
  /** A credential changed: drop what was derived from it. */
  changed(credentialId: string): void;
  callersChanged(): void;
}

/** Re-reads the config file's [[credentials]] and [[callers]] and reconciles them (at start, on SIGHUP). */
export function reloader({
  config,
  store,
  ambient,
  log,
  changed,
  callersChanged,
}: ReloadDeps): () => Promise<ReconcileResult | undefined> {
  return async () => {
    const file = config.configFile;
    if (file === undefined) return undefined;
    const parsed = await loadConfigFile(file, undefined);
    // `credentials = 5`: refused, not read as "no credentials" (which would disable them all).
    if (parsed.problems.length > 0) throw new ConfigInvalid(parsed.problems);
    const result = await reconcile({
      store,
      file,
      declared: await declaredCredentials(file, parsed.credentials, process.env),
      state: path.join(config.dataDir, "declared.json"),
      ambient,
      changed,
    });
    await reconcileCallers({
      store,
      file,
      declared: declaredCallers(file, parsed.callers),
      state: path.join(config.dataDir, "declared-callers.json"),
      now: ambient.now,
      changed: callersChanged,
    });
    log.info(
      { file, ...result, callers: parsed.callers.length },
      "declared credentials reconciled",
    );
    return result;
  };
}
