/**
 * A GCE metadata server on a local port, so unmodified Google client
 * libraries (google-auth-library, gcp-metadata, gcloud) get the bound service
 * account's access tokens (GCE_METADATA_HOST=127.0.0.1:PORT): never its key.
 */
import http from "node:http";
import { isDomainError } from "../../core/errors.js";
import type { AccessToken } from "../../providers/provider.js";
import { forwardedGuard, hostForm, requestGuards } from "../guards.js";
import { listenMetadata } from "../listen.js";
import { GCE_ROUTES, requestedScopes } from "./gce-routes.js";

/** The public identity of the bound service account. */
export interface GceAccount {
  email: string;
  projectId: string;
  /** The scopes its tokens may carry (token_scopes, or cloud-platform). */
  scopes: readonly string[];
}

export interface GceMetadataOptions {
  host: string;
  port: number;
  /**
   * The bound account, and a token for `scopes` (empty: all it may carry).
   * Both may throw DomainError: not_found, failed_precondition → 404;
   * permission_denied → 403; unavailable → 503; anything else → 500.
   */
  account(): Promise<GceAccount>;
  token(scopes: readonly string[]): Promise<AccessToken>;
  now(): Date;
  log?: { warn(obj: object, msg: string): void };
  /** Told before every token answer (and refusal) is sent; throws → 503 and no token (fail-closed). */
  audit?(event: {
    route: string;
    peer: string | undefined;
    decision: "allow" | "deny" | "error";
    reason?: string;
  }): void | Promise<void>;
}

export interface GceMetadataServer {
  readonly url: string;
  /** host:port, the form GCE_METADATA_HOST takes. */
  readonly hostPort: string;
  close(): Promise<void>;
}

/** Names Google libraries use for the metadata server, allowed in Host besides our own address. */
export const GCE_HOSTS: readonly string[] = [
  "169.254.169.254",
  "metadata.google.internal",
  "metadata.google.internal.",
  "metadata",
];

const FLAVOR = "metadata-flavor";
const TEXT = "application/text";
const JSON_TYPE = "application/json";
const MAX_BODY_BYTES = 4096;

/**
 * Starts the listener. Every request passes the shared guards (loopback peer,
 * Host allow-list, no browser headers) and the forwarded guard, and must carry
 * `Metadata-Flavor: Google` (else 403, as GCE answers); every answer carries
 * `Metadata-Flavor: Google`, which Google libraries check.
 */
export async function startGceMetadataServer(opts: GceMetadataOptions): Promise<GceMetadataServer> {
  const listener = await listenMetadata(opts.host, opts.port);
  const { server, bound } = listener;
  const guard = requestGuards(bound, GCE_HOSTS);
  const log = opts.log;

  const audited = async (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    path: string,
    decision: "allow" | "deny" | "error",
    reason?: string,
  ): Promise<boolean> => {
    if (opts.audit === undefined) return true;
    try {
      // The path only: the query is the caller's.
      await opts.audit({
        route: `${req.method} ${path}`,
        peer: req.socket.remoteAddress,
        decision,
        reason,
      });
      return true;
    } catch {
      send(res, 503, "Service Unavailable\n");
      return false;
    }
  };

  const answer = async (
    kind: "token" | "email" | "scopes" | "project-id" | "aliases",
    path: string,
    query: URLSearchParams,
    req: http.IncomingMessage,
    res: http.ServerResponse,
  ): Promise<void> => {
    try {
      if (kind === "token") {
        const token = await opts.token(requestedScopes(query));
        if (!(await audited(req, res, path, "allow"))) return;
        const expiresIn = Math.max(
          0,
          Math.floor((token.expiresAt.getTime() - opts.now().getTime()) / 1000),
        );
        const body = JSON.stringify({
          access_token: token.token,
          expires_in: expiresIn,
          token_type: "Bearer",
        });
        return send(res, 200, body, JSON_TYPE, { "cache-control": "no-store" });
      }
      const account = await opts.account();
      if (kind === "email") return send(res, 200, account.email);
      if (kind === "aliases") return send(res, 200, "default\n");
      if (kind === "scopes") return send(res, 200, `${account.scopes.join("\n")}\n`);
      return send(res, 200, account.projectId);
    } catch (err) {
      const status = failureStatus(err);
      const code = isDomainError(err) ? err.code : "internal";
      if (status >= 500) log?.warn({ status, code }, "gce metadata answer unavailable");
      if (
        kind === "token" &&
        !(await audited(req, res, path, status < 500 ? "deny" : "error", code))
      ) {
        return;
      }
      // A DomainError's message is safe to show (it names rules, never a secret).
      const message = status < 500 && isDomainError(err) ? err.message : http.STATUS_CODES[status];
      return send(res, status, `${message ?? "Error"}\n`);
    }
  };

  const dispatch = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q === -1 ? url : url.slice(0, q);
    const route = GCE_ROUTES.get(path);
    if (req.method !== "GET" && req.method !== "HEAD") {
      return send(res, route === undefined ? 404 : 405, "Method Not Allowed\n", TEXT, {
        allow: "GET, HEAD",
      });
    }
    if (route === undefined) return send(res, 404, "Not Found\n");
    if (route.kind === "static") return send(res, 200, route.body);
    if (route.kind === "identity") {
      return send(
        res,
        501,
        "identity tokens are not implemented by credbroker's GCE metadata listener\n",
      );
    }
    void answer(route.kind, path, new URLSearchParams(q === -1 ? "" : url.slice(q + 1)), req, res);
  };

  server.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    const reason = guard(req.headers, req.socket) ?? forwardedGuard(req.headers, req.socket);
    if (reason !== undefined) {
      log?.warn(
        { reason, remoteAddress: req.socket.remoteAddress },
        "gce metadata request refused",
      );
      return send(res, 403, `${reason}\n`);
    }
    if (req.headers[FLAVOR] !== "Google") {
      return send(res, 403, "Missing required header: Metadata-Flavor: Google\n");
    }
    const declared = req.headers["content-length"];
    if (
      req.headers["transfer-encoding"] !== undefined ||
      (declared !== undefined && !(Number(declared) <= MAX_BODY_BYTES))
    ) {
      return send(res, 413, "Payload Too Large\n", TEXT, { connection: "close" });
    }
    req.resume();
    dispatch(req, res);
  });

  const hostPort = `${hostForm(bound.host)}:${bound.port}`;
  return {
    url: listener.url,
    hostPort,
    close: listener.close,
  };
}

function failureStatus(err: unknown): 403 | 404 | 503 | 500 {
  if (!isDomainError(err)) return 500;
  switch (err.code) {
    case "permission_denied":
      return 403;
    case "not_found":
    case "failed_precondition":
      return 404;
    case "unavailable":
    case "aborted":
      return 503;
    default:
      return 500;
  }
}

function send(
  res: http.ServerResponse,
  status: number,
  body: string,
  type = TEXT,
  extra?: http.OutgoingHttpHeaders,
): void {
  res.writeHead(status, {
    "content-type": type,
    "content-length": Buffer.byteLength(body),
    "metadata-flavor": "Google",
    ...extra,
  });
  res.end(body);
}
