import { DomainError } from "../../core/errors.js";
import type { CloudProvider } from "../provider.js";
import { validateGcsSign } from "./sign-request.js";
import { type GcpSignerDeps, prepareGcsSign } from "./signer.js";

export type GcpProviderDeps = GcpSignerDeps;

/**
 * Google Cloud: Cloud Storage V4 signatures (GOOG4-RSA-SHA256 presigned URLs
 * with a service account, GOOG4-HMAC-SHA256 with an HMAC key) and, with
 * `accessToken`, a service account's bearer token in header mode.
 */
export function gcpProvider(deps: GcpProviderDeps): CloudProvider {
  const { accessToken } = deps;
  return {
    label: "Google Cloud",
    kinds: ["accessKey", "serviceAccount"],
    metadata: ["gce-metadata"],
    prepareSign: (req) => prepareGcsSign(validateGcsSign(req), deps),
    taskSession: async () => {
      throw new DomainError(
        "failed_precondition",
        "Google Cloud credentials lend access tokens (the GCE metadata server), not AWS-shaped sessions",
      );
    },
    ...(accessToken === undefined ? {} : { accessToken }),
  };
}
