import type { Credential } from "../../../gen/credbroker/v1/credential_pb.js";
import type { Rule } from "../check-rule.js";

/** Azure's shape rules: storage account names and keys, SAS tokens, service principals. */
export function azureRules(_c: Credential): Rule[] {
  return [];
}
