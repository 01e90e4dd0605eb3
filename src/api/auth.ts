import {
  Code,
  ConnectError,
  type ContextValues,
  createContextKey,
  type Interceptor,
} from "@connectrpc/connect";
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
 * What the listener decided from a request's headers, before reading its
 * body: the caller, or why there is none. Unset: not decided yet (the
 * interceptor decides).
 */
const HEADER_DECISION = createContextKey<Caller | string | undefined>(undefined, {
  description: "caller decided from the request headers",
});

export interface AuthLimits {
  /** Requests per caller (rate limit; resource_exhausted beyond). */
  rate: RateLimiter;
  /** Slows repeated failed authentication from one peer. */
  failures: FailureThrottle;
}

/**
 * Requires `authorization: Bearer <token>` on every RPC outside
 * PUBLIC_SERVICES, and puts the caller it names in the context. Under mutual
 * TLS an RPC without the header may instead be the caller whose
 * `certificate_subject` is the verified client certificate's subject
 * (PEER_CERT_SUBJECT); a header, when sent, always decides, so a wrong token
 * is refused even over a caller's certificate.
 *
 * The listener calls `fromHeaders` before it reads a request's body (threat:
 * unauthenticated uploads held in memory); the interceptor then only acts on
 * that decision (the failure throttle, the answer, the audit line), so each
 * request is authenticated once.
 */
export class Authenticator {
  constructor(
    private readonly callers: CallerDirectory,
    private readonly limits: AuthLimits,
  ) {}

  /**
   * Decides the caller of an RPC on `path` from its `authorization` header
   * and puts the decision in `values`; true when the body may be read (a
   * caller, or a public service).
   */
  readonly fromHeaders = async (
    path: string,
    authorization: string | null,
    values: ContextValues,
  ): Promise<boolean> => {
    if (PUBLIC_SERVICES.has(serviceOf(path))) return true;
    let decision: Caller | string;
    try {
      decision = await this.authenticate(authorization, values.get(PEER_CERT_SUBJECT));
    } catch {
      // Undecided (the directory failed): the body stays unread and the
      // interceptor tries again, answering the failure as its errors are.
      return false;
    }
    values.set(HEADER_DECISION, decision);
    return typeof decision !== "string";
  };

  readonly interceptor: Interceptor = (next) => async (req) => {
    if (PUBLIC_SERVICES.has(req.service.typeName)) return next(req);
    const caller =
      req.contextValues.get(HEADER_DECISION) ??
      (await this.authenticate(
        req.header.get("authorization"),
        req.contextValues.get(PEER_CERT_SUBJECT),
      ));
    if (typeof caller === "string") {
      const delay = this.limits.failures.fail(req.contextValues.get(PEER_ADDRESS) ?? "unknown");
      if (delay > 0) await new Promise((r) => setTimeout(r, delay));
      throw new ConnectError(caller, Code.Unauthenticated);
    }
    req.contextValues.set(CALLER, caller);
    if (!this.limits.rate.take(caller.name)) {
      throw new ConnectError(
        `rate limit: caller ${caller.name} is sending too fast; slow down`,
        Code.ResourceExhausted,
      );
    }
    return next(req);
  };

  /** The caller, or why there is none. */
  private async authenticate(
    header: string | null,
    subject: string | undefined,
  ): Promise<Caller | string> {
    if (header === null) {
      if (subject === undefined) return "missing authorization: Bearer <token>";
      return (
        (await this.callers.callerByCertificateSubject(subject)) ??
        "missing authorization: Bearer <token> (the client certificate is no enabled caller's)"
      );
    }
    const token = BEARER.exec(header)?.[1];
    return (
      (token === undefined ? undefined : await this.callers.resolve(token)) ??
      "invalid bearer token"
    );
  }
}

/** `/pkg.Service/Method` → `pkg.Service`. */
function serviceOf(path: string): string {
  return path.split("/", 2)[1] ?? "";
}
