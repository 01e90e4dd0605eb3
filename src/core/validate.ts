import type { Credential } from "../../gen/credbroker/v1/credential_pb.js";
import { Severity } from "../../gen/credbroker/v1/credential_service_pb.js";
import { DomainError } from "./errors.js";
import { fieldChecks } from "./field-checks.js";

/**
 * Throws invalid_argument naming every malformed field, or returns. Warnings
 * (a non-AWS-shaped key id, say) never fail validation; VerifyCredential shows them.
 */
export function validateCredential(c: Credential): void {
  const failed = fieldChecks(c).filter((k) => !k.ok && k.severity === Severity.ERROR);
  if (failed.length > 0) {
    throw new DomainError("invalid_argument", failed.map((k) => k.message).join("; "));
  }
}

/** Throws invalid_argument when a timestamp the caller sets is already past. */
export function assertNotPast(field: string, at: Date | undefined, now: Date): void {
  if (at !== undefined && at.getTime() <= now.getTime()) {
    throw new DomainError("invalid_argument", `${field}: is in the past`);
  }
}
