/**
 * The App Service managed-identity protocol on the container listener, for
 * `credbroker exec` with an Azure service principal: the child gets
 * IDENTITY_ENDPOINT (this route, with the binding's id) and IDENTITY_HEADER
 * (the binding's token), and `@azure/identity` asks
 * `GET IDENTITY_ENDPOINT?api-version=2019-08-01&resource=R` with
 * `X-IDENTITY-HEADER`. Errors are shaped as App Service shapes them
 * (`{"statusCode","message"}`) and never echo the request.
 */

import { randomUUID } from "node:crypto";
import type http from "node:http";
import type { AuditEvent, AuditSink } from "../../audit/audit-log.js";
import { AZURE_IDENTITY_PATH, type Binding, type BindingTable } from "../../bindings/bindings.js";
import { isDomainError } from "../../core/errors.js";
import type { AccessToken } from "../../providers/provider.js";
import { identityFailure, resourceScope, sendJson, tokenAnswer } from "./azure-identity-server.js";

export interface AppServiceIdentity {
  /** The binding may still lend (its creator and credential checked again); throws DomainError → 403. */
  check(binding: Binding): Promise<void>;
  /** A token for `scope` (`RESOURCE/.default`); DomainErrors map as on the IMDS listener. */
  token(binding: Binding, scope: string): Promise<AccessToken>;
  now(): Date;
}

/**
 * Answers one request whose path starts with AZURE_IDENTITY_PATH (the
 * container listener's guards and method check already passed). Every
 * answer is an audit line; one that cannot be written is a 503 instead.
 */
export async function answerAppService(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  bindings: BindingTable,
  identity: AppServiceIdentity,
  audit: AuditSink | undefined,
): Promise<void> {
  const audited = (
    b: Binding | undefined,
    decision: AuditEvent["decision"],
    reason?: string,
  ): boolean => {
    try {
      audit?.write({
        rpc: `container:GET ${AZURE_IDENTITY_PATH.slice(0, -1)}`,
        peer: req.socket.remoteAddress,
        namespace: b?.namespace,
        credential: b?.credential,
        decision,
        reason,
        requestId: randomUUID(),
      });
      return true;
    } catch {
      send(res, 503, "the audit log cannot be written");
      return false;
    }
  };
  const url = req.url ?? "";
  const q = url.indexOf("?");
  const id = (q === -1 ? url : url.slice(0, q)).slice(AZURE_IDENTITY_PATH.length);
  const query = new URLSearchParams(q === -1 ? "" : url.slice(q + 1));
  const header = req.headers["x-identity-header"];
  const authorized = bindings.authorize(id, typeof header === "string" ? header : "");
  // A binding is served only by its own protocol (refused like an unknown one).
  const binding = authorized?.protocol === "azure-app-service" ? authorized : undefined;
  if (binding === undefined) {
    if (!audited(undefined, "deny", "unknown binding or wrong identity header")) return;
    return send(res, 401, "unknown binding or wrong X-IDENTITY-HEADER");
  }
  const resource = query.get("resource");
  if (resource === null || resource === "" || query.get("api-version") === null) {
    if (!audited(binding, "deny", "invalid_request")) return;
    return send(res, 400, "the query needs api-version and resource");
  }
  try {
    await identity.check(binding);
  } catch (err) {
    const reason = isDomainError(err) ? err.message : "refused";
    if (!audited(binding, "deny", reason)) return;
    return send(res, 403, reason);
  }
  try {
    const token = await identity.token(binding, resourceScope(resource));
    if (!audited(binding, "allow")) return;
    return sendJson(res, 200, tokenAnswer(token, resource, identity.now()));
  } catch (err) {
    const [status] = identityFailure(err);
    const code = isDomainError(err) ? err.code : "internal";
    if (!audited(binding, status < 500 ? "deny" : "error", code)) return;
    // A DomainError's message is safe to show (it names rules, never a secret).
    send(res, status, status < 500 && isDomainError(err) ? err.message : "unavailable");
  }
}

function send(res: http.ServerResponse, statusCode: number, message: string): void {
  sendJson(res, statusCode, { statusCode, message });
}
