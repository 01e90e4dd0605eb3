/**
 * The Azure Instance Metadata Service identity endpoint on a local port, so
 * unmodified Azure SDKs (`@azure/identity`'s ManagedIdentityCredential, with
 * AZURE_POD_IDENTITY_AUTHORITY_HOST=http://127.0.0.1:PORT) get the bound
 * service principal's Entra ID tokens: never its client secret.
 */
import http from "node:http";
import { isDomainError } from "../../core/errors.js";
import type { AccessToken } from "../../providers/provider.js";
import { forwardedGuard, requestGuards } from "../guards.js";
import { listenMetadata } from "../listen.js";

export interface AzureIdentityOptions {
  host: string;
  port: number;
  /**
   * A token for `scope` (`RESOURCE/.default`). May throw DomainError:
   * invalid_argument, permission_denied → 400 invalid_resource;
   * not_found, failed_precondition → 400 identity_not_found;
   * unavailable → 503; anything else → 500.
   */
  token(scope: string): Promise<AccessToken>;
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

export interface AzureIdentityServer {
  readonly url: string;
  close(): Promise<void>;
}

/** Names Azure SDKs use for IMDS, allowed in Host besides our own address. */
export const AZURE_IMDS_HOSTS: readonly string[] = ["169.254.169.254"];

const TOKEN_PATHS = new Set([
  "/metadata/identity/oauth2/token",
  "/metadata/identity/oauth2/token/",
]);
const MAX_BODY_BYTES = 4096;

/**
 * Starts the listener. Every request passes the shared guards (loopback peer,
 * Host allow-list, no browser headers) and the forwarded guard, and must carry
 * `Metadata: true` (else 400, as IMDS answers). Errors are shaped as IMDS
 * shapes them (`{"error","error_description"}`) and never echo the request.
 */
export async function startAzureIdentityServer(
  opts: AzureIdentityOptions,
): Promise<AzureIdentityServer> {
  const listener = await listenMetadata(opts.host, opts.port);
  const { server, bound } = listener;
  const guard = requestGuards(bound, AZURE_IMDS_HOSTS);
  const { log } = opts;

  const audited = async (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    path: string,
    decision: "allow" | "deny" | "error",
    reason?: string,
  ): Promise<boolean> => {
    if (opts.audit === undefined) return true;
    try {
      await opts.audit({
        route: `${req.method} ${path}`,
        peer: req.socket.remoteAddress,
        decision,
        reason,
      });
      return true;
    } catch {
      sendError(res, 503, "temporarily_unavailable", "the audit log is unavailable");
      return false;
    }
  };

  const answer = async (
    path: string,
    query: URLSearchParams,
    req: http.IncomingMessage,
    res: http.ServerResponse,
  ): Promise<void> => {
    const resource = query.get("resource");
    if (resource === null || resource === "") {
      if (!(await audited(req, res, path, "deny", "invalid_request"))) return;
      return sendError(
        res,
        400,
        "invalid_request",
        "Required query variable 'resource' is missing",
      );
    }
    if (query.get("api-version") === null) {
      if (!(await audited(req, res, path, "deny", "invalid_request"))) return;
      return sendError(
        res,
        400,
        "invalid_request",
        "Required query variable 'api-version' is missing",
      );
    }
    try {
      const token = await opts.token(resourceScope(resource));
      if (!(await audited(req, res, path, "allow"))) return;
      return sendJson(res, 200, tokenAnswer(token, resource, opts.now()));
    } catch (err) {
      const [status, error] = identityFailure(err);
      const code = isDomainError(err) ? err.code : "internal";
      if (status >= 500) log?.warn({ status, code }, "azure identity answer unavailable");
      if (!(await audited(req, res, path, status < 500 ? "deny" : "error", code))) return;
      // A DomainError's message is safe to show (it names rules, never a secret).
      const description =
        status < 500 && isDomainError(err) ? err.message : (http.STATUS_CODES[status] ?? "Error");
      return sendError(res, status, error, description);
    }
  };

  server.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    const reason = guard(req.headers, req.socket) ?? forwardedGuard(req.headers, req.socket);
    if (reason !== undefined) {
      log?.warn(
        { reason, remoteAddress: req.socket.remoteAddress },
        "azure identity request refused",
      );
      return sendError(res, 403, "forbidden", reason);
    }
    const declared = req.headers["content-length"];
    if (
      req.headers["transfer-encoding"] !== undefined ||
      (declared !== undefined && !(Number(declared) <= MAX_BODY_BYTES))
    ) {
      res.setHeader("connection", "close");
      return sendError(res, 413, "invalid_request", "Payload Too Large");
    }
    req.resume();
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q === -1 ? url : url.slice(0, q);
    if (!TOKEN_PATHS.has(path)) return sendError(res, 404, "not_found", "Not Found");
    if (req.method !== "GET") {
      res.setHeader("allow", "GET");
      return sendError(res, 405, "invalid_request", "Method Not Allowed");
    }
    if (req.headers.metadata !== "true") {
      return sendError(res, 400, "invalid_request", "Required metadata header not specified");
    }
    void answer(path, new URLSearchParams(q === -1 ? "" : url.slice(q + 1)), req, res);
  });

  return {
    url: listener.url,
    close: listener.close,
  };
}

/** An Entra resource (`https://storage.azure.com/`) as the v2 scope it names. */
export function resourceScope(resource: string): string {
  return `${resource.replace(/\/+$/, "")}/.default`;
}

/** The IMDS token answer: numbers as strings, as IMDS sends them. */
export function tokenAnswer(token: AccessToken, resource: string, now: Date): object {
  const expiresOn = Math.floor(token.expiresAt.getTime() / 1000);
  const expiresIn = Math.max(0, expiresOn - Math.floor(now.getTime() / 1000));
  return {
    access_token: token.token,
    expires_in: String(expiresIn),
    expires_on: String(expiresOn),
    not_before: String(Math.floor(now.getTime() / 1000)),
    resource,
    token_type: "Bearer",
  };
}

/** The IMDS status and error code for a token refusal. */
export function identityFailure(err: unknown): [number, string] {
  if (!isDomainError(err)) return [500, "internal_error"];
  switch (err.code) {
    case "invalid_argument":
    case "permission_denied":
      return [400, "invalid_resource"];
    case "not_found":
    case "failed_precondition":
      return [400, "identity_not_found"];
    case "unavailable":
    case "aborted":
      return [503, "temporarily_unavailable"];
    default:
      return [500, "internal_error"];
  }
}

function sendError(res: http.ServerResponse, status: number, error: string, description: string) {
  sendJson(res, status, { error, error_description: description });
}

/** A JSON answer that no cache keeps. */
export function sendJson(res: http.ServerResponse, status: number, body: object): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
  });
  res.end(text);
}
