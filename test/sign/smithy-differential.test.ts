/**
 * credbroker's SigV4 (src/providers/aws/sigv4.ts) against @smithy/signature-v4's own
 * SignatureV4 on the same requests: several hundred generated requests (a
 * fixed seed, so failures reproduce) with awkward paths, queries and headers,
 * S3 and generic path rules, session tokens, header and presigned modes. The
 * signatures must be identical.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Hash } from "@smithy/hash-node";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import { encodeOnce, parseRawUrl, queryParams } from "../../src/core/raw-url.js";
import { RequestHeaders } from "../../src/core/request-headers.js";
import { type Payload, payloadHash, type SignPlan } from "../../src/providers/aws/sign-plan.js";
import { deriveSigningKey, SigningKeyCache } from "../../src/providers/aws/signing-keys.js";
import { needsSecret, sigv4 } from "../../src/providers/aws/sigv4.js";

/** mulberry32: a small seeded generator, so every run signs the same requests. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEGMENTS = [
  "a",
  "data",
  "my key",
  "café",
  "a+b",
  "x%20y",
  "..",
  ".",
  "",
  "~tilde",
  "(p)",
  "100%25",
  "ሴ",
  "a=b",
];
const PARAMS = [
  "list-type=2",
  "prefix=data/",
  "a=1",
  "a=2",
  "b",
  "x=%2F",
  "sp=a%20b",
  "plus=a+b",
  "Ü=ü",
  "empty=",
];
const HEADERS: [string, string][] = [
  ["content-type", "text/plain"],
  ["x-amz-meta-owner", "  alice  "],
  ["X-Custom", "v1"],
  ["x-custom", "v2"],
  ["content-md5", "1B2M2Y8AsgTpgAmY7PhCfg=="],
  ["user-agent", "never-signed/1.0"],
  ["range", "bytes=0-9"],
];

interface Generated {
  plan: SignPlan;
  sessionToken: string | undefined;
}

function generate(r: () => number, i: number): Generated {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const s3 = r() < 0.5;
  const path = `/${Array.from({ length: 1 + Math.floor(r() * 4) }, () => pick(SEGMENTS)).join("/")}${r() < 0.3 ? "/" : ""}`;
  const query = Array.from({ length: Math.floor(r() * 4) }, () => pick(PARAMS)).join("&");
  const headers = HEADERS.filter(() => r() < 0.4);
  const presign = r() < 0.4;
  const payloads: Payload[] = [
    { kind: "none" },
    { kind: "unsigned" },
    { kind: "body", body: Buffer.from(`body ${i}`) },
    { kind: "hash", value: "a".repeat(64) },
  ];
  const payload = pick(payloads);
  const url = parseRawUrl(
    `https://${s3 ? "bucket.s3.eu-west-1.amazonaws.com" : "svc.eu-west-1.amazonaws.com"}${path}${query ? `?${query}` : ""}`,
  );
  return {
    plan: {
      method: pick(["GET", "PUT", "POST", "DELETE", "HEAD"]),
      url,
      headers: new RequestHeaders(headers),
      payload,
      region: "eu-west-1",
      service: s3 ? "s3" : "svc",
      s3PathRules: s3,
      payloadHeader: s3 || payload.kind !== "none",
      presignExpiresSeconds: presign ? 1 + Math.floor(r() * 604800) : undefined,
      now: new Date(
        Date.UTC(2026, 10, 24, Math.floor(r() * 24), Math.floor(r() * 60), Math.floor(r() * 60)),
      ),
      notAfter: undefined,
    },
    sessionToken: r() < 0.3 ? `token/${i}+session==` : undefined,
  };
}

/** The same request through smithy's SignatureV4: the signature it computes. */
async function smithySignature({ plan, sessionToken }: Generated, secret: string): Promise<string> {
  const signer = new SignatureV4({
    credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: secret, sessionToken },
    region: plan.region,
    service: plan.service,
    sha256: Hash.bind(null, "sha256"),
    uriEscapePath: !plan.s3PathRules,
    applyChecksum: false,
  });
  const headers: Record<string, string> = { host: plan.url.authority };
  for (const [n, v] of plan.headers.list) {
    const l = n.toLowerCase();
    headers[l] = l in headers ? `${headers[l]},${v.trim()}` : v.trim();
  }
  const hash = payloadHash(plan.payload, plan.service === "s3");
  const query: Record<string, string | string[]> = {};
  for (const [k, v] of queryParams(plan.url.query)) {
    const prev = query[k];
    query[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  const presign = plan.presignExpiresSeconds !== undefined;
  if (presign || plan.payloadHeader) headers["x-amz-content-sha256"] = hash;
  const request = new HttpRequest({
    method: plan.method,
    protocol: "https:",
    hostname: plan.url.host,
    path: plan.s3PathRules ? encodeOnce(plan.url.path) : plan.url.path,
    query,
    headers,
    ...(plan.payload.kind === "body" ? { body: plan.payload.body } : {}),
  });
  const unsignable = new Set(["user-agent"]);
  if (presign) {
    const only = new Set(["x-amz-content-sha256"]);
    const signed = await signer.presign(request, {
      signingDate: plan.now,
      expiresIn: plan.presignExpiresSeconds,
      unsignableHeaders: new Set([...unsignable, ...only]),
      unhoistableHeaders: only,
    });
    return String(signed.query?.["X-Amz-Signature"]);
  }
  const signed = await signer.sign(request, {
    signingDate: plan.now,
    unsignableHeaders: unsignable,
  });
  return String(signed.headers.authorization).replace(/.*Signature=/, "");
}

describe("SigV4: credbroker and @smithy/signature-v4 agree", () => {
  const r = rng(20261124);
  const keys = new SigningKeyCache();
  const secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  for (let i = 0; i < 400; i++) {
    const g = generate(r, i);
    const label = `${g.plan.method} ${g.plan.service} ${g.plan.url.path}${g.plan.url.query ? `?${g.plan.url.query}` : ""} ${g.plan.presignExpiresSeconds ? "presign" : "headers"} ${g.plan.payload.kind}${g.sessionToken ? " +token" : ""}`;
    test(`#${i} ${label}`, async () => {
      const ours = sigv4(
        g.plan,
        {
          id: "diff",
          // A session token belongs to one version of a credential, as its secret does.
          etag: g.sessionToken ?? "no-token",
          accessKeyId: "AKIDEXAMPLE",
          secretAccessKey: secret,
          sessionToken: g.sessionToken,
        },
        keys,
      );
      const signature = g.plan.presignExpiresSeconds
        ? new URL(ours.url).searchParams.get("X-Amz-Signature")
        : (ours.headers.find(([n]) => n === "authorization")?.[1] ?? "").replace(
            /.*Signature=/,
            "",
          );
      assert.equal(signature, await smithySignature(g, secret));
    });
  }
});

describe("SigningKeyCache", () => {
  const scope = ["20261124", "eu-west-1", "s3"] as const;

  test("derives once per (credential, etag, date, region, service); drop forgets a credential", () => {
    const keys = new SigningKeyCache(3);
    const a = { id: "a", etag: "1" };
    assert.equal(keys.find(a, ...scope), undefined);
    const k1 = keys.derive(a, { secretAccessKey: "secret" }, ...scope);
    assert.deepEqual(k1.key, deriveSigningKey("secret", ...scope));
    assert.equal(keys.find(a, ...scope), k1, "a hit returns the same key, no secret asked");
    assert.equal(
      keys.find(a, "20261125", "eu-west-1", "s3"),
      undefined,
      "another day, another key",
    );
    // A rotated secret comes with a new etag: a new key, never the stale one.
    assert.equal(keys.find({ id: "a", etag: "2" }, ...scope), undefined);
    const rotated = keys.derive({ id: "a", etag: "2" }, { secretAccessKey: "other" }, ...scope);
    assert.notDeepEqual(rotated.key, k1.key);
    keys.derive({ id: "b", etag: "1" }, { secretAccessKey: "secret" }, ...scope);
    assert.equal(keys.size, 3);
    keys.derive({ id: "c", etag: "1" }, { secretAccessKey: "secret" }, ...scope);
    assert.equal(keys.size, 3, "bounded: the oldest entry goes");
    assert.equal(keys.find(a, ...scope), undefined, "the oldest was a/1");
    keys.drop("a");
    assert.equal(keys.size, 2);
    assert.equal(keys.find({ id: "a", etag: "2" }, ...scope), undefined);
  });

  test("keeps the session token with the key, and never the secret", () => {
    const keys = new SigningKeyCache();
    const secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const entry = keys.derive(
      { id: "t", etag: "1" },
      { secretAccessKey: secret, sessionToken: "tok" },
      ...scope,
    );
    assert.deepEqual(Object.keys(entry).sort(), ["key", "sessionToken"]);
    assert.equal(entry.sessionToken, "tok");
    assert.equal(
      keys.derive({ id: "u", etag: "1" }, { secretAccessKey: secret, sessionToken: "" }, ...scope)
        .sessionToken,
      undefined,
    );
  });
});

describe("sigv4 with the key cache", () => {
  const plan = generate(rng(7), 0).plan;
  const secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  const signature = (s: { url: string; headers: [string, string][] }) =>
    plan.presignExpiresSeconds
      ? new URL(s.url).searchParams.get("X-Amz-Signature")
      : (s.headers.find(([n]) => n === "authorization")?.[1] ?? "").replace(/.*Signature=/, "");

  test("a miss derives from the secret; a hit signs the same without it", async () => {
    const keys = new SigningKeyCache();
    const owner = { id: "k", etag: "1", accessKeyId: "AKIDEXAMPLE" };
    assert.equal(needsSecret(plan, owner, keys), true);
    assert.throws(() => sigv4(plan, owner, keys), /no secret/);
    const first = sigv4(plan, { ...owner, secretAccessKey: secret, sessionToken: "tok" }, keys);
    assert.equal(needsSecret(plan, owner, keys), false);
    const again = sigv4(plan, owner, keys);
    assert.deepEqual(again, first, "same signature, session token from the cache");
    assert.equal(signature(first), await smithySignature({ plan, sessionToken: "tok" }, secret));
  });

  test("an evicted key is derived again and signs the same", () => {
    const keys = new SigningKeyCache(1);
    const owner = { id: "k", etag: "1", accessKeyId: "AKIDEXAMPLE", secretAccessKey: secret };
    const first = sigv4(plan, owner, keys);
    sigv4(plan, { ...owner, id: "other" }, keys);
    assert.equal(needsSecret(plan, owner, keys), true, "evicted");
    assert.deepEqual(sigv4(plan, owner, keys), first);
  });
});
