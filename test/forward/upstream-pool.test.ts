import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { brotliCompressSync, deflateSync, gzipSync } from "node:zlib";
import { isDomainError } from "../../src/core/errors.js";
import { UpstreamPool, type UpstreamRequest } from "../../src/forward/upstream-pool.js";
import {
  closedPort,
  type Handler,
  makePki,
  type Pki,
  startUpstream,
  type Upstream,
} from "./upstream.js";

const MiB = 1024 * 1024;

function request(port: number, extra: Partial<UpstreamRequest> = {}): UpstreamRequest {
  return {
    scheme: "http",
    host: "pinned.invalid",
    port,
    address: "127.0.0.1",
    method: "GET",
    path: "/",
    headers: [],
    body: new Uint8Array(),
    timeoutMs: 5000,
    maxResponseBytes: MiB,
    ...extra,
  };
}

async function rejectsWith(
  promise: Promise<unknown>,
  code: string,
  pattern: RegExp,
): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isDomainError(err), `a DomainError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.match(err.message, pattern);
    return true;
  });
}

const header = (headers: readonly [string, string][], name: string) =>
  headers.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);

const ok: Handler = (_req, res) => {
  res.setHeader("content-type", "text/plain");
  res.end("hello");
};

describe("UpstreamPool", () => {
  let pki: Pki;
  const cleanups: (() => Promise<void>)[] = [];
  const upstream = async (
    handler: Handler,
    tls?: { cert: string; key: string },
  ): Promise<Upstream> => {
    const u = await startUpstream(handler, tls);
    cleanups.push(() => u.stop());
    return u;
  };
  const pool = (options: ConstructorParameters<typeof UpstreamPool>[0] = {}): UpstreamPool => {
    const p = new UpstreamPool(options);
    cleanups.push(() => p.close());
    return p;
  };

  before(async () => {
    pki = await makePki();
  });
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  test("pinned over http: connects to the checked address, the name (which resolves nowhere) only in Host", async () => {
    const u = await upstream(ok);
    const res = await pool().send(request(u.port));
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), "hello");
    assert.deepEqual(header(u.requests[0]?.rawHeaders ?? [], "host"), [`pinned.invalid:${u.port}`]);
  });

  test("pinned over https: SNI and the certificate check use the name, the connection the address", async () => {
    const u = await upstream(ok, { cert: pki.cert, key: pki.key });
    const res = await pool({ ca: pki.ca }).send(request(u.port, { scheme: "https" }));
    assert.equal(res.status, 200);
    assert.equal(u.connections[0]?.servername, "pinned.invalid");
    assert.deepEqual(header(u.requests[0]?.rawHeaders ?? [], "host"), [`pinned.invalid:${u.port}`]);
  });

  test("https to an IP literal sends no SNI and checks the certificate's IP", async () => {
    const u = await upstream(ok, { cert: pki.cert, key: pki.key });
    const res = await pool({ ca: pki.ca }).send(
      request(u.port, { scheme: "https", host: "127.0.0.1" }),
    );
    assert.equal(res.status, 200);
    assert.ok(!u.connections[0]?.servername, "no SNI for an IP literal");
    assert.deepEqual(header(u.requests[0]?.rawHeaders ?? [], "host"), [`127.0.0.1:${u.port}`]);
  });

  test("keep-alive: 20 sequential sends use one connection", async () => {
    const u = await upstream(ok);
    const p = pool();
    for (let i = 0; i < 20; i++)
      assert.equal((await p.send(request(u.port, { path: `/${i}` }))).status, 200);
    assert.equal(u.requests.length, 20);
    assert.equal(u.connections.length, 1);
  });

  test("a 302 comes back as it is: the redirect is not followed", async () => {
    const u = await upstream((req, res) => {
      if (req.url === "/next") return void res.end("followed");
      res.writeHead(302, { location: "/next" });
      res.end("moved");
    });
    const res = await pool().send(request(u.port));
    assert.equal(res.status, 302);
    assert.deepEqual(header(res.headers, "location"), ["/next"]);
    assert.equal(res.body.toString(), "moved");
    assert.equal(u.requests.length, 1);
  });

  test("the request goes out unchanged: path with dot segments and %2F, method, body; Host and content-length from the pool", async () => {
    const u = await upstream(ok);
    const path = "/a/../b/./c/%2F%2e%2E/d%20e?x=%2F&y=a%20b&&z";
    await pool().send(
      request(u.port, {
        method: "PUT",
        path,
        headers: [
          ["Host", "evil.example"],
          ["Content-Length", "999"],
          ["X-Repeat", "1"],
          ["x-repeat", "2"],
        ],
        body: Buffer.from("payload"),
      }),
    );
    const seen = u.requests[0];
    assert.ok(seen);
    assert.equal(seen.method, "PUT");
    assert.equal(seen.url, path);
    assert.equal(seen.body.toString(), "payload");
    assert.deepEqual(header(seen.rawHeaders, "host"), [`pinned.invalid:${u.port}`]);
    assert.deepEqual(header(seen.rawHeaders, "content-length"), ["7"]);
    assert.deepEqual(header(seen.rawHeaders, "x-repeat"), ["1", "2"]);
  });

  test("hop-by-hop headers are dropped both ways, with those Connection names", async () => {
    const u = await upstream((_req, res) => {
      res.writeHead(200, [
        ["Connection", "x-foo"],
        ["X-Foo", "upstream-hop"],
        ["Keep-Alive", "timeout=5"],
        ["Proxy-Authenticate", "Basic"],
        ["Trailer", "x-sum"],
        ["X-End", "kept"],
      ]);
      res.end("ok");
    });
    const res = await pool().send(
      request(u.port, {
        headers: [
          ["Connection", "x-foo"],
          ["x-foo", "caller-hop"],
          ["Keep-Alive", "timeout=1"],
          ["TE", "trailers"],
          ["Upgrade", "websocket"],
          ["Proxy-Authorization", "Basic eA=="],
          ["Transfer-Encoding", "chunked"],
          ["X-Kept", "yes"],
        ],
      }),
    );
    const sent = u.requests[0]?.rawHeaders ?? [];
    for (const name of [
      "x-foo",
      "keep-alive",
      "te",
      "upgrade",
      "proxy-authorization",
      "transfer-encoding",
    ]) {
      assert.deepEqual(header(sent, name), [], `${name} not sent`);
    }
    // undici's own connection management header is the only Connection header sent.
    assert.deepEqual(header(sent, "connection"), ["keep-alive"]);
    assert.deepEqual(header(sent, "x-kept"), ["yes"]);
    for (const name of ["connection", "x-foo", "keep-alive", "proxy-authenticate", "trailer"]) {
      assert.deepEqual(header(res.headers, name), [], `${name} not returned`);
    }
    assert.deepEqual(header(res.headers, "x-end"), ["kept"]);
  });

  test("a body over the cap: resource_exhausted and the connection is closed, not pooled", async () => {
    const u = await upstream((_req, res) => {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      const chunk = Buffer.alloc(64 * 1024, 1);
      let sent = 0;
      const more = () => {
        while (sent < 16 * MiB) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once("drain", more);
        }
        res.end();
      };
      res.on("error", () => {});
      more();
    });
    const p = pool();
    await rejectsWith(
      p.send(request(u.port, { maxResponseBytes: 256 * 1024 })),
      "resource_exhausted",
      /cap/,
    );
    await Promise.race([
      u.connections[0]?.closed,
      sleep(2000).then(() => assert.fail("the upstream's socket was not closed")),
    ]);
    // The next send opens a new connection.
    await rejectsWith(
      p.send(request(u.port, { maxResponseBytes: 1024 })),
      "resource_exhausted",
      /cap/,
    );
    assert.equal(u.connections.length, 2);
  });

  test("a body exactly at the cap is returned", async () => {
    const u = await upstream((_req, res) => res.end(Buffer.alloc(1000, 7)));
    const res = await pool().send(request(u.port, { maxResponseBytes: 1000 }));
    assert.equal(res.body.length, 1000);
  });

  test("slow headers: deadline_exceeded within the timeout and a small margin", async () => {
    const u = await upstream(() => {});
    const started = Date.now();
    await rejectsWith(
      pool().send(request(u.port, { timeoutMs: 400 })),
      "deadline_exceeded",
      /timeout/,
    );
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 390 && elapsed < 1400, `took ${elapsed} ms`);
    await Promise.race([
      u.connections[0]?.closed,
      sleep(2000).then(() => assert.fail("socket left open")),
    ]);
  });

  test("slow body: the timeout covers the whole exchange, not each chunk", async () => {
    const u = await upstream((_req, res) => {
      res.writeHead(200);
      const tick = setInterval(() => res.write("x"), 100);
      res.on("close", () => clearInterval(tick));
    });
    const started = Date.now();
    await rejectsWith(
      pool().send(request(u.port, { timeoutMs: 600 })),
      "deadline_exceeded",
      /timeout/,
    );
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 590 && elapsed < 1600, `took ${elapsed} ms`);
  });

  test("TLS from a CA not trusted: unavailable, saying so and not naming the URL", async () => {
    const u = await upstream(ok, { cert: pki.strangerCert, key: pki.strangerKey });
    await assert.rejects(
      pool({ ca: pki.ca }).send(request(u.port, { scheme: "https" })),
      (err: unknown) => {
        assert.ok(isDomainError(err, "unavailable"));
        assert.equal(err.message, "the upstream's TLS certificate is not trusted");
        return true;
      },
    );
    assert.equal(u.requests.length, 0);
  });

  test("the default CA store does not trust the test CA", async () => {
    const u = await upstream(ok, { cert: pki.cert, key: pki.key });
    await rejectsWith(
      pool().send(request(u.port, { scheme: "https" })),
      "unavailable",
      /not trusted/,
    );
  });

  test("a certificate for another name: unavailable", async () => {
    const u = await upstream(ok, { cert: pki.cert, key: pki.key });
    await rejectsWith(
      pool({ ca: pki.ca }).send(request(u.port, { scheme: "https", host: "other.invalid" })),
      "unavailable",
      /does not name the URL's host/,
    );
  });

  test("a refused port: unavailable", async () => {
    const port = await closedPort();
    await rejectsWith(
      pool().send(request(port)),
      "unavailable",
      /^the upstream refused the connection$/,
    );
  });

  test("https to a plain http server: unavailable, a failed handshake", async () => {
    const u = await upstream(ok);
    await rejectsWith(
      pool({ ca: pki.ca }).send(request(u.port, { scheme: "https" })),
      "unavailable",
      /TLS|closed/,
    );
  });

  for (const [coding, encode] of [
    ["gzip", gzipSync],
    ["x-gzip", gzipSync],
    ["deflate", deflateSync],
    ["br", brotliCompressSync],
  ] as const) {
    test(`a ${coding} body is decoded; content-encoding and content-length removed`, async () => {
      const plain = Buffer.from("a body that compresses ".repeat(200));
      const u = await upstream((_req, res) => {
        const wire = encode(plain);
        res.writeHead(200, {
          "content-encoding": coding,
          "content-length": wire.length,
          "x-other": "1",
        });
        res.end(wire);
      });
      const res = await pool().send(request(u.port));
      assert.deepEqual(res.body, plain);
      assert.deepEqual(header(res.headers, "content-encoding"), []);
      assert.deepEqual(header(res.headers, "content-length"), []);
      assert.deepEqual(header(res.headers, "x-other"), ["1"]);
    });
  }

  test("two codings are decoded in reverse order", async () => {
    const plain = Buffer.from("twice");
    const u = await upstream((_req, res) => {
      res.writeHead(200, { "content-encoding": "gzip, br" });
      res.end(brotliCompressSync(gzipSync(plain)));
    });
    assert.deepEqual((await pool().send(request(u.port))).body, plain);
  });

  test("an identity body keeps its content-length", async () => {
    const u = await upstream((_req, res) => res.end("plain"));
    const res = await pool().send(request(u.port));
    assert.deepEqual(header(res.headers, "content-length"), ["5"]);
  });

  test("another content-encoding: failed_precondition", async () => {
    const u = await upstream((_req, res) => {
      res.writeHead(200, { "content-encoding": "compress" });
      res.end("x");
    });
    await rejectsWith(pool().send(request(u.port)), "failed_precondition", /content-encoding/);
  });

  test("a body that is not the gzip it claims: unavailable", async () => {
    const u = await upstream((_req, res) => {
      res.writeHead(200, { "content-encoding": "gzip" });
      res.end("not gzip at all");
    });
    await rejectsWith(pool().send(request(u.port)), "unavailable", /does not decode/);
  });

  test("a gzip bomb (1 GiB of zeros) stops at the cap with bounded memory", async () => {
    // 1,024 gzip members of 1 MiB of zeros each: one valid gzip stream, about 1 MiB on the wire.
    const member = gzipSync(Buffer.alloc(MiB));
    const u = await upstream((_req, res) => {
      res.writeHead(200, { "content-encoding": "gzip" });
      let sent = 0;
      const more = () => {
        while (sent < 1024) {
          sent++;
          if (!res.write(member)) return void res.once("drain", more);
        }
        res.end();
      };
      res.on("error", () => {});
      more();
    });
    global.gc?.();
    const before = process.memoryUsage().rss;
    await rejectsWith(
      pool().send(request(u.port, { maxResponseBytes: 8 * MiB, timeoutMs: 30_000 })),
      "resource_exhausted",
      /cap/,
    );
    const grown = process.memoryUsage().rss - before;
    assert.ok(grown < 96 * MiB, `RSS grew by ${Math.round(grown / MiB)} MiB`);
  });

  test("the least recently used pool beyond maxPools is closed", async () => {
    const u = await upstream(ok);
    const p = pool({ maxPools: 2 });
    await p.send(request(u.port, { host: "a.invalid" }));
    await p.send(request(u.port, { host: "b.invalid" }));
    await p.send(request(u.port, { host: "a.invalid" })); // a is now the most recent
    assert.equal(u.connections.length, 2);
    await p.send(request(u.port, { host: "c.invalid" })); // evicts b
    await Promise.race([
      u.connections[1]?.closed,
      sleep(2000).then(() => assert.fail("b's connection left open")),
    ]);
    assert.equal(u.connections[0]?.isClosed(), false);
    await p.send(request(u.port, { host: "a.invalid" }));
    assert.equal(u.connections.length, 3, "a's pool was kept and reused");
  });

  test("close() closes the connections; later sends fail", async () => {
    const u = await upstream(ok);
    const p = new UpstreamPool();
    await p.send(request(u.port));
    await p.close();
    await Promise.race([
      u.connections[0]?.closed,
      sleep(2000).then(() => assert.fail("socket left open")),
    ]);
    await rejectsWith(p.send(request(u.port)), "unavailable", /shutting down/);
  });
});
