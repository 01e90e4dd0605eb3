import { DomainError } from "../core/errors.js";

/** docs/ARCHITECTURE.md, "When etcd is unreachable". */
export const DEFAULT_STALE_LIMIT_SECONDS = 30;
const MAX_STALE_LIMIT_SECONDS = 600;

/** Where credentials and callers live: the embedded LevelDB, or an etcd shared by a fleet. */
export type StoreConfig =
  | { kind: "leveldb" }
  | {
      kind: "etcd";
      /** Client URLs, all http:// or all https://. */
      endpoints: string[];
      /** Key prefix, ends with "/". */
      prefix: string;
      /** PEM files (paths; read at startup): the CA, and a client certificate and key for mutual TLS. */
      tls: { ca: string; cert?: string; key?: string } | undefined;
      /** The password comes from CREDBROKER_ETCD_PASSWORD only, never a flag or the config file. */
      auth: { username: string; password: string } | undefined;
      /**
       * While etcd cannot be reached, how long after it last answered cached
       * credentials and callers may still serve (0: fail closed at once).
       */
      staleLimitMs: number;
    };

/** The store's flags (each also CREDBROKER_<NAME>; the etcd password is CREDBROKER_ETCD_PASSWORD only). */
export interface StoreInputs {
  store?: string | undefined;
  etcdEndpoints?: string | undefined;
  etcdPrefix?: string | undefined;
  etcdCa?: string | undefined;
  etcdCert?: string | undefined;
  etcdKey?: string | undefined;
  etcdUser?: string | undefined;
  etcdStaleLimit?: string | undefined;
}

/** --store and the --etcd-* flags, checked together: etcd flags need --store etcd. */
export function storeConfig(flags: StoreInputs, env: NodeJS.ProcessEnv): StoreConfig {
  const pick = (flag: string | undefined, name: string) =>
    (flag ?? env[`CREDBROKER_${name}`]) || undefined;
  const kind = pick(flags.store, "STORE") ?? "leveldb";
  const etcd = {
    "etcd-endpoints": pick(flags.etcdEndpoints, "ETCD_ENDPOINTS"),
    "etcd-prefix": pick(flags.etcdPrefix, "ETCD_PREFIX"),
    "etcd-ca": pick(flags.etcdCa, "ETCD_CA"),
    "etcd-cert": pick(flags.etcdCert, "ETCD_CERT"),
    "etcd-key": pick(flags.etcdKey, "ETCD_KEY"),
    "etcd-user": pick(flags.etcdUser, "ETCD_USER"),
    "etcd-stale-limit": pick(flags.etcdStaleLimit, "ETCD_STALE_LIMIT"),
  };
  if (kind === "leveldb") {
    const given = Object.entries(etcd).find(([, v]) => v !== undefined)?.[0];
    if (given !== undefined) {
      throw new DomainError("invalid_argument", `--${given}: needs --store etcd`);
    }
    return { kind };
  }
  if (kind !== "etcd") throw new DomainError("invalid_argument", "--store: leveldb or etcd");
  const list = etcd["etcd-endpoints"];
  if (list === undefined) {
    throw new DomainError(
      "invalid_argument",
      "--etcd-endpoints: required with --store etcd (http://HOST:PORT[,…])",
    );
  }
  const endpoints = list.split(",").map((e) => e.trim());
  endpoints.forEach((e, i) => {
    if (!/^https?:\/\/[^/\s,]+:\d{1,5}\/?$/.test(e)) {
      throw new DomainError(
        "invalid_argument",
        `--etcd-endpoints: http(s)://HOST:PORT[,…]; endpoint ${i + 1} of ${endpoints.length} is not`,
      );
    }
  });
  const secure = endpoints.map((e) => e.startsWith("https://"));
  if (secure.some((s) => s !== secure[0])) {
    throw new DomainError("invalid_argument", "--etcd-endpoints: all http:// or all https://");
  }
  const prefix = etcd["etcd-prefix"] ?? "/credbroker/"; // the store's DEFAULT_ETCD_PREFIX
  if (!/^\/[^\s]*\/$/.test(prefix) || prefix.length > 256) {
    throw new DomainError(
      "invalid_argument",
      '--etcd-prefix: starts and ends with "/", no spaces, at most 256 characters',
    );
  }
  const { "etcd-ca": ca, "etcd-cert": cert, "etcd-key": key } = etcd;
  if (secure[0] && ca === undefined) {
    throw new DomainError("invalid_argument", "--etcd-ca: required with https:// endpoints");
  }
  if (!secure[0] && (ca ?? cert ?? key) !== undefined) {
    const flag = ca !== undefined ? "etcd-ca" : cert !== undefined ? "etcd-cert" : "etcd-key";
    throw new DomainError("invalid_argument", `--${flag}: needs https:// --etcd-endpoints`);
  }
  if ((cert === undefined) !== (key === undefined)) {
    const missing = cert === undefined ? "etcd-cert" : "etcd-key";
    throw new DomainError(
      "invalid_argument",
      `--${missing}: required with --${missing === "etcd-cert" ? "etcd-key" : "etcd-cert"}`,
    );
  }
  const user = etcd["etcd-user"];
  const password = env.CREDBROKER_ETCD_PASSWORD || undefined;
  if (user !== undefined && password === undefined) {
    throw new DomainError(
      "invalid_argument",
      "--etcd-user: needs the password in the environment variable CREDBROKER_ETCD_PASSWORD",
    );
  }
  if (user === undefined && password !== undefined) {
    throw new DomainError(
      "invalid_argument",
      "--etcd-user: required when CREDBROKER_ETCD_PASSWORD is set",
    );
  }
  const stale = etcd["etcd-stale-limit"] ?? String(DEFAULT_STALE_LIMIT_SECONDS);
  if (!/^\d{1,3}$/.test(stale) || Number(stale) > MAX_STALE_LIMIT_SECONDS) {
    throw new DomainError(
      "invalid_argument",
      `--etcd-stale-limit: whole seconds, 0-${MAX_STALE_LIMIT_SECONDS}`,
    );
  }
  return {
    kind,
    endpoints,
    prefix,
    staleLimitMs: Number(stale) * 1000,
    tls:
      ca === undefined
        ? undefined
        : { ca, ...(cert === undefined ? {} : { cert }), ...(key === undefined ? {} : { key }) },
    auth: user === undefined || password === undefined ? undefined : { username: user, password },
  };
}

/** A certificate needs its key and the reverse; a client CA needs both. */
