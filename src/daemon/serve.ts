import { randomUUID } from "node:crypto";
import { mkdir } from "node:fs/promises";
import type { Logger } from "pino";
import { HealthState } from "../api/health-service.js";
import type { Listener } from "../api/listener.js";
import { SERVED_SERVICES } from "../api/routes.js";
import { type AuditSink, FileAuditLog, StdoutAuditLog } from "../audit/audit-log.js";
import { ensureAdminToken } from "../auth/admin-token.js";
import { CallerDirectory } from "../auth/caller-directory.js";
import type { ReconcileResult } from "../config/reconcile.js";
import type { ServeConfig } from "../config/serve-config.js";
import { assertStartup } from "../config/startup-check.js";
import type { TlsMaterial } from "../config/tls-files.js";
import type { Ambient } from "../core/lifecycle.js";
import { ReadCache } from "../store/read-cache.js";
import { startApi } from "./api-listener.js";
import { Closers } from "./closers.js";
import { OwnListeners, startForwarding } from "./forwarding.js";
import { startMetadata } from "./metadata.js";
import { type DaemonStore, logKeyStatus, openStore, storeTrust } from "./open-store.js";
import { startProviders } from "./providers.js";
import { reloader } from "./reload.js";
import { watchStore } from "./store-watch.js";

export interface Daemon {
  readonly url: string;
  readonly listener: Listener;
  /** Drains in-flight calls, closes the listener and the store. */
  stop(): Promise<void>;
  /** Re-reads the config file's [[credentials]] and reconciles them (SIGHUP). */
  reload(): Promise<ReconcileResult | undefined>;
}

/**
 * The composition root: config → store → services → listener. Nothing else
 * in the daemon reads the environment, the clock's source, or the data dir's
 * layout. `ambient` (clock and ids) is the real one unless a test composes
 * the daemon with a fixed clock; no flag or request can set it.
 */
export async function startDaemon(
  config: ServeConfig,
  log: Logger,
  ambient: Ambient = { now: () => new Date(), newId: randomUUID },
): Promise<Daemon> {
  // The whole config is checked before anything is created: a refused one touches nothing.
  const tls = await assertStartup(config, process.env);
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });

  const startedAt = ambient.now();
  const store = await openStore(config, log, ambient);

  try {
    return await serve(config, log, store, ambient, tls, startedAt);
  } catch (err) {
    await store.close();
    throw err;
  }
}

/** The daemon's parts, in the order they start; a failure closes what started. */
async function serve(
  config: ServeConfig,
  log: Logger,
  store: DaemonStore,
  ambient: Ambient,
  tls: TlsMaterial | undefined,
  startedAt: Date,
): Promise<Daemon> {
  const admin = await ensureAdminToken(config.dataDir);
  log.info({ file: admin.file, created: admin.created }, "admin token file");
  const trust = storeTrust(config.store, log);
  const callers = new CallerDirectory(store, admin.token, ambient.now, trust);
  const health = new HealthState(SERVED_SERVICES);
  const rotation = store.keyRotation();
  await logKeyStatus(rotation, log, config.store.kind === "etcd");
  const reads = new ReadCache(store, undefined, trust);
  const providers = startProviders(config, log, reads, ambient);
  /** After a write (this daemon's, or one the store watch reports): nothing derived from the old record is used. */
  const invalidate = (id: string) => {
    reads.forget(id);
    providers.forget(id);
  };
  const audit = openAudit(config, ambient, log);
  const closers = new Closers(async () => audit.close());
  const own = new OwnListeners();
  const forwarding = startForwarding(config, ambient, own, closers);
  const parts = {
    ...{ config, log, store, ambient, tls, trust, callers, health, rotation, reads, providers },
    ...{ audit, closers, own, changed: invalidate, callersChanged: () => callers.forget() },
  };
  try {
    const watch = await watchStore(store, parts);
    if (watch) closers.push(watch);
    const metadata = await startMetadata(parts);
    const reload = reloader(parts);
    await reload();
    const listener = await startApi({ ...parts, ...metadata, startedAt, forwarding });
    own.add(listener.url);
    return {
      url: listener.url,
      listener,
      reload,
      async stop() {
        health.drain();
        await listener.close(config.shutdownGraceMs);
        await closers.closeAll();
        await store.close();
        log.info("stopped");
      },
    };
  } catch (err) {
    await closers.closeAll();
    throw err;
  }
}

function openAudit(config: ServeConfig, ambient: Ambient, log: Logger): AuditSink {
  const audit: AuditSink =
    config.auditLog === "stdout"
      ? new StdoutAuditLog(ambient.now)
      : new FileAuditLog(config.auditLog, ambient.now);
  log.info({ auditLog: config.auditLog }, "audit log");
  return audit;
}
