import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type AccessScope,
  AccessScopeSchema,
  type Credential,
} from "../../gen/credbroker/v1/credential_pb.js";
import {
  type SignRequestRequest,
  SignRequestRequestSchema,
} from "../../gen/credbroker/v1/signing_service_pb.js";
import type { ErrorCode } from "../../src/core/errors.js";
import type { S3Action } from "../../src/core/s3-actions.js";
import {
  type Payload,
  planSignature,
  type SignPlan,
  type ValidSignRequest,
  validateSignRequest,
} from "../../src/providers/aws/sign-plan.js";
import { accessKeyInput, domainError, edited, FIXED_NOW, tokenInput } from "./fixtures.js";

type RequestInit = MessageInitShape<typeof SignRequestRequestSchema>;

const HEX = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const OTHER_HEX = "a".repeat(64);

/** A GetObject on S3's global endpoint, changed by `init`. */
function request(init: RequestInit = {}): SignRequestRequest {
  return create(SignRequestRequestSchema, {
    namespace: "team-a",
    credential: "s3-writer",
    method: "GET",
    url: "https://s3.amazonaws.com/artifacts/builds/x",
    ...init,
  });
}

const header = (name: string, value: string) => ({ name, value });

// ---------------------------------------------------------------- validateSignRequest

type Accepted = [label: string, init: RequestInit, check: (v: ValidSignRequest) => void];

const accepted: Accepted[] = [
  [
    "a plain GET",
    {},
    (v) => {
      assert.equal(v.namespace, "team-a");
      assert.equal(v.credential, "s3-writer");
      assert.equal(v.method, "GET");
      assert.equal(v.url.host, "s3.amazonaws.com");
      assert.equal(v.url.path, "/artifacts/builds/x");
      assert.deepEqual(v.headers.list, []);
      assert.deepEqual(v.payload, { kind: "none" });
      assert.equal(v.region, "");
      assert.equal(v.service, "");
      assert.equal(v.presignExpiresSeconds, undefined);
      assert.equal(v.normalizePath, undefined);
    },
  ],
  ["the provider default credential", { credential: "" }, (v) => assert.equal(v.credential, "")],
  ["the workspace namespace", { namespace: "" }, (v) => assert.equal(v.namespace, "")],
  ["a lower-case method", { method: "get" }, (v) => assert.equal(v.method, "get")],
  ["an extension method", { method: "PROPFIND" }, (v) => assert.equal(v.method, "PROPFIND")],
  [
    "headers kept in order, names as given",
    {
      headers: [
        header("Content-Type", "text/plain"),
        header("x-custom", "1"),
        header("X-Custom", "2"),
      ],
    },
    (v) => {
      assert.deepEqual(v.headers.list, [
        ["Content-Type", "text/plain"],
        ["x-custom", "1"],
        ["X-Custom", "2"],
      ]);
      // A repeated header that changes nothing S3 does is one header, as SigV4 signs it.
      assert.equal(v.headers.get("x-custom"), "1,2");
    },
  ],
  [
    "a tab and UTF-8 in a header value",
    { headers: [header("x-amz-meta-note", "a\tb é")] },
    (v) => assert.deepEqual(v.headers.list, [["x-amz-meta-note", "a\tb é"]]),
  ],
  [
    "a host header equal to the URL's authority",
    { headers: [header("Host", "s3.amazonaws.com")] },
    (v) => assert.deepEqual(v.headers.list, [["Host", "s3.amazonaws.com"]]),
  ],
  [
    "a host header differing only in case",
    { headers: [header("host", "S3.AmazonAWS.com")] },
    (v) => assert.equal(v.headers.list.length, 1),
  ],
  [
    "a host header with the URL's port",
    { url: "http://127.0.0.1:8080/b/k", headers: [header("Host", "127.0.0.1:8080")] },
    (v) => assert.equal(v.url.port, 8080),
  ],
  [
    "presign 0 signs headers",
    { presignExpiresSeconds: 0 },
    (v) => assert.equal(v.presignExpiresSeconds, undefined),
  ],
  ["presign 1", { presignExpiresSeconds: 1 }, (v) => assert.equal(v.presignExpiresSeconds, 1)],
  [
    "presign 604800",
    { presignExpiresSeconds: 604800 },
    (v) => assert.equal(v.presignExpiresSeconds, 604800),
  ],
  [
    "a body",
    { payload: { case: "body", value: new Uint8Array([1, 2, 3]) } },
    (v) => assert.deepEqual(v.payload, { kind: "body", body: new Uint8Array([1, 2, 3]) }),
  ],
  [
    "payload_sha256 hex",
    { payload: { case: "payloadSha256", value: HEX } },
    (v) => assert.deepEqual(v.payload, { kind: "hash", value: HEX }),
  ],
  [
    "payload_sha256 UNSIGNED-PAYLOAD",
    { payload: { case: "payloadSha256", value: "UNSIGNED-PAYLOAD" } },
    (v) => assert.deepEqual(v.payload, { kind: "hash", value: "UNSIGNED-PAYLOAD" }),
  ],
  [
    "payload_sha256 STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    { payload: { case: "payloadSha256", value: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" } },
    (v) =>
      assert.deepEqual(v.payload, { kind: "hash", value: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" }),
  ],
  [
    "payload_sha256 STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    { payload: { case: "payloadSha256", value: "STREAMING-UNSIGNED-PAYLOAD-TRAILER" } },
    (v) =>
      assert.deepEqual(v.payload, { kind: "hash", value: "STREAMING-UNSIGNED-PAYLOAD-TRAILER" }),
  ],
  [
    "unsigned_payload true",
    { payload: { case: "unsignedPayload", value: true } },
    (v) => assert.deepEqual(v.payload, { kind: "unsigned" }),
  ],
  [
    "unsigned_payload false is no payload field",
    { payload: { case: "unsignedPayload", value: false } },
    (v) => assert.deepEqual(v.payload, { kind: "none" }),
  ],
  [
    "the x-amz-content-sha256 header is used when no payload is given",
    { headers: [header("X-Amz-Content-Sha256", HEX)] },
    (v) => assert.deepEqual(v.payload, { kind: "hash", value: HEX }),
  ],
  [
    "an UNSIGNED-PAYLOAD header when no payload is given",
    { headers: [header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")] },
    (v) => assert.deepEqual(v.payload, { kind: "hash", value: "UNSIGNED-PAYLOAD" }),
  ],
  [
    "an x-amz-content-sha256 header that agrees with payload_sha256",
    {
      headers: [header("x-amz-content-sha256", HEX)],
      payload: { case: "payloadSha256", value: HEX },
    },
    (v) => assert.deepEqual(v.payload, { kind: "hash", value: HEX }),
  ],
  [
    "an UNSIGNED-PAYLOAD header that agrees with unsigned_payload",
    {
      headers: [header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")],
      payload: { case: "unsignedPayload", value: true },
    },
    (v) => assert.deepEqual(v.payload, { kind: "unsigned" }),
  ],
  [
    "an x-amz-content-sha256 header that is the hash of the body",
    {
      headers: [header("x-amz-content-sha256", HEX)],
      payload: { case: "body", value: new Uint8Array() },
    },
    (v) => assert.equal(v.payload.kind, "body"),
  ],
  [
    "region and service kept",
    { region: "eu-west-1", service: "s3" },
    (v) => assert.deepEqual([v.region, v.service], ["eu-west-1", "s3"]),
  ],
  ["normalize_path false", { normalizePath: false }, (v) => assert.equal(v.normalizePath, false)],
  ["normalize_path true", { normalizePath: true }, (v) => assert.equal(v.normalizePath, true)],
  [
    "200 headers",
    { headers: Array.from({ length: 200 }, (_, i) => header(`x-amz-meta-h${i}`, "v")) },
    (v) => assert.equal(v.headers.list.length, 200),
  ],
];

describe("validateSignRequest accepts", () => {
  for (const [label, init, check] of accepted) {
    test(label, () => {
      check(validateSignRequest(request(init)));
    });
  }
});

type Rejected = [label: string, init: RequestInit, fragments: string[]];

const rejected: Rejected[] = [
  ["a bad namespace", { namespace: "team a" }, ["namespace"]],
  ["a bad credential name", { credential: "bad/name" }, ["credential"]],
  ["an empty method", { method: "" }, ["method"]],
  ["a method with a space", { method: "GE T" }, ["method"]],
  ["a method with a newline", { method: "GET\n" }, ["method"]],
  ["a method with a colon", { method: "GET:" }, ["method"]],
  ["a URL without a scheme", { url: "s3.amazonaws.com/b/k" }, ["url"]],
  ["an ftp URL", { url: "ftp://s3.amazonaws.com/b/k" }, ["url"]],
  ["a URL with a fragment", { url: "https://s3.amazonaws.com/b/k#f" }, ["url"]],
  ["a URL with user info", { url: "https://u@s3.amazonaws.com/b/k" }, ["url"]],
  ["a URL with port 0", { url: "https://s3.amazonaws.com:0/b/k" }, ["url"]],
  ["a header name with a space", { headers: [header("x amz", "v")] }, ["headers[0].name"]],
  ["an empty header name", { headers: [header("", "v")] }, ["headers[0].name"]],
  ["a header name with a colon", { headers: [header("a:b", "v")] }, ["headers[0].name"]],
  [
    "the second header's name",
    { headers: [header("x-ok", "v"), header("bad name", "v")] },
    ["headers[1].name"],
  ],
  [
    "CR LF in a header value",
    { headers: [header("x-amz-meta-a", "v\r\nInjected: 1")] },
    ["headers[0].value", "x-amz-meta-a"],
  ],
  ["LF in a header value", { headers: [header("x-amz-meta-a", "v\n")] }, ["headers[0].value"]],
  ["CR in a header value", { headers: [header("x-amz-meta-a", "v\r")] }, ["headers[0].value"]],
  ["NUL in a header value", { headers: [header("x-amz-meta-a", "v\u0000")] }, ["headers[0].value"]],
  [
    "x-amz-date given",
    { headers: [header("x-amz-date", "20300102T030405Z")] },
    ["headers[0]", "x-amz-date"],
  ],
  [
    "X-Amz-Date given in any case",
    { headers: [header("X-Amz-Date", "20300102T030405Z")] },
    ["x-amz-date"],
  ],
  [
    "x-amz-security-token given",
    { headers: [header("x-ok", "v"), header("X-Amz-Security-Token", "t")] },
    ["headers[1]", "x-amz-security-token"],
  ],
  [
    "a host header for another host",
    { headers: [header("Host", "evil.example.com")] },
    ["headers[0]", "host"],
  ],
  [
    "a host header without the URL's port",
    { url: "http://127.0.0.1:8080/b/k", headers: [header("Host", "127.0.0.1")] },
    ["headers[0]", "host"],
  ],
  [
    "a host header with a port the URL lacks",
    { headers: [header("host", "s3.amazonaws.com:443")] },
    ["headers[0]", "host"],
  ],
  ["presign -1", { presignExpiresSeconds: -1 }, ["presign_expires_seconds"]],
  ["presign 604801", { presignExpiresSeconds: 604801 }, ["presign_expires_seconds"]],
  [
    "payload_sha256 too short",
    { payload: { case: "payloadSha256", value: "abc" } },
    ["payload_sha256"],
  ],
  ["payload_sha256 empty", { payload: { case: "payloadSha256", value: "" } }, ["payload_sha256"]],
  [
    "payload_sha256 upper-case hex",
    { payload: { case: "payloadSha256", value: HEX.toUpperCase() } },
    ["payload_sha256"],
  ],
  [
    "payload_sha256 65 digits",
    { payload: { case: "payloadSha256", value: `${HEX}0` } },
    ["payload_sha256"],
  ],
  [
    "payload_sha256 non-hex",
    { payload: { case: "payloadSha256", value: "g".repeat(64) } },
    ["payload_sha256"],
  ],
  [
    "payload_sha256 lower-case unsigned-payload",
    { payload: { case: "payloadSha256", value: "unsigned-payload" } },
    ["payload_sha256"],
  ],
  [
    "payload_sha256 bare STREAMING-",
    { payload: { case: "payloadSha256", value: "STREAMING-" } },
    ["payload_sha256"],
  ],
  [
    "an x-amz-content-sha256 header that is not a hash",
    { headers: [header("x-amz-content-sha256", "nothex")] },
    ["x-amz-content-sha256"],
  ],
  [
    "an x-amz-content-sha256 header that disagrees with payload_sha256",
    {
      headers: [header("x-amz-content-sha256", OTHER_HEX)],
      payload: { case: "payloadSha256", value: HEX },
    },
    ["x-amz-content-sha256", "differs"],
  ],
  [
    "an x-amz-content-sha256 header beside a body it is not the hash of",
    {
      headers: [header("x-amz-content-sha256", OTHER_HEX)],
      payload: { case: "body", value: new Uint8Array() },
    },
    ["x-amz-content-sha256", "differs"],
  ],
  [
    "a hash header beside unsigned_payload",
    {
      headers: [header("x-amz-content-sha256", HEX)],
      payload: { case: "unsignedPayload", value: true },
    },
    ["x-amz-content-sha256", "differs"],
  ],
  [
    "201 headers",
    { headers: Array.from({ length: 201 }, (_, i) => header(`x-amz-meta-h${i}`, "v")) },
    ["headers: at most 200"],
  ],
  // Issue 20 #1: SigV4 signs a repeated header as one joined value; servers read one of them.
  [
    "x-amz-copy-source twice, in two letter cases",
    {
      method: "PUT",
      headers: [
        header("X-Amz-Copy-Source", "secretbucket/payroll.csv?x="),
        header("x-amz-copy-source", "artifacts/builds/ok"),
      ],
    },
    ["headers[1]", "repeats headers[0]"],
  ],
  [
    "range twice",
    { headers: [header("Range", "bytes=0-1"), header("range", "bytes=5-9")] },
    ["headers[1]", "repeats headers[0]"],
  ],
  [
    "an x-amz-meta header twice",
    { headers: [header("x-ok", "v"), header("x-amz-meta-a", "1"), header("X-AMZ-META-A", "2")] },
    ["headers[2]", "repeats headers[1]"],
  ],
  [
    "content-type twice",
    { headers: [header("content-type", "a/b"), header("Content-Type", "c/d")] },
    ["headers[1]"],
  ],
  // Issue 20 #6: a second X-Amz-Expires (or Date, Credential, …) beside the signer's.
  ...(
    [
      "X-Amz-Expires=604800",
      "x-amz-expires=604800",
      "X-AMZ-DATE=20300101T000000Z",
      "X-Amz-Security-Token=t",
      "X-Amz-Credential=AKIA%2F20260101%2Fus-east-1%2Fs3%2Faws4_request",
      "X-Amz-Signature=00",
      "X-Amz-SignedHeaders=host",
      "X-Amz-Algorithm=AWS4-HMAC-SHA256",
      "X-Amz-%45xpires=604800",
    ] as const
  ).flatMap((param): Rejected[] => [
    [
      `${param} in the query, header mode`,
      { url: `https://s3.amazonaws.com/artifacts/builds/x?a=1&${param}` },
      ["url: query parameter 2", "X-Amz-*"],
    ],
    [
      `${param} in the query, presigned`,
      { url: `https://s3.amazonaws.com/artifacts/builds/x?${param}`, presignExpiresSeconds: 60 },
      ["url: query parameter 1", "X-Amz-*"],
    ],
  ]),
  [
    "an x-amz-expires header (presigned, it would become a second X-Amz-Expires)",
    { headers: [header("X-Amz-Expires", "604800")], presignExpiresSeconds: 60 },
    ["headers[0]", "x-amz-expires", "set by the signer"],
  ],
  [
    "an x-amz-signedheaders header",
    { headers: [header("x-amz-signedheaders", "host")] },
    ["headers[0]", "set by the signer"],
  ],
  [
    "presigned: an x-amz-* header also in the URL's query",
    {
      url: "https://s3.amazonaws.com/artifacts/builds/x?X-Amz-Meta-A=1",
      headers: [header("x-amz-meta-a", "2")],
      presignExpiresSeconds: 60,
    },
    ["headers[0]", "query parameter"],
  ],
];

describe("validateSignRequest rejects", () => {
  for (const [label, init, fragments] of rejected) {
    test(label, () => {
      assert.throws(
        () => validateSignRequest(request(init)),
        domainError("invalid_argument", ...fragments),
      );
    });
  }
});

// ---------------------------------------------------------------- planSignature

const scope = (bucket: string, prefixes: string[], actions: S3Action[]): AccessScope =>
  create(AccessScopeSchema, { bucket, prefixes, actions });

/** An access_key credential, region us-east-1, AWS hosts only, no scopes; changed by `mutate`. */
const cred = (mutate: (c: Credential) => void = () => {}): Credential =>
  edited(accessKeyInput(), (c) => {
    c.allowedHosts = [];
    c.allowedScopes = [];
    mutate(c);
  });

const OPEN = cred();
const IN_STOCKHOLM = cred((c) => {
  c.region = "eu-north-1";
});
const COMPAT = cred((c) => {
  c.allowedHosts = ["127.0.0.1", "[::1]", "minio.example.com"];
});
const NO_REGION = cred((c) => {
  c.region = "";
  c.allowedHosts = ["127.0.0.1"];
});
/** AWS hosts only; artifacts/builds/ (read, write, list) and my.dotted.bucket (read). */
const SCOPED = cred((c) => {
  c.allowedScopes = [
    scope("artifacts", ["builds/"], ["get_object", "put_object", "list_bucket"]),
    scope("my.dotted.bucket", [], ["get_object"]),
    scope("s3-logs", [], ["get_object"]),
    scope("public", [], ["get_object"]),
  ];
});
const COMPAT_SCOPED = cred((c) => {
  c.allowedHosts = ["127.0.0.1", "[::1]"];
  c.allowedScopes = [scope("artifacts", ["builds/"], ["get_object", "put_object"])];
});
/** artifacts/builds/: put_object and create_multipart_upload only. */
const PUT_ONLY = cred((c) => {
  c.allowedScopes = [scope("artifacts", ["builds/"], ["put_object", "create_multipart_upload"])];
});
/** artifacts/builds/: put_object with ACLs, object locks and tags. */
const PUT_WITH_EXTRAS = cred((c) => {
  c.allowedScopes = [
    scope("artifacts", ["builds/"], ["put_object", "create_multipart_upload"]),
    scope(
      "artifacts",
      ["builds/"],
      ["put_object_acl", "put_object_retention", "put_object_tagging"],
    ),
    scope("artifacts", ["builds/"], ["delete_object", "put_object_retention"]),
  ];
});
const inAnHour = (c: Credential) => {
  c.expiresAt = timestampFromDate(new Date(FIXED_NOW.getTime() + 3600_000));
};

type Expected = Partial<
  Pick<SignPlan, "service" | "region" | "s3PathRules" | "payloadHeader" | "presignExpiresSeconds">
> & {
  payload?: Payload;
  notAfter?: Date;
};
type PlanRow = [
  label: string,
  init: RequestInit,
  credential: Credential,
  expected: Expected | [ErrorCode, ...string[]],
];

const deny = (rule: string, ...fragments: string[]): [ErrorCode, ...string[]] => [
  "permission_denied",
  rule,
  ...fragments,
];
const S3_OBJECT = "/artifacts/builds/x";

const planRows: PlanRow[] = [
  // Service and region.
  ["s3 global", {}, OPEN, { service: "s3", region: "us-east-1" }],
  [
    "s3 regional",
    { url: `https://s3.eu-west-1.amazonaws.com${S3_OBJECT}` },
    OPEN,
    { service: "s3", region: "eu-west-1" },
  ],
  [
    "s3 legacy s3-REGION",
    { url: `https://s3-ap-south-1.amazonaws.com${S3_OBJECT}` },
    OPEN,
    { service: "s3", region: "ap-south-1" },
  ],
  [
    "s3 China",
    { url: `https://s3.cn-north-1.amazonaws.com.cn${S3_OBJECT}` },
    OPEN,
    { service: "s3", region: "cn-north-1" },
  ],
  [
    "sts global",
    { url: "https://sts.amazonaws.com/", method: "POST" },
    OPEN,
    { service: "sts", region: "us-east-1" },
  ],
  [
    "sts regional",
    { url: "https://sts.eu-central-1.amazonaws.com/", method: "POST" },
    OPEN,
    { service: "sts", region: "eu-central-1" },
  ],
  [
    "iam global",
    { url: "https://iam.amazonaws.com/?Action=ListUsers" },
    OPEN,
    { service: "iam", region: "us-east-1" },
  ],
  [
    "ec2 regional",
    { url: "https://ec2.us-west-2.amazonaws.com/?Action=DescribeInstances" },
    OPEN,
    { service: "ec2", region: "us-west-2" },
  ],
  [
    "the request's region beats the host's",
    { url: `https://s3.eu-west-1.amazonaws.com${S3_OBJECT}`, region: "ap-south-1" },
    OPEN,
    { service: "s3", region: "ap-south-1" },
  ],
  [
    "the request's service beats the host's",
    { url: "https://sts.amazonaws.com/", service: "iam" },
    OPEN,
    { service: "iam", region: "us-east-1" },
  ],
  [
    "the host's region beats the credential's",
    { url: `https://s3.eu-west-1.amazonaws.com${S3_OBJECT}` },
    IN_STOCKHOLM,
    { region: "eu-west-1" },
  ],
  [
    "the request's region beats the credential's",
    { url: "http://127.0.0.1:8080/b/k", service: "s3", region: "us-west-1" },
    COMPAT,
    { region: "us-west-1" },
  ],
  [
    "a non-AWS host: the credential's region",
    { url: "http://127.0.0.1:8080/b/k", service: "s3" },
    COMPAT,
    { service: "s3", region: "us-east-1" },
  ],
  [
    "a non-AWS host: the credential's other region",
    { url: "https://minio.example.com/b/k", service: "s3" },
    edited(COMPAT, (c) => {
      c.region = "eu-north-1";
    }),
    { region: "eu-north-1" },
  ],
  [
    "a non-AWS host without a service",
    { url: "http://127.0.0.1:8080/b/k" },
    COMPAT,
    ["invalid_argument", "service", "not an AWS endpoint"],
  ],
  [
    "no region anywhere",
    { url: "http://127.0.0.1:8080/b/k", service: "s3" },
    NO_REGION,
    ["invalid_argument", "region", "URL's host"],
  ],
  [
    "no credential region, but the request's",
    { url: "http://127.0.0.1:8080/b/k", service: "s3", region: "us-east-2" },
    NO_REGION,
    { region: "us-east-2" },
  ],
  [
    "no credential region, but the host's",
    { url: "https://sts.eu-west-3.amazonaws.com/" },
    edited(OPEN, (c) => {
      c.region = "";
    }),
    { region: "eu-west-3" },
  ],
  // Path rules.
  ["s3: S3 path rules", {}, OPEN, { s3PathRules: true }],
  ["sts: generic path rules", { url: "https://sts.amazonaws.com/" }, OPEN, { s3PathRules: false }],
  [
    "s3 with normalize_path true: generic rules",
    { normalizePath: true },
    OPEN,
    { s3PathRules: false },
  ],
  ["s3 with normalize_path false: S3 rules", { normalizePath: false }, OPEN, { s3PathRules: true }],
  [
    "sts with normalize_path false: S3 rules",
    { url: "https://sts.amazonaws.com/", normalizePath: false },
    OPEN,
    { s3PathRules: true },
  ],
  [
    "an S3-compatible host with service s3: S3 rules",
    { url: "http://127.0.0.1:8080/b/k", service: "s3" },
    COMPAT,
    { s3PathRules: true },
  ],
  // Payload header.
  [
    "s3 without a payload signs the payload header",
    {},
    OPEN,
    { payloadHeader: true, payload: { kind: "none" } },
  ],
  [
    "sts without a payload does not",
    { url: "https://sts.amazonaws.com/" },
    OPEN,
    { payloadHeader: false },
  ],
  [
    "sts with a body does",
    {
      url: "https://sts.amazonaws.com/",
      method: "POST",
      payload: { case: "body", value: new Uint8Array([1]) },
    },
    OPEN,
    { payloadHeader: true },
  ],
  [
    "sts with payload_sha256 does",
    { url: "https://sts.amazonaws.com/", payload: { case: "payloadSha256", value: HEX } },
    OPEN,
    { payloadHeader: true },
  ],
  [
    "sts with unsigned_payload does",
    { url: "https://sts.amazonaws.com/", payload: { case: "unsignedPayload", value: true } },
    OPEN,
    { payloadHeader: true },
  ],
  [
    "sts with an x-amz-content-sha256 header does",
    { url: "https://sts.amazonaws.com/", headers: [header("x-amz-content-sha256", HEX)] },
    OPEN,
    { payloadHeader: true, payload: { kind: "hash", value: HEX } },
  ],
  // Presigning against the credential's expiry.
  [
    "presign without an expiry",
    { presignExpiresSeconds: 604800 },
    OPEN,
    { presignExpiresSeconds: 604800, notAfter: undefined },
  ],
  [
    "presign up to the expiry",
    { presignExpiresSeconds: 3600 },
    cred(inAnHour),
    { presignExpiresSeconds: 3600, notAfter: new Date(FIXED_NOW.getTime() + 3600_000) },
  ],
  [
    "presign a second past the expiry",
    { presignExpiresSeconds: 3601 },
    cred(inAnHour),
    ["invalid_argument", "presign_expires_seconds", "2030-01-02T04:04:05.000Z"],
  ],
  [
    "headers signed near the expiry",
    {},
    cred(inAnHour),
    { presignExpiresSeconds: undefined, notAfter: new Date(FIXED_NOW.getTime() + 3600_000) },
  ],
  // Denials pass through.
  [
    "disabled",
    {},
    cred((c) => {
      c.enabled = false;
    }),
    deny("AccessDenied"),
  ],
  [
    "expired",
    {},
    cred((c) => {
      c.expiresAt = timestampFromDate(FIXED_NOW);
    }),
    deny("ExpiredCredentials"),
  ],
  [
    "a token credential",
    { url: "https://api.github.com/user", service: "execute-api", region: "us-east-1" },
    tokenInput(),
    ["failed_precondition", "token"],
  ],
  [
    "a host not allowed",
    { url: "https://minio.example.com/b/k", service: "s3" },
    OPEN,
    deny("HostNotAllowed", "AWS endpoints"),
  ],
  [
    "evilamazonaws.com",
    { url: "https://s3.evilamazonaws.com/b/k", service: "s3" },
    OPEN,
    deny("HostNotAllowed", "AWS endpoints"),
  ],
  [
    "an AWS name under another domain",
    { url: "https://s3.amazonaws.com.evil.com/b/k", service: "s3" },
    OPEN,
    deny("HostNotAllowed"),
  ],
  [
    "a denial is not a presign error",
    { presignExpiresSeconds: 3601 },
    cred((c) => {
      inAnHour(c);
      c.enabled = false;
    }),
    deny("AccessDenied"),
  ],
  // Hosts: ports and case.
  [
    "an S3-compatible host: the port is ignored",
    { url: "http://127.0.0.1:9000/b/k", service: "s3" },
    COMPAT,
    { service: "s3" },
  ],
  [
    "an IPv6 literal with a port",
    { url: "http://[::1]:9000/b/k", service: "s3" },
    COMPAT,
    { service: "s3" },
  ],
  [
    "an upper-case AWS host",
    { url: "https://S3.EU-WEST-1.AmazonAWS.com/artifacts/builds/x" },
    SCOPED,
    { service: "s3", region: "eu-west-1" },
  ],
  // Scoped credentials, end to end.
  ["scoped: path-style in scope", {}, SCOPED, { service: "s3" }],
  [
    "scoped: path-style outside the prefix",
    { url: "https://s3.amazonaws.com/artifacts/secret/x" },
    SCOPED,
    deny("ActionNotInScope", "get_object"),
  ],
  [
    "scoped: virtual-hosted global",
    { url: "https://artifacts.s3.amazonaws.com/builds/x" },
    SCOPED,
    { service: "s3", region: "us-east-1" },
  ],
  [
    "scoped: virtual-hosted regional",
    { url: "https://artifacts.s3.eu-west-1.amazonaws.com/builds/x" },
    SCOPED,
    { region: "eu-west-1" },
  ],
  [
    "scoped: virtual-hosted legacy",
    { url: "https://artifacts.s3-eu-west-1.amazonaws.com/builds/x" },
    SCOPED,
    { region: "eu-west-1" },
  ],
  [
    "scoped: virtual-hosted dotted bucket",
    { url: "https://my.dotted.bucket.s3.us-west-2.amazonaws.com/any/key" },
    SCOPED,
    { region: "us-west-2" },
  ],
  [
    "scoped: virtual-hosted outside the prefix",
    { url: "https://artifacts.s3.amazonaws.com/secret/x" },
    SCOPED,
    deny("ActionNotInScope", "get_object"),
  ],
  [
    "scoped: virtual-hosted, path naming another bucket",
    { url: "https://artifacts.s3.amazonaws.com/my.dotted.bucket/k" },
    SCOPED,
    deny("ActionNotInScope", "get_object"),
  ],
  [
    "scoped: virtual-hosted list of the prefix",
    { url: "https://artifacts.s3.amazonaws.com/?list-type=2&prefix=builds%2F" },
    SCOPED,
    { service: "s3" },
  ],
  [
    "scoped: list of the whole bucket",
    { url: "https://artifacts.s3.amazonaws.com/?list-type=2" },
    SCOPED,
    deny("ActionNotInScope", "list_bucket"),
  ],
  [
    "scoped: virtual-hosted bucket named s3-logs",
    { url: "https://s3-logs.s3.amazonaws.com/2024/01/x.log" },
    SCOPED,
    { service: "s3", region: "us-east-1" },
  ],
  // The request reads bucket s3-secret, key public/x: the scope on bucket "public" must not cover it.
  [
    "scoped: s3-… bucket host not mistaken for path-style",
    { url: "https://s3-secret.s3.amazonaws.com/public/x", region: "us-east-1" },
    SCOPED,
    deny("ActionNotInScope"),
  ],
  [
    "scoped: ListBuckets",
    { url: "https://s3.amazonaws.com/" },
    SCOPED,
    deny("OperationNotScoped", "ListBuckets"),
  ],
  [
    "scoped: PUT ?acl",
    { method: "PUT", url: "https://s3.amazonaws.com/artifacts/builds/x?acl" },
    SCOPED,
    deny("OperationNotScoped", "?acl"),
  ],
  [
    "scoped: %2E%2E out of the prefix",
    { url: "https://s3.amazonaws.com/artifacts/builds/%2E%2E/secret" },
    SCOPED,
    deny("OperationNotScoped", '".."'),
  ],
  [
    "scoped: %2e%2e, virtual-hosted",
    { url: "https://artifacts.s3.amazonaws.com/builds/%2e%2e/secret" },
    SCOPED,
    deny("OperationNotScoped"),
  ],
  [
    "scoped: ../ with generic path rules",
    { url: "https://s3.amazonaws.com/artifacts/builds/../secret", normalizePath: true },
    SCOPED,
    deny("OperationNotScoped"),
  ],
  [
    "scoped: a non-S3 service",
    { url: "https://sts.amazonaws.com/", method: "POST" },
    SCOPED,
    deny("OperationNotScoped", "sts"),
  ],
  [
    "scoped: service s3 given in another case is not S3",
    { service: "S3" },
    SCOPED,
    deny("OperationNotScoped"),
  ],
  [
    "scoped: copy within scope",
    { method: "PUT", headers: [header("X-Amz-Copy-Source", "/artifacts/builds/old")] },
    SCOPED,
    { service: "s3" },
  ],
  [
    "scoped: copy, encoded source with versionId",
    {
      method: "PUT",
      headers: [header("x-amz-copy-source", "artifacts%2Fbuilds%2Fold%20one?versionId=2")],
    },
    SCOPED,
    { service: "s3" },
  ],
  [
    "scoped: copy from outside the scope",
    { method: "PUT", headers: [header("x-amz-copy-source", "/artifacts/secret")] },
    SCOPED,
    deny("ActionNotInScope", "copy source"),
  ],
  // Issue 20 #9: headers that need their own IAM permission need their own scope action.
  ...(
    [
      ["x-amz-acl", "public-read", "put_object_acl"],
      [
        "X-Amz-Grant-Read",
        'uri="http://acs.amazonaws.com/groups/global/AllUsers"',
        "put_object_acl",
      ],
      ["x-amz-grant-full-control", "id=123", "put_object_acl"],
      ["x-amz-object-lock-mode", "COMPLIANCE", "put_object_retention"],
      ["x-amz-object-lock-retain-until-date", "2099-01-01T00:00:00Z", "put_object_retention"],
      ["x-amz-object-lock-legal-hold", "ON", "put_object_retention"],
      ["x-amz-tagging", "a=b", "put_object_tagging"],
    ] as const
  ).flatMap(([name, value, action]): PlanRow[] => [
    [
      `put_object only: ${name} refused`,
      { method: "PUT", headers: [header(name, value)] },
      PUT_ONLY,
      deny("ActionNotInScope", action),
    ],
    [
      `put_object only: ${name} on a multipart upload refused`,
      {
        method: "POST",
        url: `https://s3.amazonaws.com${S3_OBJECT}?uploads`,
        headers: [header(name, value)],
      },
      PUT_ONLY,
      deny("ActionNotInScope", action),
    ],
    [
      `with ${action}: ${name} signed`,
      { method: "PUT", headers: [header(name, value)] },
      PUT_WITH_EXTRAS,
      { service: "s3" },
    ],
    [
      `with ${action}: ${name} on a copy signed`,
      {
        method: "PUT",
        headers: [header(name, value), header("x-amz-copy-source", "/artifacts/builds/old")],
      },
      cred((c) => {
        c.allowedScopes = [
          ...PUT_WITH_EXTRAS.allowedScopes,
          scope("artifacts", ["builds/"], ["get_object"]),
        ];
      }),
      { service: "s3" },
    ],
  ]),
  [
    "an ACL header outside the prefix of the scope that names put_object_acl",
    {
      method: "PUT",
      url: "https://s3.amazonaws.com/artifacts/other/x",
      headers: [header("x-amz-acl", "public-read")],
    },
    cred((c) => {
      c.allowedScopes = [
        scope("artifacts", [], ["put_object"]),
        scope("artifacts", ["builds/"], ["put_object_acl"]),
      ];
    }),
    deny("ActionNotInScope", "put_object_acl"),
  ],
  [
    "put_object only: a plain PUT with other x-amz-* headers signed",
    {
      method: "PUT",
      headers: [header("x-amz-meta-a", "1"), header("x-amz-storage-class", "STANDARD")],
    },
    PUT_ONLY,
    { service: "s3" },
  ],
  [
    "an upload part ignores ACL headers (S3 does too)",
    {
      method: "PUT",
      url: `https://s3.amazonaws.com${S3_OBJECT}?partNumber=1&uploadId=u`,
      headers: [header("x-amz-acl", "public-read")],
    },
    cred((c) => {
      c.allowedScopes = [scope("artifacts", ["builds/"], ["upload_part"])];
    }),
    { service: "s3" },
  ],
  [
    "x-amz-bypass-governance-retention on a DELETE: no scope action grants it",
    {
      method: "DELETE",
      headers: [header("x-amz-bypass-governance-retention", "true")],
    },
    PUT_WITH_EXTRAS,
    deny("OperationNotScoped", "x-amz-bypass-governance-retention"),
  ],
  ["a DELETE without it is signed", { method: "DELETE" }, PUT_WITH_EXTRAS, { service: "s3" }],
  // Issue 20 #1: SigV4 signs whitespace runs as one space, so a copy source with
  // whitespace could be sent other than checked ("data/a  b" signed as "data/a b").
  [
    "scoped: a copy source with raw whitespace",
    { method: "PUT", headers: [header("x-amz-copy-source", "/artifacts/builds/a  b")] },
    SCOPED,
    deny("OperationNotScoped", "x-amz-copy-source", "whitespace"),
  ],
  [
    "scoped: a copy source with a tab",
    { method: "PUT", headers: [header("x-amz-copy-source", "/artifacts/builds/a\tb")] },
    SCOPED,
    deny("OperationNotScoped", "whitespace"),
  ],
  [
    "scoped: a copy source trimmed as signed",
    { method: "PUT", headers: [header("x-amz-copy-source", "  /artifacts/builds/old ")] },
    SCOPED,
    { service: "s3" },
  ],
  [
    "scoped: S3-compatible path-style in scope",
    { url: "http://127.0.0.1:8080/artifacts/builds/x", service: "s3" },
    COMPAT_SCOPED,
    { service: "s3", region: "us-east-1" },
  ],
  [
    "scoped: S3-compatible path-style outside",
    { url: "http://127.0.0.1:8080/other/builds/x", service: "s3" },
    COMPAT_SCOPED,
    deny("ActionNotInScope", "get_object"),
  ],
  [
    "scoped: S3-compatible IPv6 in scope",
    { method: "PUT", url: "http://[::1]:9000/artifacts/builds/x", service: "s3" },
    COMPAT_SCOPED,
    { service: "s3" },
  ],
];

describe("planSignature", () => {
  for (const [label, init, credential, expected] of planRows) {
    test(label, () => {
      const valid = validateSignRequest(request(init));
      if (Array.isArray(expected)) {
        const [code, ...fragments] = expected;
        assert.throws(
          () => planSignature(valid, credential, FIXED_NOW),
          domainError(code, ...fragments),
        );
        return;
      }
      const plan = planSignature(valid, credential, FIXED_NOW);
      const picked = Object.fromEntries(
        Object.keys(expected).map((k) => [k, plan[k as keyof SignPlan]]),
      );
      assert.deepEqual(picked, expected);
      assert.equal(plan.now, FIXED_NOW);
      assert.equal(plan.url, valid.url);
    });
  }
});
