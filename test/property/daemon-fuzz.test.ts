/**
 * Fuzzing one real daemon (spawned `credbroker serve`, with IMDS and the
 * container endpoint on, and the fake STS behind it):
 *   - random bytes as the body of every RPC of every service, over gRPC
 *     (HTTP/2, framed and unframed, with random encodings and deadlines) and
 *     Connect (application/proto and application/json, HTTP/1.1 and HTTP/2,
 *     and Connect GET);
 *   - random but well-formed messages, built from the request descriptors
 *     with values drawn towards what the daemon checks (the seeded
 *     credentials' names, S3 and STS URLs, Unicode), over gRPC and Connect
 *     (binary and JSON, HTTP/1.1 and HTTP/2), as admin, as a signer, without
 *     a token and with a wrong one;
 *   - random methods, paths, headers and bodies to the IMDS and container
 *     endpoints, and random bytes to every listener.
 * Properties: every answer carries a valid gRPC status or Connect code (an
 * HTTP status below 500 for IMDS and container), never `internal` or
 * `unknown` (those mean an exception escaped a handler; the one exception is
 * connect-es's own decoding errors, by exact message: LIBRARY_INTERNAL); a
 * signer is answered only by signing, bindings and health, and imports
 * nothing; a request without a valid token only by health; a task endpoint
 * hands out a secret only to a request that passed every guard; and after
 * each batch the process is alive and answers a health check. At the end
 * the daemon has logged no "unexpected error".
 */
import assert from "node:assert/strict";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { after, before, describe, test } from "node:test";
import {
  create,
  type DescField,
  type DescMessage,
  type DescMethod,
  type DescService,
  type Message,
  ScalarType,
  toBinary,
  toJsonString,
} from "@bufbuild/protobuf";
import {
  type CallOptions,
  Code,
  ConnectError,
  createClient,
  type Transport,
} from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import fc from "fast-check";
import { CallerRole } from "../../gen/credbroker/v1/caller_pb.js";
import { CallerService } from "../../gen/credbroker/v1/caller_service_pb.js";
import { CredentialService } from "../../gen/credbroker/v1/credential_service_pb.js";
import { SigningService } from "../../gen/credbroker/v1/signing_service_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { listenerUrl, type RunningDaemon, removeDir, startDaemon } from "../support/daemon.js";
import { type FakeSts, startFakeSts } from "../support/sts-server.js";

const RUNS = 300;
const ACCOUNT = "123456789012";
const KEY = {
  accessKeyId: "AKIAFUZZ000000000001",
  secretAccessKey: "fuzz/secret/KEY00000000000000000000000000",
  arn: `arn:aws:iam::${ACCOUNT}:user/fuzz`,
  account: ACCOUNT,
};
const ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/fuzz-role`;
const SERVICES: DescService[] = [CredentialService, SigningService, CallerService, Health];
/** Health.Watch left out: a valid request opens a stream that stays open, by design. */
const METHODS: DescMethod[] = SERVICES.flatMap((s) => s.methods).filter(
  (m) => m !== Health.method.watch,
);
const pathOf = (m: DescMethod) => `/${m.parent.typeName}/${m.name}`;

const CONNECT_CODES = new Set(
  Object.values(Code)
    .filter((c) => typeof c === "string")
    .map(snake),
);
/** Answers that mean an exception escaped a handler: a bug, whatever the input. */
const BUG_CODES = new Set(["internal", "unknown"]);
const BUG_GRPC = new Set([Code.Internal, Code.Unknown].map(Number));

function snake(name: string): string {
  return name.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

/** Every answer seen, by protocol and code: printed as a diagnostic so a run shows what it reached. */
const seen = new Map<string, number>();
const count = (key: string) => seen.set(key, (seen.get(key) ?? 0) + 1);

// ------------------------------------------------------------------ wire helpers

interface Answer {
  status: number;
  headers: Record<string, string>;
  trailers: Record<string, string>;
  body: Buffer;
}

const plain = (h: http.IncomingHttpHeaders | http2.IncomingHttpHeaders) => {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k] = String(v);
  return out;
};

/** One HTTP/2 session for a batch, reopened when the daemon closes it (GOAWAY after a protocol error). */
class H2 {
  private session: http2.ClientHttp2Session | undefined;
  constructor(private readonly base: string) {}

  request(headers: http2.OutgoingHttpHeaders, body: Uint8Array | undefined): Promise<Answer> {
    if (this.session === undefined || this.session.closed || this.session.destroyed) {
      this.session = http2.connect(this.base);
      this.session.on("error", () => {});
    }
    const session = this.session;
    return new Promise<Answer>((resolve, reject) => {
      const req = session.request(headers, { endStream: body === undefined });
      const answer: Answer = { status: 0, headers: {}, trailers: {}, body: Buffer.alloc(0) };
      const chunks: Buffer[] = [];
      const timer = setTimeout(() => {
        req.close();
        reject(new Error(`no answer in 10 s: ${JSON.stringify(headers)}`));
      }, 10_000);
      req.on("response", (h) => {
        answer.status = Number(h[":status"]);
        answer.headers = plain(h);
      });
      req.on("trailers", (h) => {
        answer.trailers = plain(h);
      });
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        clearTimeout(timer);
        resolve({ ...answer, body: Buffer.concat(chunks) });
      });
      req.on("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
      if (body !== undefined) req.end(body);
    });
  }

  close(): void {
    this.session?.close();
  }
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

/** One HTTP/1.1 request on a kept-alive connection. */
function h1(
  url: string,
  method: string,
  headers: Record<string, string>,
  body: Uint8Array | undefined,
): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    const req = http.request(url, { method, headers, agent, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: plain(res.headers),
          trailers: plain(res.trailers),
          body: Buffer.concat(chunks),
        }),
      );
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`no answer in 10 s: ${method} ${url}`)));
    req.on("error", reject);
    req.end(body === undefined ? undefined : Buffer.from(body));
  });
}

/** A raw exchange on a fresh TCP connection: what comes back before the daemon closes it (or 3 s pass). */
function rawExchange(port: number, bytes: Uint8Array, halfClose = true): Promise<Buffer> {
  return new Promise<Buffer>((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(chunks));
    };
    const timer = setTimeout(done, 3_000);
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("close", done);
    socket.on("error", done);
    socket.write(bytes, () => {
      if (halfClose) socket.end();
    });
  });
}

/** The status of an HTTP/1.x answer, undefined when the bytes are none. */
function httpStatus(answer: Buffer): number | undefined {
  const m = /^HTTP\/1\.[01] (\d{3}) /.exec(answer.subarray(0, 32).toString("latin1"));
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

// ------------------------------------------------------------------ answer checks

/**
 * connect-es's own decoding errors, which it (like grpc-go) sends as `internal`
 * although the request is at fault: a protobuf body that does not parse, a
 * compressed envelope without an encoding, a body that does not decompress
 * (connect-node's compression.ts). They come from the protocol
 * layer before any credbroker code runs (and the fast path keeps the same
 * answers on purpose); reported, and allowed by these exact messages only.
 */
const LIBRARY_INTERNAL = [
  /^parse binary: /,
  /^received compressed envelope, but do not know how to decompress$/,
  /^decompression failed$/,
];
const libraryInternal = (message: string) => LIBRARY_INTERNAL.some((re) => re.test(message));

/** A gRPC answer: HTTP 200 with a numeric grpc-status (trailers, or headers when trailers-only). */
function checkGrpc(a: Answer, what: string): number {
  assert.equal(a.status, 200, `${what}: HTTP ${a.status}`);
  const raw = a.trailers["grpc-status"] ?? a.headers["grpc-status"];
  assert.match(raw ?? "", /^\d{1,2}$/, `${what}: grpc-status ${raw}`);
  const code = Number(raw);
  assert.ok(code >= 0 && code <= 16, `${what}: grpc-status ${code}`);
  const message = decodeURIComponent(a.trailers["grpc-message"] ?? a.headers["grpc-message"] ?? "");
  if (code === Code.Internal && libraryInternal(message)) return -1;
  assert.ok(!BUG_GRPC.has(code), `${what}: grpc-status ${code} ${message}`);
  return code;
}

/** A Connect unary answer: 200, or an error status with a JSON body naming a known code. */
function checkConnect(a: Answer, what: string, httpMethod: string): string {
  if (a.status === 200) return "ok";
  let error: { code?: unknown; message?: unknown } | undefined;
  try {
    error = JSON.parse(a.body.toString("utf8")) as { code?: unknown; message?: unknown };
  } catch {
    error = undefined;
  }
  const code = error?.code;
  // connect-node's bare answers before the protocol starts: a content type it does not
  // serve for the RPC (a streaming RPC asked for unary) is 415, a GET of an RPC with
  // side effects is 405.
  if (code === undefined && (a.status === 415 || (a.status === 405 && httpMethod === "GET"))) {
    return `http_${a.status}`;
  }
  assert.equal(
    typeof code,
    "string",
    `${what}: HTTP ${a.status} ${a.body.toString("utf8").slice(0, 200)}`,
  );
  assert.ok(CONNECT_CODES.has(code as string), `${what}: code ${String(code)}`);
  if (code === "internal" && libraryInternal(String(error?.message ?? "")))
    return "library_internal";
  assert.ok(
    !BUG_CODES.has(code as string),
    `${what}: ${String(code)} ${a.body.toString("utf8").slice(0, 300)}`,
  );
  return code as string;
}

// ------------------------------------------------------------------ generated messages

/** Code units, lone surrogates included: what a JSON string can carry that protobuf binary cannot. */
const codeUnits = fc.string({
  unit: fc.integer({ min: 0, max: 0xffff }).map((n) => String.fromCharCode(n)),
  maxLength: 8,
});
const anyString = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: "binary", maxLength: 16 }) },
  { weight: 1, arbitrary: codeUnits },
  {
    weight: 1,
    arbitrary: fc.constantFrom("", " ", ".", "..", "/", "*", "%", "%00", "\u0000", "a".repeat(70)),
  },
);
const urlTail = fc
  .array(
    fc.oneof(
      fc.constantFrom("reports", "2026", "x", "..", ".", "%2e", "%", "?", "&", "=", "/", "#"),
      anyString,
    ),
    {
      maxLength: 4,
    },
  )
  .map((ps) => ps.join("/"));
const url = fc.oneof(
  fc
    .tuple(
      fc.constantFrom(
        "https://s3.eu-west-1.amazonaws.com/",
        "https://reports.s3.eu-west-1.amazonaws.com/",
        "https://sts.amazonaws.com/?Action=GetCallerIdentity&",
        "https://api.example.com/",
        "http://127.0.0.1:9000/",
        "https://",
        "ftp://x/",
      ),
      urlTail,
    )
    .map(([a, b]) => a + b),
  anyString,
);

/** Values for fields by proto name: the seeded names, and shapes the daemon validates. */
const WORDS: Record<string, fc.Arbitrary<string>> = {
  namespace: fc.constantFrom("fuzz", "", "other", "fuzz/x"),
  namespaces: fc.constantFrom("fuzz", "", "other"),
  shared_namespaces: fc.constantFrom("fuzz", "other"),
  name: fc.constantFrom("ak", "scoped", "tok", "role", "instance", "nope", "fuzz-caller", "new-1"),
  credential: fc.constantFrom("ak", "scoped", "tok", "role", "instance", "nope", ""),
  source_credential: fc.constantFrom("ak", "tok", "nope"),
  url,
  method: fc.constantFrom("GET", "PUT", "POST", "HEAD", "DELETE", "get", "G E T"),
  region: fc.constantFrom("", "eu-west-1", "us-east-1", "x\u0000y"),
  service: fc.constantFrom("", "s3", "sts", "execute-api"),
  role_arn: fc.constantFrom(ROLE_ARN, "arn:aws:iam::123:role/x", "arn:aws:iam::123456789012:role/"),
  access_key_id: fc.constantFrom(KEY.accessKeyId, "AKIA", "test:tester"),
  secret_access_key: fc.constantFrom(KEY.secretAccessKey, "s"),
  bucket: fc.constantFrom("reports", "other", "b"),
  prefixes: fc.constantFrom("2026/", "data", ""),
  actions: fc.constantFrom("get_object", "put_object", "list_bucket", "delete_bucket"),
  allowed_hosts: fc.constantFrom("*.example.com", "api.example.com", "*.", "[::1]", "a b"),
  paths: fc.constantFrom(
    "description",
    "allowed_hosts",
    "enabled",
    "kind",
    "access_key",
    "access_key.secret_access_key",
    "name",
    "namespace",
    "role",
    "namespaces",
    "nope",
    "",
  ),
  etag: fc.constantFrom("", 'W/"1"', "1"),
  page_token: fc.constantFrom("", "eyJ9", "AAAA", "%%%"),
  value: anyString,
};

const scalar = (t: ScalarType, field: DescField): fc.Arbitrary<unknown> => {
  switch (t) {
    case ScalarType.STRING: {
      const words = WORDS[field.name];
      const s = words
        ? fc.oneof({ weight: 3, arbitrary: words }, { weight: 1, arbitrary: anyString })
        : anyString;
      // Never the bootstrap admin: rotating or disabling it would end the batch's admin calls.
      return s.map((v) => (v === "admin" ? "admin-x" : v));
    }
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.BYTES:
      return fc.uint8Array({ maxLength: 40 });
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return fc.double();
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return fc.oneof(
        fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
        fc.bigInt({ min: -5n, max: 90000n }),
      );
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return fc.oneof(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 0, max: 90000 }));
    default:
      return fc.oneof(
        fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
        fc.integer({ min: -5, max: 90000 }),
      );
  }
};

const WKT_TIMESTAMP = "google.protobuf.Timestamp";
const WKT_DURATION = "google.protobuf.Duration";

/** An init object for `desc`, every field optional, oneofs as {case, value}, nested to `depth`. */
function messageInit(desc: DescMessage, depth: number): fc.Arbitrary<Record<string, unknown>> {
  if (desc.typeName === WKT_TIMESTAMP || desc.typeName === WKT_DURATION) {
    return fc.record({
      seconds: fc.oneof(
        fc.bigInt({ min: -62135596800n, max: 253402300799n }),
        fc.bigInt({ min: 1700000000n, max: 2100000000n }),
      ),
      nanos: fc.integer({ min: 0, max: 999_999_999 }),
    });
  }
  const element = (field: DescField): fc.Arbitrary<unknown> | undefined => {
    switch (field.fieldKind) {
      case "scalar":
        return scalar(field.scalar, field);
      case "enum":
        return fc.oneof(
          fc.constantFrom(...field.enum.values.map((v) => v.number)),
          fc.integer({ min: -3, max: 40 }),
        );
      case "message":
        return depth > 0 ? messageInit(field.message, depth - 1) : undefined;
      case "list": {
        const item =
          field.listKind === "scalar"
            ? scalar(field.scalar, field)
            : field.listKind === "enum"
              ? fc.constantFrom(...field.enum.values.map((v) => v.number))
              : depth > 0
                ? messageInit(field.message, depth - 1)
                : undefined;
        return item && fc.array(item, { maxLength: 3 });
      }
      case "map": {
        const value =
          field.mapKind === "scalar"
            ? scalar(field.scalar, field)
            : field.mapKind === "enum"
              ? fc.constantFrom(...field.enum.values.map((v) => v.number))
              : depth > 0
                ? messageInit(field.message, depth - 1)
                : undefined;
        return (
          value && fc.dictionary(fc.string({ unit: "binary", maxLength: 8 }), value, { maxKeys: 3 })
        );
      }
    }
  };
  const plainFields: Record<string, fc.Arbitrary<unknown>> = {};
  for (const f of desc.fields) {
    if (f.oneof !== undefined) continue;
    const a = element(f);
    if (a) plainFields[f.localName] = a;
  }
  const oneofs: Record<string, fc.Arbitrary<unknown>> = {};
  for (const o of desc.oneofs) {
    const choices = o.fields.flatMap((f) => {
      const a = element(f);
      return a ? [a.map((value) => ({ case: f.localName, value }))] : [];
    });
    if (choices.length > 0) oneofs[o.localName] = fc.oneof(...choices);
  }
  return fc.record({ ...plainFields, ...oneofs }, { requiredKeys: [] }) as fc.Arbitrary<
    Record<string, unknown>
  >;
}

const messageOf = (desc: DescMessage) =>
  messageInit(desc, 3).map((init) => create(desc, init as never));

/**
 * SignRequests that get past validation to policy and the signer: a seeded
 * credential, a real method, an AWS URL with a random tail (lone surrogates
 * included, which only JSON carries).
 */
const awsTail = fc
  .array(
    fc.oneof(
      {
        weight: 3,
        arbitrary: fc.constantFrom(
          "reports",
          "2026",
          "x",
          "..",
          ".",
          "%2e",
          "%",
          "&",
          "=",
          "",
          "?prefix=2026/",
          "?acl",
        ),
      },
      { weight: 2, arbitrary: fc.string({ unit: "grapheme", maxLength: 6 }) },
      { weight: 1, arbitrary: codeUnits },
    ),
    { maxLength: 4 },
  )
  .map((ps) => ps.join("/"));
const signRequest = fc
  .record({
    namespace: fc.constant("fuzz"),
    credential: fc.constantFrom("ak", "ak", "scoped", "role", "tok", ""),
    method: fc.constantFrom("GET", "PUT", "HEAD", "DELETE", "POST"),
    url: fc
      .tuple(
        fc.constantFrom(
          "https://s3.eu-west-1.amazonaws.com/",
          "https://reports.s3.eu-west-1.amazonaws.com/",
          "https://sts.amazonaws.com/?Action=GetCallerIdentity&",
          "https://execute-api.eu-west-1.amazonaws.com/",
        ),
        awsTail,
      )
      .map(([a, b]) => a + b),
    headers: fc.array(
      fc.record({
        name: fc.constantFrom(
          "content-type",
          "x-amz-meta-a",
          "range",
          "x-amz-copy-source",
          "constructor",
        ),
        value: fc.string({ unit: "grapheme", maxLength: 10 }),
      }),
      { maxLength: 2 },
    ),
    presignExpiresSeconds: fc.constantFrom(0, 0, 60, 604800),
    service: fc.constantFrom("", "", "s3", "sts"),
    region: fc.constantFrom("", "eu-west-1"),
  })
  .map((init) => create(SigningService.method.signRequest.input, init));

// ------------------------------------------------------------------ the daemon

let sts: FakeSts;
let daemon: RunningDaemon;
let imds: { url: string; port: number };
let container: { url: string; port: number };
let signerToken = "";
let binding = { id: "", token: "" };

function listener(msg: string): { url: string; port: number } {
  const url = listenerUrl(daemon, msg);
  return { url, port: Number(new URL(url).port) };
}

function connectTransport(version: "1.1" | "2", binary = true): Transport {
  return createConnectTransport({
    baseUrl: daemon.url,
    httpVersion: version,
    useBinaryFormat: binary,
  });
}

const ACCESS_KEY = {
  case: "accessKey" as const,
  value: { accessKeyId: KEY.accessKeyId, secretAccessKey: KEY.secretAccessKey },
};

/** The credentials the generated requests name; recreated before each batch (a batch may delete them). */
async function seed(): Promise<void> {
  const creds = createClient(CredentialService, connectTransport("2"));
  const admin: CallOptions = { headers: { authorization: `Bearer ${daemon.token}` } };
  const credentials = [
    { namespace: "fuzz", name: "ak", kind: ACCESS_KEY },
    {
      namespace: "fuzz",
      name: "scoped",
      kind: ACCESS_KEY,
      allowedScopes: [
        { bucket: "reports", prefixes: ["2026/"], actions: ["get_object", "list_bucket"] },
      ],
    },
    {
      namespace: "fuzz",
      name: "tok",
      kind: { case: "token" as const, value: { token: "fuzz-token-value" } },
      provider: 2,
      allowedHosts: ["api.example.com"],
    },
    {
      namespace: "fuzz",
      name: "instance",
      kind: ACCESS_KEY,
      allowedInTasks: true,
      allowedScopes: [{ bucket: "reports", prefixes: ["2026/"], actions: ["get_object"] }],
    },
    {
      namespace: "fuzz",
      name: "role",
      allowedInTasks: true,
      kind: { case: "role" as const, value: { roleArn: ROLE_ARN, sourceCredential: "ak" } },
    },
    // The task endpoints' credentials live in a namespace the generated requests never
    // name, so a batch cannot change them under the IMDS and container checks.
    { namespace: "tasks", name: "ak", kind: ACCESS_KEY },
    {
      namespace: "tasks",
      name: "instance",
      kind: ACCESS_KEY,
      allowedInTasks: true,
      allowedScopes: [{ bucket: "reports", prefixes: ["2026/"], actions: ["get_object"] }],
    },
    {
      namespace: "tasks",
      name: "role",
      allowedInTasks: true,
      kind: { case: "role" as const, value: { roleArn: ROLE_ARN, sourceCredential: "ak" } },
    },
  ];
  for (const credential of credentials) {
    await creds.createCredential({ credential }, admin).catch((e: unknown) => {
      if (ConnectError.from(e).code !== Code.AlreadyExists) throw e;
    });
  }
}

/** The daemon is alive and healthy. */
async function assertAlive(): Promise<void> {
  assert.equal(
    daemon.process.exitCode,
    null,
    `the daemon exited:\n${daemon.output().slice(-3000)}`,
  );
  assert.equal(daemon.process.signalCode, null);
  const health = createClient(Health, connectTransport("1.1"));
  const res = await health.check({ service: "" }, { timeoutMs: 5_000 });
  assert.equal(res.status, HealthCheckResponse_ServingStatus.SERVING);
}

describe("fuzz: one real daemon", { concurrency: false }, () => {
  before(async () => {
    sts = await startFakeSts();
    sts.addKey(KEY);
    sts.addRole({ arn: ROLE_ARN });
    daemon = await startDaemon({
      args: [
        "--sts-endpoint",
        sts.endpoint,
        "--imds-listen",
        "127.0.0.1:0",
        "--imds-credential",
        "tasks/instance",
        "--container-listen",
        "127.0.0.1:0",
        "--rate-limit",
        "0",
        "--auth-failure-delay",
        "0",
        "--shutdown-grace",
        "1",
      ],
    });
    imds = listener("imds listening");
    container = listener("container credentials listening");
    await seed();
    const admin: CallOptions = { headers: { authorization: `Bearer ${daemon.token}` } };
    const callers = createClient(CallerService, connectTransport("2"));
    const made = await callers.createCaller(
      { caller: { name: "fuzz-signer", role: CallerRole.SIGNER, namespaces: ["fuzz"] } },
      admin,
    );
    signerToken = made.token;
    const signing = createClient(SigningService, connectTransport("2"));
    const b = await signing.createContainerBinding(
      { namespace: "tasks", credential: "role", ttlSeconds: 3600 },
      admin,
    );
    binding = { id: b.bindingId, token: b.authorizationToken };
  });

  after(async () => {
    agent.destroy();
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
    await sts?.stop();
  });

  test("random bytes to every RPC over gRPC (HTTP/2), framed and unframed", async (t) => {
    await seed();
    const h2 = new H2(daemon.url);
    const hit = new Set<string>();
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...METHODS),
          fc.uint8Array({ maxLength: 300 }),
          fc.constantFrom("framed", "framed", "unframed", "short", "two", "compressed"),
          fc.constantFrom(undefined, "gzip", "identity", "br", "zstd"),
          fc.constantFrom(undefined, "1S", "100m", "5n", "garbage", "99999999H", "-1S"),
          fc.constantFrom("application/grpc", "application/grpc+proto"),
          async (method, payload, shape, encoding, timeout, type) => {
            hit.add(method.name);
            let body: Buffer;
            const frame = (flag: number, bytes: Uint8Array, len = bytes.length) => {
              const b = Buffer.alloc(5 + bytes.length);
              b[0] = flag;
              b.writeUInt32BE(len, 1);
              b.set(bytes, 5);
              return b;
            };
            if (shape === "framed") body = frame(0, payload);
            else if (shape === "compressed") body = frame(1, payload);
            else if (shape === "short") body = frame(0, payload, payload.length + 7);
            else if (shape === "two") body = Buffer.concat([frame(0, payload), frame(0, payload)]);
            else body = Buffer.from(payload);
            const headers: http2.OutgoingHttpHeaders = {
              ":method": "POST",
              ":path": pathOf(method),
              "content-type": type,
              te: "trailers",
              authorization: `Bearer ${daemon.token}`,
            };
            if (encoding !== undefined) headers["grpc-encoding"] = encoding;
            if (timeout !== undefined) headers["grpc-timeout"] = timeout;
            const what = `gRPC ${pathOf(method)} ${shape} ${encoding ?? ""} ${timeout ?? ""} ${Buffer.from(payload).toString("hex").slice(0, 120)}`;
            const code = checkGrpc(await h2.request(headers, body), what);
            count(`grpc:${code < 0 ? "library_internal" : (Code[code] ?? code)}`);
          },
        ),
        { numRuns: RUNS },
      );
    } finally {
      h2.close();
    }
    assert.equal(hit.size, METHODS.length, "every RPC was called");
    await assertAlive();
    t.diagnostic(
      JSON.stringify(Object.fromEntries([...seen].filter(([k]) => k.startsWith("grpc:")))),
    );
  });

  for (const version of ["2", "1.1"] as const) {
    test(`random bytes to every RPC over Connect (HTTP/${version}), proto and JSON, POST and GET`, async (t) => {
      await seed();
      const h2 = new H2(daemon.url);
      const hit = new Set<string>();
      const jsonish = fc.oneof(
        fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
        fc.json().map((j) => Buffer.from(j)),
        fc
          .dictionary(
            fc.constantFrom(
              "namespace",
              "name",
              "credential",
              "url",
              "method",
              "credential.kind",
              "updateMask",
              "pageSize",
              "headers",
              "caller",
            ),
            fc.jsonValue(),
          )
          .map((o) => Buffer.from(JSON.stringify(o))),
      );
      try {
        await fc.assert(
          fc.asyncProperty(
            fc.constantFrom(...METHODS),
            fc.constantFrom("proto", "json", "get"),
            fc.uint8Array({ maxLength: 300 }),
            jsonish,
            fc.constantFrom(undefined, "gzip", "br", "identity", "zstd"),
            fc.constantFrom(undefined, "1", "2", undefined),
            fc.constantFrom(undefined, "1000", "0", "-1", "x", "99999999999"),
            async (method, kind, bytes, json, encoding, version_, timeout) => {
              hit.add(method.name);
              const headers: Record<string, string> = { authorization: `Bearer ${daemon.token}` };
              if (encoding !== undefined) headers["content-encoding"] = encoding;
              if (version_ !== undefined) headers["connect-protocol-version"] = version_;
              if (timeout !== undefined) headers["connect-timeout-ms"] = timeout;
              let path = pathOf(method);
              let body: Buffer | undefined;
              let httpMethod = "POST";
              if (kind === "get") {
                httpMethod = "GET";
                delete headers["content-encoding"];
                const message = Buffer.from(bytes).toString("base64url");
                path += `?connect=v1&encoding=${json.length % 2 ? "json" : "proto"}&base64=1&message=${message}`;
                if (encoding !== undefined) path += `&compression=${encoding}`;
              } else {
                headers["content-type"] =
                  kind === "proto" ? "application/proto" : "application/json";
                body = kind === "proto" ? Buffer.from(bytes) : json;
              }
              const what = `Connect h${version} ${httpMethod} ${path} ${kind} ${JSON.stringify(headers)} ${(body ?? Buffer.alloc(0)).toString(kind === "proto" ? "hex" : "utf8").slice(0, 200)}`;
              const answer =
                version === "2"
                  ? await h2.request({ ":method": httpMethod, ":path": path, ...headers }, body)
                  : await h1(`${daemon.url}${path}`, httpMethod, headers, body);
              count(`connect-h${version}:${checkConnect(answer, what, httpMethod)}`);
            },
          ),
          { numRuns: RUNS },
        );
      } finally {
        h2.close();
      }
      assert.equal(hit.size, METHODS.length, "every RPC was called");
      await assertAlive();
      t.diagnostic(
        JSON.stringify(
          Object.fromEntries([...seen].filter(([k]) => k.startsWith(`connect-h${version}:`))),
        ),
      );
    });
  }

  const PROTOCOLS = [
    "grpc",
    "connect-h2",
    "connect-h2-json",
    "connect-h1",
    "connect-h1-json",
  ] as const;
  for (const protocol of PROTOCOLS) {
    test(`well-formed random messages to every RPC (${protocol}), with and without a token`, async (t) => {
      await seed();
      const transports = {
        binary:
          protocol === "grpc"
            ? createGrpcTransport({ baseUrl: daemon.url })
            : connectTransport(protocol.startsWith("connect-h1") ? "1.1" : "2", true),
        json: protocol.endsWith("-json")
          ? connectTransport(protocol.startsWith("connect-h1") ? "1.1" : "2", false)
          : undefined,
      };
      // Client streaming needs HTTP/2 with connect-node's client.
      const streams = protocol.startsWith("connect-h1") ? connectTransport("2") : transports.binary;
      const unary = METHODS.filter((m) => m.methodKind === "unary");
      const importMethod = CredentialService.method.importCredentials;
      const hit = new Set<string>();
      const callArb = fc.oneof(
        {
          weight: 4,
          arbitrary: fc.tuple(
            fc.constant<DescMethod>(SigningService.method.signRequest),
            signRequest.map((x) => [x]),
          ),
        },
        {
          weight: 18,
          arbitrary: fc.constantFrom(...unary).chain((m) =>
            fc.tuple(
              fc.constant(m),
              messageOf(m.input).map((x) => [x]),
            ),
          ),
        },
        {
          weight: 1,
          arbitrary: fc.tuple(
            fc.constant<DescMethod>(importMethod),
            fc.array(messageOf(importMethod.input), { maxLength: 3 }),
          ),
        },
      );
      await fc.assert(
        fc.asyncProperty(
          callArb,
          fc.constantFrom("admin", "admin", "signer", "none", "wrong", "malformed"),
          async ([method, messages], who) => {
            hit.add(method.name);
            const authorization = {
              admin: `Bearer ${daemon.token}`,
              signer: `Bearer ${signerToken}`,
              none: undefined,
              wrong: "Bearer cb_wrong_token_0123456789",
              malformed: "Basic eDp5",
            }[who];
            const options: CallOptions = {
              timeoutMs: 10_000,
              headers: authorization === undefined ? {} : { authorization },
            };
            // JSON when the message can be written as JSON (a FieldMask path that is not
            // lowerCamel-able cannot); lone surrogates survive only there.
            let transport = transports.binary;
            if (transports.json) {
              try {
                for (const m of messages) toJsonString(method.input, m as Message);
                transport = transports.json;
              } catch {
                transport = transports.binary;
              }
            }
            const what = `${protocol} ${pathOf(method)} as ${who}: ${messages
              .map((m) => {
                try {
                  return toJsonString(method.input, m as Message);
                } catch {
                  return Buffer.from(toBinary(method.input, m as Message)).toString("hex");
                }
              })
              .join(" | ")
              .slice(0, 1500)}`;
            let code: string;
            try {
              if (method.methodKind === "client_streaming") {
                const client = createClient(CredentialService, streams);
                const res = await client.importCredentials(
                  (async function* () {
                    yield* messages as never[];
                  })(),
                  options,
                );
                // Rows are authorized one by one: a signer's call succeeds, and creates nothing.
                if (who === "signer") assert.equal(res.created, 0n, `${what}: a signer imported`);
              } else {
                const client = createClient(method.parent, transport) as unknown as Record<
                  string,
                  (req: unknown, o: CallOptions) => Promise<unknown>
                >;
                const call = client[method.localName];
                assert.ok(call);
                await call(messages[0], options);
              }
              code = "ok";
            } catch (e) {
              const err = ConnectError.from(e);
              code = snake(Code[err.code]);
              if (!(code === "internal" && libraryInternal(err.rawMessage))) {
                assert.ok(!BUG_CODES.has(code), `${what}\n→ ${code}: ${err.rawMessage}`);
              }
              if (who === "none" || who === "wrong" || who === "malformed") {
                if (method.parent.typeName !== Health.typeName) {
                  assert.ok(
                    ["unauthenticated", "invalid_argument", "unimplemented"].includes(code),
                    `${what}: ${code}`,
                  );
                }
              }
            }
            if (code === "ok" && who === "signer") {
              // A signer signs and binds containers (and lists its own bindings); it reads, writes and manages nothing.
              assert.ok(
                [
                  "SignRequest",
                  "CreateContainerBinding",
                  "ImportCredentials",
                  "DeleteContainerBinding",
                  "ListContainerBindings",
                  "Check",
                  "List",
                ].includes(method.name),
                `${what}: a signer was answered`,
              );
            }
            if (code === "ok" && (who === "none" || who === "wrong" || who === "malformed")) {
              assert.equal(
                method.parent.typeName,
                Health.typeName,
                `${what}: answered without a token`,
              );
            }
            count(`${protocol}:${code}`);
            if (method.name === "SignRequest" && code === "ok") count(`${protocol}:signed`);
          },
        ),
        { numRuns: RUNS },
      );
      assert.equal(hit.size, unary.length + 1, "every RPC was called");
      await assertAlive();
      t.diagnostic(
        JSON.stringify(Object.fromEntries([...seen].filter(([k]) => k.startsWith(`${protocol}:`)))),
      );
    });
  }

  // ---------------------------------------------------------------- IMDS and container

  const IMDS_PATHS = [
    "/latest/api/token",
    "/latest/meta-data",
    "/latest/meta-data/",
    "/latest/meta-data/iam/security-credentials",
    "/latest/meta-data/iam/security-credentials/",
    "/latest/meta-data/iam/security-credentials/instance",
    "/latest/meta-data/iam/security-credentials/instance/",
    "/latest/meta-data/iam/security-credentials/other",
    "/latest/meta-data/iam/info",
    "/latest/meta-data/instance-id",
    "/latest/dynamic/instance-identity/document",
    "/",
    "*",
    "//latest/api/token",
    "/latest/../latest/meta-data/iam/security-credentials/instance",
    "/latest/meta-data/iam/security-credentials/%69nstance",
    "/latest/api/token?x=1",
    "http://127.0.0.1/latest/api/token",
  ];
  const CREDENTIALS_PATH = "/latest/meta-data/iam/security-credentials/instance";
  const pathChars = fc.string({
    unit: fc.constantFrom("a", "/", ".", "%", "2", "e", "?", "=", "&", "~", "-", "_", "Z"),
    maxLength: 20,
  });

  interface HttpCase {
    method: string;
    path: string;
    host: string | undefined;
    token: "valid" | "garbage" | "empty" | "twice" | undefined;
    ttl: string | undefined;
    extra: [string, string][];
    body: Uint8Array;
    chunked: boolean;
  }

  /** A hand-written HTTP/1.1 request: anything node's client would refuse to send goes out as is. */
  function wire(c: HttpCase, port: number, token: string, authHeader: string): Buffer {
    const lines = [`${c.method} ${c.path} HTTP/1.1`];
    if (c.host !== undefined) lines.push(`Host: ${c.host.replace("PORT", String(port))}`);
    if (c.token === "valid") lines.push(`${authHeader}: ${token}`);
    if (c.token === "garbage") lines.push(`${authHeader}: AQAEAgarbage==`);
    if (c.token === "empty") lines.push(`${authHeader}: `);
    if (c.token === "twice") lines.push(`${authHeader}: ${token}`, `${authHeader}: ${token}`);
    if (c.ttl !== undefined) lines.push(`X-aws-ec2-metadata-token-ttl-seconds: ${c.ttl}`);
    for (const [k, v] of c.extra) lines.push(`${k}: ${v}`);
    lines.push("Connection: close");
    let body = Buffer.from(c.body);
    if (c.chunked) {
      lines.push("Transfer-Encoding: chunked");
      body = Buffer.concat([
        Buffer.from(`${body.length.toString(16)}\r\n`),
        body,
        Buffer.from("\r\n0\r\n\r\n"),
      ]);
      if (c.body.length === 0) body = Buffer.from("0\r\n\r\n");
    } else {
      lines.push(`Content-Length: ${body.length}`);
    }
    return Buffer.concat([Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1"), body]);
  }

  const httpCase = (paths: string[], ttl: boolean): fc.Arbitrary<HttpCase> =>
    fc.record({
      method: fc.oneof(
        { weight: 6, arbitrary: fc.constantFrom("GET", "HEAD", "PUT", "GET", "PUT") },
        {
          weight: 1,
          arbitrary: fc.constantFrom(
            "POST",
            "DELETE",
            "OPTIONS",
            "TRACE",
            "PATCH",
            "get",
            "CONNECT",
          ),
        },
        { weight: 1, arbitrary: fc.stringMatching(/^[A-Z]{1,10}$/) },
      ),
      path: fc.oneof(
        { weight: 4, arbitrary: fc.constantFrom(...paths) },
        {
          weight: 1,
          arbitrary: fc.tuple(fc.constantFrom(...paths), pathChars).map(([a, b]) => a + b),
        },
        { weight: 1, arbitrary: pathChars.map((p) => `/${p}`) },
      ),
      host: fc.constantFrom(
        "127.0.0.1:PORT",
        "127.0.0.1:PORT",
        "localhost",
        "localhost:PORT",
        "169.254.169.254",
        "169.254.170.2",
        "[fd00:ec2::254]",
        "evil.com",
        "evil.com:PORT",
        "127.0.0.1",
        "",
        undefined,
      ),
      token: fc.constantFrom("valid", "valid", "garbage", "empty", "twice", undefined),
      ttl: ttl
        ? fc.constantFrom(undefined, "21600", "1", "0", "21601", "-1", "abc", "01", "99999", "1 ")
        : fc.constant(undefined),
      extra: fc.array(
        fc.oneof(
          fc.constantFrom<[string, string]>(
            ["X-Forwarded-For", "1.2.3.4"],
            ["Forwarded", "for=1.2.3.4"],
            ["Origin", "https://evil.com"],
            ["Referer", "https://evil.com/"],
            ["Sec-Fetch-Site", "cross-site"],
            ["Accept", "*/*"],
            ["User-Agent", "aws-sdk-js/3"],
          ),
          fc.tuple(
            fc.stringMatching(/^[A-Za-z-]{1,12}$/),
            fc.string({ unit: "grapheme-ascii", maxLength: 20 }),
          ),
        ),
        { maxLength: 3 },
      ),
      body: fc.oneof(
        { weight: 4, arbitrary: fc.uint8Array({ maxLength: 64 }) },
        { weight: 1, arbitrary: fc.uint8Array({ minLength: 4000, maxLength: 6000 }) },
      ),
      chunked: fc.boolean(),
    });

  const browserish = (c: HttpCase) =>
    c.extra.some(([k]) => ["origin", "referer", "sec-fetch-site"].includes(k.toLowerCase()));
  const forwarded = (c: HttpCase) =>
    c.extra.some(([k]) => ["x-forwarded-for", "forwarded"].includes(k.toLowerCase()));
  /** node's HTTP server drops CONNECT and Upgrade requests when nothing listens for them: no answer, no harm. */
  const unanswerable = (c: HttpCase) =>
    c.method === "CONNECT" || c.extra.some(([k]) => k.toLowerCase() === "upgrade");
  const hostOk = (c: HttpCase, names: string[]) =>
    c.host !== undefined &&
    ["127.0.0.1:PORT", "localhost", "localhost:PORT", ...names].includes(c.host);

  test("IMDS: random methods, paths, headers and bodies", async (t) => {
    await seed();
    // A live IMDSv2 token, as an SDK would hold one.
    const tokenAnswer = await rawExchange(
      imds.port,
      Buffer.from(
        `PUT /latest/api/token HTTP/1.1\r\nHost: 127.0.0.1:${imds.port}\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
      ),
      false,
    );
    assert.equal(httpStatus(tokenAnswer), 200);
    const token = tokenAnswer.toString("latin1").split("\r\n\r\n")[1] ?? "";
    assert.ok(token.length > 10);
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(httpCase(IMDS_PATHS, true), async (c) => {
        const request = wire(c, imds.port, token, "X-aws-ec2-metadata-token");
        const answer = await rawExchange(imds.port, request, false);
        const status = httpStatus(answer);
        const what = JSON.stringify(request.toString("latin1").slice(0, 600));
        if (status === undefined && unanswerable(c)) return;
        assert.ok(
          status !== undefined,
          `IMDS sent no HTTP answer to ${what}: ${answer.toString("latin1").slice(0, 100)}`,
        );
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        assert.ok(
          status < 500,
          `IMDS ${status} for ${what}\n${answer.toString("latin1").slice(0, 300)}`,
        );
        const guarded = hostOk(c, ["169.254.169.254", "[fd00:ec2::254]"]) && !browserish(c);
        if (answer.includes("SecretAccessKey")) {
          assert.ok(
            guarded && c.method === "GET" && c.token === "valid" && c.body.length <= 4096,
            `a secret went out for ${what}`,
          );
          assert.ok(
            c.path === CREDENTIALS_PATH || c.path.startsWith(`${CREDENTIALS_PATH}?`),
            `a secret went out for ${what}`,
          );
        }
        if (status === 200 && c.path.split("?")[0] === "/latest/api/token") {
          assert.ok(guarded && !forwarded(c) && c.method === "PUT", `a token went out for ${what}`);
        }
      }),
      { numRuns: RUNS },
    );
    await assertAlive();
    t.diagnostic(`IMDS statuses ${JSON.stringify(Object.fromEntries(statuses))}`);
  });

  test("container endpoint: random methods, paths, headers and bodies", async (t) => {
    await seed();
    const good = `/v1/credentials/${binding.id}`;
    const paths = [
      good,
      `${good}/`,
      "/v1/credentials/",
      "/v1/credentials/nope",
      `/v1/credentials/${binding.id.toUpperCase()}`,
      "/",
      "/v1/",
    ];
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(httpCase(paths, false), async (c) => {
        const request = wire(c, container.port, binding.token, "Authorization");
        const answer = await rawExchange(container.port, request, false);
        const status = httpStatus(answer);
        const what = JSON.stringify(request.toString("latin1").slice(0, 600));
        if (status === undefined && unanswerable(c)) return;
        assert.ok(status !== undefined, `no HTTP answer to ${what}`);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        assert.ok(
          status < 500,
          `container ${status} for ${what}\n${answer.toString("latin1").slice(0, 300)}`,
        );
        if (answer.includes("SecretAccessKey")) {
          assert.ok(
            // node keeps the first of repeated Authorization headers: sending the token twice is sending it.
            hostOk(c, ["169.254.170.2"]) &&
              !browserish(c) &&
              c.method === "GET" &&
              (c.token === "valid" || c.token === "twice"),
            `a secret went out for ${what}`,
          );
          assert.ok(
            c.path === good || c.path.startsWith(`${good}?`),
            `a secret went out for ${what}`,
          );
        }
      }),
      { numRuns: 200 },
    );
    await assertAlive();
    t.diagnostic(`container statuses ${JSON.stringify(Object.fromEntries(statuses))}`);
  });

  test("random bytes to every listener (API, IMDS, container)", async () => {
    const PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 400 }),
      fc
        .tuple(
          fc.constantFrom(
            "GET / HTTP/1.1\r\n",
            "POST /credbroker.v1.CredentialService/ListCredentials HTTP/1.1\r\n",
            PREFACE,
            "PUT /latest/api/token HTTP/1.0\r\n",
          ),
          fc.uint8Array({ maxLength: 300 }),
        )
        .map(([head, tail]) => Buffer.concat([Buffer.from(head, "latin1"), tail])),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom("api", "imds", "container"), bytes, async (which, b) => {
        const port =
          which === "api"
            ? Number(new URL(daemon.url).port)
            : which === "imds"
              ? imds.port
              : container.port;
        const answer = await rawExchange(port, b);
        const status = httpStatus(answer);
        if (status !== undefined) {
          assert.ok(
            status < 500,
            `${which}: ${status} for ${Buffer.from(b).toString("hex").slice(0, 200)}`,
          );
        }
      }),
      { numRuns: RUNS },
    );
    await assertAlive();
  });

  test("the daemon logged no unexpected error and is still serving", async () => {
    await assertAlive();
    const unexpected = daemon
      .output()
      .split("\n")
      .filter((l) => l.includes("unexpected error") || l.includes('"level":60'));
    assert.deepEqual(unexpected.slice(0, 5), [], "errors that escaped a handler");
  });
});
