import { readFile } from "node:fs/promises";
import { hostname } from "node:os";
import path from "node:path";
import type { Logger } from "pino";
import type { ServeConfig } from "../config/serve-config.js";
import { DomainError } from "../core/errors.js";
import type { Ambient } from "../core/lifecycle.js";
import type { CallerStore } from "../store/caller-store.js";
import type { CredentialStore } from "../store/credential-store.js";
import { EtcdCredentialStore } from "../store/etcd/etcd-store.js";
import {
  HEARTBEAT_MS,
  type StoreChangeListener,
  type StoreWatch,
} from "../store/etcd/etcd-watch.js";
import type { KeyRotation } from "../store/key-rotation.js";
import { LevelCredentialStore } from "../store/level/level-store.js";
import { loadMasterKey, loadPreviousMasterKeys } from "../store/master-key.js";
import { deriveDataKey, Sealer } from "../store/sealing.js";
import { StoreTrust } from "../store/store-trust.js";

/**
 * What the caches may believe (store/store-trust.ts). With etcd: trusted
 * while watched and confirmed within a few heartbeats; once etcd cannot be
 * reached, cached copies serve for the configured stale limit.
 */
export function storeTrust(settings: ServeConfig["store"], log: Logger): StoreTrust {
  if (settings.kind !== "etcd") return StoreTrust.always();
  return new StoreTrust({
    staleLimitMs: settings.staleLimitMs,
    confirmWithinMs: 3 * HEARTBEAT_MS,
    onStale: (sinceMs) =>
      log.warn(
        { sinceConfirmedMs: Math.round(sinceMs), staleLimitMs: settings.staleLimitMs },
        "etcd unreachable: serving cached credentials and callers within the stale limit",
      ),
  });
}

/** A store shared with other daemons reports their changes (etcd); LevelDB has no `watch`. */
export type DaemonStore = CredentialStore &
  CallerStore & {
    watch?(listener: StoreChangeListener): Promise<StoreWatch>;
    keyRotation(): KeyRotation;
  };

/**
 * Opens the store `--store` names. The master key is looked up the same way
 * for both (CREDBROKER_MASTER_KEY, else master.key in the data dir), but only
 * a fresh LevelDB may create one: a fleet's daemons must all hold the same
 * key, so with etcd it is always given (README, "Run a fleet").
 */
export async function openStore(
  config: ServeConfig,
  log: Logger,
  ambient: Ambient,
): Promise<DaemonStore> {
  const file = path.join(config.dataDir, "master.key");
  const settings = config.store;
  const absent =
    settings.kind === "etcd"
      ? `--store etcd: no master key; every daemon of a fleet needs the same one, never created by serve: set CREDBROKER_MASTER_KEY or write it to ${file} (base64 of 32 random bytes, mode 0600)`
      : undefined;
  const sealer = async (fresh: boolean) => {
    const master = await loadMasterKey({ envValue: config.masterKey, file, fresh, absent });
    const key = deriveDataKey(master.key);
    log.info({ keyId: key.id, origin: master.origin }, "master key loaded");
    // Keys that only open records, while a rotation re-seals them.
    const previous = await loadPreviousMasterKeys({
      envValue: config.previousMasterKeys,
      file: `${file}.previous`,
    });
    const previousKeys = previous.keys.map(deriveDataKey);
    if (previousKeys.length > 0) {
      log.info(
        { keyIds: previousKeys.map((k) => k.id), origin: previous.origin },
        "previous master keys loaded (they open records, never seal)",
      );
    }
    return new Sealer([key, ...previousKeys]);
  };
  if (settings.kind === "leveldb") {
    return LevelCredentialStore.open({
      location: path.join(config.dataDir, "db"),
      now: ambient.now,
      sealer,
    });
  }
  const read = async (flag: string, name: string) =>
    readFile(name).catch((err: NodeJS.ErrnoException) => {
      throw new DomainError(
        "invalid_argument",
        `${flag} ${name}: cannot read the file (${err.code ?? "error"})`,
        { cause: err },
      );
    });
  const tls = settings.tls;
  const store = await EtcdCredentialStore.open({
    endpoints: settings.endpoints,
    prefix: settings.prefix,
    ...(tls === undefined
      ? {}
      : {
          tls: {
            ca: await read("--etcd-ca", tls.ca),
            ...(tls.cert === undefined ? {} : { cert: await read("--etcd-cert", tls.cert) }),
            ...(tls.key === undefined ? {} : { key: await read("--etcd-key", tls.key) }),
          },
        }),
    ...(settings.auth === undefined ? {} : { auth: settings.auth }),
    now: ambient.now,
    sealer: () => sealer(false),
    memberName: `${hostname()} pid ${process.pid} (listening on ${config.listen.host}:${config.listen.port})`,
    keyMoved: (change) =>
      log.warn(
        change,
        "the fleet's master key moved (a rotation started on another daemon): sealing under the new key from now on",
      ),
    memberLost: (err) =>
      log.warn(
        { err: (err as Error).message },
        "this daemon's member record in etcd lapsed (etcd unreachable?); writing it again",
      ),
  });
  log.info({ endpoints: settings.endpoints, prefix: settings.prefix }, "etcd store opened");
  return store;
}

/**
 * Says at start whether a rotation waits to be finished, whether a fleet
 * seals under another key than this daemon's, or whether a previous key can go.
 */
export async function logKeyStatus(
  rotation: KeyRotation,
  log: Logger,
  fleet: boolean,
): Promise<void> {
  const status = await rotation.status();
  if (status.rotationInProgress) {
    log.warn(
      { keyId: status.currentKeyId, draining: status.drainingKeyIds },
      'master key rotation in progress: records may still be sealed under a previous key; run "credbroker key rotate" to finish',
    );
  } else if (status.masterKeyId !== status.currentKeyId) {
    log.info(
      { fleetKeyId: status.currentKeyId, masterKeyId: status.masterKeyId },
      'the fleet seals under another key than this daemon\'s master key; "credbroker key rotate" on this daemon moves it there',
    );
  } else if (status.previousKeyIds.length > 0) {
    log.warn(
      { previous: status.previousKeyIds },
      fleet
        ? "previous master keys are loaded but no record needs them: remove them (CREDBROKER_PREVIOUS_MASTER_KEYS, master.key.previous), unless the fleet is about to be moved to one of them"
        : "previous master keys are loaded but no record needs them: remove them (CREDBROKER_PREVIOUS_MASTER_KEYS, master.key.previous)",
    );
  }
}
