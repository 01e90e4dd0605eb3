import type { Credential } from "../../gen/credbroker/v1/credential_pb.js";
import { DomainError } from "../core/errors.js";
import { displayName } from "../core/names.js";
import { assertUsable } from "../core/usable.js";
import type { CredentialReads } from "./provider.js";

type KindCase = NonNullable<Credential["kind"]["case"]>;
type KindValue<K extends KindCase> = Extract<Credential["kind"], { case: K }>["value"];

/**
 * The credential a token is asked of (public fields): the one bound when
 * `expectedId` is given (else permission_denied), usable now, and of `kind`
 * (else failed_precondition naming `kindName`).
 */
export async function tokenCredential(
  credentials: CredentialReads,
  namespace: string,
  name: string,
  kind: { case: KindCase; name: string },
  now: Date,
  expectedId?: string,
): Promise<Credential> {
  const c = await credentials.get(namespace, name);
  const who = displayName(namespace, name);
  if (expectedId !== undefined && c.id !== expectedId) {
    throw new DomainError("permission_denied", `${who} is not the credential that was bound`);
  }
  assertUsable(c, now);
  if (c.kind.case !== kind.case) {
    throw new DomainError("failed_precondition", `${who} is not a ${kind.name} credential`);
  }
  return c;
}

/**
 * The kind's value with its secrets, read for one grant: aborted when the
 * credential under that name is no longer `id` or no longer of `kind` (it
 * changed between the check and the read).
 */
export async function tokenSecrets<K extends KindCase>(
  credentials: CredentialReads,
  namespace: string,
  name: string,
  id: string,
  kind: K,
): Promise<KindValue<K>> {
  const full = await credentials.getWithSecrets(namespace, name);
  if (full.id !== id || full.kind.case !== kind) {
    throw new DomainError("aborted", `${displayName(namespace, name)} changed: retry`);
  }
  return full.kind.value as KindValue<K>;
}
