import type { Credential } from "../../gen/credbroker/v1/credential_pb.js";
import { DomainError } from "../core/errors.js";
import { credentialNotFound, displayName } from "../core/names.js";
import type { CreateManyResult } from "./credential-store.js";
import { indexEntries, KEYCHECK_KEY } from "./keys.js";
import { Sealer } from "./sealing.js";

/**
 * Rules every CredentialStore backend shares: the shape of one write
 * operation, index maintenance, and the checks that turn what was read into
 * a DomainError. Pure: no I/O.
 */

/** One key of an atomic write, by its logical key (the layout in keys.ts). */
export type WriteOp = { type: "put"; key: string; value: Buffer } | { type: "del"; key: string };

/** The plaintext sealed under KEYCHECK_KEY: opening it proves the master key. */
export const KEYCHECK_PLAINTEXT = Buffer.from("credbroker keycheck v1");

/** Removes the index entries `before` had and `after` lacks, then writes `after`'s. */
export function indexOps(before: Credential | undefined, after: Credential | undefined): WriteOp[] {
  const old = before === undefined ? new Map<string, string>() : indexEntries(before);
  const next = after === undefined ? new Map<string, string>() : indexEntries(after);
  const ops: WriteOp[] = [];
  for (const key of old.keys()) if (!next.has(key)) ops.push({ type: "del", key });
  for (const [key, id] of next) ops.push({ type: "put", key, value: Buffer.from(id, "utf8") });
  return ops;
}

/**
 * An index entry names the record it points at; the sealed record names
 * itself. A mismatch means the index was tampered with (index keys are not
 * sealed), so fail rather than hand out another credential.
 */
export function matching(record: Credential, namespace: string, name: string): Credential {
  if (record.namespace !== namespace || record.name !== name) {
    throw new DomainError(
      "data_loss",
      `index entry for ${displayName(namespace, name)} points at another credential's record`,
    );
  }
  return record;
}

/** `aborted` unless `expected` is "" (any) or the current etag. */
export function assertEtag(current: Credential, expected: string): void {
  if (expected !== "" && expected !== current.etag) {
    throw new DomainError(
      "aborted",
      `etag mismatch: ${displayName(current.namespace, current.name)} changed since it was read; read it again and retry`,
    );
  }
}

export function notFound(namespace: string, name: string): DomainError {
  return new DomainError("not_found", credentialNotFound(namespace, name));
}

/**
 * `failed_precondition` when `sealer` cannot open the stored keycheck: the
 * master key is not the one the store was sealed with. `where` names the
 * store in the message (a data dir, etcd endpoints).
 */
export function assertKeyOpens(sealer: Sealer, check: Buffer, where: string): void {
  try {
    sealer.open(check, KEYCHECK_KEY);
  } catch (cause) {
    const sealedWith = Sealer.keyIdOf(check) ?? "unknown";
    throw new DomainError(
      "failed_precondition",
      `the master key (id ${sealer.currentKeyId}) does not open ${where} (sealed with key id ${sealedWith})`,
      { cause },
    );
  }
}

/** `create` as a batch of one: the created record, or that one row's error thrown. */
export function onlyCreated(result: CreateManyResult): Credential {
  const [outcome] = result.outcomes;
  if (outcome === undefined) throw new Error("createMany returned no outcome");
  if (!outcome.ok) throw outcome.error;
  return outcome.credential;
}
