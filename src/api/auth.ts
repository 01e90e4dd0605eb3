import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { CallerDirectory } from "../auth/caller-directory.js";
import { CALLER } from "./caller-context.js";
import { PEER_CERT_SUBJECT } from "./peer-certificate.js";

/** Services anyone may call: probes and schema discovery (`buf curl` sends no token there). */
export const PUBLIC_SERVICES: ReadonlySet<string> = new Set([
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
]);

const BEARER = /^Bearer +(\S+) *$/i;

/**
 * Requires `authorization: Bearer <token>` on every RPC outside
 * PUBLIC_SERVICES, and puts the caller it names in the context. Under mutual
 * TLS an RPC without the header may instead be the caller whose
 * `certificate_subject` is the verified client certificate's subject
 * (PEER_CERT_SUBJECT); a header, when sent, always decides, so a wrong token
 * is refused even over a caller's certificate.
 */
export function authInterceptor(callers: CallerDirectory): Interceptor {
  return (next) => async (req) => {
    if (!PUBLIC_SERVICES.has(req.service.typeName)) {
      const header = req.header.get("authorization");
      if (header === null) {
        const subject = req.contextValues.get(PEER_CERT_SUBJECT);
        if (subject === undefined) {
          throw new ConnectError("missing authorization: Bearer <token>", Code.Unauthenticated);
        }
        const caller = await callers.callerByCertificateSubject(subject);
        if (caller === undefined) {
          throw new ConnectError(
            "missing authorization: Bearer <token> (the client certificate is no enabled caller's)",
            Code.Unauthenticated,
          );
        }
        req.contextValues.set(CALLER, caller);
      } else {
        const token = BEARER.exec(header)?.[1];
        const caller = token === undefined ? undefined : await callers.resolve(token);
        if (caller === undefined) {
          throw new ConnectError("invalid bearer token", Code.Unauthenticated);
        }
        req.contextValues.set(CALLER, caller);
      }
    }
    return next(req);
  };
}
