/**
 * S3 action mapping (src/providers/aws/s3-request.ts `mapS3Request`, the actions of
 * src/core/s3-actions.ts): every request maps to one known action or to a
 * refusal with a reason, and never throws; what is not understood is
 * refused (an unknown parameter, method or copy source); the mapping does not
 * depend on the method's letter case, the order of distinct parameters, the
 * SDKs' `x-id`, or on whether the bucket is in the host name or the path.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { RequestHeaders } from "../../src/core/request-headers.js";
import { isS3Action, S3_ACTIONS } from "../../src/core/s3-actions.js";
import { mapS3Request, type S3RequestParts } from "../../src/providers/aws/s3-request.js";

const RUNS = { numRuns: 500 };

const KNOWN_PARAMS = [
  "versionId",
  "partNumber",
  "uploadId",
  "uploads",
  "response-content-type",
  "list-type",
  "prefix",
  "delimiter",
  "max-keys",
  "continuation-token",
  "start-after",
  "x-id",
];
const method = fc.oneof(
  fc.constantFrom("GET", "HEAD", "PUT", "POST", "DELETE", "get", "Put", "OPTIONS", "PATCH"),
  fc.string({ maxLength: 8 }),
);
const text = fc.oneof(
  fc.string({ unit: "binary", maxLength: 12 }),
  fc.constantFrom("", "/", ".", "..", "a", "a/b", "a/../b", "./a", "2026/", "%2e%2e"),
);
const pathText = fc
  .array(fc.oneof(text, fc.constant("/")), { maxLength: 5 })
  .map((ps) => `/${ps.join("")}`);
const param = fc.tuple(fc.oneof(fc.constantFrom(...KNOWN_PARAMS), text), text);
const copySource = fc.oneof(
  text,
  fc.tuple(text, text).map(([b, k]) => `/${b}/${k}`),
  fc.constantFrom(
    "/b/k",
    "b/k",
    "/b/k?versionId=1",
    "/b/",
    "/b",
    "/b/../k",
    "/b/%2e%2e/k",
    "%2Fb%2Fk",
  ),
);

const parts: fc.Arbitrary<S3RequestParts> = fc
  .record({
    method,
    hostBucket: fc.option(fc.oneof(fc.constantFrom("b", "reports"), text), { nil: undefined }),
    path: pathText,
    query: fc.array(param, { maxLength: 4 }),
    copy: fc.option(copySource, { nil: undefined }),
    other: fc.array(fc.tuple(fc.constantFrom("content-type", "x-amz-acl", "range"), text), {
      maxLength: 2,
    }),
  })
  .map(({ copy, other, ...r }) => {
    const headers: [string, string][] = [...other];
    if (copy !== undefined) headers.push(["x-amz-copy-source", copy]);
    return { ...r, headers: new RequestHeaders(headers) };
  });

const dotSegments = (key: string) => key.split("/").some((s) => s === "." || s === "..");

describe("mapS3Request", () => {
  test("never throws: a known action on a named bucket and a clean key, or a reason", () => {
    fc.assert(
      fc.property(parts, (r) => {
        const m = mapS3Request(r);
        if (!m.ok) {
          assert.equal(typeof m.reason, "string");
          assert.ok(m.reason.length > 0);
          return;
        }
        const op = m.operation;
        assert.ok(isS3Action(op.action), op.action);
        assert.ok(op.bucket.length > 0, "a bucket");
        assert.equal(dotSegments(op.key), false, `key ${JSON.stringify(op.key)}`);
        assert.equal(op.action === "list_bucket", op.key === "", "only a listing has no key");
        assert.equal(op.listPrefix !== undefined, op.action === "list_bucket");
        if (op.copySource !== undefined) {
          assert.ok(["put_object", "upload_part"].includes(op.action), op.action);
          assert.ok(op.copySource.bucket.length > 0 && op.copySource.key.length > 0);
          assert.equal(dotSegments(op.copySource.key), false);
        }
      }),
      { numRuns: 3000 },
    );
  });

  test("is pure: the same request maps the same, and the request is not changed", () => {
    fc.assert(
      fc.property(parts, (r) => {
        const before = structuredClone({ ...r, headers: r.headers.list });
        const first = mapS3Request(r);
        assert.deepEqual(mapS3Request(r), first);
        assert.deepEqual({ ...r, headers: r.headers.list }, before);
      }),
      RUNS,
    );
  });

  test("does not depend on the method's letter case", () => {
    fc.assert(
      fc.property(parts, (r) => {
        const upper = mapS3Request({ ...r, method: r.method.toUpperCase() });
        assert.deepEqual(mapS3Request({ ...r, method: r.method.toLowerCase() }), upper);
        assert.deepEqual(mapS3Request(r), upper);
      }),
      RUNS,
    );
  });

  test("ignores the SDKs' x-id parameter, wherever it stands", () => {
    fc.assert(
      fc.property(parts, text, fc.nat(), (r, id, at) => {
        const query: [string, string][] = [...r.query];
        query.splice(at % (query.length + 1), 0, ["x-id", id]);
        assert.deepEqual(mapS3Request({ ...r, query }), mapS3Request(r));
      }),
      RUNS,
    );
  });

  test("does not depend on the order of distinct parameters", () => {
    fc.assert(
      fc.property(
        parts
          .filter((r) => new Set(r.query.map(([k]) => k)).size === r.query.length)
          .chain((r) =>
            fc.tuple(
              fc.constant(r),
              fc.shuffledSubarray([...r.query], {
                minLength: r.query.length,
                maxLength: r.query.length,
              }),
            ),
          ),
        ([r, shuffled]) => {
          const a = mapS3Request(r);
          const b = mapS3Request({ ...r, query: shuffled });
          assert.equal(b.ok, a.ok);
          if (a.ok && b.ok) assert.deepEqual(b.operation, a.operation);
        },
      ),
      RUNS,
    );
  });

  test("virtual-hosted and path-style name the same operation", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,10}$/), parts, (bucket, r) => {
        const hosted = mapS3Request({ ...r, hostBucket: bucket });
        const pathStyle = mapS3Request({
          ...r,
          hostBucket: undefined,
          path: `/${bucket}${r.path}`,
        });
        assert.equal(pathStyle.ok, hosted.ok);
        if (hosted.ok && pathStyle.ok) assert.deepEqual(pathStyle.operation, hosted.operation);
      }),
      RUNS,
    );
  });

  test("what is not understood is refused: an unknown parameter makes any request unmapped", () => {
    const unknown = fc
      .string({ minLength: 1, maxLength: 10 })
      .filter((k) => !KNOWN_PARAMS.includes(k) && !k.startsWith("response-") && k !== "x-id")
      .filter((k) => !["marker", "encoding-type", "fetch-owner"].includes(k));
    fc.assert(
      fc.property(parts, unknown, text, (r, k, v) => {
        const m = mapS3Request({ ...r, query: [...r.query, [k, v]] });
        assert.equal(m.ok, false, `?${k} mapped to ${m.ok ? m.operation.action : ""}`);
      }),
      RUNS,
    );
  });

  test("a plain object request maps by method; any other method is refused", () => {
    const key = fc
      .array(fc.stringMatching(/^[A-Za-z0-9_~-]{1,6}$/), { minLength: 1, maxLength: 3 })
      .map((s) => s.join("/"));
    const expected: Record<string, string | undefined> = {
      GET: "get_object",
      HEAD: "head_object",
      PUT: "put_object",
      DELETE: "delete_object",
    };
    fc.assert(
      fc.property(method, key, (m, k) => {
        const r = mapS3Request({
          method: m,
          hostBucket: undefined,
          path: `/bucket/${k}`,
          query: [],
          headers: new RequestHeaders([]),
        });
        const want = expected[m.toUpperCase()];
        assert.equal(r.ok ? r.operation.action : undefined, want, m);
        if (r.ok) assert.deepEqual([r.operation.bucket, r.operation.key], ["bucket", k]);
      }),
      RUNS,
    );
  });

  test("multipart requests map to their own actions, and only with their own parameters", () => {
    const cases: [method: string, query: [string, string][], action: string][] = [
      ["POST", [["uploads", ""]], "create_multipart_upload"],
      [
        "PUT",
        [
          ["partNumber", "1"],
          ["uploadId", "u"],
        ],
        "upload_part",
      ],
      [
        "PUT",
        [
          ["uploadId", "u"],
          ["partNumber", "1"],
        ],
        "upload_part",
      ],
      ["POST", [["uploadId", "u"]], "complete_multipart_upload"],
      ["DELETE", [["uploadId", "u"]], "abort_multipart_upload"],
    ];
    fc.assert(
      fc.property(
        fc.constantFrom(...cases),
        fc.stringMatching(/^[a-z0-9]{1,8}$/),
        ([m, q, action], k) => {
          const base = {
            method: m,
            hostBucket: "b",
            path: `/${k}`,
            headers: new RequestHeaders([]),
          };
          const r = mapS3Request({ ...base, query: q });
          assert.equal(r.ok && r.operation.action, action);
          assert.ok((S3_ACTIONS as readonly string[]).includes(action));
          // The bucket itself is no object: the same parameters on the bucket are refused.
          assert.equal(mapS3Request({ ...base, path: "/", query: q }).ok, false);
        },
      ),
      { numRuns: 100 },
    );
  });
});
