import { randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { AuditEvent, AuditSink } from "../../audit/audit-log.js";
import { type Binding, type BindingTable, CONTAINER_PATH } from "../../bindings/bindings.js";
import { isDomainError } from "../../core/errors.js";
import { applyServerLimits, HTTP1_OPTIONS } from "../../http/limits.js";
import type { MintedSession } from "../../providers/provider.js";
import { requestGuards } from "../guards.js";
import { stamp } from "../stamp.js";

/** What a binding hands out: a short-lived session, never a stored secret. */
/** A session a container is handed (the provider mints it). */
export type ContainerSession = MintedSession;

export interface ContainerServerOptions {
  host: string;
  port: number;
  bindings: BindingTable;
  /** The binding's session (cached, single flight), its creator and credential checked again; throws DomainError. */
  session(binding: Binding): Promise<ContainerSession>;
  log?: { warn(obj: object, msg: string): void };
  /** Audit lines for every answer; a line that cannot be written turns the answer into a 503. */
  audit?: AuditSink;
  /**
   * Other protocols' bindings served on this listener, by path prefix (App
   * Service managed identity): asked after the guards and the method check.
   */
  routes?: readonly ContainerRoute[];
}

export interface ContainerRoute {
  prefix: string;
  answer(req: http.IncomingMessage, res: http.ServerResponse): void;
}

export interface ContainerServer {
  /** http://host:port */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * The container-credentials protocol (what ECS, `AWS_CONTAINER_CREDENTIALS_FULL_URI`
 * and `AWS_CONTAINER_AUTHORIZATION_TOKEN` give SDKs): GET /v1/credentials/<binding id>
 * with `Authorization: <token>` (the token as is, no "Bearer") answers
 * {AccessKeyId, SecretAccessKey, Token, Expiration}. Wrong or missing token:
 * 403 with {Code, Message}, the same answer for an unknown binding, so ids
 * cannot be probed. Guarded like IMDS: loopback peer, Host allow-list
 * (the listener, localhost, 169.254.170.2), no browser headers.
 */
export async function startContainerServer(opts: ContainerServerOptions): Promise<ContainerServer> {
  const server = http.createServer(HTTP1_OPTIONS);
  applyServerLimits(server);
  const sockets = new Set<import("node:net").Socket>();
  server.on("connection", (s) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const guard = requestGuards({ host: address.address, port: address.port }, ["169.254.170.2"]);

  server.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    req.resume();
    const send = (status: number, body: object) => {
      res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(JSON.stringify(body));
    };
    const refused = guard(req.headers, req.socket);
    if (refused !== undefined) return send(403, { Code: "AccessDenied", Message: refused });
    const path = (req.url ?? "").split("?")[0] ?? "";
    const route = opts.routes?.find((r) => path.startsWith(r.prefix));
    if (!path.startsWith(CONTAINER_PATH) && route === undefined)
      return send(404, { Code: "NotFound", Message: "unknown path" });
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      return send(405, { Code: "MethodNotAllowed", Message: "GET only" });
    }
    if (route !== undefined) return route.answer(req, res);
    const authorized = opts.bindings.authorize(
      path.slice(CONTAINER_PATH.length),
      req.headers.authorization ?? "",
    );
    // A binding is served only by its own protocol (refused like an unknown one).
    const binding = authorized?.protocol === "ecs-container" ? authorized : undefined;
    const audited = (decision: AuditEvent["decision"], reason?: string): boolean =>
      auditOrRefuse(opts.audit, res, {
        rpc: "container:GET /v1/credentials",
        peer: req.socket.remoteAddress,
        namespace: binding?.namespace,
        credential: binding?.credential,
        decision,
        reason,
        requestId: randomUUID(),
      });
    if (binding === undefined) {
      if (!audited("deny", "unknown binding or wrong authorization token")) return;
      return send(403, {
        Code: "AccessDenied",
        Message: "unknown binding or wrong authorization token",
      });
    }
    opts.session(binding).then(
      (s) => {
        if (!audited("allow")) return;
        send(200, {
          AccessKeyId: s.accessKeyId,
          SecretAccessKey: s.secretAccessKey,
          Token: s.sessionToken,
          Expiration: stamp(s.expiration),
        });
      },
      (err: unknown) => {
        const unavailable = isDomainError(err, "unavailable");
        opts.log?.warn({ err: (err as Error).message }, "container credentials refused");
        if (!audited(unavailable ? "error" : "deny", (err as Error).message)) return;
        send(unavailable ? 503 : 403, {
          Code: unavailable ? "ServiceUnavailable" : "AccessDenied",
          Message: err instanceof Error ? err.message : "refused",
        });
      },
    );
  });

  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

/** Writes the audit line; false (and a 503 sent) when it cannot be written. */
function auditOrRefuse(
  audit: AuditSink | undefined,
  res: http.ServerResponse,
  event: AuditEvent,
): boolean {
  try {
    audit?.write(event);
    return true;
  } catch {
    res.writeHead(503, { "content-type": "application/json", "cache-control": "no-store" });
    res.end(
      JSON.stringify({ Code: "ServiceUnavailable", Message: "the audit log cannot be written" }),
    );
    return false;
  }
}
