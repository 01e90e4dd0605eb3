import type { Logger } from "pino";
import { Provider } from "../../gen/credbroker/v1/credential_pb.js";
import type { ServeConfig } from "../config/serve-config.js";
import type { Ambient } from "../core/lifecycle.js";
import { awsProvider } from "../providers/aws/index.js";
import { RoleSessions } from "../providers/aws/role-sessions.js";
import { SessionCache } from "../providers/aws/session-cache.js";
import { SigningKeyCache } from "../providers/aws/signing-keys.js";
import { StsGateway } from "../providers/aws/sts-gateway.js";
import { TaskSessions } from "../providers/aws/task-sessions.js";
import { EntraTokens } from "../providers/azure/entra-tokens.js";
import { azureProvider } from "../providers/azure/index.js";
import { GoogleTokens } from "../providers/gcp/google-tokens.js";
import { gcpProvider } from "../providers/gcp/index.js";
import { type ProviderRegistry, providerRegistry } from "../providers/index.js";
import type { CloudProvider } from "../providers/provider.js";
import type { ReadCache } from "../store/read-cache.js";

export interface DaemonProviders {
  registry: ProviderRegistry;
  /** The provider whose sessions the metadata listeners (IMDS, container credentials) serve. */
  metadata: CloudProvider;
  /** Whose OAuth tokens the GCE metadata listener serves (Google service accounts). */
  gceMetadata: Pick<GoogleTokens, "accessToken" | "account">;
  /** Whose Entra ID tokens an Azure managed-identity listener would serve (service principals). */
  azureIdentity: Pick<EntraTokens, "accessToken">;
  /** Drops everything derived from a credential (its keys, its sessions). */
  forget(credentialId: string): void;
  /** Drops every derived key (a master key retired). */
  clearKeys(): void;
}

/**
 * The clouds this daemon serves, each with its caches. PROVIDER_GENERIC
 * (S3-compatible stores) signs with SigV4 like AWS, so both are the AWS provider.
 */
export function startProviders(
  config: ServeConfig,
  log: Logger,
  reads: ReadCache,
  ambient: Ambient,
): DaemonProviders {
  const signingKeys = new SigningKeyCache();
  const sts = new StsGateway(config.sts);
  const sessions = new SessionCache({
    now: ambient.now,
    onStaleServe: (credentialId, err) =>
      log.warn(
        { credentialId, err: (err as Error).message },
        "STS renewal failed; the cached session still serves",
      ),
  });
  const roleSessions = new RoleSessions({
    credentials: reads,
    sts,
    cache: sessions,
    now: ambient.now,
  });
  const tasks = new TaskSessions({
    credentials: reads,
    sts,
    roleSessions,
    cache: sessions,
    now: ambient.now,
  });
  const googleTokens = new GoogleTokens({ credentials: reads, now: ambient.now });
  const entraTokens = new EntraTokens({
    credentials: reads,
    now: ambient.now,
    ...(config.azure === undefined ? {} : { authorityHost: config.azure.authorityHost }),
  });
  const aws = awsProvider({ signingKeys, roleSessions, ambient, tasks, sts });
  return {
    registry: providerRegistry({
      providers: {
        [Provider.AWS]: aws,
        [Provider.GENERIC]: aws,
        [Provider.AZURE]: azureProvider({
          ambient,
          accessToken: (namespace, name, scopes, expectedId) =>
            entraTokens.accessToken(namespace, name, scopes, expectedId),
        }),
        [Provider.GCP]: gcpProvider({
          ambient,
          accessToken: (namespace, name, scopes, expectedId) =>
            googleTokens.accessToken(namespace, name, scopes, expectedId),
        }),
      },
      signRequests: Provider.AWS,
    }),
    metadata: aws,
    gceMetadata: googleTokens,
    azureIdentity: entraTokens,
    forget(id) {
      signingKeys.drop(id);
      sessions.drop(id);
      googleTokens.forget(id);
      entraTokens.forget(id);
    },
    clearKeys: () => signingKeys.clear(),
  };
}
