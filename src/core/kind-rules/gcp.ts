import type { Credential } from "../../../gen/credbroker/v1/credential_pb.js";
import type { Rule } from "../check-rule.js";

/** Google Cloud's shape rules: HMAC key ids, service account key files. */
export function gcpRules(_c: Credential): Rule[] {
  return [];
}
