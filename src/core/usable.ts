import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Credential } from "../../gen/credbroker/v1/credential_pb.js";
import { DomainError } from "./errors.js";
import { displayName } from "./names.js";

/**
 * Whether `c` may be used at all at `now`: permission_denied naming the rule
 * (AccessDenied for a disabled credential, ExpiredCredentials past
 * expires_at). Every use checks it: a signature, a forward, a session.
 */
export function assertUsable(c: Credential, now: Date): void {
  const who = displayName(c.namespace, c.name);
  if (c.enabled === false) deny("AccessDenied", `${who} is disabled`);
  if (c.expiresAt !== undefined && timestampDate(c.expiresAt).getTime() <= now.getTime()) {
    deny("ExpiredCredentials", `${who} expired at ${timestampDate(c.expiresAt).toISOString()}`);
  }
}

function deny(rule: string, detail: string): never {
  throw new DomainError("permission_denied", `${rule}: ${detail}`);
}
