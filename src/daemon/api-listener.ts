import type { Logger } from "pino";
import { accessLogInterceptor } from "../api/access-log.js";
import { auditInterceptor } from "../api/audit-interceptor.js";
import { Authenticator } from "../api/auth.js";
import { BodyBudget } from "../api/body-budget.js";
import { errorInterceptor } from "../api/error-mapping.js";
import { specCompliantGrpcMessage } from "../api/grpc-message.js";
import type { HealthState } from "../api/health-service.js";
import { type Listener, listen } from "../api/listener.js";
import { peerContext, socketOf } from "../api/peer-certificate.js";
import { apiServices, clientStreamPaths, routesOf, type ServedService } from "../api/routes.js";
import { rpcHandler } from "../api/rpc-handler.js";
import type { ListenerInfo } from "../api/server-service.js";
import type { ContainerBindings, SigningServiceDeps } from "../api/signing-service.js";
import { listenTls } from "../api/tls-listener.js";
import { fastUnary } from "../api/unary/fast-unary.js";
import type { AuditSink } from "../audit/audit-log.js";
import type { CallerDirectory } from "../auth/caller-directory.js";
import { FailureThrottle, RateLimiter } from "../auth/rate-limit.js";
import type { ServeConfig } from "../config/serve-config.js";
import type { TlsMaterial } from "../config/tls-files.js";
import type { Ambient } from "../core/lifecycle.js";
import { LIMITS } from "../http/limits.js";
import type { KeyRotation } from "../store/key-rotation.js";
import type { ReadCache } from "../store/read-cache.js";
import type { DaemonStore } from "./open-store.js";
import type { DaemonProviders } from "./providers.js";
import { buildInfo } from "./version-info.js";

export interface ApiDeps {
  config: ServeConfig;
  store: DaemonStore;
  ambient: Ambient;
  health: HealthState;
  containers: ContainerBindings | undefined;
  forwarding: SigningServiceDeps["forwarding"];
  reads: ReadCache;
  rotation: KeyRotation;
  providers: DaemonProviders;
  callers: CallerDirectory;
  /** A credential changed (this daemon's write): drop what was derived from it. */
  changed(credentialId: string): void;
  audit: AuditSink;
  log: Logger;
  tls: TlsMaterial | undefined;
  /** The metadata listeners running (GetServerStatus lists them after the API's). */
  listeners: readonly ListenerInfo[];
  startedAt: Date;
}

/** The API's services over the daemon's parts, served on the API port. */
export async function startApi(deps: ApiDeps): Promise<Listener> {
  const { config, store, ambient, reads, providers, callers, log } = deps;
  let apiUrl: string | undefined;
  const services = apiServices({
    store,
    ambient,
    reads,
    health: deps.health,
    containers: deps.containers,
    forwarding: deps.forwarding,
    changed: deps.changed,
    providers: providers.registry,
    callerAdmin: { callers: store, ambient, changed: () => callers.forget() },
    keys: {
      rotation: deps.rotation,
      // Nothing derived while the old key was loaded stays in memory.
      retired: () => {
        reads.clear();
        providers.clearKeys();
      },
      log,
    },
    server: {
      build: buildInfo,
      startedAt: deps.startedAt,
      now: ambient.now,
      health: deps.health,
      store: {
        backend: config.store.kind,
        location: storeLocation(config),
        counts: () => deps.rotation.recordCounts(),
      },
      listeners: () => [
        ...(apiUrl === undefined ? [] : [{ kind: "api" as const, url: apiUrl }]),
        ...deps.listeners,
      ],
    },
  });
  const listener = await startApiListener({ ...deps, services });
  apiUrl = listener.url;
  return listener;
}

/** Where the store is, for GetServerStatus: the data dir, or etcd's hosts (no user information) and prefix. */
function storeLocation(config: ServeConfig): string {
  if (config.store.kind !== "etcd") return config.dataDir;
  const hosts = config.store.endpoints.map((e) => URL.parse(e)?.host ?? "?");
  return `${hosts.join(",")} ${config.store.prefix}`;
}

interface ApiListenerDeps {
  config: ServeConfig;
  services: ServedService[];
  callers: CallerDirectory;
  audit: AuditSink;
  log: Logger;
  tls: TlsMaterial | undefined;
}

/** The API port: interceptors, connect-node and the fast unary path, on cleartext or TLS. */
async function startApiListener({
  config,
  services,
  callers,
  audit,
  log,
  tls,
}: ApiListenerDeps): Promise<Listener> {
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
    tls === undefined ? await listen(listenOptions) : await listenTls({ ...listenOptions, ...tls });
  log.info(
    {
      url: listener.url,
      dataDir: config.dataDir,
      ...(tls === undefined ? {} : { mutualTls: tls.clientCa !== undefined }),
    },
    "listening",
  );
  return listener;
}
