/**
 * A second GOOG4 implementation for tests: the canonical request built by
 * the AWS SDK's signer (@smithy/signature-v4: its canonical headers, query
 * and request; GOOG4 differs from SigV4 only in names), the string to sign
 * with the GOOG4 algorithm name, and the HMAC key chain of smithy's
 * getSigningKey with "GOOG4"/"goog4_request" in place of "AWS4"/"aws4_request".
 * Nothing here is the broker's code.
 */
import { createHmac, type KeyObject, verify } from "node:crypto";
import { Hash } from "@smithy/hash-node";
import { getCanonicalHeaders, getSigningKey, SignatureV4 } from "@smithy/signature-v4";

export interface SentRequest {
  method: string;
  /** As SignRequest returned it. */
  url: string;
  /** As SignRequest returned them (authorization included in header mode). */
  headers: readonly [string, string][];
}

interface Parsed {
  algorithm: string;
  keyId: string;
  longDate: string;
  scope: string;
  region: string;
  signature: string;
  canonicalRequest: string;
}

/** smithy's Sha256 with the GOOG4 names: its key chain then starts at "GOOG4" + secret. */
class Goog4Sha256 {
  private readonly inner: Hash;
  constructor(secret?: string | Uint8Array) {
    const key =
      typeof secret === "string" && secret.startsWith("AWS4") ? `GOOG4${secret.slice(4)}` : secret;
    this.inner = new Hash("sha256", key);
  }
  update(data: Uint8Array): void {
    const text = Buffer.from(data).toString("utf8");
    this.inner.update(text === "aws4_request" ? Buffer.from("goog4_request") : data);
  }
  digest(): Promise<Uint8Array> {
    return this.inner.digest();
  }
}

const smithy = new SignatureV4({
  credentials: { accessKeyId: "unused", secretAccessKey: "unused" },
  region: "auto",
  service: "storage",
  sha256: Goog4Sha256 as never,
  uriEscapePath: false,
});

function parse(req: SentRequest): Parsed {
  const m = /^(https?):\/\/([^/?]+)([^?]*)(?:\?(.*))?$/.exec(req.url);
  if (m === null) throw new Error("not a URL");
  const [, protocol = "", authority = "", path = "/", rawQuery = ""] = m;
  const query: Record<string, string | string[]> = {};
  let signature = "";
  for (const part of rawQuery.split("&").filter(Boolean)) {
    const eq = part.indexOf("=");
    const k = decodeURIComponent(eq < 0 ? part : part.slice(0, eq));
    const v = eq < 0 ? "" : decodeURIComponent(part.slice(eq + 1));
    if (k === "X-Goog-Signature") {
      signature = v;
      continue;
    }
    const prev = query[k];
    query[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  const hostname = authority.replace(/:\d+$/, "");
  const headers: Record<string, string> = { host: hostname };
  let authorization: string | undefined;
  for (const [n, v] of req.headers) {
    if (n.toLowerCase() === "authorization") authorization = v;
    else
      headers[n.toLowerCase()] =
        headers[n.toLowerCase()] === undefined ? v : `${headers[n.toLowerCase()]},${v}`;
  }
  const request = { method: req.method, protocol: `${protocol}:`, hostname, path, query, headers };
  const canonicalHeaders = getCanonicalHeaders(request as never) as Record<string, string>;
  let algorithm: string;
  let credential: string;
  let longDate: string;
  let payloadHash: string;
  if (signature !== "") {
    algorithm = String(query["X-Goog-Algorithm"]);
    credential = String(query["X-Goog-Credential"]);
    longDate = String(query["X-Goog-Date"]);
    payloadHash = headers["x-goog-content-sha256"] ?? "UNSIGNED-PAYLOAD";
  } else {
    const a = /^(\S+) Credential=([^,]+), SignedHeaders=[^,]+, Signature=([0-9a-f]+)$/.exec(
      authorization ?? "",
    );
    if (a === null) throw new Error("no GOOG4 authorization header");
    algorithm = a[1] ?? "";
    credential = a[2] ?? "";
    signature = a[3] ?? "";
    longDate = headers["x-goog-date"] ?? "";
    payloadHash = headers["x-goog-content-sha256"] ?? "";
  }
  const slash = credential.indexOf("/");
  const scope = credential.slice(slash + 1);
  return {
    algorithm,
    keyId: credential.slice(0, slash),
    longDate,
    scope,
    region: scope.split("/")[1] ?? "",
    signature,
    canonicalRequest: (
      smithy as unknown as {
        createCanonicalRequest(r: never, h: Record<string, string>, p: string): string;
      }
    ).createCanonicalRequest(request as never, canonicalHeaders, payloadHash),
  };
}

/** The string to sign, rebuilt from the request as sent. */
export async function stringToSignOf(req: SentRequest): Promise<string> {
  const p = parse(req);
  return (
    smithy as unknown as {
      createStringToSign(d: string, s: string, c: string, a: string): Promise<string>;
    }
  ).createStringToSign(p.longDate, p.scope, p.canonicalRequest, p.algorithm);
}

/** Whether the request's GOOG4-HMAC-SHA256 signature is the one `secret` makes. */
export async function hmacVerifies(
  req: SentRequest,
  accessId: string,
  secret: string,
): Promise<boolean> {
  const p = parse(req);
  if (p.algorithm !== "GOOG4-HMAC-SHA256" || p.keyId !== accessId) return false;
  const key = await getSigningKey(
    Goog4Sha256 as never,
    { accessKeyId: accessId, secretAccessKey: secret },
    p.longDate.slice(0, 8),
    p.region,
    "storage",
  );
  const expected = createHmac("sha256", key)
    .update(await stringToSignOf(req))
    .digest("hex");
  return expected === p.signature;
}

/** Whether the request's GOOG4-RSA-SHA256 signature verifies with `publicKey`. */
export async function rsaVerifies(req: SentRequest, publicKey: KeyObject): Promise<boolean> {
  const p = parse(req);
  if (p.algorithm !== "GOOG4-RSA-SHA256") return false;
  return verify(
    "RSA-SHA256",
    Buffer.from(await stringToSignOf(req)),
    publicKey,
    Buffer.from(p.signature, "hex"),
  );
}
