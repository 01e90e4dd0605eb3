import { randomUUID } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import { hostname } from "node:os";
import path from "node:path";
import type { Logger } from "pino";
import { accessLogInterceptor } from "./api/access-log.js";
import { auditInterceptor } from "./api/audit-interceptor.js";
import { Authenticator } from "./api/auth.js";
import { BodyBudget } from "./api/body-budget.js";
import { errorInterceptor } from "./api/error-mapping.js";
import { specCompliantGrpcMessage } from "./api/grpc-message.js";
import { HealthState } from "./api/health-service.js";
import { LIMITS } from "./api/limits.js";
import { type Listener, listen } from "./api/listener.js";
import { peerContext, socketOf } from "./api/peer-certificate.js";
import { apiServices, clientStreamPaths, routesOf, SERVED_SERVICES } from "./api/routes.js";
import { rpcHandler } from "./api/rpc-handler.js";
import { listenTls } from "./api/tls-listener.js";
import { fastUnary } from "./api/unary/fast-unary.js";
import { type AuditSink, FileAuditLog, StdoutAuditLog } from "./audit/audit-log.js";
import { ensureAdminToken } from "./auth/admin-token.js";
import { CallerDirectory } from "./auth/caller-directory.js";
import { FailureThrottle, RateLimiter } from "./auth/rate-limit.js";
import { loadConfigFile } from "./config/config-file.js";
import { declaredCredentials } from "./config/declared.js";
import { declaredCallers, reconcileCallers } from "./config/declared-callers.js";
import { ConfigInvalid } from "./config/problems.js";
import { type ReconcileResult, reconcile } from "./config/reconcile.js";
import type { ServeConfig } from "./config/serve-config.js";
import { assertStartup } from "./config/startup-check.js";
import type { TlsMaterial } from "./config/tls-files.js";
import { DomainError } from "./core/errors.js";
import type { Ambient } from "./core/lifecycle.js";
import { displayName } from "./core/names.js";
import { bindingSessions } from "./imds/binding-use.js";
import { BindingTable } from "./imds/bindings.js";
import { startContainerServer } from "./imds/container-server.js";
import { startImdsServer } from "./imds/imds-server.js";
import { SigningKeyCache } from "./sign/signing-keys.js";
import type { CallerStore } from "./store/caller-store.js";
import type { CredentialStore } from "./store/credential-store.js";
import { EtcdCredentialStore } from "./store/etcd-store.js";
import { HEARTBEAT_MS, type StoreChangeListener, type StoreWatch } from "./store/etcd-watch.js";
import type { KeyRotation } from "./store/key-rotation.js";
import { LevelCredentialStore } from "./store/level-store.js";
import { loadMasterKey, loadPreviousMasterKeys } from "./store/master-key.js";
import { ReadCache } from "./store/read-cache.js";
import { deriveDataKey, Sealer } from "./store/sealing.js";
import { StoreTrust } from "./store/store-trust.js";
import { RoleSessions } from "./sts/role-sessions.js";
import { SessionCache } from "./sts/session-cache.js";
import { StsGateway } from "./sts/sts-gateway.js";
import { TaskSessions } from "./sts/task-sessions.js";

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

  const store = await openStore(config, log, ambient);

  try {
    return await serve(config, log, store, ambient, tls);
  } catch (err) {
    await store.close();
    throw err;
  }
}

/**
 * What the caches may believe (store/store-trust.ts). With etcd: trusted
 * while watched and confirmed within a few heartbeats; once etcd cannot be
 * reached, cached copies serve for the configured stale limit.
 */
function storeTrust(settings: ServeConfig["store"], log: Logger): StoreTrust {
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
type DaemonStore = CredentialStore &
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
async function openStore(config: ServeConfig, log: Logger, ambient: Ambient): Promise<DaemonStore> {
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

async function serve(
  config: ServeConfig,
  log: Logger,
  store: DaemonStore,
  ambient: Ambient,
  tls: TlsMaterial | undefined,
): Promise<Daemon> {
  const admin = await ensureAdminToken(config.dataDir);
  log.info({ file: admin.file, created: admin.created }, "admin token file");
  const trust = storeTrust(config.store, log);
  const callers = new CallerDirectory(store, admin.token, ambient.now, trust);

  const health = new HealthState(SERVED_SERVICES);
  const signingKeys = new SigningKeyCache();
  const rotation = store.keyRotation();
  await logKeyStatus(rotation, log, config.store.kind === "etcd");
  const sts = new StsGateway(config.sts);
  const sessions = new SessionCache({
    now: ambient.now,
    onStaleServe: (credentialId, err) =>
      log.warn(
        { credentialId, err: (err as Error).message },
        "STS renewal failed; the cached session still serves",
      ),
  });
  const reads = new ReadCache(store, undefined, trust);
  /** After a write (this daemon's, or one the store watch reports): nothing derived from the old record is used. */
  const invalidate = (id: string) => {
    reads.forget(id);
    signingKeys.drop(id);
    sessions.drop(id);
  };
  const roleSessions = new RoleSessions({
    credentials: reads,
    sts,
    cache: sessions,
    now: ambient.now,
  });
  const tasks = new TaskSessions({
    credentials: reads,
    sts,
    roleSessions,
    cache: sessions,
    now: ambient.now,
  });
  const audit: AuditSink =
    config.auditLog === "stdout"
      ? new StdoutAuditLog(ambient.now)
      : new FileAuditLog(config.auditLog, ambient.now);
  log.info({ auditLog: config.auditLog }, "audit log");
  const closers: (() => Promise<void>)[] = [async () => audit.close()];
  const closeAll = async () => {
    for (const close of closers.reverse()) await close();
  };

  try {
    // Before anything is served: other daemons' writes invalidate as this one's do.
    if (store.watch !== undefined) {
      const watch = await store.watch({
        credential: invalidate,
        callers: () => callers.forget(),
        // Down: changes elsewhere go unseen, so every read goes to the store
        // (derived keys and sessions are keyed by the etag read).
        watching(up, at) {
          if (up) {
            trust.regain(at);
            log.info("store watch re-established; caches trusted again");
          } else {
            trust.lose();
            log.warn("store watch lost or etcd not answering; reading through to the store");
          }
        },
        confirmed: (at) => trust.confirm(at),
        answering: (yes) => trust.answering(yes),
      });
      closers.push(() => watch.close());
    }
    // Task endpoints first: container bindings name the container listener's URL.
    const bindings = new BindingTable(ambient.now);
    const container = config.containerListen
      ? await startContainerServer({
          ...config.containerListen,
          bindings,
          // Each use checks its creator and the credential (by id) again.
          session: bindingSessions({
            callerNamed: (name) => callers.callerNamed(name),
            credential: (namespace, name) => reads.get(namespace, name),
            taskSession: (namespace, name, id) => tasks.forCredential(namespace, name, id),
          }),
          log,
          audit,
        })
      : undefined;
    if (container) {
      closers.push(() => container.close());
      log.info({ url: container.url }, "container credentials listening");
    }
    const imdsConfig = config.imds;
    if (imdsConfig) {
      const { namespace, name } = imdsConfig.credential;
      const imds = await startImdsServer({
        ...imdsConfig.listen,
        roleName: name,
        credentials: () => tasks.forCredential(namespace, name),
        allowV1: imdsConfig.allowV1,
        now: ambient.now,
        log,
        // Batched with the other lines of the same event-loop turn; the answer waits for it.
        audit: (e) =>
          audit.append({
            rpc: `imds:${e.route}`,
            peer: e.peer,
            namespace,
            credential: name,
            decision: e.decision,
            reason: e.reason,
            requestId: randomUUID(),
          }),
      });
      closers.push(() => imds.close());
      log.info({ url: imds.url, credential: displayName(namespace, name) }, "imds listening");
    }

    const reload = async (): Promise<ReconcileResult | undefined> => {
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
        changed: invalidate,
      });
      await reconcileCallers({
        store,
        file,
        declared: declaredCallers(file, parsed.callers),
        state: path.join(config.dataDir, "declared-callers.json"),
        now: ambient.now,
        changed: () => callers.forget(),
      });
      log.info(
        { file, ...result, callers: parsed.callers.length },
        "declared credentials reconciled",
      );
      return result;
    };
    await reload();

    const services = apiServices({
      store,
      ambient,
      health,
      signingKeys,
      roleSessions,
      containers: container ? { table: bindings, baseUrl: container.url } : undefined,
      live: { sts, roleSessions },
      reads,
      callerAdmin: { callers: store, ambient, changed: () => callers.forget() },
      keys: {
        rotation,
        // Nothing derived while the old key was loaded stays in memory.
        retired: () => {
          reads.clear();
          signingKeys.clear();
        },
        log,
      },
      changed: invalidate,
    });
    const auth = new Authenticator(callers, {
      rate: new RateLimiter(config.rateLimit.perSecond, config.rateLimit.burst),
      failures: new FailureThrottle(Date.now, 10, config.authFailureDelayMs),
    });
    const interceptors = [
      accessLogInterceptor(log),
      errorInterceptor(log),
      auditInterceptor(audit),
      auth.interceptor,
    ];
    // Both paths authenticate from the headers before reading a body, and share one body budget.
    const authenticate = auth.fromHeaders;
    const budget = new BodyBudget(config.transportLimits.maxInflightBodyBytes);
    // The peer's address and, with mutual TLS, its verified certificate's subject.
    const peer = peerContext(tls?.clientCa !== undefined);
    const handler = rpcHandler({
      routes: routesOf(services),
      interceptors,
      readMaxBytes: LIMITS.maxMessageBytes,
      maxTimeoutMs: LIMITS.maxTimeoutMs,
      contextValues: (req) => peer(socketOf(req)),
      authenticate,
      budget,
    });
    // Unary calls over HTTP/2 in binary: the same services and interceptors, less framework.
    const streams = config.fastUnary
      ? fastUnary({
          services,
          interceptors,
          contextValues: peer,
          readMaxBytes: LIMITS.maxMessageBytes,
          maxTimeoutMs: LIMITS.maxTimeoutMs,
          authenticate,
          budget,
        })
      : undefined;
    const listenOptions = {
      ...config.listen,
      handler: specCompliantGrpcMessage(handler),
      streams,
      limits: config.transportLimits,
      clientStreams: clientStreamPaths(services),
    };
    const listener =
      tls === undefined
        ? await listen(listenOptions)
        : await listenTls({ ...listenOptions, ...tls });
    log.info(
      {
        url: listener.url,
        dataDir: config.dataDir,
        ...(tls === undefined ? {} : { mutualTls: tls.clientCa !== undefined }),
      },
      "listening",
    );

    return {
      url: listener.url,
      listener,
      reload,
      async stop() {
        health.drain();
        await listener.close(config.shutdownGraceMs);
        await closeAll();
        await store.close();
        log.info("stopped");
      },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/**
 * Says at start whether a rotation waits to be finished, whether a fleet
 * seals under another key than this daemon's, or whether a previous key can go.
 */
async function logKeyStatus(rotation: KeyRotation, log: Logger, fleet: boolean): Promise<void> {
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
