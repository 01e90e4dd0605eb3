import { create } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Credential } from "../../gen/credbroker/v1/credential_pb.js";
import {
  type Check,
  CheckSchema,
  Severity,
} from "../../gen/credbroker/v1/credential_service_pb.js";
import { fieldChecks } from "./field-checks.js";
import { sasVerifyRules } from "./kind-rules/azure.js";
import { sourceCheck } from "./references.js";

export interface VerifyContext {
  now: Date;
  /** For a role: its source credential as stored, or undefined when none exists. */
  source?: Credential | undefined;
}

export interface Verdict {
  valid: boolean;
  checks: Check[];
}

/**
 * Structural verification: every field check, plus the things a stored
 * credential can be wrong about without being malformed (its role source,
 * expiry, enabled flag). `valid` is false when any SEVERITY_ERROR check fails.
 */
export function verifyStructure(c: Credential, ctx: VerifyContext): Verdict {
  const checks = [...fieldChecks(c)];
  if (c.kind.case === "role") {
    const problem = sourceCheck(c, ctx.source);
    checks.push(
      check(
        "role.source_credential.usable",
        problem === undefined,
        problem ?? "role.source_credential: exists and is an access_key",
      ),
    );
  }
  for (const [name, ok, message] of sasVerifyRules(c, ctx.now))
    checks.push(check(name, ok, message));
  if (c.expiresAt !== undefined) {
    const expired = timestampDate(c.expiresAt).getTime() <= ctx.now.getTime();
    checks.push(check("expires_at.future", !expired, "expires_at: the credential has expired"));
  }
  checks.push(
    check(
      "enabled",
      c.enabled !== false,
      "enabled: the credential is disabled and signs nothing",
      Severity.WARNING,
    ),
  );
  return verdict(checks);
}

/** `valid` is false when any SEVERITY_ERROR check failed. */
export function verdict(checks: Check[]): Verdict {
  return { valid: checks.every((k) => k.ok || k.severity !== Severity.ERROR), checks };
}

function check(name: string, ok: boolean, message: string, severity = Severity.ERROR): Check {
  return create(CheckSchema, { check: name, ok, severity, message });
}
