import { clone } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type Credential,
  CredentialSchema,
  Provider,
  ReadAccess,
  RoleSource,
} from "../../gen/credbroker/v1/credential_pb.js";
import { DomainError } from "./errors.js";
import { describeServiceAccount } from "./kind-rules/gcp.js";

/** Injected sources of time and randomness: the core never reads a clock itself. */
export interface Ambient {
  now(): Date;
  /** A new unique id (a UUID). */
  newId(): string;
}

export const DEFAULT_ROLE_DURATION_SECONDS = 3600;

/** Fills in what "unset" means, so stored credentials say it explicitly. */
function normalize(c: Credential, ambient: Ambient): void {
  if (c.provider === Provider.UNSPECIFIED) c.provider = Provider.AWS;
  if (c.enabled === undefined) c.enabled = true;
  if (c.readAccess === ReadAccess.UNSPECIFIED) c.readAccess = ReadAccess.NAMESPACE;
  c.allowedHosts = c.allowedHosts.map((h) => h.toLowerCase());
  describeServiceAccount(c);
  if (c.kind.case === "role") {
    const role = c.kind.value;
    if (role.externalId === "") role.externalId = ambient.newId();
    if (role.durationSeconds === 0) role.durationSeconds = DEFAULT_ROLE_DURATION_SECONDS;
    if (role.source === RoleSource.UNSPECIFIED && role.sourceCredential !== "") {
      role.source = RoleSource.CREDENTIAL;
    }
  }
}

/**
 * The credential to store for a create request: output-only fields replaced
 * (id, timestamps; etag is the store's), defaults made explicit.
 */
export function prepareNew(input: Credential, ambient: Ambient): Credential {
  const c = clone(CredentialSchema, input);
  const now = timestampFromDate(ambient.now());
  c.id = ambient.newId();
  c.createdAt = now;
  c.updatedAt = now;
  c.etag = "";
  c.managedBy = "";
  normalize(c, ambient);
  return c;
}

const TOP_LEVEL = {
  name: (to, from) => {
    to.name = from.name;
  },
  provider: (to, from) => {
    to.provider = from.provider;
  },
  region: (to, from) => {
    to.region = from.region;
  },
  description: (to, from) => {
    to.description = from.description;
  },
  metadata: (to, from) => {
    to.metadata = { ...from.metadata };
  },
  principal_name: (to, from) => {
    to.principalName = from.principalName;
  },
  provider_default: (to, from) => {
    to.providerDefault = from.providerDefault;
  },
  allowed_in_tasks: (to, from) => {
    to.allowedInTasks = from.allowedInTasks;
  },
  enabled: (to, from) => {
    to.enabled = from.enabled;
  },
  expires_at: (to, from) => {
    to.expiresAt = from.expiresAt;
  },
  allowed_hosts: (to, from) => {
    to.allowedHosts = [...from.allowedHosts];
  },
  allowed_scopes: (to, from) => {
    to.allowedScopes = from.allowedScopes;
  },
  read_access: (to, from) => {
    to.readAccess = from.readAccess;
  },
  shared_namespaces: (to, from) => {
    to.sharedNamespaces = [...from.sharedNamespaces];
  },
  token_scopes: (to, from) => {
    to.tokenScopes = [...from.tokenScopes];
  },
} satisfies Record<string, (to: Credential, from: Credential) => void>;

type KindCase = NonNullable<Credential["kind"]["case"]>;

/** Field paths inside each kind, by proto name → the message's property. */
const KIND_FIELDS = {
  access_key: {
    case: "accessKey",
    fields: {
      access_key_id: "accessKeyId",
      secret_access_key: "secretAccessKey",
      session_token: "sessionToken",
    },
  },
  role: {
    case: "role",
    fields: {
      role_arn: "roleArn",
      external_id: "externalId",
      session_name: "sessionName",
      duration_seconds: "durationSeconds",
      source_credential: "sourceCredential",
      source: "source",
    },
  },
  token: {
    case: "token",
    fields: {
      token: "token",
      placement: "placement",
      header_name: "headerName",
      prefix: "prefix",
      query_name: "queryName",
      username: "username",
    },
  },
  service_principal: {
    case: "servicePrincipal",
    fields: { tenant_id: "tenantId", client_id: "clientId", client_secret: "clientSecret" },
  },
  // client_email, private_key_id, project_id are read from the key, never written.
  service_account: { case: "serviceAccount", fields: { key_json: "keyJson" } },
} as const satisfies Record<string, { case: KindCase; fields: Record<string, string> }>;

const IMMUTABLE = new Set(["id", "namespace", "created_at", "updated_at", "etag", "managed_by"]);

/** Every path an update_mask may name, for error messages and docs. */
export const UPDATABLE_PATHS: readonly string[] = [
  ...Object.keys(TOP_LEVEL),
  ...Object.entries(KIND_FIELDS).flatMap(([kind, k]) => [
    kind,
    ...Object.keys(k.fields).map((f) => `${kind}.${f}`),
  ]),
];

/**
 * Applies the fields named in `paths` from `patch` onto a copy of `current`.
 * Only named fields change, so a read-modify-write that leaves a secret out
 * of the mask never wipes it. Throws invalid_argument for an empty mask, an
 * unknown or output-only path, or a kind path that does not match the kind.
 */
export function applyUpdate(
  current: Credential,
  patch: Credential,
  paths: readonly string[],
  ambient: Ambient,
): Credential {
  if (paths.length === 0) {
    throw new DomainError(
      "invalid_argument",
      `update_mask: name at least one field (one of ${UPDATABLE_PATHS.join(", ")})`,
    );
  }
  const next = clone(CredentialSchema, current);
  const copy = clone(CredentialSchema, patch);
  for (const path of paths) applyPath(next, copy, path);
  next.updatedAt = timestampFromDate(ambient.now());
  normalize(next, ambient);
  return next;
}

function applyPath(next: Credential, patch: Credential, path: string): void {
  if (IMMUTABLE.has(path)) {
    throw new DomainError("invalid_argument", `update_mask: ${path} cannot be updated`);
  }
  if (Object.hasOwn(TOP_LEVEL, path)) {
    TOP_LEVEL[path as keyof typeof TOP_LEVEL](next, patch);
    return;
  }
  const [kindPath, field, ...rest] = path.split(".");
  const kind = Object.hasOwn(KIND_FIELDS, kindPath ?? "")
    ? KIND_FIELDS[kindPath as keyof typeof KIND_FIELDS]
    : undefined;
  // Not quoted: an unknown path is the caller's text, not a field name.
  if (
    kind === undefined ||
    rest.length > 0 ||
    (field !== undefined && !Object.hasOwn(kind.fields, field))
  ) {
    throw new DomainError(
      "invalid_argument",
      `update_mask: an unknown field path (each one of ${UPDATABLE_PATHS.join(", ")})`,
    );
  }
  if (patch.kind.case !== kind.case) {
    throw new DomainError(
      "invalid_argument",
      `update_mask: ${path} is named but credential.${kindPath} is not set in the request`,
    );
  }
  if (field === undefined) {
    next.kind = patch.kind;
    return;
  }
  if (next.kind.case !== kind.case) {
    throw new DomainError(
      "invalid_argument",
      `update_mask: ${path} names a ${kindPath} field, but the credential is not a ${kindPath}; name "${kindPath}" to replace the kind`,
    );
  }
  const prop = kind.fields[field as keyof typeof kind.fields] as string;
  const target = next.kind.value as unknown as Record<string, unknown>;
  target[prop] = (patch.kind.value as unknown as Record<string, unknown>)[prop];
}
