import { create } from "@bufbuild/protobuf";
import type { Caller } from "../../../gen/credbroker/v1/caller_pb.js";
import { type Credential, RoleSource } from "../../../gen/credbroker/v1/credential_pb.js";
import {
  type Check,
  CheckSchema,
  Severity,
} from "../../../gen/credbroker/v1/credential_service_pb.js";
import { authorizeCredential, authorizeNamespace } from "../../core/authz.js";
import type { RoleSessions } from "./role-sessions.js";
import { keyMaterial, type StsGateway } from "./sts-gateway.js";

export interface LiveVerifier {
  sts: StsGateway;
  roleSessions: RoleSessions;
}

/**
 * A live check calls STS signed with something the daemon holds, so it needs
 * what signing with it needs (threat: a reader using the daemon as a deputy,
 * e.g. probing any role's trust policy with a stored key, recorded in
 * CloudTrail as that key). Throws permission_denied (or not_found) unless
 * `caller` may `sign` with it:
 * - a stored access key: sign on that credential;
 * - a role (stored or candidate) with a source credential: sign on the
 *   source (`source`, what the store holds under its name), or in the
 *   role's namespace when there is none yet;
 * - a role with the daemon's own identity as source: sign in its namespace.
 * A candidate access key brings its own secret, and tokens have no live
 * check: nothing more is needed for them.
 */
export function authorizeLive(
  caller: Caller,
  c: Credential,
  target: "stored" | "candidate",
  source: Credential | undefined,
): void {
  switch (c.kind.case) {
    case "accessKey":
      if (target === "stored") authorizeCredential(caller, "sign", c);
      return;
    case "role":
      if (c.kind.value.source !== RoleSource.AMBIENT && source !== undefined) {
        authorizeCredential(caller, "sign", source);
      } else {
        authorizeNamespace(caller, "sign", c.namespace);
      }
      return;
    default:
      return;
  }
}

/**
 * Asks STS whether the credential works: an access key through
 * GetCallerIdentity, a role through a fresh AssumeRole with its external id.
 * A failure is a check with ok = false and STS's message, never an RPC error.
 */
export async function liveChecks(c: Credential, live: LiveVerifier): Promise<Check[]> {
  const check = (name: string, ok: boolean, message: string, severity = Severity.ERROR) =>
    create(CheckSchema, { check: name, ok, severity, message });
  try {
    switch (c.kind.case) {
      case "accessKey": {
        const id = await live.sts.getCallerIdentity(keyMaterial(c.kind.value));
        return [check("live.get_caller_identity", true, `account ${id.account}, ${id.arn}`)];
      }
      case "role": {
        const session = await live.roleSessions.assumeOnce(c);
        return [check("live.assume_role", true, `assumed ${session.arn ?? c.kind.value.roleArn}`)];
      }
      default:
        return [check("live", true, "token credentials have no live check", Severity.INFO)];
    }
  } catch (err) {
    const name = c.kind.case === "role" ? "live.assume_role" : "live.get_caller_identity";
    return [check(name, false, (err as Error).message)];
  }
}
