/**
 * Policy decides on exactly what is signed (issue 20 #1, #6): for any
 * multiset of headers and query parameters, what the S3 mapping reads
 * (src/providers/aws/sign-plan.ts `validateSignRequest` → `RequestHeaders`,
 * `mapS3Request`) is what the canonical request of src/providers/aws/sigv4.ts signs,
 * in header and presigned mode: mapping the signed request again gives the
 * same operation. Repeated meaningful headers and caller X-Amz-* signer
 * parameters are refused in any letter case; the URL parser and the query
 * decoding never throw anything but invalid_argument and round-trip.
 * Fixed seed and bounded runs, so `npm test` reproduces every failure.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import fc from "fast-check";
import { SignRequestRequestSchema } from "../../gen/credbroker/v1/signing_service_pb.js";
import { DomainError } from "../../src/core/errors.js";
import { parseRawUrl, percentDecode, queryParams, uriEncode } from "../../src/core/raw-url.js";
import { RequestHeaders } from "../../src/core/request-headers.js";
import { mapS3Request } from "../../src/providers/aws/s3-request.js";
import { planSignature, validateSignRequest } from "../../src/providers/aws/sign-plan.js";
import { canonicalForm } from "../../src/providers/aws/sigv4.js";
import { accessKeyInput, edited, FIXED_NOW } from "../core/fixtures.js";

const SEED = 20;
const runs = (numRuns: number) => ({ seed: SEED, numRuns });

const SIGNER_PARAMS = [
  "x-amz-algorithm",
  "x-amz-credential",
  "x-amz-date",
  "x-amz-expires",
  "x-amz-security-token",
  "x-amz-signature",
  "x-amz-signedheaders",
  "x-amz-region-set",
];
const SINGLE = /^(x-amz-|content-|if-)|^(range|expires)$/;

/** Some letter case of `name`. */
const anyCase = (name: string) =>
  fc
    .array(fc.boolean(), { minLength: name.length, maxLength: name.length })
    .map((ups) => [...name].map((c, i) => (ups[i] ? c.toUpperCase() : c)).join(""));

const headerName = fc.oneof(
  fc
    .constantFrom(
      "x-amz-copy-source",
      "range",
      "x-amz-meta-a",
      "x-amz-acl",
      "x-amz-tagging",
      "x-amz-object-lock-mode",
      "x-amz-storage-class",
      "content-type",
      "x-custom",
      "user-agent",
      "cache-control",
      "__proto__",
    )
    .chain(anyCase),
  fc.constantFrom(...SIGNER_PARAMS).chain(anyCase),
  fc.stringMatching(/^[a-z][a-z0-9-]{0,8}$/),
);
const headerValue = fc.oneof(
  fc.constantFrom(
    "/b/k",
    "b/k?versionId=1",
    "secretbucket/payroll.csv?x=",
    "reports/2026/ok",
    "/b/a  b",
    " /b/k ",
    "bytes=0-9",
    "public-read",
    "a\tb",
    "",
  ),
  fc.string({
    unit: fc.constantFrom("a", "/", " ", "\t", ",", "?", "=", "%", "é", "2"),
    maxLength: 8,
  }),
);
const queryKey = fc.oneof(
  fc.constantFrom("prefix", "list-type", "versionId", "uploads", "x-id", "X-Amz-Meta-A"),
  fc.constantFrom(...SIGNER_PARAMS).chain(anyCase),
  fc.stringMatching(/^[A-Za-z%+.-]{1,6}$/),
);
const queryText = fc.string({
  unit: fc.constantFrom("a", "/", "%2F", "%41", "%ff", "+", " ", "é", "~", "*", "="),
  maxLength: 6,
});

const rawPart = (s: string) => s.replace(/[ #&]/g, (c) => `%${c.charCodeAt(0).toString(16)}`);

const request = fc.record({
  method: fc.constantFrom("GET", "PUT", "POST", "DELETE", "HEAD"),
  host: fc.constantFrom("s3.amazonaws.com", "reports.s3.eu-west-1.amazonaws.com"),
  path: fc.constantFrom("/reports/2026/x", "/reports", "/2026/a%20b", "/"),
  query: fc.oneof(
    fc.constant<[string, string][]>([]),
    fc.array(fc.tuple(queryKey, queryText), { maxLength: 4 }),
  ),
  headers: fc.oneof(
    fc.array(fc.tuple(headerName, headerValue), { maxLength: 5 }),
    // A copy: the case where policy reads a header's value.
    fc
      .tuple(
        fc.constantFrom("x-amz-copy-source", "X-Amz-Copy-Source"),
        fc.constantFrom("/reports/2026/src", "reports/2026/a%20b?versionId=1", " /o/k "),
        fc.array(fc.tuple(headerName, headerValue), { maxLength: 2 }),
      )
      .map(([n, v, rest]): [string, string][] => [[n, v], ...rest]),
  ),
  presign: fc.boolean(),
  token: fc.option(fc.constant("session/token+=="), { nil: undefined }),
});
type Req = typeof request extends fc.Arbitrary<infer T> ? T : never;

const urlOf = (r: Req) =>
  `https://${r.host}${r.path}${r.query.length ? `?${r.query.map(([k, v]) => `${rawPart(k)}=${rawPart(v)}`).join("&")}` : ""}`;

function signRequestOf(r: Req) {
  return create(SignRequestRequestSchema, {
    namespace: "team-a",
    credential: "open",
    method: r.method,
    url: urlOf(r),
    headers: r.headers.map(([name, value]) => ({ name, value })),
    presignExpiresSeconds: r.presign ? 300 : 0,
  });
}

/** No scopes, AWS hosts: everything valid is signed, so every valid request reaches the signer. */
const OPEN = edited(accessKeyInput(), (c) => {
  c.allowedHosts = [];
  c.allowedScopes = [];
});

const sortPairs = (pairs: readonly (readonly [string, string])[]) =>
  pairs.map(([k, v]) => `${k}=${v}`).sort();

/** The canonical request's query and header lines, decoded back into pairs. */
function parseCanonical(text: string): { query: [string, string][]; headers: [string, string][] } {
  const lines = text.split("\n");
  const query = (lines[2] ?? "")
    .split("&")
    .filter((p) => p !== "")
    .map((p): [string, string] => {
      const eq = p.indexOf("=");
      return [decodeURIComponent(p.slice(0, eq)), decodeURIComponent(p.slice(eq + 1))];
    });
  const headers: [string, string][] = [];
  for (const line of lines.slice(3)) {
    if (line === "") break;
    const colon = line.indexOf(":");
    headers.push([line.slice(0, colon), line.slice(colon + 1)]);
  }
  return { query, headers };
}

describe("policy view == signed view", () => {
  test("refused exactly when a meaningful header repeats or the query has a signer parameter", () => {
    fc.assert(
      fc.property(request, (r) => {
        const names = r.headers.map(([n]) => n.toLowerCase());
        const repeated = names.some((n, i) => SINGLE.test(n) && names.indexOf(n) !== i);
        const signerName =
          names.some((n) => SIGNER_PARAMS.includes(n)) ||
          queryParams(urlOf(r).split("?")[1] ?? "").some(([k]) =>
            SIGNER_PARAMS.includes(k.toLowerCase()),
          );
        const queryNames = new Set(
          queryParams(urlOf(r).split("?")[1] ?? "").map(([k]) => k.toLowerCase()),
        );
        const clash = r.presign && names.some((n) => n.startsWith("x-amz-") && queryNames.has(n));
        let refusal: unknown;
        try {
          validateSignRequest(signRequestOf(r));
        } catch (e) {
          refusal = e;
        }
        if (refusal !== undefined) {
          assert.ok(refusal instanceof DomainError, String(refusal));
          assert.equal(refusal.code, "invalid_argument");
        }
        if (repeated || signerName || clash) assert.ok(refusal, "refused");
        // x-amz-content-sha256 values are checked for form: the only other refusal here.
        else if (!names.includes("x-amz-content-sha256")) assert.equal(refusal, undefined);
      }),
      runs(1500),
    );
  });

  test("the signed request maps to the operation policy decided on, headers and presigned", () => {
    let checked = 0;
    let copies = 0;
    fc.assert(
      fc.property(request, (r) => {
        let valid: ReturnType<typeof validateSignRequest>;
        try {
          valid = validateSignRequest(signRequestOf(r));
        } catch {
          return; // refusals: the property above
        }
        const s3 = valid.s3;
        assert.ok(s3, "an S3 host is an S3 request");
        const plan = planSignature(valid, OPEN, FIXED_NOW);
        const form = canonicalForm(
          plan,
          "AKIDEXAMPLE",
          "20300102/us-east-1/s3/aws4_request",
          r.token,
        );
        const signed = parseCanonical(form.canonicalRequest);
        const signerHeaders = new Set(["host", "x-amz-date", "x-amz-security-token"]);
        const hoisted = new Set(
          r.presign
            ? valid.headers
                .names()
                .filter((n) => n.startsWith("x-amz-") && n !== "x-amz-content-sha256")
            : [],
        );

        // Headers: each one policy can read is signed with the value policy read.
        const signedHeaders = new Map(signed.headers);
        const signedQuery = new Map(signed.query);
        for (const name of valid.headers.names()) {
          const policyValue = valid.headers.get(name);
          if (hoisted.has(name)) {
            assert.equal(signedQuery.get(name), valid.headers.joinedValue(name), name);
            assert.equal(
              new RequestHeaders([[name, signedQuery.get(name) ?? ""]]).get(name),
              policyValue,
            );
          } else if (policyValue === undefined) {
            assert.equal(signedHeaders.has(name), false, `${name} is not signed, nor read`);
          } else {
            assert.equal(signedHeaders.get(name), policyValue, name);
          }
        }

        // Query: the caller's parameters are signed as policy decoded them, beside the signer's own.
        const callerQuery = signed.query.filter(
          ([k]) => !hoisted.has(k) && !SIGNER_PARAMS.includes(k.toLowerCase()),
        );
        assert.deepEqual(sortPairs(callerQuery), sortPairs(s3.parts.query));
        const signerQuery = signed.query.filter(([k]) => SIGNER_PARAMS.includes(k.toLowerCase()));
        assert.equal(new Set(signerQuery.map(([k]) => k.toLowerCase())).size, signerQuery.length);
        assert.equal(signerQuery.length > 0, r.presign);

        // Mapping the signed request again decides the same.
        const again = mapS3Request({
          ...s3.parts,
          query: callerQuery,
          headers: new RequestHeaders([
            ...signed.headers.filter(([n]) => !signerHeaders.has(n)),
            ...signed.query.filter(([k]) => hoisted.has(k)),
          ]),
        });
        // (A refusal's reason lists parameters in their order, which signing sorts.)
        assert.equal(again.ok, s3.mapping.ok);
        if (again.ok && s3.mapping.ok) assert.deepEqual(again.operation, s3.mapping.operation);
        checked++;
        if (s3.mapping.ok && s3.mapping.operation.copySource) copies++;
      }),
      runs(1500),
    );
    assert.ok(checked > 300, `only ${checked} requests reached the signer`);
    assert.ok(copies > 20, `only ${copies} copies mapped`);
  });
});

describe("URL parser and query decoding", () => {
  const urlText = fc.string({
    unit: fc.constantFrom(
      "h",
      "t",
      "p",
      "s",
      ":",
      "/",
      "?",
      "#",
      "@",
      "[",
      "]",
      ".",
      "%",
      "2",
      "f",
      "F",
      "a",
      "=",
      "&",
      " ",
      "\u0000",
      "é",
      "\ud800",
      "HTTPS://",
      "http://",
      "s3.amazonaws.com",
      ":443",
      "%2e",
    ),
    maxLength: 40,
  });

  test("parseRawUrl returns the URL's own parts or throws invalid_argument", () => {
    fc.assert(
      fc.property(urlText, (url) => {
        let parsed: ReturnType<typeof parseRawUrl>;
        try {
          parsed = parseRawUrl(url);
        } catch (e) {
          assert.ok(e instanceof DomainError, String(e));
          assert.equal(e.code, "invalid_argument");
          return;
        }
        const rest = url.slice(parsed.scheme.length + 3);
        assert.equal(url.slice(0, parsed.scheme.length).toLowerCase(), parsed.scheme);
        assert.ok(rest.startsWith(parsed.authority), "the authority as written");
        assert.equal(parsed.host, parsed.authority.replace(/:\d+$/, "").toLowerCase());
        const tail = rest.slice(parsed.authority.length);
        const path = tail.split("?")[0] ?? "";
        assert.equal(parsed.path, path === "" ? "/" : path, "the path as written");
        assert.equal(parsed.query, tail.includes("?") ? tail.slice(tail.indexOf("?") + 1) : "");
      }),
      runs(3000),
    );
  });

  test("decoded query pairs survive SigV4's encoding: the server decodes what policy read", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(queryText, queryText), { maxLength: 4 }), (pairs) => {
        const raw = pairs.map(([k, v]) => `${rawPart(k)}=${rawPart(v)}`).join("&");
        const decoded = queryParams(raw);
        const reencoded = decoded.map(([k, v]) => `${uriEncode(k)}=${uriEncode(v)}`).join("&");
        assert.deepEqual(queryParams(reencoded), decoded);
        for (const [k, v] of decoded) {
          assert.equal(percentDecode(uriEncode(k)), k);
          assert.equal(percentDecode(uriEncode(v)), v);
        }
      }),
      runs(1000),
    );
  });
});
