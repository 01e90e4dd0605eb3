import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Caller } from "../../gen/credbroker/v1/caller_pb.js";
import type { Credential } from "../../gen/credbroker/v1/credential_pb.js";
import { authorizeNamespace } from "../core/authz.js";
import { DomainError } from "../core/errors.js";
import { type Ambient, prepareNew } from "../core/lifecycle.js";
import { assertNotPast, validateCredential } from "../core/validate.js";

/**
 * What CreateCredential and each ImportCredentials row do before the store:
 * authorize the caller in the namespace, refuse a past expiry, fill in what
 * "unset" means, validate every field. Throws the DomainError the caller sees.
 */
export function prepareCreate(
  caller: Caller,
  input: Credential | undefined,
  ambient: Ambient,
): Credential {
  if (input === undefined) throw new DomainError("invalid_argument", "credential: is required");
  authorizeNamespace(caller, "write", input.namespace);
  assertNotPast("credential.expires_at", expiryOf(input), ambient.now());
  const credential = prepareNew(input, ambient);
  validateCredential(credential);
  return credential;
}

export function expiryOf(c: Credential): Date | undefined {
  return c.expiresAt === undefined ? undefined : timestampDate(c.expiresAt);
}
