/**
 * The IMDSv2 server over real sockets (node:http requests against 127.0.0.1,
 * port 0), with a controllable clock and a `credentials()` that returns a
 * fixed session or fails as told. Then the guards as pure functions, and the
 * AWS SDK for JavaScript v3's own IMDS provider against the server.
 */
import assert from "node:assert/strict";
import http from "node:http";
import { after, afterEach, before, describe, test } from "node:test";
import { fromInstanceMetadata } from "@aws-sdk/credential-providers";
import { DomainError } from "../../src/core/errors.js";
import {
  type ImdsServer,
  startImdsServer,
  type TaskCredentials,
} from "../../src/metadata/ec2/imds-server.js";
import {
  browserGuard,
  forwardedGuard,
  hostGuard,
  isLoopbackAddress,
  loopbackPeerGuard,
  requestGuards,
} from "../../src/metadata/guards.js";

const ROLE = "s3-reader";
const CREDS_PATH = `/latest/meta-data/iam/security-credentials/${ROLE}`;
const STAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;
const SESSION: TaskCredentials = {
  accessKeyId: "ASIAIMDSTEST00000001",
  secretAccessKey: "imds/secret/KEY0000000000000000000000000",
  sessionToken: "IQoJb3JpZ2luX2VjEIMDS//session-token-0000",
  expiration: new Date("2026-11-24T11:00:00.900Z"),
};

/** A clock the tests move. */
class Clock {
  private ms = Date.parse("2026-11-24T10:00:00.250Z");
  now = (): Date => new Date(this.ms);
  advance(seconds: number): void {
    this.ms += seconds * 1000;
  }
}

/** What `credentials()` does: return the session, or throw. */
type Failure = { kind: "domain"; error: DomainError } | { kind: "plain"; error: Error };

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

interface CallOptions {
  method?: string;
  headers?: http.OutgoingHttpHeaders;
  agent?: http.Agent;
  body?: string | Buffer;
  /** Send the body chunked (no content-length). */
  chunked?: boolean;
}

/** One HTTP/1.1 request over a real socket. */
function call(base: string, path: string, opts: CallOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(path, base), {
      method: opts.method ?? "GET",
      headers: opts.headers,
      agent: opts.agent ?? false,
    });
    req.on("error", reject);
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      );
    });
    if (opts.body !== undefined && opts.chunked === true) {
      req.write(opts.body);
      req.end();
    } else {
      req.end(opts.body);
    }
  });
}

const ttlHeader = (ttl: string) => ({ "x-aws-ec2-metadata-token-ttl-seconds": ttl });

async function newToken(base: string, ttl = "21600", agent?: http.Agent): Promise<string> {
  const reply = await call(base, "/latest/api/token", {
    method: "PUT",
    headers: ttlHeader(ttl),
    ...(agent && { agent }),
  });
  assert.equal(reply.status, 200, reply.body);
  return reply.body;
}

describe("IMDS server over real sockets", () => {
  const clock = new Clock();
  let failure: Failure | undefined;
  const warnings: { obj: object; msg: string }[] = [];
  let server: ImdsServer;
  let v1: ImdsServer;
  let token: string;
  let port: string;

  const options = {
    host: "127.0.0.1",
    port: 0,
    roleName: ROLE,
    async credentials() {
      if (failure !== undefined) throw failure.error;
      return SESSION;
    },
    now: clock.now,
    log: { warn: (obj: object, msg: string) => warnings.push({ obj, msg }) },
  };
  const get = (path: string, headers: http.OutgoingHttpHeaders = {}, method = "GET") =>
    call(server.url, path, { method, headers: { "x-aws-ec2-metadata-token": token, ...headers } });

  before(async () => {
    server = await startImdsServer({ ...options, allowV1: false });
    v1 = await startImdsServer({ ...options, allowV1: true });
    token = await newToken(server.url);
    port = new URL(server.url).port;
  });
  after(async () => {
    await server.close();
    await v1.close();
  });
  afterEach(() => {
    failure = undefined;
  });

  describe("PUT /latest/api/token", () => {
    test("TTL 1 and 21600: 200, a 256-bit base64url token, the TTL echoed", async () => {
      for (const ttl of ["1", "21600"]) {
        const reply = await call(server.url, "/latest/api/token", {
          method: "PUT",
          headers: ttlHeader(ttl),
        });
        assert.equal(reply.status, 200);
        assert.match(reply.body, /^[A-Za-z0-9_-]{43,}$/);
        assert.ok(Buffer.from(reply.body, "base64url").length >= 32);
        assert.equal(reply.headers["x-aws-ec2-metadata-token-ttl-seconds"], ttl);
        assert.equal(reply.headers["content-type"], "text/plain");
      }
    });

    test("TTL 0, 21601, abc, 1.5, -1, empty or missing: 400 and no token", async () => {
      const cases: (string | undefined)[] = [
        "0",
        "21601",
        "abc",
        "1.5",
        "-1",
        "",
        "0x10",
        "1e3",
        "+60",
        undefined,
      ];
      for (const ttl of cases) {
        const reply = await call(server.url, "/latest/api/token", {
          method: "PUT",
          headers: ttl === undefined ? {} : ttlHeader(ttl),
        });
        assert.equal(reply.status, 400, `ttl ${JSON.stringify(ttl)}`);
        assert.equal(reply.body, "Bad Request");
        assert.equal(reply.headers["x-aws-ec2-metadata-token-ttl-seconds"], undefined);
      }
    });

    test("any X-Forwarded-For: 403 and no token", async () => {
      for (const xff of ["203.0.113.7", "127.0.0.1", ""]) {
        const reply = await call(server.url, "/latest/api/token", {
          method: "PUT",
          headers: { ...ttlHeader("60"), "x-forwarded-for": xff },
        });
        assert.equal(reply.status, 403);
        assert.equal(reply.body, "forwarded requests are not served");
      }
    });

    test("a small body is ignored; GET on the token path is 405 with Allow: PUT", async () => {
      const withBody = await call(server.url, "/latest/api/token", {
        method: "PUT",
        headers: ttlHeader("60"),
        body: "x".repeat(200),
      });
      assert.equal(withBody.status, 200);
      const wrong = await call(server.url, "/latest/api/token", { headers: ttlHeader("60") });
      assert.equal(wrong.status, 405);
      assert.equal(wrong.headers.allow, "PUT");
    });

    test("a body over 4 KiB is 413, declared or chunked", async () => {
      const declared = await call(server.url, "/latest/api/token", {
        method: "PUT",
        headers: ttlHeader("60"),
        body: Buffer.alloc(8192, 0x61),
      });
      assert.equal(declared.status, 413);
      assert.equal(declared.headers.connection, "close");
      const chunked = await call(server.url, "/latest/api/token", {
        method: "PUT",
        headers: ttlHeader("60"),
        body: Buffer.alloc(10_000, 0x61),
        chunked: true,
      });
      assert.equal(chunked.status, 413);
    });
  });

  describe("tokens on GET and HEAD", () => {
    test("missing, unknown or expired token: 401 (v2 only)", async () => {
      const missing = await call(server.url, CREDS_PATH);
      assert.equal(missing.status, 401);
      const unknown = await get(CREDS_PATH, {
        "x-aws-ec2-metadata-token": Buffer.alloc(32, 1).toString("base64url"),
      });
      assert.equal(unknown.status, 401);
      const short = await newToken(server.url, "60");
      assert.equal((await get(CREDS_PATH, { "x-aws-ec2-metadata-token": short })).status, 200);
      clock.advance(59);
      assert.equal((await get(CREDS_PATH, { "x-aws-ec2-metadata-token": short })).status, 200);
      clock.advance(1);
      const expired = await get(CREDS_PATH, { "x-aws-ec2-metadata-token": short });
      assert.equal(expired.status, 401);
      assert.equal(expired.body.includes(SESSION.secretAccessKey), false);
      clock.advance(-60);
    });

    test("an unauthenticated GET of an unknown path is 401, not 404", async () => {
      assert.equal((await call(server.url, "/latest/user-data")).status, 401);
    });

    test("allowV1: no token is served; a bad token is still 401", async () => {
      const plain = await call(v1.url, CREDS_PATH);
      assert.equal(plain.status, 200);
      assert.equal(JSON.parse(plain.body).AccessKeyId, SESSION.accessKeyId);
      const bad = await call(v1.url, CREDS_PATH, {
        headers: { "x-aws-ec2-metadata-token": "not-a-token" },
      });
      assert.equal(bad.status, 401);
    });

    test("a token from one server is unknown to another", async () => {
      const other = await newToken(v1.url);
      assert.equal((await get(CREDS_PATH, { "x-aws-ec2-metadata-token": other })).status, 401);
    });
  });

  describe("routes", () => {
    test("the role listing, with and without the trailing slash", async () => {
      for (const path of [
        "/latest/meta-data/iam/security-credentials/",
        "/latest/meta-data/iam/security-credentials",
      ]) {
        const reply = await get(path);
        assert.equal(reply.status, 200);
        assert.equal(reply.body, ROLE);
        assert.equal(reply.headers["content-type"], "text/plain");
      }
    });

    test("the role's credentials: the exact JSON, second-precision Z timestamps", async () => {
      const reply = await get(CREDS_PATH);
      assert.equal(reply.status, 200);
      assert.equal(reply.headers["content-type"], "application/json");
      const body = JSON.parse(reply.body);
      assert.deepEqual(body, {
        Code: "Success",
        LastUpdated: "2026-11-24T10:00:00Z",
        Type: "AWS-HMAC",
        AccessKeyId: SESSION.accessKeyId,
        SecretAccessKey: SESSION.secretAccessKey,
        Token: SESSION.sessionToken,
        Expiration: "2026-11-24T11:00:00Z",
      });
      assert.match(body.LastUpdated, STAMP);
      assert.match(body.Expiration, STAMP);
      clock.advance(90);
      assert.equal(JSON.parse((await get(CREDS_PATH)).body).LastUpdated, "2026-11-24T10:01:30Z");
      clock.advance(-90);
    });

    test("a query string is ignored", async () => {
      assert.equal((await get(`${CREDS_PATH}?x=1`)).status, 200);
    });

    test("another role name, and unknown paths: 404", async () => {
      for (const path of [
        "/latest/meta-data/iam/security-credentials/admin",
        "/latest/meta-data/iam/security-credentials/s3-reader/",
        "/latest/meta-data/ami-id",
        "/latest/user-data",
        "/",
      ]) {
        const reply = await get(path);
        assert.equal(reply.status, 404, path);
        assert.equal(reply.body, "Not Found");
      }
    });

    test("iam/info: the instance profile", async () => {
      const reply = await get("/latest/meta-data/iam/info");
      assert.equal(reply.status, 200);
      assert.equal(reply.headers["content-type"], "application/json");
      const info = JSON.parse(reply.body);
      assert.deepEqual(Object.keys(info), [
        "Code",
        "LastUpdated",
        "InstanceProfileArn",
        "InstanceProfileId",
      ]);
      assert.equal(info.Code, "Success");
      assert.equal(info.LastUpdated, "2026-11-24T10:00:00Z");
      assert.equal(info.InstanceProfileArn, `arn:aws:iam::000000000000:instance-profile/${ROLE}`);
      assert.match(info.InstanceProfileId, /^AIPA[A-Z2-7]{17}$/);
    });

    test("instance-id is i- and 17 hex digits, stable; placement is us-east-1(a)", async () => {
      const first = await get("/latest/meta-data/instance-id");
      const second = await get("/latest/meta-data/instance-id");
      assert.match(first.body, /^i-[0-9a-f]{17}$/);
      assert.equal(second.body, first.body);
      assert.equal((await get("/latest/meta-data/placement/availability-zone")).body, "us-east-1a");
      assert.equal((await get("/latest/meta-data/placement/region")).body, "us-east-1");
    });

    test("the instance identity document", async () => {
      const reply = await get("/latest/dynamic/instance-identity/document");
      assert.equal(reply.status, 200);
      const doc = JSON.parse(reply.body);
      const instanceId = (await get("/latest/meta-data/instance-id")).body;
      assert.equal(doc.accountId, "000000000000");
      assert.ok(["x86_64", "arm64"].includes(doc.architecture));
      assert.equal(doc.availabilityZone, "us-east-1a");
      assert.match(doc.imageId, /^ami-[0-9a-f]{17}$/);
      assert.equal(doc.instanceId, instanceId);
      assert.equal(typeof doc.instanceType, "string");
      assert.match(doc.pendingTime, STAMP);
      assert.equal(doc.privateIp, "127.0.0.1");
      assert.equal(doc.region, "us-east-1");
      assert.equal(doc.version, "2017-09-30");
    });

    test("the meta-data listing names only keys that are served", async () => {
      const listing = await get("/latest/meta-data/");
      assert.equal(listing.status, 200);
      const keys = listing.body.split("\n");
      assert.deepEqual(keys, ["iam/", "instance-id", "placement/"]);
      for (const key of keys) {
        const sub = await get(`/latest/meta-data/${key}`);
        assert.equal(sub.status, 200, key);
        for (const leaf of key.endsWith("/") ? sub.body.split("\n") : []) {
          assert.equal((await get(`/latest/meta-data/${key}${leaf}`)).status, 200, key + leaf);
        }
      }
    });

    test("a wrong method on a known path: 405 with Allow; on an unknown path: 404", async () => {
      for (const [method, path] of [
        ["POST", CREDS_PATH],
        ["DELETE", CREDS_PATH],
        ["PUT", "/latest/meta-data/instance-id"],
        ["PATCH", "/latest/meta-data/"],
      ] as const) {
        const reply = await get(path, {}, method);
        assert.equal(reply.status, 405, `${method} ${path}`);
        assert.equal(reply.headers.allow, "GET, HEAD");
      }
      assert.equal((await get("/latest/nothing", {}, "POST")).status, 404);
    });

    test("HEAD: the same status and headers as GET, no body", async () => {
      for (const path of [CREDS_PATH, "/latest/meta-data/instance-id", "/latest/nothing"]) {
        const got = await get(path);
        const head = await get(path, {}, "HEAD");
        assert.equal(head.status, got.status);
        assert.equal(head.body, "");
        for (const name of ["content-type", "content-length", "cache-control"]) {
          assert.equal(head.headers[name], got.headers[name], `${path} ${name}`);
        }
      }
      assert.equal((await call(server.url, CREDS_PATH, { method: "HEAD" })).status, 401);
    });

    test("keep-alive: many requests over one socket", async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const sockets = new Set<unknown>();
      agent.on("free", (socket) => sockets.add(socket));
      try {
        for (let i = 0; i < 5; i++) {
          const reply = await call(server.url, "/latest/meta-data/instance-id", {
            agent,
            headers: { "x-aws-ec2-metadata-token": token },
          });
          assert.equal(reply.status, 200);
          assert.equal(reply.headers.connection, "keep-alive");
        }
        assert.equal(sockets.size, 1);
      } finally {
        agent.destroy();
      }
    });
  });

  describe("credentials() failures", () => {
    const cases: [Failure, number][] = [
      [
        { kind: "domain", error: new DomainError("not_found", `no ${SESSION.secretAccessKey}`) },
        404,
      ],
      [
        { kind: "domain", error: new DomainError("permission_denied", "not allowed in tasks") },
        404,
      ],
      [{ kind: "domain", error: new DomainError("failed_precondition", "disabled") }, 404],
      [
        {
          kind: "domain",
          error: new DomainError("unavailable", `STS down ${SESSION.sessionToken}`),
        },
        503,
      ],
      [{ kind: "plain", error: new Error(`boom ${SESSION.secretAccessKey}`) }, 500],
    ];
    for (const [f, status] of cases) {
      const label = f.kind === "domain" ? f.error.code : "a plain Error";
      test(`${label}: ${status} on every session path, nothing leaked`, async () => {
        failure = f;
        warnings.length = 0;
        for (const path of [
          CREDS_PATH,
          "/latest/meta-data/iam/security-credentials/",
          "/latest/meta-data/iam/info",
        ]) {
          const reply = await get(path);
          assert.equal(reply.status, status, path);
          assert.equal(reply.body, http.STATUS_CODES[status]);
          for (const secret of [SESSION.secretAccessKey, SESSION.sessionToken, f.error.message]) {
            assert.equal(reply.body.includes(secret), false);
            assert.equal(JSON.stringify(warnings).includes(secret), false);
          }
        }
        assert.equal(warnings.length, status === 404 ? 0 : 3);
        // Paths that need no session still answer.
        assert.equal((await get("/latest/meta-data/instance-id")).status, 200);
      });
    }
  });

  describe("request guards", () => {
    test("Host: evil.com:port and another port are 403; localhost and 169.254.169.254 pass", async () => {
      for (const host of [`evil.com:${port}`, "evil.com", "127.0.0.1:1", "169.254.169.254:1"]) {
        const reply = await get(CREDS_PATH, { host });
        assert.equal(reply.status, 403, host);
        assert.equal(reply.body, "Host header not allowed");
        const put = await call(server.url, "/latest/api/token", {
          method: "PUT",
          headers: { ...ttlHeader("60"), host },
        });
        assert.equal(put.status, 403, host);
        assert.equal(put.body.length < 40, true);
      }
      for (const host of [
        `127.0.0.1:${port}`,
        `localhost:${port}`,
        "localhost",
        "169.254.169.254",
        `169.254.169.254:${port}`,
        "LOCALHOST",
      ]) {
        assert.equal((await get(CREDS_PATH, { host })).status, 200, host);
      }
    });

    test("Origin, Referer or Sec-Fetch-Site: 403, on GET and on the token PUT", async () => {
      for (const headers of [
        { origin: "http://evil.com" },
        { origin: "null" },
        { referer: "http://evil.com/page" },
        { "sec-fetch-site": "cross-site" },
      ]) {
        const reply = await get(CREDS_PATH, headers);
        assert.equal(reply.status, 403);
        assert.equal(reply.body, "browser requests are not served");
        const put = await call(server.url, "/latest/api/token", {
          method: "PUT",
          headers: { ...ttlHeader("60"), ...headers },
        });
        assert.equal(put.status, 403);
        assert.equal(put.body, "browser requests are not served");
      }
    });

    test("refusals are logged with the reason, never a token", async () => {
      warnings.length = 0;
      await get(CREDS_PATH, { origin: "http://evil.com" });
      assert.equal(warnings.length, 1);
      assert.deepEqual(warnings[0]?.obj, {
        reason: "browser requests are not served",
        remoteAddress: "127.0.0.1",
      });
      assert.equal(JSON.stringify(warnings).includes(token), false);
    });
  });
});

describe("audit before the answer (fail-closed)", () => {
  test("the answer waits for the audit; a rejected audit is 503 with no credentials in it", async () => {
    let refuse = false;
    const events: string[] = [];
    const server = await startImdsServer({
      host: "127.0.0.1",
      port: 0,
      roleName: ROLE,
      credentials: async () => SESSION,
      allowV1: false,
      now: new Clock().now,
      async audit(e) {
        await new Promise((r) => setTimeout(r, 20));
        if (refuse) throw new Error("audit log cannot be written");
        events.push(e.decision);
      },
    });
    try {
      const token = await newToken(server.url);
      const read = () =>
        call(server.url, CREDS_PATH, { headers: { "x-aws-ec2-metadata-token": token } });
      const ok = await read();
      assert.equal(ok.status, 200);
      assert.deepEqual(events, ["allow"], "audited before the answer arrived");
      refuse = true;
      const refused = await read();
      assert.equal(refused.status, 503);
      assert.ok(!refused.body.includes(SESSION.secretAccessKey));
      assert.ok(!refused.body.includes(SESSION.sessionToken));
    } finally {
      await server.close();
    }
  });
});

describe("audit lines record the path, never the query", () => {
  test("a query on the credentials path is not written to the audit route", async () => {
    const routes: string[] = [];
    const server = await startImdsServer({
      host: "127.0.0.1",
      port: 0,
      roleName: ROLE,
      credentials: async () => SESSION,
      allowV1: false,
      now: new Clock().now,
      async audit(e) {
        routes.push(e.route);
      },
    });
    try {
      const token = await newToken(server.url);
      const res = await call(server.url, `${CREDS_PATH}?marker=s3cretMARKERvalue`, {
        headers: { "x-aws-ec2-metadata-token": token },
      });
      assert.equal(res.status, 200);
      assert.deepEqual(routes, [`GET ${CREDS_PATH}`]);
    } finally {
      await server.close();
    }
  });
});

describe("token bound over real sockets", () => {
  test("100,000 PUTs with keep-alive: unused tokens make room for each other, no token in use is evicted", async (t) => {
    const clock = new Clock();
    const server = await startImdsServer({
      host: "127.0.0.1",
      port: 0,
      roleName: ROLE,
      credentials: async () => SESSION,
      allowV1: false,
      now: clock.now,
      maxTokens: 8,
    });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    try {
      const long = await newToken(server.url, "21600", agent);
      const short = await newToken(server.url, "60", agent);
      const read = (t: string) =>
        call(server.url, CREDS_PATH, { agent, headers: { "x-aws-ec2-metadata-token": t } });
      assert.equal((await read(short)).status, 200);
      assert.equal((await read(long)).status, 200);

      const total = 100_000;
      const statuses = new Map<number, number>();
      let next = 0;
      const started = performance.now();
      const worker = async () => {
        while (next < total) {
          next++;
          const reply = await call(server.url, "/latest/api/token", {
            method: "PUT",
            headers: ttlHeader("600"),
            agent,
          });
          statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
        }
      };
      await Promise.all(Array.from({ length: 16 }, worker));
      const ms = performance.now() - started;
      // A flood of tokens nobody presents never locks the table.
      assert.deepEqual(Object.fromEntries(statuses), { 200: total });

      assert.equal((await read(short)).status, 200, "the soonest-expiring token was kept");
      assert.equal((await read(long)).status, 200, "the long-lived token was kept");
      clock.advance(60);
      assert.equal((await read(short)).status, 401, "expired");
      assert.equal((await read(await newToken(server.url, "600", agent))).status, 200);
      const rate = Math.round((total / ms) * 1000);
      // Visible with --test-reporter=spec: the flood's rate on this machine.
      t.diagnostic(`${total} PUTs in ${ms.toFixed(0)} ms (${rate}/s)`);
    } finally {
      agent.destroy();
      await server.close();
    }
  });

  test("one peer address fills only its share: its unused tokens make room, another address's stay; all in use: 503", async () => {
    const server = await startImdsServer({
      host: "127.0.0.1",
      port: 0,
      roleName: ROLE,
      credentials: async () => SESSION,
      allowV1: false,
      now: new Clock().now,
      maxTokens: 8,
      maxTokensPerPeer: 3,
    });
    const put = (localAddress: string) =>
      new Promise<{ status: number; token: string }>((resolve, reject) => {
        const req = http.request(new URL("/latest/api/token", server.url), {
          method: "PUT",
          headers: ttlHeader("600"),
          localAddress,
          agent: false,
        });
        req.on("error", reject);
        req.on("response", (res) => {
          let token = "";
          res.on("data", (c: Buffer) => {
            token += c.toString();
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, token }));
        });
        req.end();
      });
    const read = (token: string) =>
      call(server.url, CREDS_PATH, { headers: { "x-aws-ec2-metadata-token": token } });
    try {
      const elsewhere = await put("127.0.0.1");
      const flood: number[] = [];
      for (let i = 0; i < 5; i++) flood.push((await put("127.0.0.2")).status);
      assert.deepEqual(flood, [200, 200, 200, 200, 200]);
      assert.equal((await read(elsewhere.token)).status, 200, "another address's token stayed");
      const inUse = [await put("127.0.0.2"), await put("127.0.0.2"), await put("127.0.0.2")];
      for (const t of inUse) assert.equal((await read(t.token)).status, 200);
      assert.equal((await put("127.0.0.2")).status, 503, "every token of its share is in use");
      assert.equal((await put("127.0.0.3")).status, 200);
    } finally {
      await server.close();
    }
  });

  test("close() ends open keep-alive connections and resolves; the port refuses after", async () => {
    const server = await startImdsServer({
      host: "127.0.0.1",
      port: 0,
      roleName: ROLE,
      credentials: async () => SESSION,
      allowV1: true,
      now: () => new Date(),
    });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    await Promise.all(
      [1, 2, 3, 4].map(() => call(server.url, "/latest/meta-data/instance-id", { agent })),
    );
    const started = performance.now();
    await server.close();
    assert.ok(performance.now() - started < 1000);
    await assert.rejects(call(server.url, "/latest/meta-data/instance-id"), {
      code: "ECONNREFUSED",
    });
    agent.destroy();
  });
});

describe("guards as pure functions", () => {
  const bound = { host: "127.0.0.1", port: 9911 };
  const local = { remoteAddress: "127.0.0.1", localAddress: "127.0.0.1", localPort: 9911 };

  test("isLoopbackAddress", () => {
    for (const a of ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "::ffff:127.0.0.1", "localhost"]) {
      assert.equal(isLoopbackAddress(a), true, a);
    }
    for (const a of [
      "10.0.0.1",
      "0.0.0.0",
      "::",
      "::ffff:10.0.0.1",
      "169.254.169.254",
      "evil.com",
    ]) {
      assert.equal(isLoopbackAddress(a), false, a);
    }
  });

  test("hostGuard: own address with port, localhost, extra hosts; nothing else", () => {
    const guard = hostGuard(bound, ["169.254.170.2"]);
    for (const host of [
      "127.0.0.1:9911",
      "localhost:9911",
      "localhost",
      "169.254.170.2",
      "169.254.170.2:9911",
    ]) {
      assert.equal(guard({ host }, local), undefined, host);
    }
    for (const host of [
      "127.0.0.1",
      "127.0.0.1:80",
      "evil.com:9911",
      "169.254.169.254",
      "localhost.evil.com:9911",
      "localhost:9912",
    ]) {
      assert.equal(guard({ host }, local), "Host header not allowed", host);
    }
    assert.equal(guard({}, local), "missing Host header");
  });

  test("hostGuard on IPv6 and on a wildcard bind", () => {
    const v6 = hostGuard({ host: "::1", port: 9911 }, []);
    assert.equal(v6({ host: "[::1]:9911" }, local), undefined);
    assert.equal(v6({ host: "::1:9911" }, local), "Host header not allowed");
    const any = hostGuard({ host: "0.0.0.0", port: 9911 }, []);
    const peer = { remoteAddress: "10.1.2.3", localAddress: "10.1.2.4", localPort: 9911 };
    assert.equal(any({ host: "10.1.2.4:9911" }, peer), undefined);
    assert.equal(any({ host: "10.1.2.5:9911" }, peer), "Host header not allowed");
    const mapped = { ...peer, localAddress: "::ffff:10.1.2.4" };
    assert.equal(
      hostGuard({ host: "::", port: 9911 }, [])({ host: "10.1.2.4:9911" }, mapped),
      undefined,
    );
  });

  test("browserGuard and forwardedGuard", () => {
    assert.equal(browserGuard({ host: "x" }, local), undefined);
    assert.equal(browserGuard({ origin: "https://a" }, local), "browser requests are not served");
    assert.equal(browserGuard({ referer: "https://a/" }, local), "browser requests are not served");
    assert.equal(forwardedGuard({}, local), undefined);
    assert.equal(
      forwardedGuard({ "x-forwarded-for": "1.2.3.4" }, local),
      "forwarded requests are not served",
    );
    assert.equal(
      forwardedGuard({ forwarded: "for=1.2.3.4" }, local),
      "forwarded requests are not served",
    );
  });

  test("loopbackPeerGuard: a loopback bind needs a loopback peer; another bind takes any", () => {
    const guard = loopbackPeerGuard(bound);
    for (const remoteAddress of ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"]) {
      assert.equal(guard({}, { remoteAddress }), undefined, remoteAddress);
    }
    for (const remoteAddress of ["10.0.0.5", "::ffff:10.0.0.5", "fe80::1", undefined]) {
      assert.equal(guard({}, { remoteAddress }), "peer is not loopback", String(remoteAddress));
    }
    assert.equal(
      loopbackPeerGuard({ host: "0.0.0.0", port: 1 })({}, { remoteAddress: "10.0.0.5" }),
      undefined,
    );
  });

  test("requestGuards: the first refusal wins", () => {
    const guard = requestGuards(bound, []);
    assert.equal(guard({ host: "127.0.0.1:9911" }, local), undefined);
    assert.equal(
      guard({ host: "evil.com", origin: "x" }, { remoteAddress: "10.0.0.5" }),
      "peer is not loopback",
    );
    assert.equal(guard({ host: "evil.com", origin: "x" }, local), "Host header not allowed");
    assert.equal(
      guard({ host: "127.0.0.1:9911", origin: "x" }, local),
      "browser requests are not served",
    );
  });
});

describe("AWS SDK for JavaScript v3", () => {
  test("fromInstanceMetadata gets the session through IMDSv2", async () => {
    // The SDK extends credentials it sees as expired, so the session must be
    // in the real future; the server's clock is the real clock here.
    const expiration = new Date(Math.floor(Date.now() / 1000) * 1000 + 3_600_000);
    const server = await startImdsServer({
      host: "127.0.0.1",
      port: 0,
      roleName: ROLE,
      credentials: async () => ({ ...SESSION, expiration }),
      allowV1: false,
      now: () => new Date(),
    });
    const saved = process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
    process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = `${server.url}/`;
    try {
      const creds = await fromInstanceMetadata({ maxRetries: 0, timeout: 1000 })();
      assert.equal(creds.accessKeyId, SESSION.accessKeyId);
      assert.equal(creds.secretAccessKey, SESSION.secretAccessKey);
      assert.equal(creds.sessionToken, SESSION.sessionToken);
      assert.equal(creds.expiration?.getTime(), expiration.getTime());
    } finally {
      if (saved === undefined) delete process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
      else process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = saved;
      await server.close();
    }
  });
});
