import { randomUUID } from "node:crypto";
import type { ListenerInfo } from "../api/server-service.js";
import { bindingCheck } from "../bindings/binding-use.js";
import type { CredentialListener } from "../config/serve-config.js";
import { DomainError } from "../core/errors.js";
import { displayName } from "../core/names.js";
import type { AppServiceIdentity } from "../metadata/azure/app-service-route.js";
import { startAzureIdentityServer } from "../metadata/azure/azure-identity-server.js";
import type { MetadataDeps } from "./metadata-deps.js";

/**
 * The Azure managed-identity listener for one service principal
 * (--azure-identity-listen): tokens only while the credential is
 * allowed_in_tasks, usable, and the resource asked for is among its token_scopes.
 */
export async function startAzureIdentityListener(
  listener: CredentialListener,
  deps: MetadataDeps,
): Promise<ListenerInfo> {
  const { providers, reads, ambient, log, audit, closers, own } = deps;
  const { namespace, name } = listener.credential;
  const who = displayName(namespace, name);
  const server = await startAzureIdentityServer({
    ...listener.listen,
    token: async (scope) => {
      const c = await reads.get(namespace, name);
      if (!c.allowedInTasks) {
        throw new DomainError("failed_precondition", `${who} is not allowed_in_tasks`);
      }
      return providers.azureIdentity.accessToken(namespace, name, [scope], c.id);
    },
    now: ambient.now,
    log,
    audit: (e) =>
      audit.append({
        rpc: `azure-identity:${e.route}`,
        peer: e.peer,
        namespace,
        credential: name,
        decision: e.decision,
        reason: e.reason,
        requestId: randomUUID(),
      }),
  });
  closers.push(() => server.close());
  own.add(server.url);
  log.info({ url: server.url, credential: who }, "azure managed identity listening");
  return { kind: "azure-identity", url: server.url, credential: who };
}

/**
 * The App Service managed identity that Azure service principals' bindings
 * (`credbroker exec`) are served with on the container listener: each
 * request checks the binding's creator and credential again (by id, still
 * allowed_in_tasks) before a token for a resource within token_scopes.
 */
export function appServiceIdentity(
  deps: Pick<MetadataDeps, "providers" | "callers" | "reads" | "ambient">,
): AppServiceIdentity {
  const { providers, callers, reads, ambient } = deps;
  const check = bindingCheck({
    callerNamed: (name) => callers.callerNamed(name),
    credential: (namespace, name) => reads.get(namespace, name),
  });
  return {
    check: async (b) => {
      const credential = await check(b);
      if (!credential.allowedInTasks) {
        throw new DomainError(
          "permission_denied",
          `${displayName(b.namespace, b.credential)} is not allowed_in_tasks`,
        );
      }
    },
    token: (b, scope) =>
      providers.azureIdentity.accessToken(b.namespace, b.credential, [scope], b.credentialId),
    now: ambient.now,
  };
}
