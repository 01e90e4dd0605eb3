/**
 * The audit log: one JSON line per mutation, SignRequest (allowed or
 * denied), task-credential answer and failed authentication, with no
 * secret, token or signature in it; and fail-closed: when the line cannot
 * be written, nothing is signed or served.
 */
import assert from "node:assert/strict";
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { SigningService } from "../../gen/credbroker/v1/signing_service_pb.js";
import { credentialClient, transport } from "../support/clients.js";
import { type RunningDaemon, removeDir, runCli, startDaemon } from "../support/daemon.js";

const SECRET = "auditSECRETvalue0123456789abcdefghijklmn";

interface Line {
  time: string;
  caller?: string;
  rpc: string;
  namespace?: string;
  credential?: string;
  host?: string;
  action?: string;
  decision: string;
  reason?: string;
  requestId: string;
}

describe("audit log", () => {
  let daemon: RunningDaemon;
  const auditFile = () => path.join(daemon.dataDir, "audit.log");
  const lines = async (): Promise<Line[]> =>
    (await readFile(auditFile(), "utf8"))
      .trim()
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Line);

  before(async () => {
    daemon = await startDaemon();
  });
  after(async () => {
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
  });

  test("mutations, signatures (allowed and denied) and failed authentication each leave one line, without secrets", async () => {
    const creds = credentialClient(daemon.url, "connect-h2", daemon.token);
    await creds.createCredential({
      credential: {
        namespace: "audit",
        name: "k",
        kind: {
          case: "accessKey",
          value: { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: SECRET },
        },
        allowedScopes: [{ bucket: "reports", prefixes: ["2026/"], actions: ["get_object"] }],
      },
    });
    const signing = createClient(SigningService, transport(daemon.url, "grpc-h2", daemon.token));
    const signed = await signing.signRequest({
      namespace: "audit",
      credential: "k",
      method: "GET",
      url: "https://reports.s3.amazonaws.com/2026/q1.csv",
    });
    const signature = /Signature=([0-9a-f]{64})/.exec(
      signed.headers.find((h) => h.name === "authorization")?.value ?? "",
    )?.[1];
    assert.ok(signature);
    const denied = await signing
      .signRequest({
        namespace: "audit",
        credential: "k",
        method: "PUT",
        url: "https://reports.s3.amazonaws.com/2026/q1.csv",
      })
      .then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
    assert.equal(denied?.code, Code.PermissionDenied);
    const unauth = await credentialClient(daemon.url, "connect-h1", "not-a-token")
      .listCredentials({ namespace: "audit" })
      .then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
    assert.equal(unauth?.code, Code.Unauthenticated);

    const log = await lines();
    const create = log.find((l) => l.rpc.endsWith("/CreateCredential") && l.decision === "allow");
    assert.ok(
      log.some((l) => l.rpc.endsWith("/CreateCredential") && l.decision === "attempt"),
      "recorded before it happened",
    );
    assert.deepEqual(
      [create?.caller, create?.namespace, create?.credential, create?.decision],
      ["admin", "audit", "k", "allow"],
    );
    const signs = log.filter((l) => l.rpc.endsWith("/SignRequest"));
    assert.equal(signs.length, 2);
    assert.deepEqual(
      signs.map((l) => [l.decision, l.host, l.action, l.credential]),
      [
        ["allow", "reports.s3.amazonaws.com", "s3:get_object", "k"],
        ["deny", "reports.s3.amazonaws.com", "s3:put_object", "k"],
      ],
    );
    assert.match(signs[1]?.reason ?? "", /^PermissionDenied: ActionNotInScope/);
    const failed = log.find((l) => l.decision === "deny" && l.rpc.endsWith("/ListCredentials"));
    assert.equal(failed?.caller, undefined);
    assert.match(failed?.reason ?? "", /^Unauthenticated/);
    for (const l of log) assert.match(l.requestId, /^[0-9a-f-]{36}$/);

    const raw = await readFile(auditFile(), "utf8");
    for (const s of [SECRET, daemon.token, "not-a-token", signature]) {
      assert.ok(!raw.includes(s), "no secret, token or signature in the audit log");
    }
    assert.equal((await stat(auditFile())).mode & 0o777, 0o600);
  });
});

describe("audit log: fail-closed", () => {
  test("when the audit line cannot be written, nothing is changed or signed: unavailable", async () => {
    const first = await startDaemon();
    await credentialClient(first.url, "connect-h2", first.token).createCredential({
      credential: {
        name: "k",
        kind: {
          case: "accessKey",
          value: { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: SECRET },
        },
      },
    });
    await first.stop();
    // /dev/full accepts the open and refuses every write (ENOSPC): a full disk, on demand.
    const daemon = await startDaemon({
      dataDir: first.dataDir,
      args: ["--audit-log", "/dev/full"],
    });
    try {
      const creds = credentialClient(daemon.url, "connect-h2", daemon.token);
      const create = await creds
        .createCredential({
          credential: { name: "k2", kind: { case: "token", value: { token: "tok-value-123" } } },
        })
        .then(
          () => undefined,
          (e: unknown) => ConnectError.from(e),
        );
      assert.equal(create?.code, Code.Unavailable);
      assert.deepEqual(
        (await creds.listCredentials({})).credentials.map((c) => c.name),
        ["k"],
        "the refused create changed nothing",
      );
      const signing = createClient(SigningService, transport(daemon.url, "grpc-h2", daemon.token));
      const sign = await signing
        .signRequest({ credential: "k", method: "GET", url: "https://b.s3.amazonaws.com/k" })
        .then(
          (r) => r,
          (e: unknown) => ConnectError.from(e),
        );
      assert.ok(sign instanceof ConnectError, "no signature came back");
      assert.equal(sign.code, Code.Unavailable);
      assert.match(sign.rawMessage, /audit log cannot be written/);
    } finally {
      await daemon.stop();
      await removeDir(daemon.dataDir);
    }
  });

  test("credbroker audit tail filters by credential and caller", async () => {
    const daemon = await startDaemon();
    try {
      const creds = credentialClient(daemon.url, "connect-h2", daemon.token);
      for (const name of ["one", "two"]) {
        await creds.createCredential({
          credential: { name, kind: { case: "token", value: { token: `tok-${name}-value` } } },
        });
      }
      const res = await runCli([
        "audit",
        "tail",
        "--data-dir",
        daemon.dataDir,
        "--credential",
        "two",
      ]);
      assert.equal(res.code, 0, res.stderr);
      const out = res.stdout.trim().split("\n");
      // The attempt, then its outcome.
      assert.equal(out.length, 2);
      assert.ok(out.every((l) => l.includes('"credential":"two"')));
      assert.match(out[1] ?? "", /"decision":"allow"/);
      const byCaller = await runCli([
        "audit",
        "tail",
        "--data-dir",
        daemon.dataDir,
        "--caller",
        "admin",
        "--lines",
        "1",
      ]);
      assert.equal(byCaller.stdout.trim().split("\n").length, 1);
      assert.match(byCaller.stdout, /"credential":"two"/);
    } finally {
      await daemon.stop();
      await removeDir(daemon.dataDir);
    }
  });
});
