import { createHmac, hash } from "node:crypto";
import { getCanonicalHeaders, getCanonicalQuery } from "@smithy/signature-v4";
import { encodeOnce, queryParams, uriEncode } from "../../core/raw-url.js";
import { UNSIGNABLE } from "../../core/request-headers.js";
import { payloadHash, type SignPlan } from "./sign-plan.js";
import type { KeyOwner, SigningKey, SigningKeyCache } from "./signing-keys.js";

const ALGORITHM = "AWS4-HMAC-SHA256";
const CONTENT_SHA256 = "x-amz-content-sha256";
/** How long AWS accepts a header-signed request after its x-amz-date (clock skew window). */
export const HEADER_SIGNATURE_LIFETIME_SECONDS = 15 * 60;

/**
 * The credential being signed with: what names its cached keys, its access key
 * id, and its secret only when the cache has no key yet (see `needsSecret`).
 */
export interface SigningCredential extends KeyOwner {
  accessKeyId: string;
  /** Needed only to derive a key the cache does not hold; then kept nowhere. */
  secretAccessKey?: string | undefined;
  /** Goes into the cache with a derived key; a cached key brings its own. */
  sessionToken?: string | undefined;
}

export interface Signed {
  url: string;
  headers: [string, string][];
  /** When the signature stops working: its own lifetime, capped by the credential's expiry. */
  expiresAt: Date;
}

/**
 * The canonical path. S3 rules: each segment decoded and encoded once, dot
 * segments kept. Otherwise AWS's generic rules: empty and dot segments
 * resolved, then the path (as sent) encoded again.
 */
export function canonicalPath(path: string, s3Rules: boolean): string {
  if (s3Rules) return encodeOnce(path);
  const segments: string[] = [];
  for (const segment of path.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") segments.pop();
    else segments.push(segment);
  }
  const trailing = segments.length > 0 && path.endsWith("/") ? "/" : "";
  return `/${segments.map(uriEncode).join("/")}${trailing}`;
}

/** "20150830T123600Z" and "20150830". */
export function amzDate(now: Date): { long: string; short: string } {
  const d = now;
  const p2 = (n: number) => (n < 10 ? `0${n}` : String(n));
  const short = `${d.getUTCFullYear()}${p2(d.getUTCMonth() + 1)}${p2(d.getUTCDate())}`;
  return {
    long: `${short}T${p2(d.getUTCHours())}${p2(d.getUTCMinutes())}${p2(d.getUTCSeconds())}Z`,
    short,
  };
}

/** One-shot: no Hash object per signature (crypto.hash, Node ≥ 20.12). */
function sha256Hex(text: string): string {
  return hash("sha256", text, "hex");
}

/**
 * Whether signing `plan` needs the credential's secret: the cache holds no key
 * for this version of it, this date, region and service yet.
 */
export function needsSecret(plan: SignPlan, owner: KeyOwner, keys: SigningKeyCache): boolean {
  return keys.find(owner, amzDate(plan.now).short, plan.region, plan.service) === undefined;
}

/** A request's canonical form, and what signing it adds to the URL or the headers. */
export interface CanonicalForm {
  canonicalRequest: string;
  signedHeaders: string;
  /** The caller's headers as given (no authorization), minus those hoisted into the query. */
  callerHeaders: [string, string][];
  /** Presigned: the query parameters added (hoisted x-amz-* headers, then the signer's own). */
  added: [string, string][];
  /** Header mode: the header values the signer set (x-amz-date, …), by lower-case name. */
  headers: Record<string, string>;
  payloadHash: string;
}

/**
 * The canonical request of `plan` for `accessKeyId` and `scope`. Its headers
 * and query come from @smithy/signature-v4's own functions; the caller's
 * headers from the plan's RequestHeaders, the same view policy decided on.
 */
export function canonicalForm(
  plan: SignPlan,
  accessKeyId: string,
  scope: string,
  sessionToken: string | undefined,
): CanonicalForm {
  const presign = plan.presignExpiresSeconds !== undefined;
  const date = amzDate(plan.now);
  const hash = payloadHash(plan.payload, plan.service === "s3");

  // Maps without a prototype: a header or parameter may be named "constructor" or "__proto__".
  const headers = plan.headers.toRecord();
  headers.host = plan.url.authority;
  const callerHeaders: [string, string][] = [];
  for (const [name, value] of plan.headers.list) {
    if (name.toLowerCase() !== "authorization") callerHeaders.push([name, value]);
  }
  const query: Record<string, string | string[]> = Object.create(null);
  const add = (k: string, v: string) => {
    const prev = query[k];
    query[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  };
  for (const [k, v] of queryParams(plan.url.query)) add(k, v);

  const added: [string, string][] = [];
  if (presign) {
    // x-amz-* headers travel in the query string, so a plain GET of the URL works.
    for (const name of Object.keys(headers)) {
      if (name.startsWith("x-amz-") && name !== CONTENT_SHA256) {
        added.push([name, headers[name] as string]);
        delete headers[name];
      }
    }
    if (sessionToken) added.push(["X-Amz-Security-Token", sessionToken]);
    added.push(
      ["X-Amz-Algorithm", ALGORITHM],
      ["X-Amz-Credential", `${accessKeyId}/${scope}`],
      ["X-Amz-Date", date.long],
      ["X-Amz-Expires", String(plan.presignExpiresSeconds)],
    );
  } else {
    headers["x-amz-date"] = date.long;
    if (sessionToken) headers["x-amz-security-token"] = sessionToken;
    if (plan.payloadHeader) headers[CONTENT_SHA256] ??= hash;
  }

  const canonical = getCanonicalHeaders({ headers } as never, UNSIGNABLE) as Record<string, string>;
  const names = Object.keys(canonical).sort();
  const signedHeaders = names.join(";");
  if (presign) {
    added.push(["X-Amz-SignedHeaders", signedHeaders]);
    for (const [k, v] of added) add(k, v);
  }

  let canonicalRequest = `${plan.method}\n${canonicalPath(plan.url.path, plan.s3PathRules)}\n${getCanonicalQuery({ query } as never)}\n`;
  for (const n of names) canonicalRequest += `${n}:${canonical[n]}\n`;
  canonicalRequest += `\n${signedHeaders}\n${hash}`;
  return { canonicalRequest, signedHeaders, callerHeaders, added, headers, payloadHash: hash };
}

/**
 * SigV4, header or presigned: the canonical form above, signed with the key
 * (and a session token) from the daemon's cache, derived from `credential`'s
 * secret on a miss.
 */
export function sigv4(
  plan: SignPlan,
  credential: SigningCredential,
  keys: SigningKeyCache,
): Signed {
  const presign = plan.presignExpiresSeconds !== undefined;
  const date = amzDate(plan.now);
  const signingKey =
    keys.find(credential, date.short, plan.region, plan.service) ??
    derive(credential, keys, date.short, plan);
  const scope = `${date.short}/${plan.region}/${plan.service}/aws4_request`;
  const form = canonicalForm(plan, credential.accessKeyId, scope, signingKey.sessionToken);
  const { signedHeaders, callerHeaders, added, headers } = form;
  const stringToSign = `${ALGORITHM}\n${date.long}\n${scope}\n${sha256Hex(form.canonicalRequest)}`;
  const signature = createHmac("sha256", signingKey.key).update(stringToSign).digest("hex");

  const base = `${plan.url.scheme}://${plan.url.authority}${plan.url.path}`;
  if (presign) {
    let extra = "";
    for (const [k, v] of added) extra += `${uriEncode(k)}=${uriEncode(v)}&`;
    const hoisted = new Set(added.map(([k]) => k.toLowerCase()));
    return {
      url: `${base}?${plan.url.query === "" ? "" : `${plan.url.query}&`}${extra}X-Amz-Signature=${signature}`,
      headers: callerHeaders.filter(([n]) => !hoisted.has(n.toLowerCase())),
      expiresAt: capped(plan, plan.presignExpiresSeconds ?? 0),
    };
  }
  const out = callerHeaders;
  for (const name of ["x-amz-date", "x-amz-security-token", CONTENT_SHA256]) {
    const value = headers[name];
    if (value !== undefined && !out.some(([n]) => n.toLowerCase() === name))
      out.push([name, value]);
  }
  out.push([
    "authorization",
    `${ALGORITHM} Credential=${credential.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
  ]);
  return {
    url: `${base}${plan.url.query ? `?${plan.url.query}` : ""}`,
    headers: out,
    expiresAt: capped(plan, HEADER_SIGNATURE_LIFETIME_SECONDS),
  };
}

function derive(
  credential: SigningCredential,
  keys: SigningKeyCache,
  shortDate: string,
  plan: SignPlan,
): SigningKey {
  const { secretAccessKey, sessionToken } = credential;
  if (secretAccessKey === undefined) {
    throw new Error("no cached signing key and no secret to derive one (see needsSecret)");
  }
  return keys.derive(
    credential,
    { secretAccessKey, sessionToken },
    shortDate,
    plan.region,
    plan.service,
  );
}

function capped(plan: SignPlan, seconds: number): Date {
  const end = plan.now.getTime() + seconds * 1000;
  return new Date(plan.notAfter === undefined ? end : Math.min(end, plan.notAfter.getTime()));
}
