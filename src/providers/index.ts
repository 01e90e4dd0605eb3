import { type Credential, Provider } from "../../gen/credbroker/v1/credential_pb.js";
import type { SignRequestRequest } from "../../gen/credbroker/v1/signing_service_pb.js";
import { DomainError } from "../core/errors.js";
import { displayName } from "../core/names.js";
import type { CloudProvider } from "./provider.js";

/** The clouds this daemon serves, keyed by the `Provider` enum of credential.proto. */
export interface ProviderRegistry {
  /** The provider of `id`; invalid_argument for an unknown or unsupported one (the one place that says so). */
  get(id: Provider): CloudProvider;
  /**
   * With credential "": the provider whose default signs (`req.provider`,
   * unset meaning AWS) and the enum value that default is stored under.
   * A named credential is signed by its own provider: `get(c.provider)`.
   */
  forDefault(req: SignRequestRequest): { id: Provider; provider: CloudProvider };
  /** The provider a stored credential is signed by; failed_precondition when this daemon does not serve it. */
  forCredential(c: Credential): CloudProvider;
}

export interface RegistryEntries {
  providers: Partial<Record<Provider, CloudProvider>>;
  /** SignRequest's provider when it names none (and none of a credential). */
  signRequests: Provider;
}

export function providerRegistry({ providers, signRequests }: RegistryEntries): ProviderRegistry {
  const get = (id: Provider): CloudProvider => {
    const provider = providers[id];
    if (provider === undefined) {
      const name = Provider[id] as string | undefined;
      throw new DomainError(
        "invalid_argument",
        name === undefined
          ? `provider: unknown value ${id}`
          : `provider: PROVIDER_${name} is not served by this daemon`,
      );
    }
    return provider;
  };
  return {
    get,
    forCredential(c) {
      const provider = providers[c.provider === Provider.UNSPECIFIED ? signRequests : c.provider];
      if (provider === undefined) {
        throw new DomainError(
          "failed_precondition",
          `${displayName(c.namespace, c.name)} is a PROVIDER_${Provider[c.provider] ?? c.provider} credential, which this daemon does not serve`,
        );
      }
      return provider;
    },
    forDefault(req) {
      const id = req.provider === Provider.UNSPECIFIED ? signRequests : req.provider;
      return { id, provider: get(id) };
    },
  };
}
