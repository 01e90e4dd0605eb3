/**
 * credbroker's SigV4 (src/providers/aws/sigv4.ts, with the derived-key cache of
 * src/providers/aws/signing-keys.ts) against a fresh @smithy/signature-v4 SignatureV4
 * with the same credentials, date, region and service, on generated
 * requests: methods, raw paths (S3 and generic path rules), queries,
 * headers, payloads, session tokens, header and presigned modes. The
 * Authorization header must be identical, and a presigned URL must carry the
 * same parameters and signature. The oracle is built from what was generated
 * (the decoded path segments, the decoded query pairs), not from credbroker's
 * own parsing. The key cache must never change a signature, whatever it holds.
 * Header and parameter names include ones Object.prototype already has
 * (constructor, __proto__, toString): a signer must treat them as names.
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Hash } from "@smithy/hash-node";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import fc from "fast-check";
import type { Credential } from "../../gen/credbroker/v1/credential_pb.js";
import { SignRequestRequestSchema } from "../../gen/credbroker/v1/signing_service_pb.js";
import { DomainError } from "../../src/core/errors.js";
import {
  payloadHash,
  planSignature,
  validateSignRequest,
} from "../../src/providers/aws/sign-plan.js";
import { SigningKeyCache } from "../../src/providers/aws/signing-keys.js";
import { amzDate, needsSecret, sigv4 } from "../../src/providers/aws/sigv4.js";
import { accessKeyInput, edited } from "../core/fixtures.js";

/** smithy's escapeUri, written out: RFC 3986 unreserved stay, everything else %XX (upper case). */
const escapeUri = (s: string) =>
  encodeURIComponent(s).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );

/** One character of decoded text written into a URL: as is where legal, or as %XX of its UTF-8 (either hex case). */
function writeChar(ch: string, raw: boolean, lower: boolean, inQuery: boolean): string {
  const safe = inQuery ? /^[A-Za-z0-9\-._~!$'()*,;:@/+]$/ : /^[A-Za-z0-9\-._~!$&'()*+,;=:@ ]$/;
  if (raw && safe.test(ch)) return ch;
  let out = "";
  for (const byte of new TextEncoder().encode(ch)) {
    const hex = byte.toString(16).padStart(2, "0");
    out += `%${lower ? hex : hex.toUpperCase()}`;
  }
  return out;
}

/** Decoded text and one way of writing it into a path segment or a query part. */
const written = (text: fc.Arbitrary<string>, inQuery: boolean) =>
  text.chain((t) =>
    fc
      .array(fc.tuple(fc.boolean(), fc.boolean()), {
        minLength: [...t].length,
        maxLength: [...t].length,
      })
      .map((choices) => ({
        decoded: t,
        raw: [...t]
          .map((ch, i) => writeChar(ch, choices[i]?.[0] ?? true, choices[i]?.[1] ?? false, inQuery))
          .join(""),
      })),
  );

/** Decoded text: ASCII punctuation that URLs treat specially, letters, and any Unicode (no lone surrogates). */
const text = fc.string({
  unit: fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom("a", "b", "Z", "0", "-", "_", ".", "~") },
    {
      weight: 3,
      arbitrary: fc.constantFrom(
        " ",
        "+",
        "=",
        "&",
        "%",
        "!",
        "*",
        "'",
        "(",
        ")",
        ";",
        ",",
        "$",
        ":",
        "@",
        "?",
        "#",
        "[",
        "]",
      ),
    },
    { weight: 2, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 1 }) },
  ),
  maxLength: 6,
});
const segment = fc.oneof(
  {
    weight: 6,
    arbitrary: written(
      text.filter((t) => !t.includes("/")),
      false,
    ),
  },
  { weight: 1, arbitrary: fc.constantFrom(".", "..", "").map((s) => ({ decoded: s, raw: s })) },
);
const queryPart = written(text, true);
/**
 * A parameter: key, value, and "=" or "" (a bare key when the value is empty).
 * Keys repeat often; some are names Object.prototype already has.
 */
const param = fc.tuple(
  fc.oneof(
    queryPart,
    fc
      .constantFrom("a", "list-type", "prefix", "constructor", "__proto__", "toString")
      .map((s) => ({ decoded: s, raw: s })),
  ),
  queryPart,
  fc.constantFrom("=", ""),
);

const headerName = fc.oneof(
  fc.constantFrom(
    "content-type",
    "Content-Type",
    "x-amz-meta-owner",
    "X-Amz-Meta-Owner",
    "x-amz-acl",
    "range",
    "content-md5",
    "user-agent",
    "expect",
    "connection",
    "te",
    "x-amzn-trace-id",
    "proxy-thing",
    "sec-fetch-mode",
    "cache-control",
    "authorization",
    "x-custom",
    "constructor",
    "__proto__",
    "toString",
  ),
  // "date" excepted: smithy drops a caller's Date header (it sets x-amz-date itself), credbroker signs it.
  fc.stringMatching(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,12}$/).filter((n) => n.toLowerCase() !== "date"),
);
/** Header values: anything but CR, LF and NUL (refused), with runs of spaces and tabs. */
const headerValue = fc.string({
  unit: fc.oneof(
    fc.constantFrom(" ", "  ", "\t", "a", "b", ",", "=", "\u00e9", ";"),
    fc.string({ unit: "binary", minLength: 1, maxLength: 1 }).filter((c) => !/[\r\n\0]/.test(c)),
  ),
  maxLength: 8,
});

const HOSTS = [
  "bucket.s3.eu-west-1.amazonaws.com",
  "s3.us-east-1.amazonaws.com",
  "sts.amazonaws.com",
  "execute-api.eu-central-1.amazonaws.com",
  "minio.local:9000",
  "127.0.0.1:8443",
];

interface Case {
  method: string;
  host: string;
  segments: { decoded: string; raw: string }[];
  trailingSlash: boolean;
  query: [{ decoded: string; raw: string }, { decoded: string; raw: string }, string][];
  headers: [string, string][];
  payload:
    | { kind: "none" }
    | { kind: "unsigned" }
    | { kind: "body"; body: Uint8Array }
    | { kind: "hash"; value: string };
  presign: number;
  service: string;
  region: string;
  normalizePath: boolean | undefined;
  now: Date;
}

const caseArb: fc.Arbitrary<Case> = fc.record({
  method: fc.oneof(
    fc.constantFrom("GET", "PUT", "POST", "DELETE", "HEAD", "PATCH"),
    fc.stringMatching(/^[A-Za-z]{1,8}$/),
  ),
  host: fc.constantFrom(...HOSTS),
  segments: fc.array(segment, { maxLength: 4 }),
  trailingSlash: fc.boolean(),
  query: fc.array(param, { maxLength: 4 }),
  headers: fc.array(fc.tuple(headerName, headerValue), { maxLength: 5 }),
  payload: fc.oneof(
    fc.constant({ kind: "none" as const }),
    fc.constant({ kind: "unsigned" as const }),
    fc.uint8Array({ maxLength: 64 }).map((body) => ({ kind: "body" as const, body })),
    fc.stringMatching(/^[0-9a-f]{64}$/).map((value) => ({ kind: "hash" as const, value })),
  ),
  presign: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 604800 })),
  service: fc.constantFrom("", "s3", "sts", "execute-api", "es"),
  region: fc.constantFrom("", "eu-west-1", "us-gov-west-1", "cn-north-1"),
  normalizePath: fc.constantFrom(undefined, true, false),
  now: fc.date({
    min: new Date("2000-01-01T00:00:00Z"),
    max: new Date("2099-12-31T23:59:59Z"),
    noInvalidDate: true,
  }),
});

const rawPath = (c: Case) =>
  `/${c.segments.map((s) => s.raw).join("/")}${c.trailingSlash && c.segments.length > 0 ? "/" : ""}`;
const rawQuery = (c: Case) =>
  c.query
    // A bare key is a parameter with an empty value; a bare empty key is no parameter, so it gets "=".
    .map(([k, v, eq]) => (eq === "" && v.raw === "" && k.raw !== "" ? k.raw : `${k.raw}=${v.raw}`))
    .join("&");
const urlOf = (c: Case) =>
  `https://${c.host}${rawPath(c)}${c.query.length ? `?${rawQuery(c)}` : ""}`;

const credentialFor = (host: string): Credential =>
  edited(accessKeyInput(), (x) => {
    x.allowedHosts = [host.replace(/:\d+$/, "")];
    x.allowedScopes = [];
    x.expiresAt = undefined;
    x.region = "us-west-2";
  });

function requestOf(c: Case) {
  return create(SignRequestRequestSchema, {
    namespace: "team-a",
    credential: "s3-writer",
    method: c.method,
    url: urlOf(c),
    headers: c.headers.map(([name, value]) => ({ name, value })),
    payload:
      c.payload.kind === "body"
        ? { case: "body", value: c.payload.body }
        : c.payload.kind === "hash"
          ? { case: "payloadSha256", value: c.payload.value }
          : c.payload.kind === "unsigned"
            ? { case: "unsignedPayload", value: true }
            : { case: undefined },
    presignExpiresSeconds: c.presign,
    service: c.service,
    region: c.region,
    ...(c.normalizePath === undefined ? {} : { normalizePath: c.normalizePath }),
  });
}

interface Owner {
  id: string;
  etag: string;
  accessKeyId: string;
  secret: string;
  token: string | undefined;
}

/** The same request through a fresh smithy SignatureV4. */
async function smithy(c: Case, plan: ReturnType<typeof planSignature>, owner: Owner) {
  const signer = new SignatureV4({
    credentials: {
      accessKeyId: owner.accessKeyId,
      secretAccessKey: owner.secret,
      sessionToken: owner.token,
    },
    region: plan.region,
    service: plan.service,
    sha256: Hash.bind(null, "sha256"),
    uriEscapePath: !plan.s3PathRules,
    applyChecksum: plan.payloadHeader,
  });
  const headers: Record<string, string> = { host: c.host };
  for (const [n, v] of c.headers) {
    const l = n.toLowerCase();
    if (l === "authorization") continue;
    if (Object.hasOwn(headers, l)) headers[l] = `${headers[l]},${v.trim()}`;
    else
      Object.defineProperty(headers, l, {
        value: v.trim(),
        enumerable: true,
        writable: true,
        configurable: true,
      });
  }
  const query: Record<string, string | string[]> = Object.create(null);
  for (const [k, v] of c.query) {
    const prev = Object.hasOwn(query, k.decoded) ? query[k.decoded] : undefined;
    query[k.decoded] =
      prev === undefined
        ? v.decoded
        : Array.isArray(prev)
          ? [...prev, v.decoded]
          : [prev, v.decoded];
  }
  // S3 signs each segment decoded and encoded once; the generic rules get the path as sent.
  const s3Path = `/${c.segments.map((s) => escapeUri(s.decoded)).join("/")}${c.trailingSlash && c.segments.length > 0 ? "/" : ""}`;
  const hash = payloadHash(plan.payload, plan.service === "s3");
  const presign = plan.presignExpiresSeconds !== undefined;
  if (presign || plan.payloadHeader) headers["x-amz-content-sha256"] = hash;
  const request = new HttpRequest({
    method: c.method,
    protocol: "https:",
    hostname: c.host,
    path: plan.s3PathRules ? s3Path : rawPath(c),
    query,
    headers,
    ...(c.payload.kind === "body" ? { body: c.payload.body } : {}),
  });
  if (presign) {
    const only = new Set(["x-amz-content-sha256"]);
    return signer.presign(request, {
      signingDate: plan.now,
      expiresIn: plan.presignExpiresSeconds,
      unsignableHeaders: only,
      unhoistableHeaders: only,
    });
  }
  return signer.sign(request, { signingDate: plan.now });
}

/** Decoded (key, value) pairs of a query string, sorted: parameters as a server reads them. */
function pairs(query: string): string[] {
  return query
    .split("&")
    .filter((p) => p !== "")
    .map((p) => {
      const eq = p.indexOf("=");
      const [k, v] = eq < 0 ? [p, ""] : [p.slice(0, eq), p.slice(eq + 1)];
      return JSON.stringify([decodeURIComponent(k), decodeURIComponent(v)]);
    })
    .sort();
}
function smithyPairs(query: Record<string, string | string[] | null>): string[] {
  const out: string[] = [];
  for (const k of Object.keys(query)) {
    const v = query[k];
    for (const one of Array.isArray(v) ? v : [v ?? ""]) out.push(JSON.stringify([k, one]));
  }
  return out.sort();
}

/** Plans `c` (validation and policy as the daemon runs them), or undefined when it is refused. */
function plan(c: Case): ReturnType<typeof planSignature> | undefined {
  try {
    return planSignature(validateSignRequest(requestOf(c)), credentialFor(c.host), c.now);
  } catch (e) {
    assert.ok(e instanceof DomainError, `${urlOf(c)}: ${String(e)}`);
    return undefined;
  }
}

async function assertSameAsSmithy(c: Case, owner: Owner, keys: SigningKeyCache): Promise<void> {
  const p = plan(c);
  if (p === undefined) return;
  const cached = !needsSecret(p, owner, keys);
  const ours = sigv4(
    p,
    {
      id: owner.id,
      etag: owner.etag,
      accessKeyId: owner.accessKeyId,
      // As the signing service does: the secret is read only when the cache has no key.
      ...(cached ? {} : { secretAccessKey: owner.secret, sessionToken: owner.token }),
    },
    keys,
  );
  const theirs = await smithy(c, p, owner);
  const where = `${c.method} ${urlOf(c)} ${JSON.stringify(c.headers)} ${p.service}/${p.region} ${p.presignExpiresSeconds ? "presign" : "headers"}`;
  if (p.presignExpiresSeconds !== undefined) {
    const q = ours.url.slice(ours.url.indexOf("?") + 1);
    assert.deepEqual(
      pairs(q),
      smithyPairs(theirs.query as Record<string, string | string[] | null>),
      where,
    );
    assert.ok(ours.url.startsWith(`https://${c.host}${rawPath(c)}?`), where);
    return;
  }
  const header = (name: string) => ours.headers.find(([n]) => n === name)?.[1];
  assert.equal(header("authorization"), theirs.headers.authorization, where);
  assert.equal(header("x-amz-date"), theirs.headers["x-amz-date"]);
  assert.equal(header("x-amz-security-token"), theirs.headers["x-amz-security-token"]);
  if (p.payloadHeader) {
    assert.equal(header("x-amz-content-sha256"), theirs.headers["x-amz-content-sha256"]);
  }
  assert.equal(ours.url, urlOf(c), "a header signature leaves the URL as it was");
}

const owner = fc.record({
  id: fc.constantFrom("c1", "c2", "c3"),
  etag: fc.constantFrom("e1", "e2"),
  accessKeyId: fc.stringMatching(/^(AKIA|ASIA)[A-Z0-9]{16}$/),
});
/** One credential version, one secret and session token: what the cache's (id, etag) key promises. */
const materialOf = (o: { id: string; etag: string; accessKeyId: string }): Owner => ({
  ...o,
  secret: `secret/${o.id}+${o.etag}=`,
  token: o.etag === "e2" ? `token/${o.id}/${o.etag}` : undefined,
});

describe("SigV4: credbroker and a fresh @smithy/signature-v4 agree", () => {
  test("on generated requests, signed with a fresh key cache", async () => {
    await fc.assert(
      fc.asyncProperty(caseArb, owner, async (c, o) => {
        await assertSameAsSmithy(c, materialOf(o), new SigningKeyCache());
      }),
      { numRuns: 400 },
    );
  });

  test("through one small shared key cache, hit or miss, evicted or not", async () => {
    const keys = new SigningKeyCache(3);
    // Few dates, regions and services, so keys are found again, and evicted.
    const reused = caseArb.map((c) => ({
      ...c,
      now: new Date(Date.UTC(2026, 10, 24 + (c.now.getUTCSeconds() % 2), c.now.getUTCHours())),
    }));
    await fc.assert(
      fc.asyncProperty(reused, owner, async (c, o) => {
        await assertSameAsSmithy(c, materialOf(o), keys);
        assert.ok(keys.size <= 3, "bounded");
      }),
      { numRuns: 400 },
    );
  });
});

/** kSigning, written out from the SigV4 spec: HMAC chain over date, region, service, aws4_request. */
function specKey(secret: string, date: string, region: string, service: string): Buffer {
  let k: Buffer | string = `AWS4${secret}`;
  for (const part of [date, region, service, "aws4_request"])
    k = createHmac("sha256", k).update(part).digest();
  return k as Buffer;
}

describe("SigningKeyCache", () => {
  test("a found key is the key of exactly that credential version, date, region and service", () => {
    // Regions and services are caller input (SignRequest.region / .service): any string.
    const part = fc.string({ unit: fc.constantFrom("a", "-", "\u0000", "1"), maxLength: 3 });
    const keys = new SigningKeyCache(64);
    fc.assert(
      fc.property(
        fc.constantFrom("c1", "c2"),
        fc.constantFrom("20261124", "20261125"),
        part,
        part,
        (id, date, region, service) => {
          const o = { id, etag: "e1" };
          const secret = `secret-${id}`;
          const found = keys.find(o, date, region, service);
          const key = found ?? keys.derive(o, { secretAccessKey: secret }, date, region, service);
          assert.deepEqual(
            key.key,
            specKey(secret, date, region, service),
            `${JSON.stringify([id, date, region, service])} ${found ? "found" : "derived"}`,
          );
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe("the signing pipeline on any input", () => {
  const anyUnit = fc.integer({ min: 0, max: 0xffff }).map((n) => String.fromCharCode(n));
  const anyText = fc.oneof(
    fc.string({ unit: anyUnit, maxLength: 12 }),
    fc.string({ unit: "binary", maxLength: 12 }),
  );
  test("fails only with a DomainError: validation, policy and signing never throw anything else", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...HOSTS),
        anyText,
        anyText,
        fc.array(fc.tuple(headerName, anyText), { maxLength: 3 }),
        fc.constantFrom("GET", "PUT"),
        fc.boolean(),
        (host, path, query, headers, method, presign) => {
          const c = edited(credentialFor(host), () => {});
          const req = create(SignRequestRequestSchema, {
            namespace: "team-a",
            credential: "s3-writer",
            method,
            url: `https://${host}/${path}${query ? `?${query}` : ""}`,
            headers: headers.map(([name, value]) => ({ name, value })),
            presignExpiresSeconds: presign ? 60 : 0,
            service: host.startsWith("minio") || host.startsWith("127") ? "s3" : "",
            region: "eu-west-1",
          });
          const keys = new SigningKeyCache();
          try {
            const p = planSignature(validateSignRequest(req), c, new Date("2026-11-24T00:00:00Z"));
            const s = sigv4(
              p,
              { id: "x", etag: "1", accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret" },
              keys,
            );
            assert.ok(s.url.startsWith(`https://${host}/`));
            assert.equal(amzDate(p.now).short, "20261124");
          } catch (e) {
            assert.ok(e instanceof DomainError, `${JSON.stringify(req.url)}: ${String(e)}`);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});
