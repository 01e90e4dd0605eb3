import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Caller } from "../../gen/credbroker/v1/caller_pb.js";
import type { CallerDirectory } from "../auth/caller-directory.js";
import type { FailureThrottle, RateLimiter } from "../auth/rate-limit.js";
import { CALLER } from "./caller-context.js";
import { PEER_ADDRESS, PEER_CERT_SUBJECT } from "./peer-certificate.js";

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
export interface AuthLimits {
  /** Requests per caller (rate limit; resource_exhausted beyond). */
  rate: RateLimiter;
  /** Slows repeated failed authentication from one peer. */
  failures: FailureThrottle;
}

export function authInterceptor(callers: CallerDirectory, limits: AuthLimits): Interceptor {
  return (next) => async (req) => {
    if (PUBLIC_SERVICES.has(req.service.typeName)) return next(req);
    const caller = await authenticate(
      req.header.get("authorization"),
      req.contextValues.get(PEER_CERT_SUBJECT),
    );
    if (typeof caller === "string") {
      const delay = limits.failures.fail(req.contextValues.get(PEER_ADDRESS) ?? "unknown");
      if (delay > 0) await new Promise((r) => setTimeout(r, delay));
      throw new ConnectError(caller, Code.Unauthenticated);
    }
    req.contextValues.set(CALLER, caller);
    if (!limits.rate.take(caller.name)) {
      throw new ConnectError(
        `rate limit: caller ${caller.name} is sending too fast; slow down`,
        Code.ResourceExhausted,
      );
    }
    return next(req);
  };

  /** The caller, or why there is none. */
  async function authenticate(
    header: string | null,
    subject: string | undefined,
  ): Promise<Caller | string> {
    if (header === null) {
      if (subject === undefined) return "missing authorization: Bearer <token>";
      return (
        (await callers.callerByCertificateSubject(subject)) ??
        "missing authorization: Bearer <token> (the client certificate is no enabled caller's)"
      );
    }
    const token = BEARER.exec(header)?.[1];
    return (
      (token === undefined ? undefined : await callers.resolve(token)) ?? "invalid bearer token"
    );
  }
}
