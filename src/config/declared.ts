import { readFile } from "node:fs/promises";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  AccessKeySchema,
  AccessScopeSchema,
  type Credential,
  CredentialSchema,
  Provider,
  RoleSchema,
  ServiceAccountKeySchema,
  ServicePrincipalSchema,
  TokenPlacement,
  TokenSchema,
} from "../../gen/credbroker/v1/credential_pb.js";
import { DomainError } from "../core/errors.js";
import { type Ambient, prepareNew } from "../core/lifecycle.js";
import { displayName } from "../core/names.js";
import { validateCredential } from "../core/validate.js";
import type { Declared } from "./config-file.js";
import { ConfigInvalid, type ConfigProblem } from "./problems.js";
import { aboutPath, unreadable } from "./shown-path.js";

const FIELDS = new Set([
  "name",
  "namespace",
  "access_key_id",
  "secret_access_key",
  "secret_access_key_file",
  "secret_access_key_env",
  "session_token",
  "role_arn",
  "external_id",
  "session_name",
  "duration_seconds",
  "source_credential",
  "token",
  "token_file",
  "token_env",
  "token_placement",
  "token_header_name",
  "token_prefix",
  "token_query_name",
  "token_username",
  "principal_name",
  "created_at",
  "expires_at",
  "enabled",
  "allowed_hosts",
  "allowed_scopes",
  "allowed_in_tasks",
  "region",
  "description",
  "provider",
  "tenant_id",
  "client_id",
  "client_secret",
  "client_secret_file",
  "client_secret_env",
  "key_json",
  "key_json_file",
  "key_json_env",
  "token_scopes",
]);

export interface DeclaredCredential {
  credential: Credential;
  createdAt?: Date | undefined;
}

/**
 * The credentials a config file declares, secrets resolved (inline, or
 * `…_file` / `…_env`, which the docs recommend). Throws ConfigInvalid with
 * every problem of every table.
 */
export async function declaredCredentials(
  file: string,
  entries: readonly Declared[],
  env: NodeJS.ProcessEnv,
): Promise<DeclaredCredential[]> {
  const { declared, problems } = await checkDeclaredCredentials(file, entries, env);
  if (problems.length > 0) throw new ConfigInvalid(problems);
  return declared;
}

/**
 * Checks every [[credentials]] table as the daemon will store it (the
 * credential rules of the API included, and no name declared twice).
 * Problems name the file, the line and the field, never a secret value.
 */
export async function checkDeclaredCredentials(
  file: string,
  entries: readonly Declared[],
  env: NodeJS.ProcessEnv,
): Promise<{ declared: DeclaredCredential[]; problems: ConfigProblem[] }> {
  const declared: DeclaredCredential[] = [];
  const problems: ConfigProblem[] = [];
  const seen = new Set<string>();
  for (const [index, entry] of entries.entries()) {
    const before = problems.length;
    const fail = (field: string | undefined, message: string): undefined => {
      problems.push({
        file,
        line: field === undefined ? entry.line : entry.fieldLine(field),
        path: `credentials[${index}]${field === undefined ? "" : `.${field}`}`,
        message,
      });
      return undefined;
    };
    const one = await declaredCredential(entry.fields, fail, env);
    if (one === undefined || problems.length > before) continue;
    const { credential } = one;
    const key = `${credential.namespace}/${credential.name}`;
    if (seen.has(key)) {
      fail("name", `${displayName(credential.namespace, credential.name)} is declared twice`);
      continue;
    }
    seen.add(key);
    try {
      validateCredential(prepareNew(credential, CHECK_AMBIENT));
    } catch (err) {
      if (!(err instanceof DomainError)) throw err;
      fail(undefined, err.message);
      continue;
    }
    declared.push(one);
  }
  return { declared, problems };
}

/** A token's placement fields: they mean nothing for another kind. */
const TOKEN_ONLY = [
  "token_placement",
  "token_header_name",
  "token_prefix",
  "token_query_name",
  "token_username",
];

const PLACEMENTS: Record<string, TokenPlacement> = {
  bearer: TokenPlacement.BEARER,
  header: TokenPlacement.HEADER,
  query: TokenPlacement.QUERY,
  basic: TokenPlacement.BASIC,
  "query-string": TokenPlacement.QUERY_STRING,
};

/** token_placement = "bearer" | "header" | "query" | "basic" | "query-string"; unset is bearer. */
function placement(
  value: string | undefined,
  fail: (field: string | undefined, message: string) => undefined,
): TokenPlacement {
  if (value === undefined) return TokenPlacement.UNSPECIFIED;
  const key = value.toLowerCase();
  if (Object.hasOwn(PLACEMENTS, key)) return PLACEMENTS[key] as TokenPlacement;
  fail("token_placement", "one of bearer, header, query, basic, query-string");
  return TokenPlacement.UNSPECIFIED;
}

const PROVIDERS: Record<string, Provider> = {
  aws: Provider.AWS,
  azure: Provider.AZURE,
  gcp: Provider.GCP,
  generic: Provider.GENERIC,
};

/** The service principal's own fields: they mean nothing for another kind. */
const SERVICE_PRINCIPAL_ONLY = [
  "client_id",
  "client_secret",
  "client_secret_file",
  "client_secret_env",
];

/** Only for checking a declaration: the stored one gets the daemon's clock and ids. */
const CHECK_AMBIENT: Ambient = { now: () => new Date(), newId: () => "declared" };

/** One table as a credential; undefined (after `fail`) when it is not one. */
async function declaredCredential(
  fields: Record<string, unknown>,
  fail: (field: string | undefined, message: string) => undefined,
  env: NodeJS.ProcessEnv,
): Promise<DeclaredCredential | undefined> {
  for (const key of Object.keys(fields)) if (!FIELDS.has(key)) fail(key, "unknown field");
  const str = (key: string): string | undefined => {
    const v = fields[key];
    if (v === undefined || typeof v === "string") return v;
    return fail(key, "expected a string");
  };
  const strings = (key: string): string[] => {
    const v = fields[key] ?? [];
    if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v as string[];
    fail(key, "expected a list of strings");
    return [];
  };
  const time = (key: string): Date | undefined => {
    const v = fields[key];
    if (v === undefined) return undefined;
    const d = v instanceof Date ? v : typeof v === "string" ? new Date(v) : undefined;
    if (d !== undefined && !Number.isNaN(d.getTime())) return d;
    return fail(key, "a TOML datetime or an RFC 3339 string");
  };
  const bool = (key: string): boolean | undefined => {
    const v = fields[key];
    if (v === undefined || typeof v === "boolean") return v;
    return fail(key, "true or false");
  };
  const secret = async (key: string): Promise<string | undefined> => {
    const inline = str(key);
    const path = str(`${key}_file`);
    const variable = str(`${key}_env`);
    if ([inline, path, variable].filter((x) => x !== undefined).length > 1) {
      return fail(key, `give one of ${key}, ${key}_file, ${key}_env`);
    }
    if (path !== undefined) {
      const text = await readFile(path, "utf8").catch((err: NodeJS.ErrnoException) =>
        fail(`${key}_file`, aboutPath(path, unreadable(err))),
      );
      return text?.replace(/\r?\n$/, "");
    }
    if (variable !== undefined) {
      const v = env[variable];
      if (v === undefined || v === "") return fail(`${key}_env`, `${variable} is not set`);
      return v;
    }
    return inline;
  };

  const accessKeyId = str("access_key_id");
  const roleArn = str("role_arn");
  const token = await secret("token");
  const tenantId = str("tenant_id");
  const keyJson = await secret("key_json");
  const kinds = [accessKeyId, roleArn, token, tenantId, keyJson].filter(
    (x) => x !== undefined,
  ).length;
  let kind: Credential["kind"] | undefined;
  if (kinds !== 1) {
    fail(
      undefined,
      "exactly one of access_key_id, role_arn, token (or token_file / token_env), tenant_id, key_json, key_json (or their _file / _env)",
    );
  } else if (tenantId !== undefined) {
    const clientSecret = await secret("client_secret");
    if (clientSecret === undefined) {
      fail("client_secret", "required with tenant_id (or client_secret_file / _env)");
    }
    kind = {
      case: "servicePrincipal",
      value: create(ServicePrincipalSchema, {
        tenantId,
        clientId: str("client_id") ?? "",
        clientSecret: clientSecret ?? "",
      }),
    };
  } else if (keyJson !== undefined) {
    // A Google service account's JSON key; the daemon's rules check it.
    kind = { case: "serviceAccount", value: create(ServiceAccountKeySchema, { keyJson }) };
  } else if (accessKeyId !== undefined) {
    const secretAccessKey = await secret("secret_access_key");
    if (secretAccessKey === undefined) {
      fail("secret_access_key", "required with access_key_id (or secret_access_key_file / _env)");
    }
    kind = {
      case: "accessKey",
      value: create(AccessKeySchema, {
        accessKeyId,
        secretAccessKey: secretAccessKey ?? "",
        sessionToken: str("session_token"),
      }),
    };
  } else if (roleArn !== undefined) {
    const duration = fields.duration_seconds;
    if (duration !== undefined && typeof duration !== "number") {
      fail("duration_seconds", "expected a number");
    }
    kind = {
      case: "role",
      value: create(RoleSchema, {
        roleArn,
        externalId: str("external_id") ?? "",
        sessionName: str("session_name"),
        durationSeconds: typeof duration === "number" ? duration : 0,
        sourceCredential: str("source_credential") ?? "",
      }),
    };
  } else {
    kind = {
      case: "token",
      value: create(TokenSchema, {
        token: token ?? "",
        placement: placement(str("token_placement"), fail),
        headerName: str("token_header_name") ?? "",
        prefix: str("token_prefix") ?? "",
        queryName: str("token_query_name") ?? "",
        username: str("token_username") ?? "",
      }),
    };
  }
  if (accessKeyId !== undefined || roleArn !== undefined || keyJson !== undefined) {
    for (const key of TOKEN_ONLY) if (key in fields) fail(key, "only with token");
  }
  if (tenantId !== undefined) {
    for (const key of TOKEN_ONLY) if (key in fields) fail(key, "only with token");
  } else {
    for (const key of SERVICE_PRINCIPAL_ONLY) if (key in fields) fail(key, "only with tenant_id");
  }
  const providerName = str("provider");
  let provider: Provider | undefined;
  if (providerName !== undefined) {
    const key = providerName.toLowerCase();
    provider = Object.hasOwn(PROVIDERS, key) ? PROVIDERS[key] : undefined;
    if (provider === undefined) fail("provider", "one of aws, azure, gcp, generic");
  } else if (tenantId !== undefined) {
    // Only Azure has service principals.
    provider = Provider.AZURE;
  }
  const enabled = bool("enabled");
  const tasks = bool("allowed_in_tasks");
  let scopes = fields.allowed_scopes ?? [];
  if (!Array.isArray(scopes)) {
    fail("allowed_scopes", "expected [[credentials.allowed_scopes]] tables");
    scopes = [];
  }
  const name = str("name") ?? (accessKeyId ?? "").replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 64);
  if (name === "") fail("name", "required (it defaults to the access key id)");
  const expiresAt = time("expires_at");
  const createdAt = time("created_at");
  const credential = create(CredentialSchema, {
    namespace: str("namespace") ?? "",
    name,
    principalName: str("principal_name") ?? "",
    description: str("description") ?? "",
    region: str("region") ?? "",
    enabled: enabled ?? true,
    allowedInTasks: tasks ?? false,
    allowedHosts: strings("allowed_hosts"),
    tokenScopes: strings("token_scopes"),
    ...(provider !== undefined ? { provider } : {}),
    allowedScopes: (scopes as Record<string, unknown>[]).map((sc) =>
      create(AccessScopeSchema, {
        bucket: typeof sc.bucket === "string" ? sc.bucket : "",
        prefixes: Array.isArray(sc.prefixes) ? sc.prefixes.map(String) : [],
        actions: Array.isArray(sc.actions) ? sc.actions.map(String) : [],
      }),
    ),
    ...(expiresAt ? { expiresAt: timestampFromDate(expiresAt) } : {}),
  });
  if (kind === undefined) return undefined;
  credential.kind = kind;
  return { credential, createdAt };
}
