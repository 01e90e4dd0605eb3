import { timestampDate } from "@bufbuild/protobuf/wkt";
import {
  type Credential,
  Provider,
  RoleSource,
  type Token,
  TokenPlacement,
} from "../../gen/credbroker/v1/credential_pb.js";
import type { Check } from "../../gen/credbroker/v1/credential_service_pb.js";
import { Severity } from "../../gen/credbroker/v1/credential_service_pb.js";

/** Columns padded to their widest cell; the last column is not padded. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join("  ")
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join("");
}

const KIND_NAMES = {
  accessKey: "access-key",
  role: "role",
  token: "token",
  servicePrincipal: "service-principal",
  serviceAccount: "service-account",
} as const;

export function kindName(c: Credential): string {
  return c.kind.case === undefined ? "-" : KIND_NAMES[c.kind.case];
}

export function providerName(p: Provider): string {
  return Provider[p]?.toLowerCase() ?? String(p);
}

function when(t: Credential["createdAt"]): string {
  return t === undefined ? "-" : timestampDate(t).toISOString();
}

/** Where a forwarded request carries the token, e.g. "header X-Api-Key: Token …" (never the token). */
export function placementText(t: Token): string {
  switch (t.placement) {
    case TokenPlacement.HEADER:
      return `header ${t.headerName}: ${t.prefix}…`;
    case TokenPlacement.QUERY:
      return `query ?${t.queryName}=…`;
    case TokenPlacement.BASIC:
      return `basic (user ${t.username === "" ? '""' : t.username})`;
    case TokenPlacement.QUERY_STRING:
      return "query string (?…, e.g. an Azure SAS)";
    default:
      return "bearer (Authorization: Bearer …)";
  }
}

/** One credential as FIELD / VALUE rows; secrets are never there to show. */
export function credentialTable(c: Credential): string {
  const rows: string[][] = [
    ["namespace", c.namespace === "" ? '"" (workspace)' : c.namespace],
    ["name", c.name],
    ["id", c.id],
    ["kind", kindName(c)],
  ];
  switch (c.kind.case) {
    case "accessKey":
      rows.push(["access key id", c.kind.value.accessKeyId]);
      rows.push(["session token", c.kind.value.sessionToken === undefined ? "no" : "set (hidden)"]);
      break;
    case "role":
      rows.push(
        ["role arn", c.kind.value.roleArn],
        ["external id", c.kind.value.externalId],
        ["session name", c.kind.value.sessionName ?? "-"],
        ["duration", `${c.kind.value.durationSeconds}s`],
        [
          "source",
          c.kind.value.source === RoleSource.AMBIENT
            ? "(the daemon's own identity)"
            : c.kind.value.sourceCredential,
        ],
      );
      break;
    case "token":
      rows.push(["placement", placementText(c.kind.value)]);
      break;
    case "servicePrincipal":
      rows.push(["tenant id", c.kind.value.tenantId], ["client id", c.kind.value.clientId]);
      break;
    case "serviceAccount":
      rows.push(
        ["client email", c.kind.value.clientEmail || "-"],
        ["private key id", c.kind.value.privateKeyId || "-"],
        ["project id", c.kind.value.projectId || "-"],
      );
      break;
    default:
      break;
  }
  rows.push(
    ["provider", providerName(c.provider)],
    ["region", c.region || "-"],
    ["enabled", String(c.enabled !== false)],
    ["provider default", String(c.providerDefault)],
    ["allowed in tasks", String(c.allowedInTasks)],
    ["expires at", when(c.expiresAt)],
    ["allowed hosts", c.allowedHosts.join(", ") || "-"],
    ["token scopes", c.tokenScopes.join(" ") || "-"],
    [
      "scopes",
      c.allowedScopes
        .map(
          (s) =>
            `${s.bucket}${s.prefixes.length ? `/{${s.prefixes.join(",")}}` : ""}=${s.actions.join(",")}`,
        )
        .join("; ") || "-",
    ],
    ["principal", c.principalName || "-"],
    ["description", c.description || "-"],
    [
      "metadata",
      Object.entries(c.metadata)
        .map(([k, v]) => `${k}=${v}`)
        .join(", ") || "-",
    ],
    ["created", when(c.createdAt)],
    ["updated", when(c.updatedAt)],
    ["etag", c.etag],
  );
  return table(rows);
}

/**
 * Whether a credential signs: "active", or what stops it ("disabled",
 * "expired", or both) as of `now` (the CLI's clock; the daemon decides with its own).
 */
export function credentialStatus(c: Credential, now: Date): string {
  const stops: string[] = [];
  if (c.enabled === false) stops.push("disabled");
  if (c.expiresAt !== undefined && timestampDate(c.expiresAt).getTime() <= now.getTime()) {
    stops.push("expired");
  }
  return stops.join(",") || "active";
}

/** A listing, one credential per line; EXPIRES is "-" for a credential that never expires. */
export function credentialList(credentials: readonly Credential[], now = new Date()): string {
  return table([
    [
      "NAMESPACE",
      "NAME",
      "KIND",
      "PROVIDER",
      "STATUS",
      "DEFAULT",
      "ACCESS KEY ID / ROLE",
      "EXPIRES",
      "UPDATED",
    ],
    ...credentials.map((c) => [
      c.namespace || '""',
      c.name,
      kindName(c),
      providerName(c.provider),
      credentialStatus(c, now),
      c.providerDefault ? "yes" : "",
      c.kind.case === "accessKey"
        ? c.kind.value.accessKeyId
        : c.kind.case === "role"
          ? c.kind.value.roleArn
          : c.kind.case === "servicePrincipal"
            ? c.kind.value.clientId
            : c.kind.case === "serviceAccount"
              ? c.kind.value.clientEmail
              : // A token shows its placement unless it is the default (bearer).
                c.kind.case === "token" && c.kind.value.placement > TokenPlacement.BEARER
                ? placementText(c.kind.value)
                : "",
      when(c.expiresAt),
      when(c.updatedAt),
    ]),
  ]);
}

/** A verdict: the overall answer, then every check. */
export function verdictTable(valid: boolean, checks: readonly Check[]): string {
  return `valid: ${valid ? "yes" : "no"}\n${table([
    ["CHECK", "OK", "SEVERITY", "MESSAGE"],
    ...checks.map((k) => [
      k.check,
      k.ok ? "ok" : "FAIL",
      (Severity[k.severity] ?? "").toLowerCase(),
      k.ok ? "" : k.message,
    ]),
  ])}`;
}
