import assert from "node:assert/strict";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { credentialClient } from "../support/clients.js";
import { removeDir, runCli, startDaemon } from "../support/daemon.js";

/** How many of 20 quick calls the daemon refused as over the rate limit. */
async function refused(url: string, token: string): Promise<number> {
  const client = credentialClient(url, "connect-h2", token);
  const codes = await Promise.all(
    Array.from({ length: 20 }, () =>
      client.listCredentials({}).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e).code,
      ),
    ),
  );
  return codes.filter((c) => c === Code.ResourceExhausted).length;
}

describe("daemon config file", () => {
  let dir: string;
  const file = (name: string) => path.join(dir, name);
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "credbroker-config-"));
    // One rule: --rate-limit ↔ rate_limit ↔ CREDBROKER_RATE_LIMIT.
    await writeFile(file("limited.toml"), 'rate_limit = 1\nrate_burst = 1\nlog_level = "debug"\n');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("file settings apply; the environment beats the file; a flag beats the environment", async () => {
    const fromFile = await startDaemon({ args: ["--config", file("limited.toml")] });
    try {
      assert.ok((await refused(fromFile.url, fromFile.token)) > 0, "rate_limit = 1 from the file");
      // One token a second refills the bucket; that call succeeds and is logged at debug.
      await new Promise((r) => setTimeout(r, 1100));
      await credentialClient(fromFile.url, "connect-h2", fromFile.token).listCredentials({});
      assert.match(
        fromFile.output(),
        /"level":20[^\n]*"code":"ok"/,
        'log_level = "debug" from the file',
      );
    } finally {
      await fromFile.stop();
      await removeDir(fromFile.dataDir);
    }
    const envWins = await startDaemon({
      args: ["--config", file("limited.toml")],
      env: { CREDBROKER_RATE_LIMIT: "0" },
    });
    try {
      assert.equal(
        await refused(envWins.url, envWins.token),
        0,
        "CREDBROKER_RATE_LIMIT=0 beats the file",
      );
    } finally {
      await envWins.stop();
      await removeDir(envWins.dataDir);
    }
    const flagWins = await startDaemon({
      args: ["--config", file("limited.toml"), "--rate-limit", "1"],
      env: { CREDBROKER_RATE_LIMIT: "0", CREDBROKER_RATE_BURST: "1" },
    });
    try {
      assert.ok(
        (await refused(flagWins.url, flagWins.token)) > 0,
        "--rate-limit 1 beats the environment",
      );
    } finally {
      await flagWins.stop();
      await removeDir(flagWins.dataDir);
    }
  });

  const bad: [string, string, RegExp][] = [
    ["unknown key", 'listen = "127.0.0.1:0"\nlisten_port = 5\n', /:2: listen_port: unknown key/],
    ["wrong type", "allow_ambient = 1\n", /:1: allow_ambient: expected true or false/],
    ["TOML syntax", "listen = \n", /:1:\d+: Invalid TOML/],
    ["bad value", 'log_level = "info"\nlisten = "nowhere"\n', /:2: listen: expected HOST:PORT/],
  ];
  for (const [what, body, message] of bad) {
    test(`${what}: config check and serve both refuse it, naming the line or key`, async () => {
      const f = file(`${what.replace(/ /g, "-")}.toml`);
      await writeFile(f, body);
      const check = await runCli(["config", "check", f]);
      assert.equal(check.code, 2);
      assert.match(check.stderr, message);
      const serve = await runCli(["serve", "--config", f, "--data-dir", file("data")]);
      assert.equal(serve.code, 2);
      assert.match(serve.stderr, message);
    });
  }

  test("config check accepts a good file without starting anything", async () => {
    const res = await runCli(["config", "check", file("limited.toml")], {
      CREDBROKER_DATA_DIR: file("never"),
    });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /limited\.toml: ok/);
    await assert.rejects(stat(file("never")), "no data dir was made");
  });
});
