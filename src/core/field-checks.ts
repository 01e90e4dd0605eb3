import { create } from "@bufbuild/protobuf";
import {
  type AccessScope,
  type Credential,
  Provider,
  ReadAccess,
  RoleSource,
  type Token,
  TokenPlacement,
} from "../../gen/credbroker/v1/credential_pb.js";
import {
  type Check,
  CheckSchema,
  Severity,
} from "../../gen/credbroker/v1/credential_service_pb.js";
import { HTTP_PREFIX } from "./allowed-hosts.js";
import type { Rule } from "./check-rule.js";
import { isUnscopableWildcard, scopableWildcardDomains } from "./host-wildcards.js";
import { azureRules } from "./kind-rules/azure.js";
import { gcpRules } from "./kind-rules/gcp.js";
import { isValidName, isValidNamespace } from "./names.js";
import { isS3Action, S3_ACTIONS } from "./s3-actions.js";

/** Printable ASCII without spaces. */
const PRINTABLE = /^[\x21-\x7e]+$/;
const AWS_KEY_ID = /^(AKIA|ASIA)[A-Z0-9]{16}$/;
const ROLE_ARN = /^arn:aws(-cn|-us-gov)?:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;
/** STS ExternalId: 2–1224 of [\w+=,.@:/-]. */
const EXTERNAL_ID = /^[\w+=,.@:/-]{2,1224}$/;
/** STS RoleSessionName: 2–64 of [\w+=,.@-]. */
const SESSION_NAME = /^[\w+=,.@-]{2,64}$/;
const REGION = /^[a-z0-9-]{1,64}$/;
const HOST_LABEL = "[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?";
const HOST = new RegExp(`^(\\*\\.)?${HOST_LABEL}(\\.${HOST_LABEL})*$`, "i");
const BRACKETED_IPV6 = /^\[[0-9a-f:.]+\]$/i;
const BUCKET = /^[A-Za-z0-9._-]{1,255}$/;

export const LIMITS = {
  description: 1024,
  principalName: 256,
  metadataEntries: 64,
  metadataKey: 128,
  metadataValue: 1024,
  secret: 1024,
  sessionToken: 8192,
  token: 8192,
  hosts: 100,
  scopes: 100,
  prefixes: 100,
  prefix: 1024,
  sharedNamespaces: 100,
  tokenScopes: 20,
  minDurationSeconds: 900,
  maxDurationSeconds: 43200,
} as const;

function toCheck([check, ok, message, severity = Severity.ERROR]: Rule): Check {
  return create(CheckSchema, { check, ok, severity, message });
}

/**
 * Every structural check of a credential's fields, passed or failed, in a
 * stable order. Messages start with the field path and never quote a secret.
 * Pure: the same credential always gives the same checks.
 */
export function fieldChecks(c: Credential): Check[] {
  const rules: Rule[] = [
    [
      "namespace.format",
      isValidNamespace(c.namespace),
      "namespace: empty (the workspace) or 1-64 of letters, digits, '.', '_', '-'",
    ],
    ["name.format", isValidName(c.name), "name: 1-64 of letters, digits, '.', '_', '-'"],
    [
      "kind.present",
      c.kind.case !== undefined,
      "kind: exactly one of access_key, role, token, service_principal, service_account is required",
    ],
    ...kindRules(c),
    [
      "provider.known",
      PROVIDER_KINDS[c.provider] !== undefined,
      "provider: PROVIDER_AWS, PROVIDER_AZURE, PROVIDER_GCP or PROVIDER_GENERIC",
    ],
    [
      "kind.provider",
      c.kind.case === undefined ||
        PROVIDER_KINDS[c.provider] === undefined ||
        (PROVIDER_KINDS[c.provider] ?? []).includes(c.kind.case),
      `kind: ${providerLabel(c.provider)} takes ${(PROVIDER_KINDS[c.provider] ?? []).map(kindField).join(", ")}`,
    ],
    ...(PROVIDER_RULES[c.provider]?.(c) ?? []),
    ["region.format", c.region === "" || REGION.test(c.region), "region: 1-64 of a-z, 0-9, '-'"],
    [
      "description.length",
      c.description.length <= LIMITS.description,
      `description: at most ${LIMITS.description} characters`,
    ],
    [
      "principal_name.length",
      c.principalName.length <= LIMITS.principalName,
      `principal_name: at most ${LIMITS.principalName} characters`,
    ],
    ...metadataRules(c.metadata),
    [
      "read_access.known",
      Object.values(ReadAccess).includes(c.readAccess),
      "read_access: READ_ACCESS_NAMESPACE, READ_ACCESS_GLOBAL or READ_ACCESS_SPECIFIC_NAMESPACES",
    ],
    [
      "shared_namespaces.format",
      c.sharedNamespaces.length <= LIMITS.sharedNamespaces &&
        c.sharedNamespaces.every(isValidNamespace) &&
        (c.sharedNamespaces.length === 0 || c.readAccess === ReadAccess.SPECIFIC_NAMESPACES),
      `shared_namespaces: at most ${LIMITS.sharedNamespaces} namespaces, only with read_access READ_ACCESS_SPECIFIC_NAMESPACES`,
    ],
    [
      "token_scopes.format",
      c.tokenScopes.length <= LIMITS.tokenScopes &&
        c.tokenScopes.every((t) => t.length <= 256 && PRINTABLE.test(t)),
      `token_scopes: at most ${LIMITS.tokenScopes}, each 1-256 printable ASCII characters without spaces`,
    ],
    ...hostRules(c.allowedHosts, c.allowedScopes.length > 0, c.provider),
    ...scopeRules(c.allowedScopes),
  ];
  return rules.map(toCheck);
}

type KindCase = NonNullable<Credential["kind"]["case"]>;

/** The kinds each provider takes (unset is stored as AWS). */
const PROVIDER_KINDS: Partial<Record<Provider, readonly KindCase[]>> = {
  [Provider.UNSPECIFIED]: ["accessKey", "role", "token"],
  [Provider.AWS]: ["accessKey", "role", "token"],
  [Provider.GENERIC]: ["accessKey", "role", "token"],
  [Provider.AZURE]: ["accessKey", "token", "servicePrincipal"],
  [Provider.GCP]: ["accessKey", "token", "serviceAccount"],
};

/** Each cloud's own shape rules for the kinds it takes (core/kind-rules/, one file per cloud). */
const PROVIDER_RULES: Partial<Record<Provider, (c: Credential) => Rule[]>> = {
  [Provider.AZURE]: azureRules,
  [Provider.GCP]: gcpRules,
};

const KIND_FIELDS: Record<KindCase, string> = {
  accessKey: "access_key",
  role: "role",
  token: "token",
  servicePrincipal: "service_principal",
  serviceAccount: "service_account",
};

function kindField(k: KindCase): string {
  return KIND_FIELDS[k];
}

function providerLabel(p: Provider): string {
  return `PROVIDER_${Provider[p] ?? p}`;
}

/** AWS-shaped key ids are expected where SigV4 is spoken (AWS and S3-compatible stores). */
function awsShaped(c: Credential): boolean {
  return c.provider !== Provider.AZURE && c.provider !== Provider.GCP;
}

function kindRules(c: Credential): Rule[] {
  switch (c.kind.case) {
    case "accessKey": {
      const k = c.kind.value;
      const idOk = k.accessKeyId.length <= 128 && PRINTABLE.test(k.accessKeyId);
      const rules: Rule[] = [
        [
          "access_key.access_key_id.format",
          idOk,
          "access_key.access_key_id: 1-128 printable ASCII characters without spaces",
        ],
      ];
      if (awsShaped(c)) {
        rules.push([
          "access_key.access_key_id.aws_shape",
          !idOk || AWS_KEY_ID.test(k.accessKeyId),
          "access_key.access_key_id: not AWS-shaped (AKIA or ASIA and 16 more); fine for S3-compatible stores",
          Severity.WARNING,
        ]);
      }
      rules.push([
        "access_key.secret_access_key.format",
        k.secretAccessKey.length <= LIMITS.secret && PRINTABLE.test(k.secretAccessKey),
        `access_key.secret_access_key: required, 1-${LIMITS.secret} printable ASCII characters without spaces`,
      ]);
      if (k.sessionToken !== undefined) {
        rules.push([
          "access_key.session_token.format",
          k.sessionToken.length <= LIMITS.sessionToken && PRINTABLE.test(k.sessionToken),
          `access_key.session_token: when set, 1-${LIMITS.sessionToken} printable ASCII characters`,
        ]);
      }
      if (awsShaped(c) && k.accessKeyId.startsWith("ASIA")) {
        rules.push([
          "access_key.session_token.present",
          k.sessionToken !== undefined,
          "access_key.session_token: an ASIA key is temporary and needs its session token",
          Severity.WARNING,
        ]);
      }
      return rules;
    }
    case "role": {
      const r = c.kind.value;
      const rules: Rule[] = [
        [
          "role.role_arn.format",
          ROLE_ARN.test(r.roleArn),
          "role.role_arn: must look like arn:aws:iam::123456789012:role/NAME (aws, aws-cn or aws-us-gov)",
        ],
        [
          "role.external_id.format",
          EXTERNAL_ID.test(r.externalId),
          "role.external_id: 2-1224 of letters, digits and + = , . @ : / - _",
        ],
        [
          "role.duration_seconds.range",
          r.durationSeconds >= LIMITS.minDurationSeconds &&
            r.durationSeconds <= LIMITS.maxDurationSeconds,
          `role.duration_seconds: ${LIMITS.minDurationSeconds}-${LIMITS.maxDurationSeconds}`,
        ],
        r.source === RoleSource.AMBIENT
          ? [
              "role.source_credential.format",
              r.sourceCredential === "",
              "role.source_credential: must be empty when role.source is ROLE_SOURCE_AMBIENT",
            ]
          : [
              "role.source_credential.format",
              isValidName(r.sourceCredential),
              "role.source_credential: the name of an access_key credential in the same namespace (or role.source = ROLE_SOURCE_AMBIENT)",
            ],
        [
          "role.source.known",
          Object.values(RoleSource).includes(r.source),
          "role.source: ROLE_SOURCE_CREDENTIAL or ROLE_SOURCE_AMBIENT",
        ],
      ];
      if (r.sessionName !== undefined) {
        rules.push([
          "role.session_name.format",
          SESSION_NAME.test(r.sessionName),
          "role.session_name: 2-64 of letters, digits and + = , . @ - _",
        ]);
      }
      return rules;
    }
    case "token":
      return [
        [
          "token.token.format",
          c.kind.value.token.length <= LIMITS.token && PRINTABLE.test(c.kind.value.token),
          `token.token: required, 1-${LIMITS.token} printable ASCII characters without spaces`,
        ],
        ...placementRules(c.kind.value),
      ];
    default:
      return [];
  }
}

/** Header names a token may not take: the broker sets them, or they are hop-by-hop. */
export const RESERVED_TOKEN_HEADERS = new Set([
  "host",
  "content-length",
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/;
const QUERY_NAME = /^[A-Za-z0-9._~-]{1,128}$/;
/** Printable ASCII, spaces allowed: written before the token in a header. */
const PREFIX = /^[\x20-\x7e]{0,64}$/;
/** A Basic user name: printable, no ':' (it ends the user name). */
const USERNAME = /^[\x20-\x39\x3b-\x7e]{0,256}$/;

function placementRules(t: Token): Rule[] {
  const p = t.placement;
  const only = (field: keyof Token, used: boolean, placement: string): Rule => [
    `token.${snake(field)}.placement`,
    used || t[field] === "",
    `token.${snake(field)}: only with TOKEN_PLACEMENT_${placement}`,
  ];
  return [
    [
      "token.placement.known",
      TokenPlacement[p] !== undefined,
      "token.placement: one of TOKEN_PLACEMENT_BEARER, _HEADER, _QUERY, _BASIC, _QUERY_STRING (unset means BEARER)",
    ],
    only("headerName", p === TokenPlacement.HEADER, "HEADER"),
    only("prefix", p === TokenPlacement.HEADER, "HEADER"),
    only("queryName", p === TokenPlacement.QUERY, "QUERY"),
    only("username", p === TokenPlacement.BASIC, "BASIC"),
    [
      "token.header_name.format",
      p !== TokenPlacement.HEADER ||
        (HEADER_NAME.test(t.headerName) && !RESERVED_TOKEN_HEADERS.has(t.headerName.toLowerCase())),
      "token.header_name: required with TOKEN_PLACEMENT_HEADER, an HTTP header name (1-64 characters) other than Host, Content-Length and hop-by-hop headers",
    ],
    [
      "token.prefix.format",
      PREFIX.test(t.prefix),
      "token.prefix: at most 64 printable ASCII characters",
    ],
    [
      "token.query_name.format",
      p !== TokenPlacement.QUERY || QUERY_NAME.test(t.queryName),
      "token.query_name: required with TOKEN_PLACEMENT_QUERY, 1-128 of letters, digits, '.', '_', '~', '-'",
    ],
    [
      "token.username.format",
      USERNAME.test(t.username),
      "token.username: at most 256 printable ASCII characters, no ':'",
    ],
  ];
}

function snake(field: string): string {
  return field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function metadataRules(metadata: Record<string, string>): Rule[] {
  const entries = Object.entries(metadata);
  return [
    [
      "metadata.size",
      entries.length <= LIMITS.metadataEntries,
      `metadata: at most ${LIMITS.metadataEntries} entries`,
    ],
    [
      "metadata.entries",
      entries.every(
        ([k, v]) =>
          k.length >= 1 && k.length <= LIMITS.metadataKey && v.length <= LIMITS.metadataValue,
      ),
      `metadata: keys 1-${LIMITS.metadataKey} characters, values at most ${LIMITS.metadataValue}`,
    ],
  ];
}

function hostRules(hosts: string[], scoped: boolean, provider: Provider): Rule[] {
  const bad = indexesWhere(hosts, (entry) => {
    const h = entry.toLowerCase().startsWith(HTTP_PREFIX) ? entry.slice(HTTP_PREFIX.length) : entry;
    return !(HOST.test(h) || BRACKETED_IPV6.test(h));
  });
  const wildcards = scoped ? indexesWhere(hosts, (h) => isUnscopableWildcard(h, provider)) : [];
  const domains = scopableWildcardDomains(provider)
    .map((d) => `*${d}`)
    .join(", ");
  return [
    ["allowed_hosts.size", hosts.length <= LIMITS.hosts, `allowed_hosts: at most ${LIMITS.hosts}`],
    [
      "allowed_hosts.format",
      bad.length === 0,
      `allowed_hosts: each an exact host, IP literal or *.suffix, optionally after http://, without port or path${shown("allowed_hosts", bad)}`,
    ],
    [
      "allowed_hosts.wildcard_with_scopes",
      wildcards.length === 0,
      `allowed_hosts: with allowed_scopes, a *. wildcard only under ${domains}, other hosts listed exactly, since a server there may read the bucket from the host name${shown("allowed_hosts", wildcards)}`,
    ],
  ];
}

/** The indexes of the entries `bad` holds for: messages point at entries, never quote them. */
function indexesWhere(values: readonly string[], bad: (value: string) => boolean): number[] {
  return values.flatMap((v, i) => (bad(v) ? [i] : []));
}

function shown(field: string, indexes: readonly number[]): string {
  if (indexes.length === 0) return "";
  const named = indexes.slice(0, 3).map((i) => `${field}[${i}]`);
  return ` (${named.join(", ")}${indexes.length > 3 ? ", …" : ""})`;
}

function scopeRules(scopes: AccessScope[]): Rule[] {
  const unknown = scopes.flatMap((s, i) => (s.actions.every(isS3Action) ? [] : [i]));
  return [
    [
      "allowed_scopes.size",
      scopes.length <= LIMITS.scopes,
      `allowed_scopes: at most ${LIMITS.scopes}`,
    ],
    [
      "allowed_scopes.bucket",
      scopes.every((s) => BUCKET.test(s.bucket)),
      "allowed_scopes.bucket: required, 1-255 of letters, digits, '.', '_', '-'",
    ],
    [
      "allowed_scopes.prefixes",
      scopes.every(
        (s) =>
          s.prefixes.length <= LIMITS.prefixes &&
          s.prefixes.every((p) => p.length <= LIMITS.prefix),
      ),
      `allowed_scopes.prefixes: at most ${LIMITS.prefixes}, each at most ${LIMITS.prefix} characters`,
    ],
    [
      "allowed_scopes.actions",
      unknown.length === 0 && scopes.every((s) => s.actions.length > 0),
      `allowed_scopes.actions: at least one, each of ${S3_ACTIONS.join(", ")}${shown("allowed_scopes", unknown)}`,
    ],
  ];
}
