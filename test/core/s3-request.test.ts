import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { percentDecode, queryParams } from "../../src/core/raw-url.js";
import { RequestHeaders } from "../../src/core/request-headers.js";
import type { S3Action } from "../../src/core/s3-actions.js";
import {
  mapS3Request,
  type S3Operation,
  type S3RequestParts,
} from "../../src/providers/aws/s3-request.js";

interface Options {
  /** The bucket of a virtual-hosted URL. */
  hostBucket?: string;
  headers?: Record<string, string>;
}

/**
 * The parts of `method target` as SignRequest hands them to policy: the path
 * percent-decoded, the query split and decoded, header names lower-cased.
 */
function parts(method: string, target: string, options: Options = {}): S3RequestParts {
  const q = target.indexOf("?");
  const path = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? "" : target.slice(q + 1);
  return {
    method,
    hostBucket: options.hostBucket,
    path: percentDecode(path),
    query: queryParams(query),
    headers: new RequestHeaders(Object.entries(options.headers ?? {})),
  };
}

const op = (action: S3Action, bucket: string, key: string, extra: Partial<S3Operation> = {}) => ({
  action,
  bucket,
  key,
  ...extra,
});

type Expected = S3Operation | { denied: string };
type Row = [label: string, request: S3RequestParts, expected: Expected];

const unmapped = (fragment = "is not a scoped action") => ({ denied: fragment });
const copy = (source: string) => ({ headers: { "x-amz-copy-source": source } });

const rows: Row[] = [
  // Objects.
  ["GetObject", parts("GET", "/b/k"), op("get_object", "b", "k")],
  [
    "GetObject with a nested key",
    parts("GET", "/b/dir/sub/k.txt"),
    op("get_object", "b", "dir/sub/k.txt"),
  ],
  ["GetObject of a version", parts("GET", "/b/k?versionId=3"), op("get_object", "b", "k")],
  ["GetObject of a part", parts("GET", "/b/k?partNumber=2"), op("get_object", "b", "k")],
  [
    "GetObject with response overrides",
    parts("GET", "/b/k?response-content-type=text%2Fplain&response-content-disposition=inline"),
    op("get_object", "b", "k"),
  ],
  ["GetObject, key decoded", parts("GET", "/b/a%20b%2Fc"), op("get_object", "b", "a b/c")],
  ["GetObject, lower-case method", parts("get", "/b/k"), op("get_object", "b", "k")],
  // The AWS SDKs add ?x-id=<Operation>; S3 ignores it, and so does the mapping.
  [
    "PutObject with the SDK's x-id",
    parts("PUT", "/b/k?x-id=PutObject"),
    op("put_object", "b", "k"),
  ],
  [
    "GetObject with the SDK's x-id",
    parts("GET", "/b/k?x-id=GetObject"),
    op("get_object", "b", "k"),
  ],
  ["GET object ?acl (GetObjectAcl)", parts("GET", "/b/k?acl"), unmapped("GET object with ?acl")],
  ["GET object ?tagging", parts("GET", "/b/k?tagging"), unmapped("?tagging")],
  ["GET object ?uploadId (ListParts)", parts("GET", "/b/k?uploadId=u"), unmapped("?uploadId")],
  ["GET object ?attributes", parts("GET", "/b/k?attributes"), unmapped()],
  ["GET object ?versionId&acl", parts("GET", "/b/k?versionId=1&acl"), unmapped()],
  ["HeadObject", parts("HEAD", "/b/k"), op("head_object", "b", "k")],
  ["HeadObject of a version", parts("HEAD", "/b/k?versionId=1"), op("head_object", "b", "k")],
  ["HEAD object ?acl", parts("HEAD", "/b/k?acl"), unmapped()],
  ["PutObject", parts("PUT", "/b/k"), op("put_object", "b", "k")],
  ["PUT object ?acl (PutObjectAcl)", parts("PUT", "/b/k?acl"), unmapped("PUT object with ?acl")],
  ["PUT object ?tagging", parts("PUT", "/b/k?tagging"), unmapped()],
  ["PUT object ?retention", parts("PUT", "/b/k?retention"), unmapped()],
  ["PUT object ?versionId", parts("PUT", "/b/k?versionId=1"), unmapped()],
  ["DeleteObject", parts("DELETE", "/b/k"), op("delete_object", "b", "k")],
  ["DeleteObject of a version", parts("DELETE", "/b/k?versionId=1"), op("delete_object", "b", "k")],
  ["DELETE object ?tagging", parts("DELETE", "/b/k?tagging"), unmapped()],
  // Multipart uploads.
  ["CreateMultipartUpload", parts("POST", "/b/k?uploads"), op("create_multipart_upload", "b", "k")],
  [
    "CreateMultipartUpload, uploads=",
    parts("POST", "/b/k?uploads="),
    op("create_multipart_upload", "b", "k"),
  ],
  ["UploadPart", parts("PUT", "/b/k?partNumber=1&uploadId=u"), op("upload_part", "b", "k")],
  [
    "UploadPart, parameters reversed",
    parts("PUT", "/b/k?uploadId=u&partNumber=7"),
    op("upload_part", "b", "k"),
  ],
  ["PUT ?partNumber without uploadId", parts("PUT", "/b/k?partNumber=1"), unmapped()],
  ["PUT ?uploadId without partNumber", parts("PUT", "/b/k?uploadId=u"), unmapped()],
  ["PUT ?partNumber&uploadId&acl", parts("PUT", "/b/k?partNumber=1&uploadId=u&acl"), unmapped()],
  [
    "CompleteMultipartUpload",
    parts("POST", "/b/k?uploadId=u"),
    op("complete_multipart_upload", "b", "k"),
  ],
  [
    "AbortMultipartUpload",
    parts("DELETE", "/b/k?uploadId=u"),
    op("abort_multipart_upload", "b", "k"),
  ],
  ["POST object without ?uploads", parts("POST", "/b/k"), unmapped("POST object is not")],
  ["POST object ?uploads&uploadId", parts("POST", "/b/k?uploads&uploadId=u"), unmapped()],
  ["POST object ?uploadId&partNumber", parts("POST", "/b/k?uploadId=u&partNumber=1"), unmapped()],
  ["POST object ?restore", parts("POST", "/b/k?restore"), unmapped()],
  [
    "POST object ?select (SelectObjectContent)",
    parts("POST", "/b/k?select&select-type=2"),
    unmapped(),
  ],
  ["DELETE ?uploadId&versionId", parts("DELETE", "/b/k?uploadId=u&versionId=1"), unmapped()],
  // Buckets.
  ["ListObjects", parts("GET", "/b"), op("list_bucket", "b", "", { listPrefix: "" })],
  [
    "ListObjects with a trailing slash",
    parts("GET", "/b/"),
    op("list_bucket", "b", "", { listPrefix: "" }),
  ],
  [
    "ListObjectsV2 with prefix and delimiter",
    parts("GET", "/b?list-type=2&prefix=data%2F&delimiter=%2F&max-keys=10"),
    op("list_bucket", "b", "", { listPrefix: "data/" }),
  ],
  [
    "ListObjects with an empty prefix",
    parts("GET", "/b?prefix="),
    op("list_bucket", "b", "", { listPrefix: "" }),
  ],
  [
    "ListObjectsV2 paging",
    parts(
      "GET",
      "/b?list-type=2&continuation-token=abc&start-after=x&fetch-owner=true&encoding-type=url",
    ),
    op("list_bucket", "b", "", { listPrefix: "" }),
  ],
  [
    "ListObjects v1 marker",
    parts("GET", "/b?marker=m&prefix=p"),
    op("list_bucket", "b", "", { listPrefix: "p" }),
  ],
  ["GET bucket ?acl", parts("GET", "/b?acl"), unmapped("GET bucket with ?acl")],
  ["GET bucket ?policy", parts("GET", "/b?policy"), unmapped("?policy")],
  [
    "GET bucket ?versions (ListObjectVersions)",
    parts("GET", "/b?versions&prefix=data%2F"),
    unmapped(),
  ],
  ["GET bucket ?uploads (ListMultipartUploads)", parts("GET", "/b?uploads"), unmapped()],
  ["GET bucket ?location", parts("GET", "/b?location"), unmapped()],
  ["GET bucket ?list-type=2&acl", parts("GET", "/b?list-type=2&acl"), unmapped()],
  ["HEAD bucket (HeadBucket)", parts("HEAD", "/b"), unmapped("HEAD bucket")],
  ["PUT bucket (CreateBucket)", parts("PUT", "/b"), unmapped("PUT bucket")],
  ["PUT bucket ?policy", parts("PUT", "/b?policy"), unmapped()],
  ["DELETE bucket (DeleteBucket)", parts("DELETE", "/b"), unmapped("DELETE bucket")],
  ["DELETE bucket ?policy", parts("DELETE", "/b?policy"), unmapped()],
  ["POST bucket ?delete (DeleteObjects)", parts("POST", "/b?delete"), unmapped("?delete")],
  ["POST bucket (browser upload)", parts("POST", "/b"), unmapped()],
  ["GET / (ListBuckets)", parts("GET", "/"), unmapped("ListBuckets")],
  ["GET / with a query (ListBuckets)", parts("GET", "/?prefix=a"), unmapped("ListBuckets")],
  ["HEAD /", parts("HEAD", "/"), unmapped("ListBuckets")],
  ["OPTIONS object", parts("OPTIONS", "/b/k"), unmapped()],
  ["PATCH object", parts("PATCH", "/b/k"), unmapped()],
  // Virtual-hosted buckets: the path is all key.
  ["virtual-hosted GetObject", parts("GET", "/k", { hostBucket: "b" }), op("get_object", "b", "k")],
  [
    "virtual-hosted key that looks like a bucket",
    parts("GET", "/other/k", { hostBucket: "b" }),
    op("get_object", "b", "other/k"),
  ],
  [
    "virtual-hosted dotted bucket",
    parts("PUT", "/a/b.txt", { hostBucket: "my.dotted.bucket" }),
    op("put_object", "my.dotted.bucket", "a/b.txt"),
  ],
  [
    "virtual-hosted list",
    parts("GET", "/?list-type=2&prefix=logs%2F", { hostBucket: "b" }),
    op("list_bucket", "b", "", { listPrefix: "logs/" }),
  ],
  ["virtual-hosted HEAD bucket", parts("HEAD", "/", { hostBucket: "b" }), unmapped("HEAD bucket")],
  [
    "virtual-hosted multipart",
    parts("POST", "/k?uploads", { hostBucket: "b" }),
    op("create_multipart_upload", "b", "k"),
  ],
  // Dot segments.
  ["key with ./", parts("GET", "/b/./k"), unmapped('"." or ".."')],
  ["key with ../", parts("GET", "/b/../k"), unmapped('"." or ".."')],
  ["key with a/../", parts("GET", "/b/a/../k"), unmapped('"." or ".."')],
  ["key ending in /..", parts("GET", "/b/a/.."), unmapped('"." or ".."')],
  ["key ending in /.", parts("PUT", "/b/a/."), unmapped('"." or ".."')],
  ["key %2E%2E (decoded)", parts("GET", "/b/data/%2E%2E/secret"), unmapped('"." or ".."')],
  ["key %2e (decoded)", parts("GET", "/b/%2e/k"), unmapped('"." or ".."')],
  ["key ..%2F (decoded)", parts("GET", "/b/data/..%2Fsecret"), unmapped('"." or ".."')],
  ["virtual-hosted ../", parts("GET", "/../other/k", { hostBucket: "b" }), unmapped('"." or ".."')],
  ["a list of a dot-segment path", parts("GET", "/b/./"), unmapped('"." or ".."')],
  ["a dotfile is not a dot segment", parts("GET", "/b/.hidden"), op("get_object", "b", ".hidden")],
  [
    "'..' inside a name is not a dot segment",
    parts("GET", "/b/a..b"),
    op("get_object", "b", "a..b"),
  ],
  ["'...' is not a dot segment", parts("GET", "/b/.../k"), op("get_object", "b", ".../k")],
  // Copies.
  [
    "CopyObject",
    parts("PUT", "/dst/k", copy("/src/a/b.txt")),
    op("put_object", "dst", "k", { copySource: { bucket: "src", key: "a/b.txt" } }),
  ],
  [
    "CopyObject, source without a leading slash",
    parts("PUT", "/dst/k", copy("src/a/b.txt")),
    op("put_object", "dst", "k", { copySource: { bucket: "src", key: "a/b.txt" } }),
  ],
  [
    "CopyObject, URL-encoded source with ?versionId",
    parts("PUT", "/dst/k", copy("/src/a%20b%2Fc.txt?versionId=3")),
    op("put_object", "dst", "k", { copySource: { bucket: "src", key: "a b/c.txt" } }),
  ],
  [
    "CopyObject, fully encoded source",
    parts("PUT", "/dst/k", copy("%2Fsrc%2Fdir%2Fk")),
    op("put_object", "dst", "k", { copySource: { bucket: "src", key: "dir/k" } }),
  ],
  [
    "CopyObject, encoded '?' stays in the key",
    parts("PUT", "/dst/k", copy("/src/a%3Fb")),
    op("put_object", "dst", "k", { copySource: { bucket: "src", key: "a?b" } }),
  ],
  [
    "CopyObject, UTF-8 source",
    parts("PUT", "/dst/k", copy("/src/caf%C3%A9")),
    op("put_object", "dst", "k", { copySource: { bucket: "src", key: "café" } }),
  ],
  [
    "CopyObject, header name in any case",
    parts("PUT", "/dst/k", { headers: { "X-Amz-Copy-Source": "/src/k" } }),
    op("put_object", "dst", "k", { copySource: { bucket: "src", key: "k" } }),
  ],
  [
    "UploadPartCopy",
    parts("PUT", "/dst/k?partNumber=2&uploadId=u", copy("/src/big")),
    op("upload_part", "dst", "k", { copySource: { bucket: "src", key: "big" } }),
  ],
  [
    "virtual-hosted CopyObject",
    parts("PUT", "/k", { hostBucket: "dst", ...copy("/src/k") }),
    op("put_object", "dst", "k", { copySource: { bucket: "src", key: "k" } }),
  ],
  [
    "copy source without a key",
    parts("PUT", "/dst/k", copy("/src")),
    unmapped("x-amz-copy-source"),
  ],
  [
    "copy source with an empty key",
    parts("PUT", "/dst/k", copy("/src/")),
    unmapped("x-amz-copy-source"),
  ],
  [
    "copy source without a bucket",
    parts("PUT", "/dst/k", copy("//k")),
    unmapped("x-amz-copy-source"),
  ],
  ["empty copy source", parts("PUT", "/dst/k", copy("")), unmapped("x-amz-copy-source")],
  [
    "copy source with ../",
    parts("PUT", "/dst/k", copy("/src/a/../secret")),
    unmapped("x-amz-copy-source"),
  ],
  [
    "copy source with %2E%2E",
    parts("PUT", "/dst/k", copy("/src/%2E%2E/secret")),
    unmapped("x-amz-copy-source"),
  ],
  ["copy source with ./", parts("PUT", "/dst/k", copy("src/./k")), unmapped("x-amz-copy-source")],
  // Issue 20 #9: headers that need their own IAM permission.
  [
    "PutObject with x-amz-acl needs put_object_acl too",
    parts("PUT", "/b/k", { headers: { "X-Amz-Acl": "public-read" } }),
    op("put_object", "b", "k", { alsoNeeds: ["put_object_acl"] }),
  ],
  [
    "PutObject with grants, a lock and tags needs all three",
    parts("PUT", "/b/k", {
      headers: {
        "x-amz-grant-read": "id=1",
        "x-amz-object-lock-mode": "COMPLIANCE",
        "x-amz-tagging": "a=b",
      },
    }),
    op("put_object", "b", "k", {
      alsoNeeds: ["put_object_acl", "put_object_retention", "put_object_tagging"],
    }),
  ],
  [
    "CopyObject with x-amz-object-lock-legal-hold",
    parts("PUT", "/b/k", {
      headers: { "x-amz-copy-source": "/src/k", "x-amz-object-lock-legal-hold": "ON" },
    }),
    op("put_object", "b", "k", {
      copySource: { bucket: "src", key: "k" },
      alsoNeeds: ["put_object_retention"],
    }),
  ],
  [
    "CreateMultipartUpload with x-amz-tagging",
    parts("POST", "/b/k?uploads", { headers: { "x-amz-tagging": "a=b" } }),
    op("create_multipart_upload", "b", "k", { alsoNeeds: ["put_object_tagging"] }),
  ],
  [
    "other x-amz-* headers need nothing more",
    parts("PUT", "/b/k", {
      headers: { "x-amz-meta-acl": "x", "x-amz-storage-class": "STANDARD", "x-amz-tagging-x": "" },
    }),
    op("put_object", "b", "k"),
  ],
  [
    "x-amz-bypass-governance-retention is never scoped",
    parts("DELETE", "/b/k", { headers: { "x-amz-bypass-governance-retention": "true" } }),
    unmapped("x-amz-bypass-governance-retention"),
  ],
  [
    "a copy source with whitespace is refused (SigV4 signs runs of it as one space)",
    parts("PUT", "/dst/k", copy("/src/a  b")),
    unmapped("whitespace"),
  ],
  [
    "a copy header on a GET is not a copy",
    parts("GET", "/b/k", copy("/src/k")),
    op("get_object", "b", "k"),
  ],
];

describe("mapS3Request", () => {
  for (const [label, request, expected] of rows) {
    const query = request.query.map(([k, v]) => (v === "" ? k : `${k}=${v}`)).join("&");
    const target = `${request.method} ${request.hostBucket ? `(bucket ${request.hostBucket}) ` : ""}${request.path}${query ? `?${query}` : ""}`;
    test(`${label}: ${target}`, () => {
      const mapping = mapS3Request(request);
      if ("denied" in expected) {
        assert.equal(mapping.ok, false, `expected a denial, got ${JSON.stringify(mapping)}`);
        if (!mapping.ok) {
          assert.ok(
            mapping.reason.includes(expected.denied),
            `reason "${mapping.reason}" should mention "${expected.denied}"`,
          );
        }
      } else {
        assert.deepEqual(mapping, { ok: true, operation: expected });
      }
    });
  }
});

// Issue 20 #1: the mapping reads the headers as SigV4 signs them, never one of several values.
describe("mapS3Request reads the signed view of the headers", () => {
  const put = (headers: [string, string][]) =>
    mapS3Request({
      method: "PUT",
      hostBucket: undefined,
      path: "/reports/2026/dst",
      query: [],
      headers: new RequestHeaders(headers),
    });

  test("two copy sources are one joined value, as signed: the first one's bucket", () => {
    const m = put([
      ["X-Amz-Copy-Source", "secretbucket/payroll.csv?x="],
      ["x-amz-copy-source", "reports/2026/ok"],
    ]);
    assert.equal(m.ok, true);
    // A server that cuts the signed value at "?" copies secretbucket/payroll.csv: so does policy.
    assert.deepEqual(m.ok && m.operation.copySource, {
      bucket: "secretbucket",
      key: "payroll.csv",
    });
  });

  test("a header SigV4 never signs is not read", () => {
    const headers = new RequestHeaders([
      ["user-agent", "x"],
      ["X-Amz-Copy-Source", "  /src/k  "],
    ]);
    assert.equal(headers.get("user-agent"), undefined);
    assert.equal(headers.get("x-amz-copy-source"), "/src/k");
    assert.equal(headers.count("X-AMZ-COPY-SOURCE"), 1);
  });
});
