import { type Credential, Provider } from "../../gen/credbroker/v1/credential_pb.js";
import { DomainError } from "../core/errors.js";
import { displayName } from "../core/names.js";
import type { BindingProtocolName } from "./bindings.js";

/**
 * The protocol a binding of `c` is served with: the one its cloud's SDKs
 * read from the environment. AWS (and S3-compatible) credentials lend STS
 * sessions over the ECS container protocol; an Azure service principal lends
 * Entra tokens over the App Service managed-identity protocol; a Google
 * service account lends OAuth tokens over the GCE metadata protocol. Other
 * Azure and Google kinds mint nothing a child could be handed.
 */
export function bindingProtocolFor(c: Credential): BindingProtocolName {
  const who = displayName(c.namespace, c.name);
  switch (c.provider) {
    case Provider.AZURE:
      if (c.kind.case === "servicePrincipal") return "azure-app-service";
      throw new DomainError(
        "failed_precondition",
        `${who}: only an Azure service_principal can be bound (its Entra tokens are lent)`,
      );
    case Provider.GCP:
      if (c.kind.case === "serviceAccount") return "gce-metadata";
      throw new DomainError(
        "failed_precondition",
        `${who}: only a Google service_account can be bound (its OAuth tokens are lent)`,
      );
    default:
      return "ecs-container";
  }
}
