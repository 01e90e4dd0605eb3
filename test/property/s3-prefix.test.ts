/**
 * The S3 prefix rule of allowed_scopes (src/providers/aws/policy.ts `prefixMatches`,
 * `listPrefixMatches`): an empty prefix, or one ending in "/", is a plain
 * starts-with; otherwise the key equals the prefix or continues it after a
 * "/" (scope "data" never reaches "data-private/x"); a listing is allowed only
 * when every key it can show is in scope. End to end, through
 * validateSignRequest and planSignature: whatever path, escapes, dot
 * segments, query and copy source a request carries, a signature is only
 * made when the object (or listing) S3 acts on lies inside the scope.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import fc from "fast-check";
import { AccessScopeSchema } from "../../gen/credbroker/v1/credential_pb.js";
import { SignRequestRequestSchema } from "../../gen/credbroker/v1/signing_service_pb.js";
import { DomainError } from "../../src/core/errors.js";
import { percentDecode, uriEncode } from "../../src/core/raw-url.js";
import { S3_ACTIONS } from "../../src/core/s3-actions.js";
import { listPrefixMatches, prefixMatches } from "../../src/providers/aws/policy.js";
import { planSignature, validateSignRequest } from "../../src/providers/aws/sign-plan.js";
import { accessKeyInput, edited, FIXED_NOW } from "../core/fixtures.js";

const RUNS = { numRuns: 500 };

/** Short strings over an alphabet where "/" and shared prefixes are common. */
const keyText = fc.string({
  unit: fc.constantFrom("a", "b", "d", "/", "-", ".", "x"),
  maxLength: 8,
});

/** The rule as docs/API.md and policy.ts state it, written out again. */
function inPrefix(prefix: string, key: string): boolean {
  if (prefix === "" || prefix.endsWith("/")) return key.startsWith(prefix);
  return key === prefix || key.startsWith(`${prefix}/`);
}
function listingInPrefix(prefix: string, listPrefix: string): boolean {
  if (prefix === "" || prefix.endsWith("/")) return listPrefix.startsWith(prefix);
  return listPrefix.startsWith(`${prefix}/`);
}
const dotSegments = (key: string) => key.split("/").some((s) => s === "." || s === "..");

describe("prefixMatches", () => {
  test("is the documented rule", () => {
    fc.assert(
      fc.property(keyText, keyText, (p, k) => {
        assert.equal(prefixMatches(p, k), inPrefix(p, k));
      }),
      { numRuns: 2000 },
    );
  });

  test("a prefix holds itself and everything below it after a '/'", () => {
    fc.assert(
      fc.property(keyText, keyText, (p, rest) => {
        assert.ok(prefixMatches(p, p));
        assert.ok(prefixMatches(p, `${p}/${rest}`));
        assert.ok(prefixMatches("", rest), "the empty prefix is the whole bucket");
      }),
      RUNS,
    );
  });

  test("a key that only shares the prefix's characters across a path boundary is outside", () => {
    fc.assert(
      fc.property(
        keyText.filter((p) => p !== "" && !p.endsWith("/")),
        fc.constantFrom("-", "x", ".", "a", "_private"),
        keyText,
        (p, c, rest) => {
          assert.equal(prefixMatches(p, `${p}${c}${rest}`), false, `${p} vs ${p}${c}${rest}`);
        },
      ),
      RUNS,
    );
  });

  test("is case-sensitive, as S3 keys are", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z]{1,6}\/?$/), keyText, (p, rest) => {
        assert.equal(prefixMatches(p.toUpperCase(), `${p}/${rest}`), false);
      }),
      RUNS,
    );
  });
});

describe("listPrefixMatches", () => {
  test("an allowed listing can show no key outside the scope", () => {
    fc.assert(
      fc.property(keyText, keyText, keyText, (p, listPrefix, rest) => {
        if (listPrefixMatches(p, listPrefix)) {
          assert.ok(prefixMatches(p, listPrefix + rest), `${listPrefix}${rest} outside ${p}`);
        }
      }),
      { numRuns: 2000 },
    );
  });

  test("is the documented rule: with a non-'/' prefix only listings below prefix + '/'", () => {
    fc.assert(
      fc.property(keyText, keyText, (p, lp) => {
        assert.equal(listPrefixMatches(p, lp), listingInPrefix(p, lp));
      }),
      { numRuns: 2000 },
    );
  });
});

describe("percentDecode (the key policy reads from a path)", () => {
  test("decodes exactly as decodeURIComponent wherever that succeeds; '+' stays '+'", () => {
    const piece = fc.oneof(
      fc.string({ unit: "binary", maxLength: 3 }),
      fc.string({ unit: "binary", maxLength: 2 }).map(uriEncode),
      fc.constantFrom("%", "%2", "%zz", "%C3", "%A9", "%E2%82", "+", "%2B", "%2b", "%25"),
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 6 }), (pieces) => {
        const text = pieces.join("");
        let strict: string | undefined;
        try {
          strict = decodeURIComponent(text);
        } catch {
          strict = undefined;
        }
        if (strict !== undefined) assert.equal(percentDecode(text), strict);
        assert.equal(percentDecode(uriEncode(text)), text, "encode then decode is the identity");
      }),
      { numRuns: 2000 },
    );
  });
});

// ------------------------------------------------------------ end to end

const PREFIXES = ["2026/", "data", "a/b", ""] as const;
const bucketPart = fc.constantFrom("reports", "rep%6Frts", "REPORTS", "other", "reports2", "");
/** Key segments: the scope's own words, dot segments written every way, stray and invalid escapes. */
const keySegment = fc.constantFrom(
  "2026",
  "data",
  "data-private",
  "datax",
  "a",
  "b",
  "bc",
  "",
  ".",
  "..",
  "%2e",
  "%2E%2e",
  ".%2e",
  "a%2Fb",
  "%2F",
  "%252F",
  "%25",
  "%",
  "x%zz",
  "%C3",
  "%C3%A9",
  "é",
  "~",
  "x",
);
/** Joined with "/"; empty (a bucket-level request) a quarter of the time. */
const keyPart = fc.oneof(
  { weight: 1, arbitrary: fc.constant("") },
  {
    weight: 3,
    arbitrary: fc.array(keySegment, { minLength: 1, maxLength: 5 }).map((s) => s.join("/")),
  },
);
const queryPair = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.tuple(
      fc.constant("prefix"),
      fc.oneof(keyPart, fc.constantFrom("2026/", "2026/x", "data/", "data/x", "a/b/", "a/b/c")),
    ),
  },
  fc.constantFrom<[string, string]>(
    ["list-type", "2"],
    ["delimiter", "/"],
    ["uploads", ""],
    ["uploadId", "u1"],
    ["partNumber", "1"],
    ["versionId", "v1"],
    ["x-id", "GetObject"],
    ["acl", ""],
    ["delete", ""],
  ),
);

interface S3Case {
  prefix: string;
  virtualHosted: boolean;
  bucket: string;
  key: string;
  method: string;
  query: [string, string][];
  copySource: string | undefined;
}

const s3Case: fc.Arbitrary<S3Case> = fc.record({
  prefix: fc.constantFrom(...PREFIXES),
  virtualHosted: fc.boolean(),
  bucket: bucketPart,
  key: keyPart,
  method: fc.constantFrom("GET", "HEAD", "PUT", "POST", "DELETE", "get", "put"),
  query: fc.array(queryPair, { maxLength: 4 }),
  copySource: fc.option(
    fc
      .tuple(bucketPart, keyPart, fc.boolean())
      .map(([b, k, v]) => `${b.startsWith("r") ? "/" : ""}${b}/${k}${v ? "?versionId=1" : ""}`),
    { nil: undefined },
  ),
});

/** The bucket in a virtual-hosted name: a host label cannot hold "%" or upper case. */
const hostBucket = (c: S3Case) => c.bucket.replace(/%6F/g, "o").toLowerCase() || "reports";
const rawPath = (c: S3Case) => (c.virtualHosted ? `/${c.key}` : `/${c.bucket}/${c.key}`);

function urlOf(c: S3Case): string {
  const host = c.virtualHosted
    ? `${hostBucket(c)}.s3.eu-west-1.amazonaws.com`
    : "s3.eu-west-1.amazonaws.com";
  const path = rawPath(c);
  const query = c.query.map(([k, v]) => (v === "" ? k : `${k}=${uriEncode(v)}`)).join("&");
  return `https://${host}${path}${query ? `?${query}` : ""}`;
}

/** Decoded once, as S3 decodes: strictly when the text is valid, else what percentDecode keeps. */
function decodeOnce(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return percentDecode(text);
  }
}

/** Whether the daemon signs `c` for a credential scoped to reports/<prefix>, every action. */
function signs(c: S3Case): boolean {
  const cred = edited(accessKeyInput(), (x) => {
    x.allowedHosts = [];
    x.expiresAt = undefined;
    x.allowedScopes = [
      create(AccessScopeSchema, {
        bucket: "reports",
        prefixes: c.prefix === "" ? [] : [c.prefix],
        actions: [...S3_ACTIONS],
      }),
    ];
  });
  const req = create(SignRequestRequestSchema, {
    namespace: cred.namespace,
    credential: cred.name,
    method: c.method,
    url: urlOf(c),
    headers: c.copySource === undefined ? [] : [{ name: "x-amz-copy-source", value: c.copySource }],
  });
  try {
    planSignature(validateSignRequest(req), cred, FIXED_NOW);
    return true;
  } catch (e) {
    assert.ok(e instanceof DomainError, `${urlOf(c)}: ${String(e)}`);
    assert.ok(["invalid_argument", "permission_denied"].includes(e.code), e.code);
    return false;
  }
}

describe("scopes end to end: validateSignRequest + planSignature", () => {
  test("a signed request acts only on objects (and listings) inside the scope", () => {
    fc.assert(
      fc.property(s3Case, (c) => {
        if (!signs(c)) return;
        // The path as sent (a URL parser would resolve its dot segments; S3 does not).
        const path = decodeOnce(rawPath(c));
        let bucket = c.virtualHosted ? hostBucket(c) : undefined;
        let key = path.slice(1);
        if (bucket === undefined) {
          const slash = key.indexOf("/");
          bucket = slash < 0 ? key : key.slice(0, slash);
          key = slash < 0 ? "" : key.slice(slash + 1);
        }
        const where = `${c.method} ${urlOf(c)} (scope reports/${c.prefix})`;
        assert.equal(bucket, "reports", where);
        assert.equal(dotSegments(key), false, `${where}: dot segments in ${key}`);
        if (key === "") {
          const listed = c.query.filter(([k]) => k === "prefix").map(([, v]) => v);
          if (listed.length === 0) listed.push("");
          for (const lp of listed) {
            assert.ok(listingInPrefix(c.prefix, lp), `${where}: lists ${JSON.stringify(lp)}`);
          }
        } else {
          assert.ok(inPrefix(c.prefix, key), `${where}: key ${JSON.stringify(key)}`);
        }
      }),
      { numRuns: 3000 },
    );
  });

  test("a copy is signed only when its source is a readable object inside the scope", () => {
    fc.assert(
      fc.property(
        s3Case.map((c) => ({
          ...c,
          method: "PUT",
          query: [],
          key: c.prefix === "" || c.prefix.endsWith("/") ? `${c.prefix}x` : `${c.prefix}/x`,
          bucket: "reports",
          copySource: c.copySource ?? "/reports/x",
        })),
        (c) => {
          if (!signs(c)) return;
          const source = decodeOnce((c.copySource ?? "").split("?")[0] ?? "").replace(/^\//, "");
          const slash = source.indexOf("/");
          const bucket = source.slice(0, slash);
          const key = source.slice(slash + 1);
          const where = `copy from ${JSON.stringify(c.copySource)} (scope reports/${c.prefix})`;
          assert.equal(bucket, "reports", where);
          assert.equal(dotSegments(key), false, `${where}: dot segments in ${JSON.stringify(key)}`);
          assert.ok(inPrefix(c.prefix, key), `${where}: key ${JSON.stringify(key)}`);
        },
      ),
      { numRuns: 3000 },
    );
  });

  test("a plain GET of any key inside the prefix is signed; one across a path boundary is not", () => {
    const segment = fc
      .string({ unit: "binary", minLength: 1, maxLength: 6 })
      .filter(
        (s) =>
          !s.includes("/") &&
          s !== "." &&
          s !== ".." &&
          [...s].every((ch) => (ch.codePointAt(0) ?? 0) > 0x1f && ch !== "\u007f"),
      );
    fc.assert(
      fc.property(
        fc.constantFrom("2026/", "data", "a/b"),
        fc.array(segment, { maxLength: 3 }),
        fc.boolean(),
        (prefix, segments, virtualHosted) => {
          const inside = prefix.endsWith("/")
            ? prefix + segments.join("/")
            : [prefix, ...segments].join("/");
          const encode = (k: string) => k.split("/").map(uriEncode).join("/");
          const base = {
            prefix,
            virtualHosted,
            bucket: "reports",
            method: "GET",
            query: [],
            copySource: undefined,
          };
          assert.ok(signs({ ...base, key: encode(inside) }), `GET ${inside} under ${prefix}`);
          if (!prefix.endsWith("/")) {
            const outside = `${prefix}-private/${segments.join("/")}`;
            assert.equal(signs({ ...base, key: encode(outside) }), false, `GET ${outside}`);
          }
        },
      ),
      RUNS,
    );
  });
});
