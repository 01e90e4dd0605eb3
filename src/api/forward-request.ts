import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import type { Caller } from "../../gen/credbroker/v1/caller_pb.js";
import type { Credential } from "../../gen/credbroker/v1/credential_pb.js";
import {
  type ForwardRequestRequest,
  type ForwardRequestResponse,
  ForwardRequestResponseSchema,
  SignRequestRequestSchema,
} from "../../gen/credbroker/v1/signing_service_pb.js";
import type { AuditEvent } from "../audit/audit-log.js";
import { authorizeCredential } from "../core/authz.js";
import { DomainError } from "../core/errors.js";
import { assertNamespace, displayName, isValidName } from "../core/names.js";
import { MAX_URL_BYTES } from "../core/raw-url.js";
import { assertUsable } from "../core/usable.js";
import { readForwardTarget } from "../forward/forward-url.js";
import { dropHopByHop } from "../forward/hop-by-hop.js";
import { redactAnswer, redactionForms } from "../forward/redact-answer.js";
import { resolveTarget } from "../forward/resolve-target.js";
import { placeToken } from "../forward/token-placement.js";
import type { UpstreamPool } from "../forward/upstream-pool.js";
import type { ProviderRegistry } from "../providers/index.js";
import type { PreparedSign, SignedRequest } from "../providers/provider.js";
import type { CredentialReads } from "../store/read-cache.js";
import { AUDIT_DETAILS } from "./audit-interceptor.js";
import { callerOf } from "./caller-context.js";

export const DEFAULT_FORWARD_TIMEOUT_MS = 30_000;
export const MAX_FORWARD_TIMEOUT_MS = 120_000;
export const DEFAULT_FORWARD_MAX_RESPONSE = 8 * 1024 * 1024;
export const DEFAULT_FORWARD_IN_FLIGHT = 64;
const MAX_FORWARD_HEADERS = 200;

/** The daemon's forwarding rules (serve --forward-*). */
export interface ForwardOptions {
  /** --forward-allow-private: private, loopback and link-local addresses may be reached. */
  allowPrivate: boolean;
  /** --forward-max-response: the largest answer body, decoded. */
  maxResponseBytes: number;
  /** --forward-max-in-flight: forwards one caller may have running at once. */
  maxInFlightPerCaller: number;
  /** The daemon's own listeners, never forwarded to (bound ports, known once listening). */
  ownListeners: () => readonly { address: string; port: number }[];
}

export interface ForwardDeps {
  reads: CredentialReads;
  providers: ProviderRegistry;
  pool: UpstreamPool;
  options: ForwardOptions;
  now: () => Date;
  /** SigningService's signature path: the caller's authorization for `action`, then the provider's policy and signature. */
  signWith(
    prepared: PreparedSign,
    caller: Caller,
    c: Credential,
    action: "forward",
  ): Promise<SignedRequest>;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is rejected
const BAD_HEADER_VALUE = /[\u0000\r\n]|\p{Cs}/u;
/** The broker's own: a caller's is refused, never merged. */
const BROKER_HEADERS = new Set(["authorization", "proxy-authorization", "host"]);
/**
 * Dropped from the caller's headers: framing is the broker's (the body it
 * sends), and the answer must come unencoded or in an encoding the broker
 * decodes, since it reads the answer to redact it.
 */
const DROPPED_HEADERS = new Set(["content-length", "accept-encoding"]);

/**
 * ForwardRequest: the broker makes the call with the credential applied
 * and returns the answer, the secret redacted from it (docs/SECURITY.md,
 * "ForwardRequest"). The caller and credential are checked first, then the
 * URL against allowed_hosts, then the address the host resolves to.
 */
export function forwardRequestHandler(deps: ForwardDeps) {
  const { reads, providers, pool, options, now } = deps;
  const inFlight = new Map<string, number>();

  return async function forwardRequest(
    req: ForwardRequestRequest,
    ctx: HandlerContext,
  ): Promise<ForwardRequestResponse> {
    const timeoutMs = checkForwardRequest(req);
    const caller = callerOf(ctx);
    const c = await reads.get(req.namespace, req.credential);
    authorizeCredential(caller, "forward", c);
    const running = inFlight.get(caller.name) ?? 0;
    if (running >= options.maxInFlightPerCaller) {
      throw new DomainError(
        "resource_exhausted",
        `caller ${caller.name} has ${options.maxInFlightPerCaller} forwards running (--forward-max-in-flight)`,
      );
    }
    inFlight.set(caller.name, running + 1);
    try {
      return await forwardWith(c, caller, req, timeoutMs, ctx);
    } finally {
      const left = (inFlight.get(caller.name) ?? 1) - 1;
      if (left === 0) inFlight.delete(caller.name);
      else inFlight.set(caller.name, left);
    }
  };

  async function forwardWith(
    c: Credential,
    caller: Caller,
    req: ForwardRequestRequest,
    timeoutMs: number,
    ctx: HandlerContext,
    withSecrets?: Credential,
  ): Promise<ForwardRequestResponse> {
    const who = displayName(c.namespace, c.name);
    assertUsable(c, now());
    if (c.allowedHosts.length === 0) {
      throw new DomainError(
        "failed_precondition",
        `${who} has no allowed_hosts, so it forwards nowhere: set allowed_hosts to the hosts it may be sent to`,
      );
    }
    const target = readForwardTarget(req.url, c.allowedHosts, who);
    const method = req.method || "GET";
    const details: Partial<AuditEvent> = { host: target.host, method, path: target.path };
    ctx.values.set(AUDIT_DETAILS, details);
    const callerHeaders = forwardedHeaders(req);

    let headers: [string, string][];
    let query = target.query;
    let sentForms: string[];
    if (c.kind.case === "token") {
      const full = withSecrets ?? (await reads.getWithSecrets(c.namespace, c.name));
      // Written since it was cached: decide again on the version whose token is sent.
      if (full.etag !== c.etag) {
        authorizeCredential(caller, "forward", full);
        return forwardWith(full, caller, req, timeoutMs, ctx, full);
      }
      if (full.kind.case !== "token") throw new Error("a token credential read without its token");
      const placed = placeToken(full.kind.value, callerHeaders, target.query);
      headers = placed.header === undefined ? callerHeaders : [...callerHeaders, placed.header];
      query = placed.query;
      sentForms = placed.sentForms;
    } else {
      const signReq = create(SignRequestRequestSchema, {
        namespace: req.namespace,
        credential: req.credential,
        method,
        url: target.url,
        headers: callerHeaders.map(([name, value]) => ({ name, value })),
        payload: { case: "body", value: req.body },
        region: req.region,
        service: req.service,
      });
      const prepared = providers.forCredential(c).prepareSign(signReq);
      details.action = prepared.target.action || undefined;
      const signed = await deps.signWith(prepared, caller, c, "forward");
      headers = signed.headers;
      // Sessions lent with the signature (an STS session token, an Entra Bearer token) are redacted too.
      sentForms = headers.flatMap(([n, v]) => {
        const name = n.toLowerCase();
        if (name === "x-amz-security-token") return [v];
        return name === "authorization" && v.startsWith("Bearer ") ? [v.slice(7)] : [];
      });
    }

    const { address } = await resolveTarget(target.host, target.port, {
      listedAddresses: target.listedAddresses,
      allowPrivate: options.allowPrivate,
      ownListeners: options.ownListeners(),
    });
    const started = performance.now();
    details.bytesSent = req.body.length;
    const answer = await pool.send({
      scheme: target.scheme,
      host: target.host,
      port: target.port,
      address,
      method,
      path: query === "" ? target.path : `${target.path}?${query}`,
      headers,
      body: req.body,
      timeoutMs,
      maxResponseBytes: options.maxResponseBytes,
    });
    details.status = answer.status;
    details.bytesReceived = answer.body.length;
    details.durationMs = Math.round(performance.now() - started);
    const clean = redactAnswer(answer.headers, answer.body, redactionForms(sentForms));
    return create(ForwardRequestResponseSchema, {
      status: answer.status,
      headers: clean.headers.map(([name, value]) => ({ name, value })),
      body: clean.body,
      redacted: clean.redacted,
    });
  }
}

/** The checks that cost nothing, made before the credential is read; returns the timeout. */
function checkForwardRequest(req: ForwardRequestRequest): number {
  assertNamespace(req.namespace);
  if (!isValidName(req.credential)) {
    invalid("credential: required, 1-64 of letters, digits, '.', '_', '-'");
  }
  if (req.url.length > MAX_URL_BYTES) invalid(`url: at most ${MAX_URL_BYTES} bytes`);
  if (req.method !== "" && (!TOKEN.test(req.method) || req.method.toUpperCase() === "CONNECT")) {
    invalid("method: an HTTP method such as GET or POST (not CONNECT)");
  }
  if (req.timeoutMs > MAX_FORWARD_TIMEOUT_MS) {
    invalid(
      `timeout_ms: at most ${MAX_FORWARD_TIMEOUT_MS} (0 means ${DEFAULT_FORWARD_TIMEOUT_MS})`,
    );
  }
  if (req.headers.length > MAX_FORWARD_HEADERS) {
    invalid(`headers: at most ${MAX_FORWARD_HEADERS}`);
  }
  return req.timeoutMs || DEFAULT_FORWARD_TIMEOUT_MS;
}

/** The caller's headers as they will be sent: checked, the broker's refused, hop-by-hop dropped. */
function forwardedHeaders(req: ForwardRequestRequest): [string, string][] {
  const out: [string, string][] = [];
  req.headers.forEach((h, i) => {
    if (!TOKEN.test(h.name)) invalid(`headers[${i}].name: not a valid header name`);
    if (BAD_HEADER_VALUE.test(h.value)) {
      invalid(`headers[${i}].value: must not contain CR, LF or NUL`);
    }
    const name = h.name.toLowerCase();
    if (BROKER_HEADERS.has(name)) {
      invalid(`headers[${i}]: ${name} is set by the broker, never by the caller`);
    }
    if (!DROPPED_HEADERS.has(name)) out.push([h.name, h.value]);
  });
  return dropHopByHop(out);
}

function invalid(message: string): never {
  throw new DomainError("invalid_argument", message);
}
