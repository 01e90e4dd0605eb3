import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { after, before, describe, test } from "node:test";
import { gzipSync } from "node:zlib";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { CallerRole } from "../../gen/credbroker/v1/caller_pb.js";
import { CallerService } from "../../gen/credbroker/v1/caller_service_pb.js";
import { credentialClient, PROTOCOLS, transport } from "../support/clients.js";
import { type RunningDaemon, removeDir, startDaemon } from "../support/daemon.js";

describe("bounded requests", () => {
  let daemon: RunningDaemon;
  before(async () => {
    // An HTTP/2 client still sending an oversized message keeps its stream
    // half-open after the answer; shutdown waits out the grace for it.
    daemon = await startDaemon({ args: ["--shutdown-grace", "1"] });
  });
  after(async () => {
    await daemon.stop();
    await removeDir(daemon.dataDir);
  });

  // connect-node's own gRPC-Web client over HTTP/1.1 streams its body and
  // reports a reset when the server answers early; curl and plain node:http
  // see the answer, so that protocol is checked with node:http below.
  for (const protocol of PROTOCOLS.filter((p) => p !== "grpc-web-h1")) {
    test(`a request over 1 MiB is resource_exhausted and stores nothing (${protocol})`, async () => {
      const client = credentialClient(daemon.url, protocol, daemon.token);
      const huge = "x".repeat(1024 * 1024 + 1);
      const err = await client
        .createCredential({
          credential: {
            namespace: "limits",
            name: `huge-${protocol}`,
            description: huge,
            kind: { case: "token", value: { token: "t0ken-value" } },
          },
        })
        .then(
          () => undefined,
          (e: unknown) => ConnectError.from(e),
        );
      assert.equal(err?.code, Code.ResourceExhausted);
      const list = await client.listCredentials({ namespace: "limits" });
      assert.equal(list.credentials.length, 0);
    });
  }

  test("a gRPC-Web message over 1 MiB on HTTP/1.1 gets grpc-status 8 (resource_exhausted)", async () => {
    const size = 2 * 1024 * 1024;
    const frame = Buffer.alloc(5 + size, 0x79);
    frame[0] = 0;
    frame.writeUInt32BE(size, 1);
    const { status, body } = await new Promise<{ status: number; body: Buffer }>(
      (resolve, reject) => {
        const req = http.request(
          `${daemon.url}/credbroker.v1.CredentialService/CreateCredential`,
          {
            method: "POST",
            headers: {
              "content-type": "application/grpc-web+proto",
              authorization: `Bearer ${daemon.token}`,
            },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () =>
              resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }),
            );
          },
        );
        req.on("error", reject);
        req.end(frame);
      },
    );
    assert.equal(status, 200);
    assert.match(body.toString("latin1"), /grpc-status: ?8/);
  });
});

describe("hardened listener", () => {
  let daemon: RunningDaemon;
  before(async () => {
    daemon = await startDaemon({
      args: ["--shutdown-grace", "1", "--rate-limit", "5", "--rate-burst", "5"],
    });
  });
  after(async () => {
    await daemon.stop();
    await removeDir(daemon.dataDir);
  });

  const post = (headers: Record<string, string>, body: Buffer) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(
        `${daemon.url}/credbroker.v1.CredentialService/CreateCredential`,
        {
          method: "POST",
          headers: {
            "content-type": "application/json",
            authorization: `Bearer ${daemon.token}`,
            ...headers,
          },
        },
        (res) => {
          let text = "";
          res.on("data", (c: Buffer) => {
            text += c.toString();
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
        },
      );
      req.on("error", reject);
      req.end(body);
    });

  test("a gzip bomb (28 KiB that inflates past 1 MiB) is resource_exhausted", async () => {
    const json = Buffer.from(
      JSON.stringify({ credential: { name: "bomb", description: "a".repeat(8 * 1024 * 1024) } }),
    );
    const bomb = gzipSync(json, { level: 9 });
    assert.ok(bomb.length < 64 * 1024, `compressed to ${bomb.length} bytes`);
    const rss = async () =>
      Number(
        /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${daemon.process.pid}/status`, "utf8"))?.[1],
      ) * 1024;
    const before = await rss();
    for (let i = 0; i < 10; i++) {
      const res = await post({ "content-encoding": "gzip" }, bomb);
      assert.match(res.body, /"code":"resource_exhausted"/);
    }
    // Ten bombs of 8 MiB each: inflation stops at the limit, so memory barely moves.
    const grown = (await rss()) - before;
    assert.ok(
      grown < 48 * 1024 * 1024,
      `the daemon grew by ${Math.round(grown / 1024 / 1024)} MiB`,
    );
  });

  test("headers over 16 KiB are refused (HTTP/1.1: 431)", async () => {
    const res = await post({ "x-big": "b".repeat(20 * 1024) }, Buffer.from("{}"));
    assert.equal(res.status, 431);
  });

  test("a deadline beyond 130 s is invalid_argument", async () => {
    const client = credentialClient(daemon.url, "connect-h2", daemon.token);
    const err = await client.listCredentials({ namespace: "limits" }, { timeoutMs: 131_000 }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    assert.equal(err?.code, Code.InvalidArgument);
  });

  test("a caller over its rate limit gets resource_exhausted; others are not affected", async () => {
    // A fresh caller, so the earlier tests' requests do not count.
    const admin = createClient(CallerService, transport(daemon.url, "connect-h2", daemon.token));
    const { token } = await admin.createCaller({
      caller: { name: "busy", role: CallerRole.READER, namespaces: ["limits"] },
    });
    const busy = credentialClient(daemon.url, "connect-h2", token);
    const codes = await Promise.all(
      Array.from({ length: 20 }, () =>
        busy.listCredentials({ namespace: "limits" }).then(
          () => "ok",
          (e: unknown) => Code[ConnectError.from(e).code],
        ),
      ),
    );
    assert.ok(codes.filter((c) => c === "ok").length >= 5, codes.join(","));
    assert.ok(codes.includes("ResourceExhausted"), codes.join(","));
  });

  test("repeated failed authentication from one peer is slowed down", async () => {
    const wrong = credentialClient(daemon.url, "connect-h1", "wrong-token");
    const timings: number[] = [];
    // Ten failures a minute are free (stale tokens retry); each one past that waits 100 ms more.
    for (let i = 0; i < 16; i++) {
      const t = performance.now();
      const err = await wrong.listCredentials({}).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      timings.push(performance.now() - t);
      assert.equal(err?.code, Code.Unauthenticated);
    }
    assert.ok((timings[0] ?? 0) < 300, `first failure answered at once (${timings[0]} ms)`);
    assert.ok((timings[15] ?? 0) >= 500, `the sixteenth failure waited (${timings[15]} ms)`);
  });

  test("HTTP/2 settings advertise the stream and header limits", async () => {
    const session = http2.connect(daemon.url);
    try {
      const settings = await new Promise<http2.Settings>((resolve) =>
        session.once("remoteSettings", resolve),
      );
      assert.equal(settings.maxConcurrentStreams, 256);
      assert.equal(settings.maxHeaderListSize, 16 * 1024);
    } finally {
      session.close();
    }
  });

  test("an idle HTTP/1.1 keep-alive connection is closed after 5 s", async () => {
    const socket = net.connect(Number(new URL(daemon.url).port), "127.0.0.1");
    const started = performance.now();
    socket.write("GET /grpc.health.v1.Health/Check HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n");
    socket.resume();
    await new Promise<void>((resolve) => socket.once("close", () => resolve()));
    const seconds = (performance.now() - started) / 1000;
    assert.ok(seconds >= 4.5 && seconds < 9, `closed after ${seconds.toFixed(1)} s`);
  });
});
