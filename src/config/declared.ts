import { readFile } from "node:fs/promises";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  AccessKeySchema,
  AccessScopeSchema,
  type Credential,
  CredentialSchema,
  RoleSchema,
  TokenSchema,
} from "../../gen/credbroker/v1/credential_pb.js";
import { DomainError } from "../core/errors.js";
import type { Declared } from "./config-file.js";

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
  "principal_name",
  "created_at",
  "expires_at",
  "enabled",
  "allowed_hosts",
  "allowed_scopes",
  "allowed_in_tasks",
  "region",
  "description",
]);

/**
 * The credentials a config file declares, secrets resolved (inline, or
 * `…_file` / `…_env`, which the docs recommend). Errors name the file, the
 * table's line and the field, never a secret value.
 */
export async function declaredCredentials(
  file: string,
  entries: readonly Declared[],
  env: NodeJS.ProcessEnv,
): Promise<{ credential: Credential; createdAt?: Date | undefined }[]> {
  const out: { credential: Credential; createdAt?: Date | undefined }[] = [];
  for (const { line, fields } of entries) {
    const at = `${file}:${line}: [[credentials]]`;
    const fail = (message: string): never => {
      throw new DomainError("invalid_argument", `${at}: ${message}`);
    };
    for (const key of Object.keys(fields)) if (!FIELDS.has(key)) fail(`unknown field ${key}`);
    const str = (key: string): string | undefined => {
      const v = fields[key];
      if (v === undefined) return undefined;
      if (typeof v !== "string") fail(`${key}: expected a string`);
      return v as string;
    };
    const strings = (key: string): string[] => {
      const v = fields[key] ?? [];
      if (!Array.isArray(v) || !v.every((x) => typeof x === "string"))
        fail(`${key}: expected a list of strings`);
      return v as string[];
    };
    const time = (key: string): Date | undefined => {
      const v = fields[key];
      if (v === undefined) return undefined;
      const d = v instanceof Date ? v : typeof v === "string" ? new Date(v) : undefined;
      if (d === undefined || Number.isNaN(d.getTime()))
        fail(`${key}: a TOML datetime or an RFC 3339 string`);
      return d;
    };
    const secret = async (key: string): Promise<string | undefined> => {
      const inline = str(key);
      const path = str(`${key}_file`);
      const variable = str(`${key}_env`);
      if ([inline, path, variable].filter((x) => x !== undefined).length > 1) {
        fail(`give one of ${key}, ${key}_file, ${key}_env`);
      }
      if (path !== undefined) {
        return (
          await readFile(path, "utf8").catch(() => fail(`${key}_file: cannot read ${path}`))
        ).replace(/\r?\n$/, "");
      }
      if (variable !== undefined) {
        const v = env[variable];
        if (v === undefined || v === "") fail(`${key}_env: ${variable} is not set`);
        return v;
      }
      return inline;
    };

    const accessKeyId = str("access_key_id");
    const roleArn = str("role_arn");
    const token = await secret("token");
    const kinds = [accessKeyId, roleArn, token].filter((x) => x !== undefined).length;
    if (kinds !== 1)
      fail("exactly one of access_key_id, role_arn, token (or token_file / token_env)");
    let kind: Credential["kind"];
    if (accessKeyId !== undefined) {
      const secretAccessKey = await secret("secret_access_key");
      if (secretAccessKey === undefined) fail("secret_access_key (or _file / _env) is required");
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
      if (duration !== undefined && typeof duration !== "number")
        fail("duration_seconds: expected a number");
      kind = {
        case: "role",
        value: create(RoleSchema, {
          roleArn,
          externalId: str("external_id") ?? "",
          sessionName: str("session_name"),
          durationSeconds: (duration as number | undefined) ?? 0,
          sourceCredential: str("source_credential") ?? "",
        }),
      };
    } else {
      kind = { case: "token", value: create(TokenSchema, { token: token ?? "" }) };
    }
    const enabled = fields.enabled;
    if (enabled !== undefined && typeof enabled !== "boolean") fail("enabled: true or false");
    const tasks = fields.allowed_in_tasks;
    if (tasks !== undefined && typeof tasks !== "boolean") fail("allowed_in_tasks: true or false");
    const scopes = fields.allowed_scopes ?? [];
    if (!Array.isArray(scopes))
      fail("allowed_scopes: expected [[credentials.allowed_scopes]] tables");
    const name =
      str("name") ??
      (accessKeyId ?? "").replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 64) ??
      fail("name is required");
    if (name === "") fail("name is required (it defaults to the access key id)");
    const expiresAt = time("expires_at");
    out.push({
      credential: create(CredentialSchema, {
        namespace: str("namespace") ?? "",
        name,
        kind,
        principalName: str("principal_name") ?? "",
        description: str("description") ?? "",
        region: str("region") ?? "",
        enabled: (enabled as boolean | undefined) ?? true,
        allowedInTasks: (tasks as boolean | undefined) ?? false,
        allowedHosts: strings("allowed_hosts"),
        allowedScopes: (scopes as Record<string, unknown>[]).map((sc) =>
          create(AccessScopeSchema, {
            bucket: typeof sc.bucket === "string" ? sc.bucket : "",
            prefixes: Array.isArray(sc.prefixes) ? sc.prefixes.map(String) : [],
            actions: Array.isArray(sc.actions) ? sc.actions.map(String) : [],
          }),
        ),
        ...(expiresAt ? { expiresAt: timestampFromDate(expiresAt) } : {}),
      }),
      createdAt: time("created_at"),
    });
  }
  return out;
}
