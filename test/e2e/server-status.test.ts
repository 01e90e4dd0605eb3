/**
 * ServerService.GetServerStatus and `credbroker status` against the real
 * daemon: what only the daemon knows (version, uptime, store, counts,
 * listeners, health), over every protocol and @grpc/grpc-js; admins only.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { durationMs, timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { CallerRole } from "../../gen/credbroker/v1/caller_pb.js";
import { CallerService } from "../../gen/credbroker/v1/caller_service_pb.js";
import { CredentialService } from "../../gen/credbroker/v1/credential_service_pb.js";
import { ServerService, ServingState } from "../../gen/credbroker/v1/server_service_pb.js";
import { runCredbroker } from "../support/cli-run.js";
import {
  type GrpcStatusError,
  grpcJsClient,
  PROTOCOLS,
  rejection,
  transport,
} from "../support/clients.js";
import { listenerUrl, type RunningDaemon, removeDir, startDaemon } from "../support/daemon.js";
import { type EtcdServer, startEtcd } from "../support/etcd.js";

const PACKAGE_JSON = fileURLToPath(new URL("../../../package.json", import.meta.url));

const accessKey = {
  case: "accessKey",
  value: {
    accessKeyId: "AKIAIOSFODNN7EXAMPLE",
    secretAccessKey: "statusSECRET0123456789abcdefghijklmnopq",
  },
} as const;

describe("GetServerStatus and credbroker status", () => {
  let daemon: RunningDaemon;
  let readerToken: string;
  const startedBefore = new Date();

  before(async () => {
    daemon = await startDaemon({
      args: [
        "--imds-listen",
        "127.0.0.1:0",
        "--imds-credential",
        "team-a/task-key",
        "--container-listen",
        "127.0.0.1:0",
      ],
    });
    const t = transport(daemon.url, "connect-h2", daemon.token);
    const creds = createClient(CredentialService, t);
    for (const [namespace, name] of [
      ["team-a", "one"],
      ["team-a", "two"],
      ["team-b", "three"],
      ["", "four"],
    ] as const) {
      await creds.createCredential({ credential: { namespace, name, kind: accessKey } });
    }
    ({ token: readerToken } = await createClient(CallerService, t).createCaller({
      caller: { name: "reader-a", role: CallerRole.READER, namespaces: ["team-a"] },
    }));
  });
  after(async () => {
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
  });

  for (const protocol of PROTOCOLS) {
    test(`${protocol}: the admin sees version, uptime, health, store and listeners`, async () => {
      const server = createClient(ServerService, transport(daemon.url, protocol, daemon.token));
      const s = await server.getServerStatus({});
      const pkg = JSON.parse(await readFile(PACKAGE_JSON, "utf8")) as { version: string };
      assert.equal(s.version, pkg.version);
      assert.equal(s.nodeVersion, process.version);
      assert.equal(s.health, ServingState.SERVING);
      assert.ok(s.startedAt && s.uptime);
      const started = timestampDate(s.startedAt);
      assert.ok(started >= new Date(startedBefore.getTime() - 1000) && started <= new Date());
      assert.ok(durationMs(s.uptime) >= 0 && durationMs(s.uptime) < 120_000);
      assert.equal(s.store?.backend, "leveldb");
      assert.equal(s.store?.location, daemon.dataDir);
      assert.equal(s.store?.reachable, true);
      // Every namespace's credentials; the callers the store holds (admin.token's admin is none).
      assert.equal(s.store?.credentialCount, 4n);
      assert.equal(s.store?.callerCount, 1n);
      assert.deepEqual(
        s.listeners.map((l) => [l.kind, l.url, l.credential]),
        [
          ["api", daemon.url, ""],
          ["container", listenerUrl(daemon, "container credentials listening"), ""],
          ["imds", listenerUrl(daemon, "imds listening"), "team-a/task-key"],
        ],
      );
    });
  }

  test("the counts follow writes; uptime grows", async () => {
    const t = transport(daemon.url, "grpc-h2", daemon.token);
    const server = createClient(ServerService, t);
    const before = await server.getServerStatus({});
    await createClient(CredentialService, t).deleteCredential({ namespace: "", name: "four" });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const now = await server.getServerStatus({});
    assert.equal(now.store?.credentialCount, 3n);
    assert.ok(now.uptime && before.uptime);
    assert.ok(durationMs(now.uptime) > durationMs(before.uptime));
    await createClient(CredentialService, t).createCredential({
      credential: { name: "four", kind: accessKey },
    });
  });

  test("@grpc/grpc-js: a real gRPC status; a reader is permission_denied, no token unauthenticated", async () => {
    const admin = grpcJsClient(ServerService, daemon.url, daemon.token);
    const reader = grpcJsClient(ServerService, daemon.url, readerToken);
    const anonymous = grpcJsClient(ServerService, daemon.url);
    try {
      const s = await admin.client.getServerStatus({} as never);
      assert.equal(s.store?.credentialCount, 4n);
      const denied = (await reader.client
        .getServerStatus({} as never)
        .catch((e) => e)) as GrpcStatusError;
      assert.equal(denied.code, grpc.status.PERMISSION_DENIED);
      assert.match(denied.details, /reader-a is not an admin/);
      const anon = (await anonymous.client
        .getServerStatus({} as never)
        .catch((e) => e)) as GrpcStatusError;
      assert.equal(anon.code, grpc.status.UNAUTHENTICATED);
    } finally {
      for (const c of [admin, reader, anonymous]) c.close();
    }
  });

  test("a refusal tells nothing and is audited", async () => {
    const reader = createClient(ServerService, transport(daemon.url, "connect-h1", readerToken));
    const err = await rejection(reader.getServerStatus({}));
    assert.equal(err.code, Code.PermissionDenied);
    assert.doesNotMatch(err.rawMessage, /leveldb|127\.0\.0\.1|\d+\.\d+\.\d+/);
    const lines = (await readFile(path.join(daemon.dataDir, "audit.log"), "utf8"))
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { rpc: string; caller?: string; decision: string });
    assert.ok(
      lines.some(
        (l) =>
          l.rpc === "/credbroker.v1.ServerService/GetServerStatus" &&
          l.caller === "reader-a" &&
          l.decision === "deny",
      ),
    );
  });

  const env = () => ({
    CREDBROKER_ADDR: new URL(daemon.url).host,
    CREDBROKER_TOKEN_FILE: path.join(daemon.dataDir, "admin.token"),
  });

  test("credbroker status: one screen", async () => {
    const r = await runCredbroker(["status"], { env: env() });
    assert.equal(r.code, 0, r.stderr);
    const rows = new Map(
      r.stdout
        .trimEnd()
        .split("\n")
        .map((line) => {
          const m = /^(\S+) {2,}(.*)$/.exec(line);
          assert.ok(m?.[1] && m[2] !== undefined, line);
          return [m[1], m[2]] as const;
        }),
    );
    assert.equal(rows.get("address"), daemon.url);
    assert.equal(rows.get("node"), process.version);
    assert.equal(rows.get("health"), "serving");
    assert.match(rows.get("uptime") ?? "", /^(\d+m )?\d+s \(since \d{4}-\d\d-\d\dT[\d:.]+Z\)$/);
    assert.equal(rows.get("store"), `leveldb ${daemon.dataDir}`);
    assert.equal(rows.get("credentials"), "4");
    assert.equal(rows.get("callers"), "1");
    assert.equal(rows.get("api"), daemon.url);
    assert.equal(
      rows.get("imds"),
      `${listenerUrl(daemon, "imds listening")} (serves team-a/task-key)`,
    );
    assert.equal(rows.get("container"), listenerUrl(daemon, "container credentials listening"));
    assert.equal(r.stderr, "");
  });

  test("credbroker status -o json: the response's proto3 JSON", async () => {
    const r = await runCredbroker(["status", "-o", "json"], { env: env() });
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as {
      health: string;
      store: { credentialCount: string; reachable: boolean };
      listeners: { kind: string }[];
    };
    assert.equal(s.health, "SERVING_STATE_SERVING");
    assert.deepEqual(s.store.credentialCount, "4");
    assert.deepEqual(
      s.listeners.map((l) => l.kind),
      ["api", "container", "imds"],
    );
  });

  test("credbroker status: a reader exits 9, no token 3, no daemon 6", async () => {
    const reader = await runCredbroker(["status"], {
      env: { CREDBROKER_ADDR: new URL(daemon.url).host, CREDBROKER_TOKEN: readerToken },
    });
    assert.equal(reader.code, 9, reader.stderr);
    assert.match(
      reader.stderr,
      /^credbroker status: permission_denied: caller reader-a is not an admin/,
    );
    assert.equal(reader.stdout, "");
    const anonymous = await runCredbroker(["status"], {
      env: { CREDBROKER_ADDR: new URL(daemon.url).host, CREDBROKER_TOKEN: "not-a-token" },
    });
    assert.equal(anonymous.code, 3, anonymous.stderr);
    const down = await runCredbroker(["status", "--addr", "127.0.0.1:1"], { env: env() });
    assert.equal(down.code, 6, down.stderr);
    assert.match(down.stderr, /cannot reach credbroker/);
  });
});

describe("GetServerStatus on etcd: the store's hosts, and a store that does not answer", () => {
  let etcd: EtcdServer;
  let daemon: RunningDaemon;

  before(async () => {
    etcd = await startEtcd();
    daemon = await startDaemon({
      args: ["--store", "etcd", "--etcd-endpoints", etcd.endpoint, "--etcd-stale-limit", "0"],
      env: { CREDBROKER_MASTER_KEY: randomBytes(32).toString("base64") },
    });
  });
  after(async () => {
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
    await etcd?.stop();
  });

  test("etcd answering, then killed: reachable false with a reason; status exits 6", async () => {
    const t = transport(daemon.url, "connect-h2", daemon.token);
    await createClient(CredentialService, t).createCredential({
      credential: { namespace: "fleet", name: "k", kind: accessKey },
    });
    const server = createClient(ServerService, t);
    const up = await server.getServerStatus({});
    assert.equal(up.store?.backend, "etcd");
    assert.equal(up.store?.location, `${new URL(etcd.endpoint).host} /credbroker/`);
    assert.equal(up.store?.reachable, true);
    assert.equal(up.store?.credentialCount, 1n);

    await etcd.kill("SIGKILL");
    const down = await server.getServerStatus({});
    assert.equal(down.health, ServingState.SERVING, "the daemon itself still serves");
    assert.equal(down.store?.reachable, false);
    assert.equal(down.store?.credentialCount, undefined);
    assert.match(down.store?.problem ?? "", /^unavailable: /);
    const cli = await runCredbroker(["status"], {
      env: {
        CREDBROKER_ADDR: new URL(daemon.url).host,
        CREDBROKER_TOKEN_FILE: path.join(daemon.dataDir, "admin.token"),
      },
    });
    assert.equal(cli.code, 6, cli.stderr);
    assert.match(cli.stdout, /^store {2,}etcd \S+ \/credbroker\/ \(not answering: unavailable: /m);
    assert.match(cli.stdout, /^credentials {2,}-$/m);
  });
});
