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
import { CallerRole } from "../../gen/credbroker/v1/caller_pb.js";
import { CallerService } from "../../gen/credbroker/v1/caller_service_pb.js";
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

describe("audit log: denials answered as not_found", () => {
  test("a credential outside the caller's namespaces: not_found as if absent, audited deny namespace_not_allowed; audit tail --decision finds the probes", async () => {
    const daemon = await startDaemon();
    try {
      const admin = credentialClient(daemon.url, "connect-h2", daemon.token);
      await admin.createCredential({
        credential: {
          namespace: "team-b",
          name: "k",
          kind: {
            case: "accessKey",
            value: { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: SECRET },
          },
        },
      });
      const callers = createClient(
        CallerService,
        transport(daemon.url, "connect-h2", daemon.token),
      );
      const { token } = await callers.createCaller({
        caller: { name: "prober", role: CallerRole.WRITER, namespaces: ["team-a"] },
      });
      const creds = credentialClient(daemon.url, "grpc-web-h1", token);
      const signing = createClient(SigningService, transport(daemon.url, "grpc-h2", token));
      const probes: [string, () => Promise<unknown>][] = [
        ["GetCredential", () => creds.getCredential({ namespace: "team-b", name: "k" })],
        [
          "UpdateCredential",
          () =>
            creds.updateCredential({
              namespace: "team-b",
              name: "k",
              credential: { enabled: false },
              updateMask: { paths: ["enabled"] },
            }),
        ],
        ["DeleteCredential", () => creds.deleteCredential({ namespace: "team-b", name: "k" })],
        [
          "VerifyCredential",
          () =>
            creds.verifyCredential({
              target: { case: "stored", value: { namespace: "team-b", name: "k" } },
            }),
        ],
        [
          "SignRequest",
          () =>
            signing.signRequest({
              namespace: "team-b",
              credential: "k",
              method: "GET",
              url: "https://reports.s3.amazonaws.com/2026/q1.csv",
            }),
        ],
      ];
      const answers = async () => {
        const out: string[] = [];
        for (const [rpc, probe] of probes) {
          const err = await probe().then(
            () => assert.fail(`${rpc} should be refused`),
            (e: unknown) => ConnectError.from(e),
          );
          out.push(`${rpc} ${Code[err.code]} ${err.rawMessage}`);
        }
        return out;
      };
      const auditLines = async () =>
        (await readFile(path.join(daemon.dataDir, "audit.log"), "utf8"))
          .trim()
          .split("\n")
          .map((l) => JSON.parse(l) as Line)
          .filter((l) => l.caller === "prober");

      const hidden = await answers();
      assert.deepEqual(
        hidden,
        probes.map(([rpc]) => `${rpc} NotFound credential team-b/k not found`),
      );
      assert.deepEqual(
        (await auditLines()).map((l) => [
          l.rpc.split("/").at(-1),
          l.decision,
          l.reason,
          l.namespace,
          l.credential,
        ]),
        probes.map(([rpc]) => [rpc, "deny", "namespace_not_allowed", "team-b", "k"]),
        "each refusal audited as a denial, reads included",
      );
      const byDecision = await runCli([
        "audit",
        "tail",
        "--data-dir",
        daemon.dataDir,
        "--decision",
        "deny",
        "-n",
        "team-b",
        "-c",
        "k",
        "--lines",
        "100",
      ]);
      assert.equal(byDecision.code, 0, byDecision.stderr);
      const tailed = byDecision.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as Line);
      assert.deepEqual(
        tailed.map((l) => [l.caller, l.rpc.split("/").at(-1)]),
        probes.map(([rpc]) => ["prober", rpc]),
        "who probed team-b/k, in one command",
      );

      // Absent for real: the very same answers; audited (where audited at all) as error NotFound.
      await admin.deleteCredential({ namespace: "team-b", name: "k" });
      const before = (await auditLines()).length;
      assert.deepEqual(await answers(), hidden, "a hidden credential answers as an absent one");
      assert.deepEqual(
        (await auditLines())
          .slice(before)
          .filter((l) => l.decision !== "attempt")
          .map((l) => [l.rpc.split("/").at(-1), l.decision, l.reason]),
        [
          ["UpdateCredential", "error", "NotFound: credential team-b/k not found"],
          ["DeleteCredential", "error", "NotFound: credential team-b/k not found"],
          ["SignRequest", "error", "NotFound: credential team-b/k not found"],
        ],
      );

      const bad = await runCli([
        "audit",
        "tail",
        "--data-dir",
        daemon.dataDir,
        "--decision",
        "maybe",
      ]);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /--decision: one of allow, deny, error, attempt/);
    } finally {
      await daemon.stop();
      await removeDir(daemon.dataDir);
    }
  });
});
