import { DomainError } from "../../core/errors.js";
import type { CloudProvider } from "../provider.js";
import { validateBlobRequest } from "./sign-request.js";
import { type AzureSignerDeps, prepareAzureSign } from "./signer.js";

export type AzureProviderDeps = AzureSignerDeps;

/**
 * Azure: Blob Storage requests signed with Shared Key or a service SAS
 * (account keys), or carrying an Entra ID token (service principals, when
 * `accessToken` is given).
 */
export function azureProvider(deps: AzureProviderDeps): CloudProvider {
  return {
    label: "Azure",
    kinds: ["accessKey", "token", "servicePrincipal"],
    metadata: ["azure-imds", "azure-app-service"],
    prepareSign: (req) => prepareAzureSign(validateBlobRequest(req), deps),
    taskSession: async () => {
      throw new DomainError(
        "unimplemented",
        "Azure credentials lend no AWS-shaped task sessions; use the Azure identity endpoints",
      );
    },
    ...(deps.accessToken === undefined ? {} : { accessToken: deps.accessToken }),
  };
}
