import { Provider } from "../../gen/credbroker/v1/credential_pb.js";
import type { SignRequestRequest } from "../../gen/credbroker/v1/signing_service_pb.js";
import { DomainError } from "../core/errors.js";
import type { CloudProvider } from "./provider.js";

/** The clouds this daemon serves, keyed by the `Provider` enum of credential.proto. */
export interface ProviderRegistry {
  /** The provider of `id`; invalid_argument for an unknown or unsupported one (the one place that says so). */
  get(id: Provider): CloudProvider;
  /** The provider a SignRequest is for, and the enum value its provider default is stored under. */
  forSignRequest(req: SignRequestRequest): { id: Provider; provider: CloudProvider };
}

export interface RegistryEntries {
  providers: Partial<Record<Provider, CloudProvider>>;
  /** SignRequest names no provider (yet): requests are signed by this one's. */
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
  const signing = { id: signRequests, provider: get(signRequests) };
  return { get, forSignRequest: () => signing };
}
