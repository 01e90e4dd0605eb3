import { randomUUID } from "node:crypto";
import { bindingCheck } from "../bindings/binding-use.js";
import type { Binding, BindingTable } from "../bindings/bindings.js";
import { DomainError } from "../core/errors.js";
import { displayName } from "../core/names.js";
import { type GceMetadataServer, startGceMetadataServer } from "../metadata/gce/gce-server.js";
import type { MetadataDeps } from "./metadata-deps.js";

/** The loopback address each binding's GCE metadata listener takes (port chosen by the OS). */
const GCE_BINDING_HOST = "127.0.0.1";

/** The per-binding GCE metadata listeners: one each, on loopback, closed when the binding ends. */
export interface GceBindingListeners {
  /** Starts binding `b`'s listener: its host:port (GCE_METADATA_HOST). */
  open(b: Binding): Promise<string>;
  /** Where binding `id` is served ("" when it has no listener). */
  hostPort(id: string): string;
  /** Binding `id` ended: its listener closes (nothing when it has none). */
  end(id: string): Promise<void>;
  /** Every listener closes (daemon stop). */
  closeAll(): Promise<void>;
}

interface Open {
  server: GceMetadataServer;
  timer: NodeJS.Timeout;
}

/**
 * Each request to a binding's listener re-checks that the binding is still
 * in the table and unexpired (else 404), that its creator may still sign with
 * the credential bound, by id (else 403), and that the credential is still
 * allowed_in_tasks, enabled and unexpired (403/404) before a token is minted.
 * A listener closes when its binding is deleted, when it expires (a timer at
 * expires_at), and when the daemon stops.
 */
export function gceBindingListeners(
  table: BindingTable,
  deps: Pick<
    MetadataDeps,
    "providers" | "callers" | "reads" | "ambient" | "log" | "audit" | "closers" | "own"
  >,
): GceBindingListeners {
  const { providers, callers, reads, ambient, log, audit, closers, own } = deps;
  const tokens = providers.gceMetadata;
  const open = new Map<string, Open>();
  const check = bindingCheck({
    callerNamed: (name) => callers.callerNamed(name),
    credential: (namespace, name) => reads.get(namespace, name),
  });

  /** The binding, still live, and its credential, still bound and usable by its creator. */
  const current = async (id: string) => {
    const b = table.live(id);
    if (b === undefined) throw new DomainError("not_found", "this binding has ended");
    const credential = await check(b);
    return { b, credential };
  };

  const end = async (id: string): Promise<void> => {
    const o = open.get(id);
    if (o === undefined) return;
    open.delete(id);
    clearTimeout(o.timer);
    own.remove(o.server.url);
    await o.server.close();
  };

  closers.push(async () => {
    await Promise.all([...open.keys()].map(end));
  });

  return {
    async open(binding) {
      const who = displayName(binding.namespace, binding.credential);
      const server = await startGceMetadataServer({
        host: GCE_BINDING_HOST,
        port: 0,
        account: async () => {
          const { b } = await current(binding.id);
          return tokens.account(b.namespace, b.credential);
        },
        token: async (scopes) => {
          const { b, credential } = await current(binding.id);
          if (!credential.allowedInTasks) {
            throw new DomainError("permission_denied", `${who} is not allowed_in_tasks`);
          }
          // Checks enabled, unexpired and the id again, on the record it mints from.
          return tokens.accessToken(b.namespace, b.credential, scopes, b.credentialId);
        },
        now: ambient.now,
        log,
        audit: (e) =>
          audit.append({
            rpc: `gce-metadata-binding:${e.route}`,
            peer: e.peer,
            namespace: binding.namespace,
            credential: binding.credential,
            decision: e.decision,
            reason: e.reason,
            requestId: randomUUID(),
          }),
      });
      const ms = Math.max(0, binding.expiresAt.getTime() - ambient.now().getTime());
      const timer = setTimeout(() => {
        table.delete(binding.id);
        void end(binding.id);
      }, ms);
      timer.unref();
      open.set(binding.id, { server, timer });
      own.add(server.url);
      log.info(
        { binding: binding.id, url: server.url, credential: who },
        "gce metadata binding listening",
      );
      return server.hostPort;
    },
    hostPort: (id) => open.get(id)?.server.hostPort ?? "",
    end,
    closeAll: async () => {
      await Promise.all([...open.keys()].map(end));
    },
  };
}
