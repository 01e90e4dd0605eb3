import { readFile, writeFile } from "node:fs/promises";
import { equals } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Credential, CredentialSchema } from "../../gen/credbroker/v1/credential_pb.js";
import { DomainError, isDomainError } from "../core/errors.js";
import { type Ambient, prepareNew } from "../core/lifecycle.js";
import { displayName } from "../core/names.js";
import { validateCredential } from "../core/validate.js";
import type { CredentialStore } from "../store/credential-store.js";

export interface ReconcileResult {
  created: string[];
  updated: string[];
  disabled: string[];
}

/**
 * Makes the store match a config file's [[credentials]], by (namespace,
 * name): creates what is new, updates what changed, disables what the file
 * no longer declares (it stays, managed, so nothing signs with it). A
 * credential of the same name not declared by this file is an error: the
 * file does not take over what the API made. `state` remembers what the file
 * declared last time (a JSON file in the data dir). `changed` is told every id
 * written, so caches drop it.
 */
export async function reconcile(opts: {
  store: CredentialStore;
  file: string;
  declared: readonly { credential: Credential; createdAt?: Date | undefined }[];
  state: string;
  ambient: Ambient;
  changed(id: string): void;
}): Promise<ReconcileResult> {
  const { store, file, ambient } = opts;
  const result: ReconcileResult = { created: [], updated: [], disabled: [] };
  const current = new Set<string>();
  for (const { credential, createdAt } of opts.declared) {
    const key = `${credential.namespace}/${credential.name}`;
    if (current.has(key)) {
      throw new DomainError(
        "invalid_argument",
        `${file}: ${displayName(credential.namespace, credential.name)} is declared twice`,
      );
    }
    current.add(key);
    let existing = await find(store, credential.namespace, credential.name);
    const next = prepareNew(credential, ambient);
    next.managedBy = file;
    if (createdAt) next.createdAt = timestampFromDate(createdAt);
    validateCredential(next);
    if (existing === undefined) {
      try {
        const stored = await store.create(next);
        opts.changed(stored.id);
        result.created.push(key);
        continue;
      } catch (err) {
        // Another daemon of a fleet, reading the same file, created it first.
        existing = isDomainError(err, "already_exists")
          ? await find(store, credential.namespace, credential.name)
          : undefined;
        if (existing === undefined) throw err;
      }
    }
    if (existing.managedBy !== file) {
      throw new DomainError(
        "failed_precondition",
        `${file}: ${displayName(credential.namespace, credential.name)} already exists and is not declared by this file; delete it or rename the declaration`,
      );
    }
    // Keep what the store owns; compare the rest.
    next.id = existing.id;
    next.etag = existing.etag;
    if (!createdAt) next.createdAt = existing.createdAt;
    next.updatedAt = existing.updatedAt;
    if (
      existing.kind.case === "role" &&
      next.kind.case === "role" &&
      credential.kind.case === "role"
    ) {
      if (credential.kind.value.externalId === "")
        next.kind.value.externalId = existing.kind.value.externalId;
    }
    if (equals(CredentialSchema, existing, next)) continue;
    next.updatedAt = timestampFromDate(ambient.now());
    await store.update(credential.namespace, credential.name, () => next, "");
    opts.changed(existing.id);
    result.updated.push(key);
  }
  for (const key of await previous(opts.state)) {
    if (current.has(key)) continue;
    const slash = key.indexOf("/");
    const [namespace, name] = [key.slice(0, slash), key.slice(slash + 1)];
    const existing = await find(store, namespace, name);
    if (existing === undefined || existing.managedBy !== file || existing.enabled === false)
      continue;
    await store.update(
      namespace,
      name,
      (c) => ({ ...c, enabled: false, updatedAt: timestampFromDate(ambient.now()) }),
      "",
    );
    opts.changed(existing.id);
    result.disabled.push(key);
  }
  await writeFile(
    opts.state,
    `${JSON.stringify([...current, ...(await previous(opts.state)).filter((k) => !current.has(k))])}\n`,
    { mode: 0o600 },
  );
  return result;
}

async function find(
  store: CredentialStore,
  namespace: string,
  name: string,
): Promise<Credential | undefined> {
  try {
    return await store.get(namespace, name);
  } catch (err) {
    if (isDomainError(err, "not_found")) return undefined;
    throw err;
  }
}

/** The keys a state file (JSON list) remembers from the last reconcile; none when absent or unreadable. */
export async function previous(state: string): Promise<string[]> {
  try {
    const parsed = JSON.parse(await readFile(state, "utf8")) as unknown;
    return Array.isArray(parsed) ? parsed.filter((k): k is string => typeof k === "string") : [];
  } catch {
    return [];
  }
}
