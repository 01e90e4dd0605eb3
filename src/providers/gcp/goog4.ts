import { createHash, createHmac, createSign, type KeyObject } from "node:crypto";
import { encodeOnce, type RawUrl, uriEncode } from "../../core/raw-url.js";

export const UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD";

/** GOOG4 signatures: RSA with a service account's key, or HMAC with an HMAC key. */
export type Goog4Algorithm = "GOOG4-RSA-SHA256" | "GOOG4-HMAC-SHA256";

/** A request decided and allowed: everything the GOOG4 signer reads. */
export interface Goog4Plan {
  method: string;
  url: RawUrl;
  /** Lower-case name → canonical value (trimmed, runs of blanks made one space); no host. */
  headers: Record<string, string>;
  /** The caller's query parameters, decoded, in order. */
  query: readonly [string, string][];
  payloadHash: string;
  /** "auto" unless the request names a location. */
  region: string;
  presignExpiresSeconds: number | undefined;
  now: Date;
}

/** What GOOG4 signs with: the name in the credential scope and one signing function. */
export interface Goog4Signer {
  algorithm: Goog4Algorithm;
  /** client_email or the HMAC access id. */
  keyId: string;
  /** Hex signature of the string to sign; the scope's date is given for the HMAC key chain. */
  sign(stringToSign: string, shortDate: string, region: string): string;
}

export interface Goog4Result {
  canonicalRequest: string;
  stringToSign: string;
  url: string;
  /** Every header signed, by lower-case name, as signed (host included). */
  signed: Record<string, string>;
  /** Header mode: the authorization header's value. */
  authorization: string | undefined;
}

/** "20190201T090000Z" and "20190201". */
export function goog4Date(now: Date): { long: string; short: string } {
  const long = now
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d{3}/, "");
  return { long, short: long.slice(0, 8) };
}

/** RFC 3986-encoded pairs, sorted by name then value, joined. */
function canonicalQuery(pairs: readonly [string, string][]): string {
  return pairs
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
}

/**
 * The V4 canonical request, string to sign and the URL (presigned) or the
 * headers (header mode), as Google's conformance cases define them: the host
 * signed without its port, x-goog-* headers signed as headers (never moved
 * into the query), the path's segments decoded and encoded once, the query
 * returned in its canonical form (what the server decodes is what was signed).
 */
export function goog4(plan: Goog4Plan, signer: Goog4Signer): Goog4Result {
  const date = goog4Date(plan.now);
  const scope = `${date.short}/${plan.region}/storage/goog4_request`;
  const headers: Record<string, string> = Object.create(null);
  for (const name in plan.headers) headers[name] = plan.headers[name] as string;
  headers.host = plan.url.host;
  const presign = plan.presignExpiresSeconds !== undefined;
  if (!presign) {
    headers["x-goog-date"] ??= date.long;
    headers["x-goog-content-sha256"] ??= plan.payloadHash;
  }
  const names = Object.keys(headers).sort();
  const signedHeaders = names.join(";");
  const query: [string, string][] = [...plan.query];
  if (presign) {
    query.push(
      ["X-Goog-Algorithm", signer.algorithm],
      ["X-Goog-Credential", `${signer.keyId}/${scope}`],
      ["X-Goog-Date", date.long],
      ["X-Goog-Expires", String(plan.presignExpiresSeconds)],
      ["X-Goog-SignedHeaders", signedHeaders],
    );
  }
  const path = encodeOnce(plan.url.path);
  const queryText = canonicalQuery(query);
  let canonicalRequest = `${plan.method}\n${path}\n${queryText}\n`;
  for (const n of names) canonicalRequest += `${n}:${headers[n]}\n`;
  canonicalRequest += `\n${signedHeaders}\n${plan.payloadHash}`;
  const digest = createHash("sha256").update(canonicalRequest).digest("hex");
  const stringToSign = `${signer.algorithm}\n${date.long}\n${scope}\n${digest}`;
  const signature = signer.sign(stringToSign, date.short, plan.region);
  const base = `${plan.url.scheme}://${plan.url.authority}${path}`;
  if (presign) {
    return {
      canonicalRequest,
      stringToSign,
      url: `${base}?${queryText}&X-Goog-Signature=${signature}`,
      signed: headers,
      authorization: undefined,
    };
  }
  return {
    canonicalRequest,
    stringToSign,
    url: queryText === "" ? base : `${base}?${queryText}`,
    signed: headers,
    authorization: `${signer.algorithm} Credential=${signer.keyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
  };
}

/** GOOG4-RSA-SHA256: RSASSA-PKCS1-v1_5 with SHA-256 (node:crypto), hex. */
export function rsaSigner(clientEmail: string, key: KeyObject): Goog4Signer {
  return {
    algorithm: "GOOG4-RSA-SHA256",
    keyId: clientEmail,
    sign: (text) => createSign("RSA-SHA256").update(text).sign(key, "hex"),
  };
}

/** GOOG4-HMAC-SHA256: SigV4's key chain from "GOOG4" + secret, scope ending goog4_request. */
export function hmacSigner(accessId: string, secret: string): Goog4Signer {
  return {
    algorithm: "GOOG4-HMAC-SHA256",
    keyId: accessId,
    sign(text, shortDate, region) {
      const hmac = (key: string | Buffer, data: string) =>
        createHmac("sha256", key).update(data).digest();
      const kDate = hmac(`GOOG4${secret}`, shortDate);
      const kSigning = hmac(hmac(hmac(kDate, region), "storage"), "goog4_request");
      return createHmac("sha256", kSigning).update(text).digest("hex");
    },
  };
}
