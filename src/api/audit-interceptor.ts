import { randomUUID } from "node:crypto";
import {
  Code,
  ConnectError,
  createContextKey,
  type Interceptor,
  type StreamRequest,
  type UnaryRequest,
} from "@connectrpc/connect";
import type {
  CreateCallerRequest,
  DeleteCallerRequest,
  GetCallerRequest,
  RotateCallerTokenRequest,
  UpdateCallerRequest,
} from "../../gen/credbroker/v1/caller_service_pb.js";
import type {
  CreateCredentialRequest,
  DeleteCredentialRequest,
  GetCredentialRequest,
  ListCredentialsRequest,
  UpdateCredentialRequest,
  VerifyCredentialRequest,
} from "../../gen/credbroker/v1/credential_service_pb.js";
import type {
  CreateContainerBindingRequest,
  ForwardRequestRequest,
  SignRequestRequest,
} from "../../gen/credbroker/v1/signing_service_pb.js";
import type { AuditEvent, AuditSink } from "../audit/audit-log.js";
import { ConcealedDenial, DomainError } from "../core/errors.js";
import { isValidName, isValidNamespace } from "../core/names.js";
import { CALLER } from "./caller-context.js";
import { connectCode } from "./error-mapping.js";
import { PEER_ADDRESS } from "./peer-certificate.js";

/** What a handler adds to its RPC's audit line (SignRequest: the target host and S3 action). */
export const AUDIT_DETAILS = createContextKey<Partial<AuditEvent>>(
  {},
  { description: "audit details" },
);

/**
 * Audited RPCs: every mutation and every signature. Denials (failed
 * authentication, permission_denied, and a credential outside the caller's
 * namespaces answered not_found) are audited for every RPC.
 */
const AUDITED = new Set([
  "CreateCredential",
  "ImportCredentials",
  "UpdateCredential",
  "DeleteCredential",
  "SignRequest",
  "ForwardRequest",
  "CreateContainerBinding",
  "DeleteContainerBinding",
  "CreateCaller",
  "UpdateCaller",
  "DeleteCaller",
  "RotateCallerToken",
  "RotateMasterKey",
  "RetirePreviousKeys",
]);

/** Audited with one line, the outcome, and no "attempt" line before. */
const ONE_LINE = new Set(["SignRequest", "ForwardRequest"]);

type Target = Pick<AuditEvent, "namespace" | "credential" | "newName" | "targetCaller">;

/**
 * Names as a line records them: only well-formed ones, so a line stays
 * small and holds nothing else a caller typed (a malformed name is refused
 * invalid_argument anyway, and the reason says which field).
 */
const ns = (namespace: string) => (isValidNamespace(namespace) ? namespace : undefined);
const named = (name: string) => (isValidName(name) ? name : undefined);
const ref = (namespace: string, name: string): Target => ({
  namespace: ns(namespace),
  credential: named(name),
});
const ofCredential = (c: { namespace: string; name: string } | undefined): Target =>
  c === undefined ? {} : ref(c.namespace, c.name);

/**
 * What each unary RPC's request names, by method. Proto3 sends unset
 * strings as "", and "" is a real namespace (the workspace), so each RPC
 * says which fields name its target rather than taking the first non-empty
 * one: UpdateCredential's `credential` is the patch, not the target.
 */
const TARGETS: Record<string, (message: never) => Target> = {
  CreateCredential: (m: CreateCredentialRequest) => ofCredential(m.credential),
  GetCredential: (m: GetCredentialRequest) => ref(m.namespace, m.name),
  ListCredentials: (m: ListCredentialsRequest) => ({ namespace: ns(m.namespace) }),
  UpdateCredential: (m: UpdateCredentialRequest) => ({
    ...ref(m.namespace, m.name),
    newName: m.updateMask?.paths.includes("name") ? named(m.credential?.name ?? "") : undefined,
  }),
  DeleteCredential: (m: DeleteCredentialRequest) => ref(m.namespace, m.name),
  VerifyCredential: (m: VerifyCredentialRequest) => ofCredential(m.target.value),
  // credential "" is the namespace's provider default: the namespace alone is named.
  SignRequest: (m: SignRequestRequest) => ref(m.namespace, m.credential),
  ForwardRequest: (m: ForwardRequestRequest) => ref(m.namespace, m.credential),
  CreateContainerBinding: (m: CreateContainerBindingRequest) => ref(m.namespace, m.credential),
  CreateCaller: (m: CreateCallerRequest) => ({ targetCaller: named(m.caller?.name ?? "") }),
  GetCaller: (m: GetCallerRequest) => ({ targetCaller: named(m.name) }),
  UpdateCaller: (m: UpdateCallerRequest) => ({ targetCaller: named(m.name) }),
  DeleteCaller: (m: DeleteCallerRequest) => ({ targetCaller: named(m.name) }),
  RotateCallerToken: (m: RotateCallerTokenRequest) => ({ targetCaller: named(m.name) }),
};

/** The namespace and credential (or caller) a unary request names; {} for a stream. */
function target(req: UnaryRequest | StreamRequest): Target {
  const of = TARGETS[req.method.name];
  return of === undefined || req.stream ? {} : of(req.message as never);
}

/**
 * Writes one more line for the running call (same RPC, caller, peer and
 * request id), e.g. ImportCredentials' line per row; rejects unavailable
 * when it cannot be written. Outside the audit interceptor it does nothing.
 */
export type AuditLine = (fields: Omit<AuditEvent, "rpc" | "requestId">) => Promise<void>;

export const AUDIT_LINE = createContextKey<AuditLine>(async () => {}, {
  description: "audit line",
});

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
    const who = () => ({
      rpc,
      caller: req.contextValues.get(CALLER)?.name,
      peer: req.contextValues.get(PEER_ADDRESS),
      requestId,
    });
    const event = (decision: AuditEvent["decision"], reason?: string): AuditEvent => {
      // Built in the line's field order: who, what, then the decision.
      const e = who() as AuditEvent;
      Object.assign(e, target(req));
      Object.assign(e, req.contextValues.get(AUDIT_DETAILS));
      e.decision = decision;
      if (reason !== undefined) e.reason = reason;
      return e;
    };
    if (audited && req.stream) {
      req.contextValues.set(AUDIT_LINE, (fields) => record(audit, { ...who(), ...fields }));
    }
    // A mutation is recorded before it happens too: if that line cannot be
    // written, nothing is changed. A signature is recorded before it leaves;
    // a forward once, after the call, with the upstream's status.
    if (audited && !ONE_LINE.has(req.method.name)) await record(audit, event("attempt"));
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await next(req);
    } catch (err) {
      // Domain errors become ConnectErrors only further out (error-mapping); map them the same way here.
      const e =
        err instanceof DomainError
          ? new ConnectError(err.message, connectCode(err.code))
          : ConnectError.from(err);
      // A denial is recorded whatever the RPC, reads included: "who probed" is answered by the log.
      const denied =
        err instanceof ConcealedDenial ||
        e.code === Code.PermissionDenied ||
        e.code === Code.Unauthenticated;
      if (audited || denied) {
        await record(
          audit,
          event(
            denied ? "deny" : "error",
            err instanceof ConcealedDenial ? err.auditReason : `${Code[e.code]}: ${e.rawMessage}`,
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
