import { writeFile } from "node:fs/promises";
import { clone, create, equals } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Caller, CallerRole, CallerSchema } from "../../gen/credbroker/v1/caller_pb.js";
import { DomainError, isDomainError } from "../core/errors.js";
import { isValidName, isValidNamespace } from "../core/names.js";
import type { CallerStore } from "../store/caller-store.js";
import type { Declared } from "./config-file.js";
import { ConfigInvalid, type ConfigProblem } from "./problems.js";
import { previous } from "./reconcile.js";

const FIELDS = new Set([
  "name",
  "role",
  "namespaces",
  "token_sha256",
  "enabled",
  "expires_at",
  "certificate_subject",
]);
const ROLES: Record<string, CallerRole> = {
  admin: CallerRole.ADMIN,
  writer: CallerRole.WRITER,
  reader: CallerRole.READER,
  signer: CallerRole.SIGNER,
};

export interface DeclaredCaller {
  caller: Caller;
  tokenHash: string;
}

/** The [[callers]] a config file declares: a token only as its SHA-256 (hex), never the token. */
export function declaredCallers(file: string, entries: readonly Declared[]): DeclaredCaller[] {
  const { declared, problems } = checkDeclaredCallers(file, entries);
  if (problems.length > 0) throw new ConfigInvalid(problems);
  return declared;
}

/** Checks every [[callers]] table; each problem names the file, the line and the field. */
export function checkDeclaredCallers(
  file: string,
  entries: readonly Declared[],
): { declared: DeclaredCaller[]; problems: ConfigProblem[] } {
  const declared: DeclaredCaller[] = [];
  const problems: ConfigProblem[] = [];
  const seen = new Set<string>();
  for (const [index, { fields, fieldLine }] of entries.entries()) {
    const before = problems.length;
    const fail = (field: string, message: string) => {
      problems.push({ file, line: fieldLine(field), path: `callers[${index}].${field}`, message });
    };
    for (const key of Object.keys(fields)) if (!FIELDS.has(key)) fail(key, "unknown field");
    const name = fields.name;
    if (typeof name !== "string" || !isValidName(name) || name === "admin") {
      fail("name", "1-64 of letters, digits, '.', '_', '-' (not admin)");
    } else if (seen.has(name)) {
      fail("name", `caller ${name} is declared twice`);
    }
    if (typeof name === "string") seen.add(name);
    const role = typeof fields.role === "string" ? ROLES[fields.role] : undefined;
    if (role === undefined) fail("role", "admin, writer, reader or signer");
    const namespaces = fields.namespaces ?? [];
    if (
      !Array.isArray(namespaces) ||
      !namespaces.every((n) => typeof n === "string" && isValidNamespace(n))
    ) {
      fail("namespaces", "a list of namespaces");
    }
    const hash = fields.token_sha256;
    if (typeof hash !== "string" || !/^[0-9a-f]{64}$/.test(hash)) {
      fail(
        "token_sha256",
        "the hex SHA-256 of the caller's token (e.g. printf %s TOKEN | sha256sum)",
      );
    }
    const enabled = fields.enabled ?? true;
    if (typeof enabled !== "boolean") fail("enabled", "true or false");
    const expires = fields.expires_at;
    const expiresAt =
      expires instanceof Date
        ? expires
        : typeof expires === "string"
          ? new Date(expires)
          : undefined;
    if (expires !== undefined && (expiresAt === undefined || Number.isNaN(expiresAt.getTime()))) {
      fail("expires_at", "a TOML datetime or an RFC 3339 string");
    }
    const subject = fields.certificate_subject ?? "";
    if (typeof subject !== "string") fail("certificate_subject", "a string");
    if (problems.length > before) continue;
    declared.push({
      caller: create(CallerSchema, {
        name: name as string,
        role,
        namespaces: namespaces as string[],
        enabled: enabled as boolean,
        certificateSubject: subject as string,
        ...(expiresAt ? { expiresAt: timestampFromDate(expiresAt) } : {}),
        managedBy: file,
      }),
      tokenHash: hash as string,
    });
  }
  return { declared, problems };
}

/**
 * Makes the callers match the file: created, updated (token hash included),
 * disabled when removed; a same-named caller made through the API is an error.
 */
export async function reconcileCallers(opts: {
  store: CallerStore;
  file: string;
  declared: readonly DeclaredCaller[];
  state: string;
  now(): Date;
  changed(): void;
}): Promise<void> {
  const { store, file } = opts;
  const names = new Set<string>();
  for (const { caller, tokenHash } of opts.declared) {
    names.add(caller.name);
    const find = () =>
      store.getCaller(caller.name).catch((err: unknown) => {
        if (isDomainError(err, "not_found")) return undefined;
        throw err;
      });
    let existing = await find();
    const now = timestampFromDate(opts.now());
    if (existing === undefined) {
      try {
        await store.createCaller({ ...caller, createdAt: now, updatedAt: now }, tokenHash);
        continue;
      } catch (err) {
        // Another daemon of a fleet, reading the same file, created it first.
        existing = isDomainError(err, "already_exists") ? await find() : undefined;
        if (existing === undefined) throw err;
      }
    }
    if (existing.managedBy !== file) {
      throw new DomainError(
        "failed_precondition",
        `${file}: caller ${caller.name} already exists and is not declared by this file`,
      );
    }
    const next = clone(CallerSchema, caller);
    next.createdAt = existing.createdAt;
    next.updatedAt = existing.updatedAt;
    if (!equals(CallerSchema, existing, next)) {
      await store.updateCaller(caller.name, () => ({ ...next, updatedAt: now }));
    }
    await store.rotateCallerToken(caller.name, tokenHash);
  }
  const before = await previous(opts.state);
  for (const name of before) {
    if (names.has(name)) continue;
    await store
      .updateCaller(name, (c) => (c.managedBy === file ? { ...c, enabled: false } : c))
      .catch((err: unknown) => {
        if (!isDomainError(err, "not_found")) throw err;
      });
  }
  await writeFile(opts.state, `${JSON.stringify([...new Set([...names, ...before])])}\n`, {
    mode: 0o600,
  });
  opts.changed();
}
