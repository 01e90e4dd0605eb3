/**
 * Credentials declared in the daemon's config file: the S3-proxy shape loads
 * as is, its scopes hold through SignRequest, and SIGHUP reconciles additions,
 * changes and removals; the API cannot change what the file declares.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { CallerService } from "../../gen/credbroker/v1/caller_service_pb.js";
import { SigningService } from "../../gen/credbroker/v1/signing_service_pb.js";
import { credentialClient, transport } from "../support/clients.js";
import { type RunningDaemon, removeDir, runCli, startDaemon, tempDir } from "../support/daemon.js";

/** The shape the issue fixes, exactly. */
const PROXY_TOML = `[[credentials]]
access_key_id = "AKPROXY00000EXAMPLE"
secret_access_key = "proxy/secret/key/EXAMPLE000000000000"
principal_name = "internal-dashboard"
created_at = "2024-01-15T00:00:00Z"
enabled = true

[[credentials.allowed_scopes]]
bucket = "public-data"
prefixes = []
actions = ["get_object", "head_object", "list_bucket"]
`;

const MORE = `
[[credentials]]
name = "paused"
namespace = "team-a"
access_key_id = "AKIAPAUSED0000000001"
secret_access_key_env = "PAUSED_SECRET"
enabled = false
allowed_scopes = [{ bucket = "b", prefixes = [], actions = ["get_object"] }]

[[credentials]]
name = "unscoped"
access_key_id = "AKIAUNSCOPED00000001"
secret_access_key = "unscoped/secret/0000000000000000000000"
`;

async function code(p: Promise<unknown>): Promise<Code | "ok"> {
  return p.then(
    () => "ok",
    (e: unknown) => ConnectError.from(e).code,
  );
}

describe("declared credentials", () => {
  let dir: string;
  let file: string;
  let daemon: RunningDaemon;
  const env = { PAUSED_SECRET: "paused/secret/from/env/0000000000000000" };
  const sign = (namespace: string, credential: string, method: string, url: string) =>
    createClient(SigningService, transport(daemon.url, "connect-h2", daemon.token)).signRequest({
      namespace,
      credential,
      method,
      url,
    });

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "credbroker-declared-"));
    file = path.join(dir, "credbroker.toml");
    await writeFile(file, PROXY_TOML + MORE);
    daemon = await startDaemon({ args: ["--config", file], env });
  });
  after(async () => {
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
    await rm(dir, { recursive: true, force: true });
  });

  test("the proxy-style declaration loads as is: name, principal, created_at, managed_by", async () => {
    const c = (
      await credentialClient(daemon.url, "connect-h1", daemon.token).getCredential({
        name: "AKPROXY00000EXAMPLE",
      })
    ).credential;
    assert.equal(c?.principalName, "internal-dashboard");
    assert.equal(
      c?.createdAt && timestampDate(c.createdAt).toISOString(),
      "2024-01-15T00:00:00.000Z",
    );
    assert.equal(c?.managedBy, file);
    assert.deepEqual(
      c?.allowedScopes.map((s) => [s.bucket, s.prefixes, s.actions]),
      [["public-data", [], ["get_object", "head_object", "list_bucket"]]],
    );
  });

  test("its scopes hold through SignRequest: GET in public-data signed, PUT denied", async () => {
    assert.equal(
      await code(
        sign("", "AKPROXY00000EXAMPLE", "GET", "https://public-data.s3.amazonaws.com/report.csv"),
      ),
      "ok",
    );
    assert.equal(
      await code(
        sign("", "AKPROXY00000EXAMPLE", "PUT", "https://public-data.s3.amazonaws.com/report.csv"),
      ),
      Code.PermissionDenied,
    );
  });

  test("enabled = false answers AccessDenied; no scopes listed grants nothing", async () => {
    const paused = await sign("team-a", "paused", "GET", "https://b.s3.amazonaws.com/k").then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    assert.equal(paused?.code, Code.PermissionDenied);
    assert.match(paused?.rawMessage ?? "", /^AccessDenied: /);
    const unscoped = await sign("", "unscoped", "GET", "https://b.s3.amazonaws.com/k").then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    assert.match(unscoped?.rawMessage ?? "", /grants nothing/);
  });

  test("the API refuses to change a declared credential, naming the file", async () => {
    const api = credentialClient(daemon.url, "connect-h2", daemon.token);
    const update = await api
      .updateCredential({
        name: "unscoped",
        credential: { description: "x" },
        updateMask: { paths: ["description"] },
      })
      .then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
    assert.equal(update?.code, Code.FailedPrecondition);
    assert.ok(update?.rawMessage.includes(file));
    assert.equal(await code(api.deleteCredential({ name: "unscoped" })), Code.FailedPrecondition);
  });

  test("SIGHUP reconciles: added, changed, removed (disabled)", async () => {
    const reconciled = () =>
      (daemon.output().match(/declared credentials reconciled/g) ?? []).length;
    const before = reconciled();
    await writeFile(
      file,
      `${PROXY_TOML.replace('"internal-dashboard"', '"dashboard-v2"')}
[[credentials]]
name = "added"
token = "added-token-value"
`,
    );
    daemon.process.kill("SIGHUP");
    for (let i = 0; i < 100 && reconciled() === before; i++)
      await new Promise((r) => setTimeout(r, 50));
    assert.equal(reconciled(), before + 1);
    const api = credentialClient(daemon.url, "connect-h2", daemon.token);
    assert.equal(
      (await api.getCredential({ name: "AKPROXY00000EXAMPLE" })).credential?.principalName,
      "dashboard-v2",
    );
    assert.equal((await api.getCredential({ name: "added" })).credential?.kind.case, "token");
    assert.equal((await api.getCredential({ name: "unscoped" })).credential?.enabled, false);
    assert.equal(
      (await api.getCredential({ namespace: "team-a", name: "paused" })).credential?.enabled,
      false,
    );
  });

  test("no declared secret reaches a response, the log or the data dir's state file", async () => {
    for (const secret of [
      "proxy/secret/key/EXAMPLE000000000000",
      env.PAUSED_SECRET,
      "added-token-value",
    ]) {
      assert.ok(!daemon.output().includes(secret));
    }
  });
});

describe("declared credentials: refusals at start", () => {
  test("a declaration that collides with an API-made credential, or a bad field, stops the daemon", async () => {
    const dataDir = await tempDir();
    const dir = await mkdtemp(path.join(os.tmpdir(), "credbroker-declared-"));
    try {
      const first = await startDaemon({ dataDir });
      await credentialClient(first.url, "connect-h2", first.token).createCredential({
        credential: { name: "taken", kind: { case: "token", value: { token: "tok-value-1" } } },
      });
      await first.stop();
      const collide = path.join(dir, "collide.toml");
      await writeFile(collide, '[[credentials]]\nname = "taken"\ntoken = "x-token-value"\n');
      const res = await runCli([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dataDir,
        "--config",
        collide,
      ]);
      assert.equal(res.code, 1);
      assert.match(res.stderr, /taken already exists and is not declared by this file/);
      const bad = path.join(dir, "bad.toml");
      await writeFile(bad, '\n[[credentials]]\nname = "x"\ntoken = "t"\nsecret_sauce = 1\n');
      const badRes = await runCli([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dataDir,
        "--config",
        bad,
      ]);
      assert.equal(badRes.code, 2);
      assert.match(badRes.stderr, /bad\.toml:5: credentials\[0\]\.secret_sauce: unknown field/);
    } finally {
      await removeDir(dataDir);
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("declared callers", () => {
  test("a [[callers]] table with a token hash works, is managed, and is disabled when removed (SIGHUP)", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "credbroker-callers-"));
    const file = path.join(dir, "callers.toml");
    const token = "cbt_declared-caller-token-000000000000000000000";
    const hash = createHash("sha256").update(token).digest("hex");
    await writeFile(
      file,
      `[[callers]]\nname = "ci"\nrole = "reader"\nnamespaces = ["team-a"]\ntoken_sha256 = "${hash}"\n`,
    );
    const daemon = await startDaemon({ args: ["--config", file] });
    try {
      const asCi = credentialClient(daemon.url, "connect-h2", token);
      assert.equal(await code(asCi.listCredentials({ namespace: "team-a" })), "ok");
      assert.equal(await code(asCi.listCredentials({ namespace: "other" })), Code.PermissionDenied);
      const admin = createClient(CallerService, transport(daemon.url, "connect-h2", daemon.token));
      assert.equal((await admin.getCaller({ name: "ci" })).caller?.managedBy, file);
      assert.equal(await code(admin.rotateCallerToken({ name: "ci" })), Code.FailedPrecondition);

      const reconciled = () =>
        (daemon.output().match(/declared credentials reconciled/g) ?? []).length;
      const before = reconciled();
      await writeFile(file, "");
      daemon.process.kill("SIGHUP");
      for (let i = 0; i < 100 && reconciled() === before; i++)
        await new Promise((r) => setTimeout(r, 50));
      assert.equal(await code(asCi.listCredentials({ namespace: "team-a" })), Code.Unauthenticated);
      assert.ok(!daemon.output().includes(token), "the token is never logged");
    } finally {
      await daemon.stop();
      await removeDir(daemon.dataDir);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
