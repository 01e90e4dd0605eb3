import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  AccessKeySchema,
  type AccessScope,
  AccessScopeSchema,
  type Credential,
  CredentialSchema,
  Provider,
  RoleSchema,
  RoleSource,
  ServiceAccountKeySchema,
  ServicePrincipalSchema,
  TokenPlacement,
  TokenSchema,
} from "../../gen/credbroker/v1/credential_pb.js";
import { type FlagSpec, type ParsedFlags, UsageError } from "./flags.js";
import { secretFlags, secretGiven } from "./secret-input.js";

/** Every Credential field as a flag; create, update and verify --candidate share them. */
export const FIELD_FLAGS: readonly FlagSpec[] = [
  {
    name: "kind",
    kind: "string",
    value: "KIND",
    help: "access-key, role, token, service-principal or service-account (inferred from --access-key-id, --role-arn, --tenant-id, --key-file)",
  },
  {
    name: "key-file",
    kind: "string",
    value: "FILE",
    help: "a Google service account's JSON key file (service-account; never printed)",
  },
  { name: "access-key-id", kind: "string", value: "ID", help: "access key id (not a secret)" },
  {
    name: "account-name",
    kind: "string",
    value: "NAME",
    help: "Azure storage account name (access-key, provider azure; the access key id)",
  },
  {
    name: "tenant-id",
    kind: "string",
    value: "ID",
    help: "Entra ID tenant: a GUID or domain (service-principal)",
  },
  {
    name: "client-id",
    kind: "string",
    value: "GUID",
    help: "Entra ID application (client) id (service-principal)",
  },
  ...secretFlags(
    "secret",
    "secret access key or account key (access-key), token or SAS (token), client secret (service-principal), JSON key (service-account)",
  ),
  ...secretFlags("session-token", "session token of a temporary access key"),
  { name: "role-arn", kind: "string", value: "ARN", help: "role to assume" },
  {
    name: "external-id",
    kind: "string",
    value: "ID",
    help: "role external id (generated if unset)",
  },
  { name: "session-name", kind: "string", value: "NAME", help: "role session name" },
  { name: "duration", kind: "string", value: "SECONDS", help: "role session duration, 900-43200" },
  {
    name: "source",
    kind: "string",
    value: "NAME",
    help: "access-key credential (same namespace) that assumes the role",
  },
  {
    name: "role-source",
    kind: "string",
    value: "credential|ambient",
    help: "who calls STS: --source's access key, or the daemon's own identity",
  },
  {
    name: "token-placement",
    kind: "string",
    value: "bearer|header|query|basic|query-string",
    help: "where a forwarded request carries the token (unset: bearer; query-string: an Azure SAS)",
  },
  { name: "token-header", kind: "string", value: "NAME", help: "the header (placement header)" },
  {
    name: "token-prefix",
    kind: "string",
    value: "TEXT",
    help: 'written before the token in --token-header, e.g. "Token "',
  },
  {
    name: "token-query",
    kind: "string",
    value: "NAME",
    help: "the query parameter (placement query)",
  },
  {
    name: "token-username",
    kind: "string",
    value: "NAME",
    help: "the user name (placement basic)",
  },
  {
    name: "provider",
    kind: "string",
    value: "aws|azure|gcp|generic",
    help: "provider (unset: azure for --account-name or a service principal, gcp for a service account, else aws)",
  },
  {
    name: "token-scope",
    kind: "list",
    value: "SCOPE",
    help: "OAuth scope the credential's tokens may carry (repeatable)",
  },
  { name: "region", kind: "string", value: "REGION", help: "default signing region" },
  { name: "description", kind: "string", value: "TEXT", help: "description" },
  {
    name: "principal-name",
    kind: "string",
    value: "NAME",
    help: "identity the credential acts as",
  },
  { name: "metadata", kind: "list", value: "KEY=VALUE", help: "metadata entry" },
  {
    name: "provider-default",
    kind: "string",
    value: "true|false",
    help: "the namespace's default for its provider",
  },
  {
    name: "allowed-in-tasks",
    kind: "string",
    value: "true|false",
    help: "may be served to IMDS/container endpoints",
  },
  { name: "enabled", kind: "string", value: "true|false", help: "signs only when enabled" },
  {
    name: "expires-at",
    kind: "string",
    value: "RFC3339",
    help: "signs nothing after this instant",
  },
  { name: "allowed-host", kind: "list", value: "HOST", help: "host it may sign for (or *.suffix)" },
  {
    name: "scope",
    kind: "list",
    value: "BUCKET[/PREFIX]=ACTION,…",
    help: "S3 scope, e.g. reports/2026/=get_object,list_bucket",
  },
];

type KindCase = "accessKey" | "role" | "token" | "servicePrincipal" | "serviceAccount";

/** Flags that set a field of one kind, with their field path inside the kind. */
const KIND_FIELD_FLAGS: Record<string, { kind: KindCase; path: string }> = {
  "access-key-id": { kind: "accessKey", path: "access_key.access_key_id" },
  "account-name": { kind: "accessKey", path: "access_key.access_key_id" },
  "role-arn": { kind: "role", path: "role.role_arn" },
  "external-id": { kind: "role", path: "role.external_id" },
  "session-name": { kind: "role", path: "role.session_name" },
  duration: { kind: "role", path: "role.duration_seconds" },
  source: { kind: "role", path: "role.source_credential" },
  "role-source": { kind: "role", path: "role.source" },
  "token-placement": { kind: "token", path: "token.placement" },
  "token-header": { kind: "token", path: "token.header_name" },
  "token-prefix": { kind: "token", path: "token.prefix" },
  "token-query": { kind: "token", path: "token.query_name" },
  "token-username": { kind: "token", path: "token.username" },
  "tenant-id": { kind: "servicePrincipal", path: "service_principal.tenant_id" },
  "client-id": { kind: "servicePrincipal", path: "service_principal.client_id" },
  "key-file": { kind: "serviceAccount", path: "service_account.key_json" },
};

/** The token's placement fields: --token-placement on update sets them all (unset ones cleared). */
const PLACEMENT_PATHS = [
  "token.placement",
  "token.header_name",
  "token.prefix",
  "token.query_name",
  "token.username",
];

/** Flags for top-level fields, with their field path. */
const FIELD_PATHS: Record<string, string> = {
  provider: "provider",
  region: "region",
  description: "description",
  "principal-name": "principal_name",
  metadata: "metadata",
  "provider-default": "provider_default",
  "allowed-in-tasks": "allowed_in_tasks",
  enabled: "enabled",
  "expires-at": "expires_at",
  "allowed-host": "allowed_hosts",
  scope: "allowed_scopes",
  "token-scope": "token_scopes",
};

const KIND_NAMES: Record<string, KindCase> = {
  "access-key": "accessKey",
  role: "role",
  token: "token",
  "service-principal": "servicePrincipal",
  "service-account": "serviceAccount",
};

/** Each kind's field path in an update mask, and the path of its secret. */
const KIND_PATHS: Record<KindCase, { kind: string; secret: string }> = {
  accessKey: { kind: "access_key", secret: "access_key.secret_access_key" },
  role: { kind: "role", secret: "" },
  token: { kind: "token", secret: "token.token" },
  servicePrincipal: { kind: "service_principal", secret: "service_principal.client_secret" },
  serviceAccount: { kind: "service_account", secret: "service_account.key_json" },
};

/** The paths `--clear FIELD` may empty. */
export const CLEARABLE: Record<string, string> = {
  region: "region",
  description: "description",
  "principal-name": "principal_name",
  metadata: "metadata",
  "expires-at": "expires_at",
  "allowed-hosts": "allowed_hosts",
  scopes: "allowed_scopes",
  "session-token": "access_key.session_token",
  "session-name": "role.session_name",
  "token-scopes": "token_scopes",
};

export interface Secrets {
  secret?: string | undefined;
  sessionToken?: string | undefined;
}

/** The kind the flags describe: --kind, else the kind of the kind-specific flags given. */
export function kindFromFlags(flags: ParsedFlags): KindCase | undefined {
  const explicit = flags.string("kind");
  if (explicit !== undefined) {
    const kind = KIND_NAMES[explicit];
    if (kind === undefined) {
      throw new UsageError(
        "--kind: one of access-key, role, token, service-principal, service-account",
      );
    }
    return kind;
  }
  const implied = new Set(
    Object.entries(KIND_FIELD_FLAGS)
      .filter(([flag]) => flags.given(flag))
      .map(([, f]) => f.kind),
  );
  if (secretGiven(flags, "session-token")) implied.add("accessKey");
  if (implied.size > 1) throw new UsageError("flags of more than one kind given; say --kind");
  return [...implied][0];
}

/** A whole credential from the flags (create, verify --candidate). */
export function credentialFromFlags(
  flags: ParsedFlags,
  namespace: string,
  name: string,
  secrets: Secrets,
): Credential {
  const kind = kindFromFlags(flags);
  if (kind === undefined) {
    throw new UsageError(
      "say what kind: --kind access-key|role|token|service-principal|service-account (or --access-key-id / --role-arn / --tenant-id / --key-file)",
    );
  }
  const c = create(CredentialSchema, { namespace, name });
  c.kind = kindValue(kind, flags, secrets);
  for (const flag of Object.keys(FIELD_PATHS)) {
    if (flags.given(flag)) setField(c, flag, flags);
  }
  // Only Azure has service principals and storage account names: saying so again is not needed.
  if ((kind === "servicePrincipal" || flags.given("account-name")) && !flags.given("provider")) {
    c.provider = Provider.AZURE;
  }
  // Only Google Cloud has service accounts: saying so again is not needed.
  if (kind === "serviceAccount" && !flags.given("provider")) c.provider = Provider.GCP;
  return c;
}

/**
 * The patch and update mask the flags describe, for a credential whose current
 * kind is `currentKind`: only flags given on the command line (or --clear) change
 * anything. With --kind, the whole kind is replaced.
 */
export function updateFromFlags(
  flags: ParsedFlags,
  currentKind: Credential["kind"]["case"],
  secrets: Secrets,
): { patch: Credential; paths: string[] } {
  const patch = create(CredentialSchema);
  const paths: string[] = [];
  if (flags.given("rename")) {
    patch.name = flags.string("rename") ?? "";
    paths.push("name");
  }
  for (const [flag, path] of Object.entries(FIELD_PATHS)) {
    if (flags.given(flag)) {
      setField(patch, flag, flags);
      paths.push(path);
    }
  }
  for (const field of flags.list("clear")) {
    const path = CLEARABLE[field];
    if (path === undefined) {
      throw new UsageError(`--clear: one of ${Object.keys(CLEARABLE).join(", ")}`);
    }
    paths.push(path);
  }

  const kind = kindFromFlags(flags) ?? cliKind(currentKind);
  const kindPaths: string[] = [];
  for (const [flag, f] of Object.entries(KIND_FIELD_FLAGS)) {
    if (flags.given(flag)) kindPaths.push(f.path);
  }
  // A new placement drops the fields of the old one, which it would otherwise refuse.
  if (flags.given("token-placement")) {
    kindPaths.push(...PLACEMENT_PATHS.filter((p) => !kindPaths.includes(p)));
  }
  if (secrets.secret !== undefined && kind !== undefined && kind !== "role") {
    const path = KIND_PATHS[kind].secret;
    if (!kindPaths.includes(path)) kindPaths.push(path);
  }
  if (secrets.sessionToken !== undefined) kindPaths.push("access_key.session_token");
  const clearsKindField = paths.some((p) => p.includes("."));
  if (kind !== undefined && (kindPaths.length > 0 || clearsKindField || flags.given("kind"))) {
    patch.kind = kindValue(kind, flags, secrets);
    if (flags.given("kind")) {
      paths.push(KIND_PATHS[kind].kind);
    } else {
      paths.push(...kindPaths);
    }
  }
  return { patch, paths };
}

/** The kinds these flags can write; others are left to the API. */
function cliKind(kind: Credential["kind"]["case"]): KindCase | undefined {
  return kind === "accessKey" ||
    kind === "role" ||
    kind === "token" ||
    kind === "servicePrincipal" ||
    kind === "serviceAccount"
    ? kind
    : undefined;
}

function kindValue(kind: KindCase, flags: ParsedFlags, secrets: Secrets): Credential["kind"] {
  switch (kind) {
    case "accessKey":
      if (flags.given("access-key-id") && flags.given("account-name")) {
        throw new UsageError("give --access-key-id or --account-name, not both");
      }
      return {
        case: "accessKey",
        value: create(AccessKeySchema, {
          accessKeyId: flags.string("access-key-id") ?? flags.string("account-name") ?? "",
          secretAccessKey: secrets.secret ?? "",
          sessionToken: secrets.sessionToken,
        }),
      };
    case "role": {
      const duration = flags.string("duration");
      return {
        case: "role",
        value: create(RoleSchema, {
          roleArn: flags.string("role-arn") ?? "",
          externalId: flags.string("external-id") ?? "",
          sessionName: flags.string("session-name"),
          durationSeconds: duration === undefined ? 0 : integer(duration, "--duration"),
          sourceCredential: flags.string("source") ?? "",
          source: roleSource(flags.string("role-source")),
        }),
      };
    }
    case "token":
      return {
        case: "token",
        value: create(TokenSchema, {
          token: secrets.secret ?? "",
          placement: placement(flags.string("token-placement")),
          headerName: flags.string("token-header") ?? "",
          prefix: flags.string("token-prefix") ?? "",
          queryName: flags.string("token-query") ?? "",
          username: flags.string("token-username") ?? "",
        }),
      };
    case "servicePrincipal":
      return {
        case: "servicePrincipal",
        value: create(ServicePrincipalSchema, {
          tenantId: flags.string("tenant-id") ?? "",
          clientId: flags.string("client-id") ?? "",
          clientSecret: secrets.secret ?? "",
        }),
      };
    case "serviceAccount":
      return {
        case: "serviceAccount",
        value: create(ServiceAccountKeySchema, { keyJson: secrets.secret ?? "" }),
      };
  }
}

const PLACEMENTS: Record<string, TokenPlacement> = {
  bearer: TokenPlacement.BEARER,
  header: TokenPlacement.HEADER,
  query: TokenPlacement.QUERY,
  basic: TokenPlacement.BASIC,
  "query-string": TokenPlacement.QUERY_STRING,
};

function placement(value: string | undefined): TokenPlacement {
  if (value === undefined) return TokenPlacement.UNSPECIFIED;
  const p = Object.hasOwn(PLACEMENTS, value.toLowerCase())
    ? PLACEMENTS[value.toLowerCase()]
    : undefined;
  if (p === undefined) {
    throw new UsageError(
      "--token-placement: bearer, header, query or basic (or query-string, for an Azure SAS)",
    );
  }
  return p;
}

function setField(c: Credential, flag: string, flags: ParsedFlags): void {
  const value = flags.string(flag) ?? "";
  switch (flag) {
    case "provider":
      c.provider = provider(value);
      break;
    case "region":
      c.region = value;
      break;
    case "description":
      c.description = value;
      break;
    case "principal-name":
      c.principalName = value;
      break;
    case "metadata":
      c.metadata = Object.fromEntries(flags.list(flag).map(keyValue));
      break;
    case "provider-default":
      c.providerDefault = bool(value, "--provider-default");
      break;
    case "allowed-in-tasks":
      c.allowedInTasks = bool(value, "--allowed-in-tasks");
      break;
    case "enabled":
      c.enabled = bool(value, "--enabled");
      break;
    case "expires-at":
      c.expiresAt = timestampFromDate(instant(value));
      break;
    case "allowed-host":
      c.allowedHosts = flags.list(flag);
      break;
    case "scope":
      c.allowedScopes = flags.list(flag).map(scope);
      break;
    case "token-scope":
      c.tokenScopes = flags.list(flag);
      break;
  }
}

function roleSource(value: string | undefined): RoleSource {
  switch (value?.toLowerCase()) {
    case undefined:
      return RoleSource.UNSPECIFIED;
    case "credential":
      return RoleSource.CREDENTIAL;
    case "ambient":
      return RoleSource.AMBIENT;
    default:
      throw new UsageError("--role-source: credential or ambient");
  }
}

function provider(value: string): Provider {
  switch (value.toLowerCase()) {
    case "aws":
      return Provider.AWS;
    case "azure":
      return Provider.AZURE;
    case "gcp":
      return Provider.GCP;
    case "generic":
      return Provider.GENERIC;
    default:
      throw new UsageError("--provider: aws, azure, gcp or generic");
  }
}

function bool(value: string, flag: string): boolean {
  if (/^(true|yes|1)$/i.test(value)) return true;
  if (/^(false|no|0)$/i.test(value)) return false;
  throw new UsageError(`${flag}: true or false`);
}

function integer(value: string, flag: string): number {
  if (!/^\d{1,9}$/.test(value)) throw new UsageError(`${flag}: a whole number`);
  return Number(value);
}

function instant(value: string): Date {
  const ms = /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$/i.test(value)
    ? Date.parse(value)
    : Number.NaN;
  if (Number.isNaN(ms))
    throw new UsageError("--expires-at: an RFC 3339 time, e.g. 2027-01-31T00:00:00Z");
  return new Date(ms);
}

function keyValue(entry: string): [string, string] {
  const at = entry.indexOf("=");
  if (at <= 0) throw new UsageError("--metadata: KEY=VALUE");
  return [entry.slice(0, at), entry.slice(at + 1)];
}

/** "bucket=get_object", "bucket/prefix/=get_object,list_bucket". */
function scope(entry: string): AccessScope {
  const at = entry.lastIndexOf("=");
  if (at <= 0) throw new UsageError("--scope: BUCKET[/PREFIX]=ACTION,…");
  const target = entry.slice(0, at);
  const slash = target.indexOf("/");
  const bucket = slash < 0 ? target : target.slice(0, slash);
  const prefix = slash < 0 ? "" : target.slice(slash + 1);
  return create(AccessScopeSchema, {
    bucket,
    prefixes: prefix === "" ? [] : [prefix],
    actions: entry
      .slice(at + 1)
      .split(",")
      .map((a) => a.trim())
      .filter(Boolean),
  });
}
