import { createHash } from "node:crypto";
import { Hash } from "@smithy/hash-node";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import { encodeOnce, queryParams, uriEncode } from "../core/raw-url.js";
import type { Payload, SignPlan } from "../core/sign-plan.js";

export const UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD";
export const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const CONTENT_SHA256 = "x-amz-content-sha256";
/** How long AWS accepts a header-signed request after its x-amz-date (clock skew window). */
export const HEADER_SIGNATURE_LIFETIME_SECONDS = 15 * 60;

/** Never signed: hop-by-hop headers, and headers proxies and clients rewrite. */
const UNSIGNABLE = new Set([
  "connection",
  "keep-alive",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "user-agent",
  "expect",
]);

export interface SigningKeyMaterial {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string | undefined;
}

export interface Signed {
  url: string;
  headers: [string, string][];
  /** When the signature stops working: its own lifetime, capped by the credential's expiry. */
  expiresAt: Date;
}

/** The payload hash the canonical request ends with. */
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
 * SigV4 over @smithy/signature-v4. The path is signed as it will be sent:
 * with S3 rules it is handed to the signer already in canonical form (and
 * not escaped again), otherwise the signer normalizes and encodes it again,
 * as AWS's other services expect. Returns the headers to send, or the
 * presigned URL.
 */
export async function sigv4(input: SignPlan, key: SigningKeyMaterial): Promise<Signed> {
  const signer = new SignatureV4({
    credentials: key,
    region: input.region,
    service: input.service,
    sha256: Hash.bind(null, "sha256"),
    uriEscapePath: !input.s3PathRules,
    applyChecksum: false,
  });
  const presign = input.presignExpiresSeconds !== undefined;
  const hash = payloadHash(input.payload, input.service === "s3");
  const headers: Record<string, string> = { host: input.url.authority };
  for (const [name, value] of input.headers) {
    const lower = name.toLowerCase();
    if (lower === "authorization") continue;
    // Repeated headers are one header whose values are joined in order.
    headers[lower] =
      lower in headers && lower !== "host" ? `${headers[lower]},${value.trim()}` : value.trim();
  }
  const callerHash = CONTENT_SHA256 in headers;
  if (presign || input.payloadHeader) headers[CONTENT_SHA256] ??= hash;

  const query: Record<string, string | string[]> = {};
  for (const [k, v] of queryParams(input.url.query)) {
    const prev = query[k];
    query[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  const request = new HttpRequest({
    method: input.method,
    protocol: `${input.url.scheme}:`,
    hostname: input.url.host,
    ...(input.url.port !== undefined ? { port: input.url.port } : {}),
    path: input.s3PathRules ? encodeOnce(input.url.path) : input.url.path,
    query,
    headers,
    ...(input.payload.kind === "body" ? { body: input.payload.body } : {}),
  });

  if (presign) {
    const expiresIn = input.presignExpiresSeconds ?? 0;
    const noPayloadHeader = new Set([CONTENT_SHA256]);
    const signed = await signer.presign(request, {
      signingDate: input.now,
      expiresIn,
      // The hash goes into the canonical request, but a presigned URL must
      // work without the caller sending any x-amz-content-sha256 header.
      unsignableHeaders: new Set([...UNSIGNABLE, ...(callerHash ? [] : noPayloadHeader)]),
      unhoistableHeaders: noPayloadHeader,
    });
    const added = Object.entries(signed.query ?? {}).filter(([k]) => !(k in query));
    const extra = added
      .flatMap(([k, v]) =>
        (Array.isArray(v) ? v : [v ?? ""]).map((x) => `${uriEncode(k)}=${uriEncode(x)}`),
      )
      .join("&");
    const base = `${input.url.scheme}://${input.url.authority}${input.url.path}`;
    const url = `${base}?${input.url.query === "" ? "" : `${input.url.query}&`}${extra}`;
    const hoisted = new Set(added.map(([k]) => k.toLowerCase()));
    return {
      url,
      headers: input.headers
        .filter(([n]) => !hoisted.has(n.toLowerCase()) && n.toLowerCase() !== "authorization")
        .map(([n, v]) => [n, v] as [string, string]),
      expiresAt: capped(input, expiresIn),
    };
  }

  const signed = await signer.sign(request, {
    signingDate: input.now,
    unsignableHeaders: UNSIGNABLE,
  });
  const out: [string, string][] = input.headers
    .filter(([n]) => n.toLowerCase() !== "authorization")
    .map(([n, v]) => [n, v]);
  const given = new Set(out.map(([n]) => n.toLowerCase()));
  for (const name of ["x-amz-date", "x-amz-security-token", CONTENT_SHA256, "authorization"]) {
    const value = signed.headers[name];
    if (value !== undefined && !given.has(name)) out.push([name, value]);
  }
  return {
    url: `${input.url.scheme}://${input.url.authority}${input.url.path}${input.url.query ? `?${input.url.query}` : ""}`,
    headers: out,
    expiresAt: capped(input, HEADER_SIGNATURE_LIFETIME_SECONDS),
  };
}

function capped(plan: SignPlan, seconds: number): Date {
  const end = plan.now.getTime() + seconds * 1000;
  return new Date(plan.notAfter === undefined ? end : Math.min(end, plan.notAfter.getTime()));
}
