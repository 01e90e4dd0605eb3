import { createHash } from "node:crypto";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Credential } from "../../../gen/credbroker/v1/credential_pb.js";
import type { SignRequestRequest } from "../../../gen/credbroker/v1/signing_service_pb.js";
import { DomainError } from "../../core/errors.js";
import { parseRawUrl, percentDecode, queryParams, type RawUrl } from "../../core/raw-url.js";
import { RequestHeaders } from "../../core/request-headers.js";
import { checkSignTarget } from "../../core/sign-target.js";
import { type EndpointInfo, inferEndpoint } from "./endpoint.js";
import { authorize } from "./policy.js";
import { mapS3Request, type S3Mapping, type S3RequestParts } from "./s3-request.js";

export const MAX_PRESIGN_SECONDS = 604800;
export const MAX_SIGN_HEADERS = 200;

export type Payload =
  | { kind: "body"; body: Uint8Array }
  | { kind: "hash"; value: string }
  | { kind: "unsigned" }
  | { kind: "none" };

/** A SignRequest checked for form: what can be known before the credential is read. */
export interface ValidSignRequest {
  namespace: string;
  /** "" = the provider default. */
  credential: string;
  method: string;
  url: RawUrl;
  /** The one header view policy and the signer share. */
  headers: RequestHeaders;
  payload: Payload;
  region: string;
  service: string;
  presignExpiresSeconds: number | undefined;
  normalizePath: boolean | undefined;
  /** What the host says when it is an AWS endpoint: service, region, virtual-hosted bucket. */
  endpoint: EndpointInfo | undefined;
  /** S3 requests (named or inferred): what policy decides on, mapped once for the audit line and policy. */
  s3: { parts: S3RequestParts; mapping: S3Mapping } | undefined;
}

/** Everything the signer needs, decided; policy has allowed it. */
export interface SignPlan {
  method: string;
  url: RawUrl;
  headers: RequestHeaders;
  payload: Payload;
  region: string;
  service: string;
  /** S3 path rules: segments decoded and encoded once, dot segments kept. */
  s3PathRules: boolean;
  /** Sign x-amz-content-sha256 as a header: S3, or the caller gave a payload. */
  payloadHeader: boolean;
  presignExpiresSeconds: number | undefined;
  now: Date;
  /** The credential's expiry, if any: no signature outlives it. */
  notAfter: Date | undefined;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/;
const PAYLOAD_HASH = /^([0-9a-f]{64}|UNSIGNED-PAYLOAD|STREAMING-[A-Z0-9-]{1,64})$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is rejected
const BAD_HEADER_VALUE = /[\u0000\r\n]|\p{Cs}/u;
/** Region and service name the credential scope: plain words, no separators of the scope's own. */
const SCOPE_PART = /^[A-Za-z0-9._-]{1,64}$/;
/**
 * Set by the signer from its own clock and credential: a caller-chosen date
 * would mint future signatures. As headers, and (any letter case) as query
 * parameters, where a second X-Amz-Expires or X-Amz-Date beside the signer's
 * is read by servers that take the first value.
 */
const SIGNER_NAMES = new Set([
  "x-amz-date",
  "x-amz-security-token",
  "x-amz-expires",
  "x-amz-credential",
  "x-amz-signature",
  "x-amz-signedheaders",
  "x-amz-algorithm",
  "x-amz-region-set",
]);
/**
 * Headers that change what a request does: SigV4 signs a repeated one as one
 * value joined with ",", which servers then read as they like (the first, the
 * last, or the joined string), so each is given once.
 */
const SINGLE_HEADER = /^(x-amz-|content-|if-)|^(range|expires)$/;

/** Checks a SignRequest's form; throws invalid_argument naming the field. */
export function validateSignRequest(req: SignRequestRequest): ValidSignRequest {
  checkSignTarget(req);
  if (!TOKEN.test(req.method)) invalid("method: an HTTP method such as GET or PUT");
  const url = parseRawUrl(req.url);
  const presign = req.presignExpiresSeconds;
  if (req.headers.length > MAX_SIGN_HEADERS) invalid(`headers: at most ${MAX_SIGN_HEADERS}`);
  const list: [string, string][] = [];
  const firstAt = new Map<string, number>();
  req.headers.forEach((h, i) => {
    const name = h.name.toLowerCase();
    if (!TOKEN.test(h.name)) invalid(`headers[${i}].name: not a valid header name`);
    if (BAD_HEADER_VALUE.test(h.value))
      invalid(`headers[${i}].value (${name}): no CR, LF, NUL or lone surrogate`);
    if (SIGNER_NAMES.has(name))
      invalid(`headers[${i}]: ${name} is set by the signer, not the caller`);
    if (name === "host" && h.value.toLowerCase() !== url.authority.toLowerCase()) {
      invalid(`headers[${i}]: a host header must equal the URL's host[:port]`);
    }
    const first = firstAt.get(name);
    if (first !== undefined && SINGLE_HEADER.test(name)) {
      invalid(
        `headers[${i}]: repeats headers[${first}] (any letter case); x-amz-*, content-*, if-*, range and expires are given once`,
      );
    }
    if (first === undefined) firstAt.set(name, i);
    list.push([h.name, h.value]);
  });
  const headers = new RequestHeaders(list);
  const query = queryParams(url.query);
  query.forEach(([k], i) => {
    if (SIGNER_NAMES.has(k.toLowerCase()))
      invalid(`url: query parameter ${i + 1} is an X-Amz-* name the signer sets`);
  });
  if (presign !== 0) {
    // A presigned URL carries x-amz-* headers as parameters: one of the caller's would repeat it.
    const names = new Set(query.map(([k]) => k.toLowerCase()));
    const clash = headers.names().find((n) => n.startsWith("x-amz-") && names.has(n));
    if (clash !== undefined) {
      invalid(
        `headers[${firstAt.get(clash)}]: a presigned URL carries it as a query parameter, which the URL already has`,
      );
    }
  }
  if (req.region !== "" && !SCOPE_PART.test(req.region))
    invalid("region: letters, digits, '.', '_', '-' (1-64), such as us-east-1");
  if (req.service !== "" && !SCOPE_PART.test(req.service))
    invalid("service: letters, digits, '.', '_', '-' (1-64), such as s3 or sts");
  if (presign !== 0 && (presign < 1 || presign > MAX_PRESIGN_SECONDS)) {
    invalid(`presign_expires_seconds: 1-${MAX_PRESIGN_SECONDS} (0 signs headers)`);
  }
  const endpoint = inferEndpoint(url.host);
  let s3: ValidSignRequest["s3"];
  if ((req.service || endpoint?.service) === "s3") {
    const parts: S3RequestParts = {
      method: req.method,
      hostBucket: endpoint?.service === "s3" ? endpoint.bucket : undefined,
      path: percentDecode(url.path),
      query,
      headers,
    };
    s3 = { parts, mapping: mapS3Request(parts) };
  }
  return {
    namespace: req.namespace,
    credential: req.credential,
    method: req.method,
    url,
    headers,
    payload: payloadOf(req, headers),
    region: req.region,
    service: req.service,
    presignExpiresSeconds: presign === 0 ? undefined : presign,
    normalizePath: req.normalizePath,
    endpoint,
    s3,
  };
}

function payloadOf(req: SignRequestRequest, headers: RequestHeaders): Payload {
  const fromHeader = headers.get("x-amz-content-sha256");
  let payload: Payload;
  switch (req.payload.case) {
    case "body":
      payload = { kind: "body", body: req.payload.value };
      break;
    case "payloadSha256":
      if (!PAYLOAD_HASH.test(req.payload.value)) {
        invalid("payload_sha256: 64 lower-case hex digits, UNSIGNED-PAYLOAD or STREAMING-…");
      }
      payload = { kind: "hash", value: req.payload.value };
      break;
    case "unsignedPayload":
      payload = req.payload.value ? { kind: "unsigned" } : { kind: "none" };
      break;
    default:
      payload = { kind: "none" };
  }
  if (fromHeader === undefined) return payload;
  if (!PAYLOAD_HASH.test(fromHeader)) {
    invalid(
      "x-amz-content-sha256 header: 64 lower-case hex digits, UNSIGNED-PAYLOAD or STREAMING-…",
    );
  }
  if (payload.kind === "none") return { kind: "hash", value: fromHeader };
  if (payloadHash(payload, false) !== fromHeader) {
    invalid("x-amz-content-sha256 header: differs from the payload field's hash; send one of them");
  }
  return payload;
}

export const UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD";
export const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/**
 * The payload hash the canonical request ends with. With no payload given,
 * S3 signs UNSIGNED-PAYLOAD (what Swift and presigned URLs want), other
 * services the hash of an empty body.
 */
export function payloadHash(payload: Payload, s3: boolean): string {
  switch (payload.kind) {
    case "body":
      return createHash("sha256").update(payload.body).digest("hex");
    case "hash":
      return payload.value;
    case "unsigned":
      return UNSIGNED_PAYLOAD;
    case "none":
      return s3 ? UNSIGNED_PAYLOAD : EMPTY_SHA256;
  }
}

/**
 * Decides service, region and path rules, then asks policy. Pure: the same
 * request, credential and instant always give the same plan or the same error.
 */
export function planSignature(req: ValidSignRequest, c: Credential, now: Date): SignPlan {
  const { endpoint } = req;
  const service = req.service || endpoint?.service;
  if (service === undefined) {
    invalid('service: required, since the URL\'s host is not an AWS endpoint (e.g. "s3")');
  }
  const region = req.region || endpoint?.region || c.region;
  if (region === "") {
    invalid("region: required, since neither the URL's host nor the credential says it");
  }
  const s3 = service === "s3";
  authorize(c, { host: req.url.host, service, s3: req.s3?.parts, s3Mapping: req.s3?.mapping }, now);
  const notAfter = c.expiresAt === undefined ? undefined : timestampDate(c.expiresAt);
  if (
    req.presignExpiresSeconds !== undefined &&
    notAfter !== undefined &&
    now.getTime() + req.presignExpiresSeconds * 1000 > notAfter.getTime()
  ) {
    invalid(
      `presign_expires_seconds: the URL would outlive the credential, which expires at ${notAfter.toISOString()}`,
    );
  }
  return {
    method: req.method,
    url: req.url,
    headers: req.headers,
    payload: req.payload,
    region,
    service,
    s3PathRules: req.normalizePath === undefined ? s3 : !req.normalizePath,
    payloadHeader: s3 || req.payload.kind !== "none",
    presignExpiresSeconds: req.presignExpiresSeconds,
    now,
    notAfter,
  };
}

function invalid(message: string): never {
  throw new DomainError("invalid_argument", message);
}

/**
 * What a SignRequest targets, for the audit line: the host, and for S3 the
 * action it maps to (or "unmapped"). Pure; computed before policy so denials
 * are described too.
 */
export function describeTarget(req: ValidSignRequest): { host: string; action: string } {
  if (req.s3 === undefined) {
    const service = req.service || req.endpoint?.service;
    return { host: req.url.host, action: `${service ?? "unknown"}:${req.method}` };
  }
  const { mapping } = req.s3;
  return {
    host: req.url.host,
    action: mapping.ok ? `s3:${mapping.operation.action}` : "s3:unmapped",
  };
}
