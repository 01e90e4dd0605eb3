import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { credentialClient, PROTOCOLS } from "../support/clients.js";
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
