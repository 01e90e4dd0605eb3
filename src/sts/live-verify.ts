import { create } from "@bufbuild/protobuf";
import type { Credential } from "../../gen/credbroker/v1/credential_pb.js";
import {
  type Check,
  CheckSchema,
  Severity,
} from "../../gen/credbroker/v1/credential_service_pb.js";
import type { RoleSessions } from "./role-sessions.js";
import { keyMaterial, type StsGateway } from "./sts-gateway.js";

export interface LiveVerifier {
  sts: StsGateway;
  roleSessions: RoleSessions;
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
