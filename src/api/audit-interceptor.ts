import { randomUUID } from "node:crypto";
import { Code, ConnectError, createContextKey, type Interceptor } from "@connectrpc/connect";
import type { AuditEvent, AuditSink } from "../audit/audit-log.js";
import { DomainError } from "../core/errors.js";
import { CALLER } from "./caller-context.js";
import { connectCode } from "./error-mapping.js";
import { PEER_ADDRESS } from "./peer-certificate.js";

/** What a handler adds to its RPC's audit line (SignRequest: the target host and S3 action). */
export const AUDIT_DETAILS = createContextKey<Partial<AuditEvent>>(
  {},
  { description: "audit details" },
);

/** Audited RPCs: every mutation and every signature. Failed authentication is audited for every RPC. */
const AUDITED = new Set([
  "CreateCredential",
  "ImportCredentials",
  "UpdateCredential",
  "DeleteCredential",
  "SignRequest",
  "CreateContainerBinding",
  "DeleteContainerBinding",
  "CreateCaller",
  "UpdateCaller",
  "DeleteCaller",
  "RotateCallerToken",
  "RotateMasterKey",
  "RetirePreviousKeys",
]);

/** The namespace and credential (or caller) a request names. */
function target(message: unknown): Pick<AuditEvent, "namespace" | "credential"> {
  const m = message as {
    namespace?: unknown;
    name?: unknown;
    credential?: unknown;
    caller?: { name?: unknown };
  };
  const nested =
    typeof m.credential === "object" && m.credential !== null
      ? (m.credential as { namespace?: unknown; name?: unknown })
      : undefined;
  const str = (v: unknown) => (typeof v === "string" ? v : undefined);
  return {
    namespace: str(nested?.namespace) ?? str(m.namespace),
    credential: str(nested?.name) ?? str(m.credential) ?? str(m.name) ?? str(m.caller?.name),
  };
}

/**
 * Writes the audit line of an RPC after it ran and before its answer goes
 * out. If the line cannot be written the RPC fails `unavailable` instead:
 * a signature is never returned unaudited (fail-closed). Each RPC gets a
 * request id, returned in the `x-request-id` response header.
 */
export function auditInterceptor(audit: AuditSink): Interceptor {
  /** "/service/Method", made once per method (this runs on every call). */
  const rpcNames = new WeakMap<object, string>();
  return (next) => async (req) => {
    const requestId = randomUUID();
    const audited = AUDITED.has(req.method.name);
    let rpc = rpcNames.get(req.method);
    if (rpc === undefined) {
      rpc = `/${req.service.typeName}/${req.method.name}`;
      rpcNames.set(req.method, rpc);
    }
    const event = (decision: AuditEvent["decision"], reason?: string): AuditEvent => {
      // Built in the line's field order: who, what, then the decision.
      const e = {
        rpc,
        caller: req.contextValues.get(CALLER)?.name,
        peer: req.contextValues.get(PEER_ADDRESS),
        requestId,
      } as AuditEvent;
      if (!req.stream) Object.assign(e, target(req.message));
      Object.assign(e, req.contextValues.get(AUDIT_DETAILS));
      e.decision = decision;
      if (reason !== undefined) e.reason = reason;
      return e;
    };
    // A mutation is recorded before it happens too: if that line cannot be
    // written, nothing is changed. A signature is recorded before it leaves.
    if (audited && req.method.name !== "SignRequest") await record(audit, event("attempt"));
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await next(req);
    } catch (err) {
      // Domain errors become ConnectErrors only further out (error-mapping); map them the same way here.
      const e =
        err instanceof DomainError
          ? new ConnectError(err.message, connectCode(err.code))
          : ConnectError.from(err);
      if (audited || e.code === Code.Unauthenticated) {
        await record(
          audit,
          event(
            e.code === Code.PermissionDenied || e.code === Code.Unauthenticated ? "deny" : "error",
            `${Code[e.code]}: ${e.rawMessage}`,
          ),
        );
      }
      throw err;
    }
    if (audited) await record(audit, event("allow"));
    res.header.set("x-request-id", requestId);
    return res;
  };
}

async function record(audit: AuditSink, event: AuditEvent): Promise<void> {
  try {
    await audit.append(event);
  } catch {
    throw new ConnectError(
      "the audit log cannot be written; refusing to act unaudited",
      Code.Unavailable,
    );
  }
}
