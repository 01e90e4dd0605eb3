import { randomUUID } from "node:crypto";
import type { ListenerInfo } from "../api/server-service.js";
import type { ServeConfig } from "../config/serve-config.js";
import { DomainError } from "../core/errors.js";
import { displayName } from "../core/names.js";
import { startGceMetadataServer } from "../metadata/gce/gce-server.js";
import type { MetadataDeps } from "./metadata-deps.js";

/**
 * The GCE metadata listener for one service account (--gce-metadata-listen):
 * tokens only while the credential is allowed_in_tasks, usable, and the
 * scopes asked for are among its token_scopes.
 */
export async function startGceListener(
  gce: NonNullable<ServeConfig["gceMetadata"]>,
  deps: MetadataDeps,
): Promise<ListenerInfo> {
  const { providers, reads, ambient, log, audit, closers, own } = deps;
  const { namespace, name } = gce.credential;
  const who = displayName(namespace, name);
  const tokens = providers.gceMetadata;
  const server = await startGceMetadataServer({
    ...gce.listen,
    account: () => tokens.account(namespace, name),
    token: async (scopes) => {
      const c = await reads.get(namespace, name);
      if (!c.allowedInTasks) {
        throw new DomainError("permission_denied", `${who} is not allowed_in_tasks`);
      }
      return tokens.accessToken(namespace, name, scopes, c.id);
    },
    now: ambient.now,
    log,
    audit: (e) =>
      audit.append({
        rpc: `gce-metadata:${e.route}`,
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
  log.info({ url: server.url, credential: who }, "gce metadata listening");
  return { kind: "gce-metadata", url: server.url, credential: who };
}
