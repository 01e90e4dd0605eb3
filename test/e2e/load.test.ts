/**
 * Load on the fast unary path from a client that is not Node: h2load (C,
 * nghttp2) sends a bounded number of raw gRPC and Connect SignRequests over
 * several connections and streams at once. Every one must be answered with
 * success, signed and audited exactly once; none may fail in the daemon.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { SignRequestRequestSchema } from "../../gen/credbroker/v1/signing_service_pb.js";
import { credentialClient } from "../support/clients.js";
import { type RunningDaemon, removeDir, startDaemon } from "../support/daemon.js";
import { grpcFrame, h2load } from "../support/h2load.js";

const SIGN = "/credbroker.v1.SigningService/SignRequest";
const SECRET = "load/test+SECRET/never-in-any-output-0001";

describe("h2load against the daemon", () => {
  let daemon: RunningDaemon;
  const body = toBinary(
    SignRequestRequestSchema,
    create(SignRequestRequestSchema, {
      credential: "loaded",
      method: "GET",
      url: "https://reports.s3.eu-west-1.amazonaws.com/2026/q1.csv",
    }),
  );

  before(async () => {
    daemon = await startDaemon({ args: ["--rate-limit", "0"] });
    await credentialClient(daemon.url, "connect-h2", daemon.token).createCredential({
      credential: {
        name: "loaded",
        kind: {
          case: "accessKey",
          value: { accessKeyId: "AKIALOADTEST00000001", secretAccessKey: SECRET },
        },
        allowedScopes: [{ bucket: "reports", prefixes: ["2026/"], actions: ["get_object"] }],
      },
    });
  });
  after(async () => {
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
  });

  const audited = async () =>
    (await readFile(path.join(daemon.dataDir, "audit.log"), "utf8"))
      .split("\n")
      .filter(
        (l) =>
          l.includes('"rpc":"/credbroker.v1.SigningService/SignRequest"') &&
          l.includes('"decision":"allow"'),
      ).length;

  for (const [protocol, headers, payload] of [
    ["gRPC", { "content-type": "application/grpc", te: "trailers" }, grpcFrame(body)],
    ["Connect", { "content-type": "application/proto", "connect-protocol-version": "1" }, body],
  ] as const) {
    test(`${protocol}: 3,000 SignRequests, 4 connections × 16 streams, all signed and audited once`, async () => {
      const before = await audited();
      const run = await h2load({
        url: `${daemon.url}${SIGN}`,
        body: payload,
        headers: { ...headers, authorization: `Bearer ${daemon.token}` },
        connections: 4,
        streams: 16,
        requests: 3000,
      });
      assert.equal(run.answered, 3000);
      assert.equal(run.failed, 0);
      // gRPC errors ride on HTTP 200: the audit log and the daemon's log tell.
      assert.equal((await audited()) - before, 3000);
      assert.doesNotMatch(daemon.output(), /"msg":"rpc"/);
      assert.ok(!daemon.output().includes(SECRET));
    });
  }
});
