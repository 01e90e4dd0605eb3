import os from "node:os";
import path from "node:path";
import { DomainError } from "../core/errors.js";
import { isValidName, isValidNamespace } from "../core/names.js";
import { parseTransportLimits, type TransportLimits } from "../http/limits.js";
import { attempt } from "./problems.js";
import { type StoreConfig, type StoreInputs, storeConfig } from "./store-config.js";

export const DEFAULT_LISTEN = "127.0.0.1:50051";

export interface HostPort {
  host: string;
  port: number;
}

/** The PEM files of the API listener's TLS (paths; read and checked at startup). */
export interface TlsFiles {
  /** The server certificate, optionally followed by its intermediates. */
  cert: string;
  /** Its private key, unencrypted. */
  key: string;
  /** Set: mutual TLS; every client must present a certificate signed by one of these CAs. */
  clientCa?: string;
}

export { DEFAULT_STALE_LIMIT_SECONDS, type StoreConfig } from "./store-config.js";

/** A listener that serves one credential's short-lived tokens (GCE metadata, Azure IMDS). */
export interface CredentialListener {
  listen: HostPort;
  /** The one credential this "instance" has; resolved on each request. */
  credential: { namespace: string; name: string };
}

/** Everything `credbroker serve` needs, validated. Built once, passed down. */
export interface ServeConfig {
  listen: HostPort;
  dataDir: string;
  /** --store: LevelDB in the data dir (default), or etcd. */
  store: StoreConfig;
  /** The value of CREDBROKER_MASTER_KEY, if set (base64 of 32 bytes). */
  masterKey: string | undefined;
  /** The value of CREDBROKER_PREVIOUS_MASTER_KEYS, if set: keys that only open records (a rotation). */
  previousMasterKeys?: string | undefined;
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace";
  /** --log-format; unset: pretty when the log's stream (stdout) is a terminal, else JSON. */
  logFormat?: "json" | "pretty" | undefined;
  /** How long shutdown waits for in-flight calls before cutting them off. */
  shutdownGraceMs: number;
  /** Requests per second per caller (0 = unlimited), and the burst allowed. */
  rateLimit: { perSecond: number; burst: number };
  /** Added to each failed authentication's answer past 10 a minute from one peer (0 = off). */
  authFailureDelayMs: number;
  /** Unary gRPC and Connect calls over HTTP/2 take the lean path (src/api/unary); off: all go through connect-node. */
  fastUnary: boolean;
  /** The API port's deadlines and caps (--transport-limits). */
  transportLimits: TransportLimits;
  /** ForwardRequest's rules (--forward-*). */
  forward: {
    allowPrivate: boolean;
    maxResponseBytes: number;
    maxInFlightPerCaller: number;
  };
  /** The config file (--config), whose [[credentials]] and [[callers]] are reconciled on start and SIGHUP. */
  configFile?: string | undefined;
  /** Where audit lines go: a file (default audit.log in the data dir), or "stdout". */
  auditLog: string;
  /** The IMDS endpoint, when --imds-listen is given. */
  imds:
    | {
        listen: HostPort;
        /** The one credential this "instance" has; resolved on each request. */
        credential: { namespace: string; name: string };
        allowV1: boolean;
      }
    | undefined;
  /** The GCE metadata endpoint, when --gce-metadata-listen is given. */
  gceMetadata: CredentialListener | undefined;
  /** The Azure managed-identity (IMDS) endpoint, when --azure-identity-listen is given. */
  azureIdentity: CredentialListener | undefined;
  /** The container-credentials endpoint (for `credbroker exec`), when given. */
  containerListen: HostPort | undefined;
  /** Set: the API listener speaks TLS only (HTTP/2 and HTTP/1.1 chosen by ALPN). */
  tls: TlsFiles | undefined;
  sts: {
    /** Unset: the regional endpoint of `region`. */
    endpoint: string | undefined;
    region: string;
    /** The daemon's own AWS identity may be a role's source. */
    allowAmbient: boolean;
    /** The bound on one STS call (--sts-timeout; unset: the gateway's default, 5 s). */
    timeoutMs?: number | undefined;
  };
  /** Entra ID (Azure service principals). Unset: the public cloud's authority. */
  azure?: {
    /** --azure-authority-host: the origin of `<tenant>/oauth2/v2.0/token`. */
    authorityHost: string;
  };
}

/** The default data dir: $XDG_DATA_HOME/credbroker, else ~/.local/share/credbroker. */
export function defaultDataDir(env: NodeJS.ProcessEnv, home = os.homedir()): string {
  const base = env.XDG_DATA_HOME || path.join(home, ".local", "share");
  return path.join(base, "credbroker");
}

/** "127.0.0.1:50051", "[::1]:50051" or "localhost:0" → host and port. */
export function parseHostPort(value: string, what: string): HostPort {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  const port = Number(m?.[3]);
  if (m === null || port > 65535) {
    throw new DomainError(
      "invalid_argument",
      `${what}: expected HOST:PORT (a host or [IPv6], then a port 0-65535)`,
    );
  }
  return { host: (m[1] ?? m[2]) as string, port };
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace"] as const;

export interface ServeInputs extends StoreInputs {
  listen?: string | undefined;
  dataDir?: string | undefined;
  logLevel?: string | undefined;
  logFormat?: string | undefined;
  shutdownGrace?: string | undefined;
  stsEndpoint?: string | undefined;
  imdsListen?: string | undefined;
  imdsCredential?: string | undefined;
  imdsAllowV1?: boolean | undefined;
  gceMetadataListen?: string | undefined;
  gceMetadataCredential?: string | undefined;
  azureIdentityListen?: string | undefined;
  azureIdentityCredential?: string | undefined;
  disableFastUnary?: boolean | undefined;
  containerListen?: string | undefined;
  stsRegion?: string | undefined;
  stsTimeout?: string | undefined;
  azureAuthorityHost?: string | undefined;
  allowAmbient?: boolean | undefined;
  auditLog?: string | undefined;
  rateLimit?: string | undefined;
  rateBurst?: string | undefined;
  authFailureDelay?: string | undefined;
  transportLimits?: string | undefined;
  forwardAllowPrivate?: boolean | undefined;
  forwardMaxResponse?: string | undefined;
  forwardMaxInFlight?: string | undefined;
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  clientCa?: string | undefined;
}

/**
 * Flags win over environment variables, which win over defaults:
 * --listen / CREDBROKER_LISTEN, --data-dir / CREDBROKER_DATA_DIR,
 * --log-level / CREDBROKER_LOG_LEVEL, --log-format / CREDBROKER_LOG_FORMAT, --shutdown-grace / CREDBROKER_SHUTDOWN_GRACE,
 * --sts-endpoint / CREDBROKER_STS_ENDPOINT, --sts-region / CREDBROKER_STS_REGION,
 * --sts-timeout / CREDBROKER_STS_TIMEOUT,
 * --allow-ambient / CREDBROKER_ALLOW_AMBIENT (true or false),
 * --imds-listen / CREDBROKER_IMDS_LISTEN, --imds-credential / CREDBROKER_IMDS_CREDENTIAL,
 * --imds-allow-v1 / CREDBROKER_IMDS_ALLOW_V1, --container-listen / CREDBROKER_CONTAINER_LISTEN,
 * --audit-log / CREDBROKER_AUDIT_LOG,
 * --disable-fast-unary / CREDBROKER_DISABLE_FAST_UNARY,
 * --forward-allow-private, --forward-max-response, --forward-max-in-flight
 * (CREDBROKER_FORWARD_*),
 * --tls-cert / CREDBROKER_TLS_CERT, --tls-key / CREDBROKER_TLS_KEY,
 * --client-ca / CREDBROKER_CLIENT_CA (an empty value is unset, so `--tls-cert ""`
 * turns off TLS that the environment asks for), --store / CREDBROKER_STORE,
 * --etcd-endpoints, --etcd-prefix, --etcd-ca, --etcd-cert, --etcd-key,
 * --etcd-user, --etcd-stale-limit (CREDBROKER_ETCD_*); the etcd password is
 * CREDBROKER_ETCD_PASSWORD only.
 */
export function buildServeConfig(flags: ServeInputs, env: NodeJS.ProcessEnv): ServeConfig {
  const { config, problems } = collectServeConfig(flags, env);
  if (problems[0] !== undefined) throw problems[0];
  return config;
}

/**
 * buildServeConfig, but every setting is checked: a bad one is a problem
 * (a DomainError naming its flag) and gets its default, so all are reported at once.
 */
export function collectServeConfig(
  flags: ServeInputs,
  env: NodeJS.ProcessEnv,
): { config: ServeConfig; problems: DomainError[] } {
  const problems: DomainError[] = [];
  const check = <T>(fallback: T, f: () => T): T => attempt(problems, fallback, f);
  const listen = check(parseHostPort(DEFAULT_LISTEN, "--listen"), () =>
    parseHostPort(flags.listen ?? env.CREDBROKER_LISTEN ?? DEFAULT_LISTEN, "--listen"),
  );
  const logLevel = check("info", () => {
    const level = flags.logLevel ?? env.CREDBROKER_LOG_LEVEL ?? "info";
    if (!(LOG_LEVELS as readonly string[]).includes(level)) {
      throw new DomainError("invalid_argument", `--log-level: one of ${LOG_LEVELS.join(", ")}`);
    }
    return level;
  });
  const logFormat = check(undefined, () => {
    const format = flags.logFormat ?? env.CREDBROKER_LOG_FORMAT;
    if (format === undefined || format === "") return undefined;
    if (format !== "json" && format !== "pretty") {
      throw new DomainError(
        "invalid_argument",
        "--log-format: json or pretty (unset: pretty on a terminal, else json)",
      );
    }
    return format;
  });
  const graceSeconds = check(10, () => {
    const grace = Number(flags.shutdownGrace ?? env.CREDBROKER_SHUTDOWN_GRACE ?? "10");
    if (!Number.isFinite(grace) || grace < 0 || grace > 3600) {
      throw new DomainError("invalid_argument", "--shutdown-grace: seconds, 0-3600");
    }
    return grace;
  });
  const stsEndpoint = check(undefined, () => {
    const endpoint = flags.stsEndpoint ?? env.CREDBROKER_STS_ENDPOINT ?? undefined;
    if (endpoint !== undefined && endpoint !== "" && !/^https?:\/\/[^/\s]+\/?$/.test(endpoint)) {
      throw new DomainError("invalid_argument", "--sts-endpoint: an http(s)://host[:port] URL");
    }
    return endpoint;
  });
  const azureAuthorityHost = check(DEFAULT_AZURE_AUTHORITY_HOST, () => {
    const host =
      flags.azureAuthorityHost ??
      env.CREDBROKER_AZURE_AUTHORITY_HOST ??
      DEFAULT_AZURE_AUTHORITY_HOST;
    return authorityHost(host);
  });
  const stsRegion = check("us-east-1", () => {
    const region = flags.stsRegion ?? env.CREDBROKER_STS_REGION ?? "us-east-1";
    if (!/^[a-z0-9-]{1,64}$/.test(region)) {
      throw new DomainError("invalid_argument", "--sts-region: a region such as us-east-1");
    }
    return region;
  });
  const stsTimeout = check("5", () => {
    const timeout = flags.stsTimeout ?? env.CREDBROKER_STS_TIMEOUT ?? "5";
    if (!/^\d{1,2}(\.\d{1,3})?$/.test(timeout) || !(Number(timeout) > 0) || Number(timeout) > 60) {
      throw new DomainError(
        "invalid_argument",
        "--sts-timeout: seconds, above 0 and at most 60 (up to 3 decimals)",
      );
    }
    return timeout;
  });
  const bool = (flag: boolean | undefined, name: string) =>
    check(false, () => envBool(env, name)) || flag === true;
  const allowAmbient = bool(flags.allowAmbient, "CREDBROKER_ALLOW_AMBIENT");
  const imdsListen = flags.imdsListen ?? env.CREDBROKER_IMDS_LISTEN;
  const imdsCredential = flags.imdsCredential ?? env.CREDBROKER_IMDS_CREDENTIAL;
  const imds = check(undefined, (): ServeConfig["imds"] => {
    if (!imdsListen) return undefined;
    if (!imdsCredential) {
      throw new DomainError(
        "invalid_argument",
        "--imds-credential [NAMESPACE/]NAME is required with --imds-listen",
      );
    }
    const allowV1 = bool(flags.imdsAllowV1, "CREDBROKER_IMDS_ALLOW_V1");
    const at = check(undefined, () => parseHostPort(imdsListen, "--imds-listen"));
    const credential = credentialRef(imdsCredential, "--imds-credential");
    return at === undefined ? undefined : { listen: at, credential, allowV1 };
  });
  const credentialListener = (
    listen: string | undefined,
    credential: string | undefined,
    listenFlag: string,
    credentialFlag: string,
  ): CredentialListener | undefined =>
    check(undefined, () => {
      if (!listen) return undefined;
      if (!credential) {
        throw new DomainError(
          "invalid_argument",
          `--${credentialFlag} [NAMESPACE/]NAME is required with --${listenFlag}`,
        );
      }
      const at = check(undefined, () => parseHostPort(listen, `--${listenFlag}`));
      const ref = credentialRef(credential, `--${credentialFlag}`);
      return at === undefined ? undefined : { listen: at, credential: ref };
    });
  const gceMetadata = credentialListener(
    flags.gceMetadataListen ?? env.CREDBROKER_GCE_METADATA_LISTEN,
    flags.gceMetadataCredential ?? env.CREDBROKER_GCE_METADATA_CREDENTIAL,
    "gce-metadata-listen",
    "gce-metadata-credential",
  );
  const azureIdentity = credentialListener(
    flags.azureIdentityListen ?? env.CREDBROKER_AZURE_IDENTITY_LISTEN,
    flags.azureIdentityCredential ?? env.CREDBROKER_AZURE_IDENTITY_CREDENTIAL,
    "azure-identity-listen",
    "azure-identity-credential",
  );
  const containerListen = flags.containerListen ?? env.CREDBROKER_CONTAINER_LISTEN;
  const tls = check(undefined, () =>
    tlsFiles(
      (flags.tlsCert ?? env.CREDBROKER_TLS_CERT) || undefined,
      (flags.tlsKey ?? env.CREDBROKER_TLS_KEY) || undefined,
      (flags.clientCa ?? env.CREDBROKER_CLIENT_CA) || undefined,
    ),
  );
  const dataDir = path.resolve(flags.dataDir ?? env.CREDBROKER_DATA_DIR ?? defaultDataDir(env));
  const auditLog = flags.auditLog ?? env.CREDBROKER_AUDIT_LOG ?? path.join(dataDir, "audit.log");
  const number = (value: string, flag: string, fallback: number) =>
    check(fallback, () => count(value, flag));
  const perSecond = number(
    flags.rateLimit ?? env.CREDBROKER_RATE_LIMIT ?? "5000",
    "--rate-limit",
    5000,
  );
  const burst = number(
    flags.rateBurst ?? env.CREDBROKER_RATE_BURST ?? String(Math.max(1, perSecond * 2)),
    "--rate-burst",
    Math.max(1, perSecond * 2),
  );
  const config: ServeConfig = {
    rateLimit: { perSecond, burst },
    authFailureDelayMs: number(
      flags.authFailureDelay ?? env.CREDBROKER_AUTH_FAILURE_DELAY ?? "100",
      "--auth-failure-delay",
      100,
    ),
    auditLog: auditLog === "stdout" ? auditLog : path.resolve(auditLog),
    fastUnary: !bool(flags.disableFastUnary, "CREDBROKER_DISABLE_FAST_UNARY"),
    transportLimits: check(parseTransportLimits(undefined), () =>
      parseTransportLimits(flags.transportLimits ?? env.CREDBROKER_TRANSPORT_LIMITS),
    ),
    forward: {
      allowPrivate: bool(flags.forwardAllowPrivate, "CREDBROKER_FORWARD_ALLOW_PRIVATE"),
      maxResponseBytes: check(DEFAULT_FORWARD_MAX_RESPONSE, () =>
        bounded(
          flags.forwardMaxResponse ?? env.CREDBROKER_FORWARD_MAX_RESPONSE,
          "--forward-max-response",
          { min: 1024, max: 256 * 1024 * 1024, fallback: DEFAULT_FORWARD_MAX_RESPONSE },
        ),
      ),
      maxInFlightPerCaller: check(DEFAULT_FORWARD_IN_FLIGHT, () =>
        bounded(
          flags.forwardMaxInFlight ?? env.CREDBROKER_FORWARD_MAX_IN_FLIGHT,
          "--forward-max-in-flight",
          {
            min: 1,
            max: 100_000,
            fallback: DEFAULT_FORWARD_IN_FLIGHT,
          },
        ),
      ),
    },
    listen,
    dataDir,
    store: check({ kind: "leveldb" }, () => storeConfig(flags, env)),
    masterKey: env.CREDBROKER_MASTER_KEY,
    previousMasterKeys: env.CREDBROKER_PREVIOUS_MASTER_KEYS,
    logLevel: logLevel as ServeConfig["logLevel"],
    logFormat,
    shutdownGraceMs: graceSeconds * 1000,
    sts: {
      endpoint: stsEndpoint || undefined,
      region: stsRegion,
      allowAmbient,
      timeoutMs: Math.round(Number(stsTimeout) * 1000),
    },
    azure: { authorityHost: azureAuthorityHost },
    imds,
    gceMetadata,
    azureIdentity,
    containerListen: containerListen
      ? check(undefined, () => parseHostPort(containerListen, "--container-listen"))
      : undefined,
    tls,
  };
  return { config, problems };
}

/** A certificate needs its key and the reverse; a client CA needs both. */
function tlsFiles(
  cert: string | undefined,
  key: string | undefined,
  clientCa: string | undefined,
): TlsFiles | undefined {
  if (cert === undefined && key === undefined) {
    if (clientCa !== undefined) {
      throw new DomainError(
        "invalid_argument",
        "--client-ca needs TLS: give --tls-cert FILE and --tls-key FILE too",
      );
    }
    return undefined;
  }
  if (key === undefined) {
    throw new DomainError("invalid_argument", "--tls-key FILE is required with --tls-cert");
  }
  if (cert === undefined) {
    throw new DomainError("invalid_argument", "--tls-cert FILE is required with --tls-key");
  }
  return clientCa === undefined ? { cert, key } : { cert, key, clientCa };
}

function envBool(env: NodeJS.ProcessEnv, name: string): boolean {
  const value = env[name] ?? "";
  if (!/^(|true|false|1|0)$/.test(value)) {
    throw new DomainError("invalid_argument", `${name}: true or false`);
  }
  return value === "true" || value === "1";
}

/** "[NAMESPACE/]NAME": a bare NAME is in the workspace. */
export function credentialRef(value: string, what: string): { namespace: string; name: string } {
  const slash = value.indexOf("/");
  const ref =
    slash < 0
      ? { namespace: "", name: value }
      : { namespace: value.slice(0, slash), name: value.slice(slash + 1) };
  if (!isValidName(ref.name) || !isValidNamespace(ref.namespace)) {
    throw new DomainError(
      "invalid_argument",
      `${what}: [NAMESPACE/]NAME, each 1-64 of letters, digits, '.', '_', '-'`,
    );
  }
  return ref;
}

const DEFAULT_FORWARD_MAX_RESPONSE = 8 * 1024 * 1024;
const DEFAULT_FORWARD_IN_FLIGHT = 64;

/** A whole number in [min, max]; unset is the fallback. */
function bounded(
  value: string | undefined,
  flag: string,
  { min, max, fallback }: { min: number; max: number; fallback: number },
): number {
  if (value === undefined) return fallback;
  if (!/^\d{1,10}$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new DomainError("invalid_argument", `${flag}: a whole number, ${min}-${max}`);
  }
  return Number(value);
}

function count(value: string, flag: string): number {
  if (!/^\d{1,9}$/.test(value))
    throw new DomainError("invalid_argument", `${flag}: a whole number`);
  return Number(value);
}

/** Entra ID's public-cloud authority (the same as providers/azure/entra-grant.ts). */
const DEFAULT_AZURE_AUTHORITY_HOST = "https://login.microsoftonline.com";

/**
 * An authority host: an https origin (an optional trailing slash dropped),
 * or http to a loopback address (a test authority); no path, query or user.
 */
export function authorityHost(value: string): string {
  const fail = (): never => {
    throw new DomainError(
      "invalid_argument",
      "--azure-authority-host: an https://host[:port] URL (http only to 127.0.0.1, [::1] or localhost)",
    );
  };
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return fail();
  }
  const loopback = ["127.0.0.1", "[::1]", "localhost"].includes(url.hostname);
  if (
    !(url.protocol === "https:" || (url.protocol === "http:" && loopback)) ||
    url.username !== "" ||
    url.password !== "" ||
    url.pathname !== "/" ||
    url.search !== "" ||
    url.hash !== "" ||
    !/^https?:\/\/[^/\s]+\/?$/.test(value)
  ) {
    return fail();
  }
  return url.origin;
}
