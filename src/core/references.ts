import type { Credential } from "../../gen/credbroker/v1/credential_pb.js";
import { displayName } from "./names.js";

/** The name of the credential `c` depends on in its namespace (a role's source), if any. */
export function referencedName(c: Credential): string | undefined {
  return c.kind.case === "role" && c.kind.value.sourceCredential !== ""
    ? c.kind.value.sourceCredential
    : undefined;
}

/**
 * Why `source` cannot serve as the role `referrer`'s source, or undefined when
 * it can. `source` is what the store holds under the referenced name.
 */
export function sourceCheck(
  referrer: Credential,
  source: Credential | undefined,
): string | undefined {
  const name = referencedName(referrer);
  if (name === undefined) return undefined;
  const shown = displayName(referrer.namespace, name);
  if (source === undefined) {
    return `role.source_credential: ${shown} does not exist`;
  }
  if (source.kind.case !== "accessKey") {
    return `role.source_credential: ${shown} is not an access_key credential`;
  }
  return undefined;
}
