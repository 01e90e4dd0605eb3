import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { credentialClient } from "../support/clients.js";
import { type RunningDaemon, removeDir, runCli, startDaemon } from "../support/daemon.js";

describe("credbroker caller", () => {
  let daemon: RunningDaemon;
  let env: Record<string, string>;
  before(async () => {
    daemon = await startDaemon();
    env = { CREDBROKER_ADDR: daemon.url, CREDBROKER_TOKEN_FILE: `${daemon.dataDir}/admin.token` };
  });
  after(async () => {
    await daemon.stop();
    await removeDir(daemon.dataDir);
  });

  test("create prints the token once as JSON; the token works with the caller's role; rotate and delete end it", async () => {
    const created = await runCli(
      ["caller", "create", "ci", "--role", "reader", "-n", "team-a", "-o", "json"],
      env,
    );
    assert.equal(created.code, 0, created.stderr);
    const body = JSON.parse(created.stdout) as {
      token: string;
      caller: { name: string; role: string; namespaces: string[] };
    };
    assert.match(body.token, /^cbt_[A-Za-z0-9_-]{43}$/);
    assert.deepEqual(
      [body.caller.name, body.caller.role, body.caller.namespaces],
      ["ci", "CALLER_ROLE_READER", ["team-a"]],
    );

    const asCi = credentialClient(daemon.url, "connect-h1", body.token);
    assert.deepEqual((await asCi.listCredentials({ namespace: "team-a" })).credentials, []);
    const denied = await asCi.listCredentials({ namespace: "other" }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    assert.equal(denied?.code, Code.PermissionDenied);

    const listed = await runCli(["caller", "list"], env);
    assert.match(listed.stdout, /^ci\s+reader\s+team-a\s+true$/m);
    assert.ok(!listed.stdout.includes(body.token), "list never shows a token");

    const rotated = await runCli(["caller", "rotate", "ci", "-o", "json"], env);
    const next = (JSON.parse(rotated.stdout) as { token: string }).token;
    assert.notEqual(next, body.token);
    const old = await asCi.listCredentials({ namespace: "team-a" }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    assert.equal(old?.code, Code.Unauthenticated);

    assert.equal((await runCli(["caller", "delete", "ci"], env)).code, 0);
    assert.equal((await runCli(["caller", "get", "ci"], env)).code, 4);
    assert.ok(
      !daemon.output().includes(body.token) && !daemon.output().includes(next),
      "no token in the log",
    );
  });

  test("bad input: no role is a usage error; a reader cannot manage callers", async () => {
    assert.equal((await runCli(["caller", "create", "x"], env)).code, 2);
    const reader = JSON.parse(
      (await runCli(["caller", "create", "r", "--role", "reader", "-o", "json"], env)).stdout,
    ) as { token: string };
    const res = await runCli(["caller", "list"], {
      CREDBROKER_ADDR: daemon.url,
      CREDBROKER_TOKEN: reader.token,
      CREDBROKER_TOKEN_FILE: "",
    });
    assert.equal(res.code, 9, res.stderr);
    assert.match(res.stderr, /permission_denied: caller r is not an admin/);
  });
});
