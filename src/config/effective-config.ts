import { displayName } from "../core/names.js";

import { type Declared, keyOf } from "./config-file.js";
import type { HostPort, ServeConfig } from "./serve-config.js";

/** Fields of a declaration whose value is a secret: shown as <set>, never printed. */
const SECRET_FIELDS = new Set(["secret_access_key", "session_token", "token", "token_sha256"]);

/**
 * The config serve would run with, as TOML: every setting with its effective
 * value and, in a comment, where it came from; secrets (the master keys, the
 * etcd password, declared secrets) only as "<set>".
 */
export function effectiveConfig(
  config: ServeConfig,
  keys: Iterable<string>,
  sourceOf: (flag: string) => string,
  declared: { credentials: readonly Declared[]; callers: readonly Declared[] } | undefined,
): string {
  const values = settingValues(config);
  const lines: string[] = [];
  for (const flag of keys) {
    const value = values[flag];
    const key = keyOf(flag);
    lines.push(
      value === undefined ? `# ${key} is not set` : `${key} = ${toml(value)}  # ${sourceOf(flag)}`,
    );
  }
  lines.push("", "# From the environment only:");
  lines.push(
    config.masterKey
      ? 'master_key = "<set>"  # CREDBROKER_MASTER_KEY'
      : `# master key: ${config.dataDir}/master.key (created on first start with leveldb)`,
  );
  if (config.previousMasterKeys?.trim()) {
    lines.push('previous_master_keys = "<set>"  # CREDBROKER_PREVIOUS_MASTER_KEYS');
  }
  if (config.store.kind === "etcd" && config.store.auth !== undefined) {
    lines.push('etcd_password = "<set>"  # CREDBROKER_ETCD_PASSWORD');
  }
  for (const [table, entries] of [
    ["credentials", declared?.credentials ?? []],
    ["callers", declared?.callers ?? []],
  ] as const) {
    for (const { fields } of entries) {
      lines.push("", `[[${table}]]`);
      for (const [field, value] of Object.entries(fields)) {
        if (SECRET_FIELDS.has(field)) lines.push(`${field} = "<set>"`);
        else if (field === "allowed_scopes" && Array.isArray(value))
          lines.push(`# allowed_scopes: ${value.length} table(s)`);
        else lines.push(`${field} = ${toml(value)}`);
      }
    }
  }
  return `${lines.join("\n")}\n`;
}

function toml(value: unknown): string {
  if (value instanceof Date) return value.toISOString();
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (Array.isArray(value)) return `[${value.map(toml).join(", ")}]`;
  return JSON.stringify(String(value));
}

function hostPort(at: HostPort | undefined): string | undefined {
  if (at === undefined) return undefined;
  return `${at.host.includes(":") ? `[${at.host}]` : at.host}:${at.port}`;
}

/** Each serve flag's effective value (undefined: not set). */
function settingValues(c: ServeConfig): Record<string, string | number | boolean | undefined> {
  const etcd = c.store.kind === "etcd" ? c.store : undefined;
  return {
    listen: hostPort(c.listen),
    "data-dir": c.dataDir,
    "log-level": c.logLevel,
    "log-format": c.logFormat,
    "shutdown-grace": c.shutdownGraceMs / 1000,
    "sts-endpoint": c.sts.endpoint,
    "sts-region": c.sts.region,
    "sts-timeout": (c.sts.timeoutMs ?? 5000) / 1000,
    "azure-authority-host": c.azure?.authorityHost,
    "allow-ambient": c.sts.allowAmbient,
    "imds-listen": hostPort(c.imds?.listen),
    "imds-credential": c.imds && displayName(c.imds.credential.namespace, c.imds.credential.name),
    "imds-allow-v1": c.imds?.allowV1 ?? false,
    "gce-metadata-listen": hostPort(c.gceMetadata?.listen),
    "gce-metadata-credential":
      c.gceMetadata &&
      displayName(c.gceMetadata.credential.namespace, c.gceMetadata.credential.name),
    "azure-identity-listen": hostPort(c.azureIdentity?.listen),
    "azure-identity-credential":
      c.azureIdentity &&
      displayName(c.azureIdentity.credential.namespace, c.azureIdentity.credential.name),
    "container-listen": hostPort(c.containerListen),
    "tls-cert": c.tls?.cert,
    "tls-key": c.tls?.key,
    "client-ca": c.tls?.clientCa,
    store: c.store.kind,
    "etcd-endpoints": etcd?.endpoints.join(","),
    "etcd-prefix": etcd?.prefix,
    "etcd-ca": etcd?.tls?.ca,
    "etcd-cert": etcd?.tls?.cert,
    "etcd-key": etcd?.tls?.key,
    "etcd-user": etcd?.auth?.username,
    "etcd-stale-limit": etcd && etcd.staleLimitMs / 1000,
    "audit-log": c.auditLog,
    "rate-limit": c.rateLimit.perSecond,
    "rate-burst": c.rateLimit.burst,
    "auth-failure-delay": c.authFailureDelayMs,
    "forward-allow-private": c.forward.allowPrivate,
    "forward-max-response": c.forward.maxResponseBytes,
    "forward-max-in-flight": c.forward.maxInFlightPerCaller,
    "disable-fast-unary": !c.fastUnary,
  };
}
