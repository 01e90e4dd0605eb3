import { randomUUID } from "node:crypto";
import type { ListenerInfo } from "../api/server-service.js";
import type { ContainerBindings } from "../api/signing-service.js";
import { bindingSessions } from "../bindings/binding-use.js";
import {
  AZURE_IDENTITY_PATH,
  type Binding,
  BindingTable,
  CONTAINER_PATH,
} from "../bindings/bindings.js";
import { displayName } from "../core/names.js";
import { answerAppService } from "../metadata/azure/app-service-route.js";
import { startImdsServer } from "../metadata/ec2/imds-server.js";
import { startContainerServer } from "../metadata/ecs/container-server.js";
import { appServiceIdentity, startAzureIdentityListener } from "./azure-identity.js";
import { type GceBindingListeners, gceBindingListeners } from "./gce-bindings.js";
import { startGceListener } from "./gce-metadata.js";
import type { MetadataDeps } from "./metadata-deps.js";

export type { MetadataDeps } from "./metadata-deps.js";

/**
 * The metadata listeners configured (container credentials, IMDS). Started
 * before the API: container bindings name the container listener's URL.
 * Returns the container bindings (when that listener runs) and each listener.
 */
export async function startMetadata(deps: MetadataDeps): Promise<{
  containers: ContainerBindings | undefined;
  listeners: ListenerInfo[];
}> {
  const { config, providers, callers, reads, ambient, log, audit, closers, own } = deps;
  const provider = providers.metadata;
  const bindings = new BindingTable(ambient.now);
  const listeners: ListenerInfo[] = [];
  const appService = appServiceIdentity(deps);
  const container = config.containerListen
    ? await startContainerServer({
        ...config.containerListen,
        bindings,
        // Each use checks its creator and the credential (by id) again.
        session: bindingSessions({
          callerNamed: (name) => callers.callerNamed(name),
          credential: (namespace, name) => reads.get(namespace, name),
          taskSession: (namespace, name, id) => provider.taskSession(namespace, name, id),
        }),
        log,
        audit,
        routes: [
          {
            prefix: AZURE_IDENTITY_PATH,
            answer: (req, res) => void answerAppService(req, res, bindings, appService, audit),
          },
        ],
      })
    : undefined;
  if (container) {
    closers.push(() => container.close());
    own.add(container.url);
    listeners.push({ kind: "container", url: container.url });
    log.info({ url: container.url }, "container credentials listening");
  }
  const imdsConfig = config.imds;
  if (imdsConfig) {
    const { namespace, name } = imdsConfig.credential;
    const imds = await startImdsServer({
      ...imdsConfig.listen,
      roleName: name,
      credentials: () => provider.taskSession(namespace, name),
      allowV1: imdsConfig.allowV1,
      now: ambient.now,
      log,
      // Batched with the other lines of the same event-loop turn; the answer waits for it.
      audit: (e) =>
        audit.append({
          rpc: `imds:${e.route}`,
          peer: e.peer,
          namespace,
          credential: name,
          decision: e.decision,
          reason: e.reason,
          requestId: randomUUID(),
        }),
    });
    closers.push(() => imds.close());
    own.add(imds.url);
    listeners.push({ kind: "imds", url: imds.url, credential: displayName(namespace, name) });
    log.info({ url: imds.url, credential: displayName(namespace, name) }, "imds listening");
  }
  if (config.gceMetadata) {
    listeners.push(await startGceListener(config.gceMetadata, deps));
  }
  if (config.azureIdentity) {
    listeners.push(await startAzureIdentityListener(config.azureIdentity, deps));
  }
  return {
    containers: container
      ? bindingEndpoints(bindings, container.url, gceBindingListeners(bindings, deps))
      : undefined,
    listeners,
  };
}

/**
 * Where each binding is served: ECS and App Service bindings on the container
 * listener (by path, with the binding's token), GCE bindings on a listener of
 * their own (GCE_METADATA_HOST names a host:port, no path, no token).
 */
function bindingEndpoints(
  table: BindingTable,
  baseUrl: string,
  gce: GceBindingListeners,
): ContainerBindings {
  const uri = (b: Binding): string => {
    switch (b.protocol) {
      case "ecs-container":
        return `${baseUrl}${CONTAINER_PATH}${b.id}`;
      case "azure-app-service":
        return `${baseUrl}${AZURE_IDENTITY_PATH}${b.id}`;
      case "gce-metadata":
        return gce.hostPort(b.id);
    }
  };
  return {
    table,
    open: async (b) => (b.protocol === "gce-metadata" ? gce.open(b) : uri(b)),
    uri,
    ended: (id) => void gce.end(id),
  };
}
