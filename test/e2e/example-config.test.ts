/**
 * examples/credbroker.toml: it names every serve setting (set or commented
 * out), `config check` accepts it as shipped, and serve starts with it and
 * makes what it declares. Only the environment differs from production: the
 * secrets it names, a temp data dir and free ports (flags and environment win
 * over the file, as documented).
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { SERVE_FLAGS } from "../../src/cli/commands/serve-flags.js";
import {
  listenerUrl,
  type RunningDaemon,
  removeDir,
  runCli,
  startDaemon,
  tempDir,
} from "../support/daemon.js";
import { REPO_ROOT } from "../support/readme.js";

const EXAMPLE = path.join(REPO_ROOT, "examples", "credbroker.toml");
const SECRETS = {
  REPORTS_READER_SECRET: "exampleREPORTSsecret0123456789abcdefghijk",
  DEPLOY_SOURCE_SECRET: "exampleDEPLOYsecret0123456789abcdefghijklm",
};
/** Not settings a config file can hold. */
const NOT_IN_FILE = new Set(["config", "help"]);

describe("examples/credbroker.toml", () => {
  let dataDir: string;
  before(async () => {
    dataDir = await tempDir("credbroker-example-");
  });
  after(async () => {
    await removeDir(dataDir);
  });

  test("names every serve setting, set or commented out, and declares credentials and callers", async () => {
    const text = await readFile(EXAMPLE, "utf8");
    const missing = SERVE_FLAGS.filter((f) => !NOT_IN_FILE.has(f.name))
      .map((f) => f.name.replaceAll("-", "_"))
      .filter((key) => !new RegExp(`^(# )?${key} = `, "m").test(text));
    assert.deepEqual(missing, []);
    assert.match(text, /^\[\[credentials\]\]$/m);
    assert.match(text, /^\[\[credentials\.allowed_scopes\]\]$/m);
    assert.match(text, /^\[\[callers\]\]$/m);
  });

  test("config check accepts it (exit 0) with its secrets in the environment", async () => {
    const ok = await runCli(["config", "check", EXAMPLE], {
      ...SECRETS,
      CREDBROKER_DATA_DIR: dataDir,
    });
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /credbroker\.toml: ok \(listen 127\.0\.0\.1:50051, data dir /);
    for (const secret of Object.values(SECRETS)) {
      assert.ok(!(ok.stdout + ok.stderr).includes(secret));
    }
  });

  test("config check refuses it (exit 2) without them, naming each variable at its line", async () => {
    const bad = await runCli(["config", "check", EXAMPLE], { CREDBROKER_DATA_DIR: dataDir });
    assert.equal(bad.code, 2, bad.stdout + bad.stderr);
    assert.match(
      bad.stderr,
      /credbroker\.toml:\d+: credentials\[0\]\.secret_access_key_env: REPORTS_READER_SECRET is not set/,
    );
    assert.match(
      bad.stderr,
      /credbroker\.toml:\d+: credentials\[1\]\.secret_access_key_env: DEPLOY_SOURCE_SECRET is not set/,
    );
  });

  describe("serve --config examples/credbroker.toml", () => {
    let daemon: RunningDaemon;
    before(async () => {
      daemon = await startDaemon({
        dataDir,
        args: [
          "--config",
          EXAMPLE,
          "--imds-listen",
          "127.0.0.1:0",
          "--container-listen",
          "127.0.0.1:0",
        ],
        env: SECRETS,
      });
    });
    after(async () => {
      await daemon?.stop();
    });

    test("starts with its listeners and makes its declared credentials and caller", async () => {
      assert.match(listenerUrl(daemon, "imds listening"), /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.match(
        listenerUrl(daemon, "container credentials listening"),
        /^http:\/\/127\.0\.0\.1:\d+$/,
      );
      const env = {
        CREDBROKER_ADDR: daemon.url,
        CREDBROKER_TOKEN_FILE: path.join(dataDir, "admin.token"),
      };
      const list = await runCli(["cred", "list", "-n", "team-a", "-o", "json"], env);
      assert.equal(list.code, 0, list.stderr);
      const { credentials } = JSON.parse(list.stdout) as {
        credentials: { name: string; managedBy?: string; allowedInTasks?: boolean }[];
      };
      assert.deepEqual(credentials.map((c) => c.name).sort(), [
        "deploy-source",
        "deployer",
        "reports-reader",
      ]);
      for (const c of credentials) assert.equal(c.managedBy, EXAMPLE);
      assert.equal(credentials.find((c) => c.name === "deployer")?.allowedInTasks, true);

      const callers = await runCli(["caller", "list", "-o", "json"], env);
      assert.equal(callers.code, 0, callers.stderr);
      assert.match(callers.stdout, /"name": "ci"/);
      for (const secret of Object.values(SECRETS)) {
        assert.ok(!(daemon.output() + list.stdout + callers.stdout).includes(secret));
      }
    });
  });
});
