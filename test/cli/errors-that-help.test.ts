import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { type CliResult, runCredbroker } from "../support/cli-run.js";
import { type RunningDaemon, removeDir, startDaemon } from "../support/daemon.js";

const AKID = "AKIAIOSFODNN7EXAMPLE";
const SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYHELPFULsecret1";

describe("errors that help, over the real daemon", () => {
  let daemon: RunningDaemon;
  let env: Record<string, string>;

  before(async () => {
    daemon = await startDaemon({
      args: ["--container-listen", "127.0.0.1:0", "--auth-failure-delay", "0"],
    });
    env = {
      CREDBROKER_ADDR: new URL(daemon.url).host,
      CREDBROKER_TOKEN_FILE: path.join(daemon.dataDir, "admin.token"),
    };
    for (const [ns, name] of [
      ["team-a", "task-key"],
      ["team-b", "task-key"],
    ] as const) {
      const r = await runCredbroker(
        [
          "cred",
          "create",
          name,
          "-n",
          ns,
          "--access-key-id",
          AKID,
          "--secret-stdin",
          "--allowed-in-tasks",
          "true",
        ],
        { env, stdin: SECRET },
      );
      assert.equal(r.code, 0, r.stderr);
    }
  });

  after(async () => {
    await daemon?.stop();
    if (daemon !== undefined) await removeDir(daemon.dataDir);
  });

  const run = (args: string[], extra: Record<string, string> = {}): Promise<CliResult> =>
    runCredbroker(args, { env: { ...env, ...extra } });

  test("not_found names what was missing with its namespace, on every path that raises it", async () => {
    const url = "https://bucket.s3.amazonaws.com/key";
    const cases: [string[], string][] = [
      [["cred", "get", "s3-reader", "-n", "team-a"], "credential team-a/s3-reader not found"],
      [
        ["cred", "update", "s3-reader", "-n", "team-a", "--description", "x"],
        "credential team-a/s3-reader not found",
      ],
      [["cred", "delete", "s3-reader", "-n", "team-a"], "credential team-a/s3-reader not found"],
      [["cred", "verify", "s3-reader", "-n", "team-a"], "credential team-a/s3-reader not found"],
      [["sign", "-n", "team-a", "-c", "s3-reader", url], "credential team-a/s3-reader not found"],
      [
        ["exec", "-n", "team-a", "-c", "s3-reader", "--", "true"],
        "credential team-a/s3-reader not found",
      ],
      // The workspace (namespace "") is named too: a forgotten -n shows.
      [
        ["cred", "get", "s3-reader"],
        'credential s3-reader not found in the workspace (namespace "")',
      ],
      [["sign", "-n", "team-a", url], "AWS provider default of namespace team-a not found"],
      [["sign", url], 'AWS provider default of the workspace (namespace "") not found'],
      [["caller", "get", "nobody"], "caller nobody not found"],
    ];
    for (const [args, message] of cases) {
      const r = await run(args);
      assert.equal(r.code, 4, `${args.join(" ")}: ${r.stderr}`);
      assert.ok(r.stderr.includes(`not_found: ${message}`), `${args.join(" ")}: ${r.stderr}`);
    }
  });

  test("a credential hidden from the caller is answered with the very message of an absent one", async () => {
    const created = await run([
      "caller",
      "create",
      "team-a-signer",
      "--role",
      "signer",
      "-n",
      "team-a",
      "-o",
      "json",
    ]);
    assert.equal(created.code, 0, created.stderr);
    const token = (JSON.parse(created.stdout) as { token?: string }).token ?? "";
    assert.ok(token.length > 0);
    const asCaller = { CREDBROKER_TOKEN_FILE: "", CREDBROKER_TOKEN: token };
    const url = "https://bucket.s3.amazonaws.com/key";
    const hidden = await run(["sign", "-n", "team-b", "-c", "task-key", url], asCaller);
    const absent = await run(["sign", "-n", "team-b", "-c", "no-such-key", url], asCaller);
    assert.equal(hidden.code, 4, hidden.stderr);
    assert.equal(hidden.stderr, absent.stderr.replace("no-such-key", "task-key"));
    const workspace = await run(["sign", "-c", "task-key", url], asCaller);
    assert.match(
      workspace.stderr,
      /credential task-key not found in the workspace \(namespace ""\)/,
    );
  });

  test("exec -n NS -c NAME lends that namespace's credential; -n with NS/NAME is a usage error", async () => {
    const script = "console.log(process.env.AWS_CONTAINER_CREDENTIALS_FULL_URI ?? 'none')";
    const r = await run([
      "exec",
      "-n",
      "team-a",
      "-c",
      "task-key",
      "--",
      process.execPath,
      "-e",
      script,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^http:\/\/127\.0\.0\.1:\d+\/v1\/credentials\//);
    // CREDBROKER_NAMESPACE is the namespace's env var here as everywhere.
    const byEnv = await run(["exec", "-c", "task-key", "--", process.execPath, "-e", script], {
      CREDBROKER_NAMESPACE: "team-b",
    });
    assert.equal(byEnv.code, 0, byEnv.stderr);
    const both = await run(["exec", "-n", "team-a", "-c", "team-b/task-key", "--", "true"]);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /give the namespace once: -n NS -c NAME, or -c NS\/NAME/);
    // NS/NAME still works alone.
    const qualified = await run(["exec", "-c", "team-b/task-key", "--", "true"]);
    assert.equal(qualified.code, 0, qualified.stderr);
  });

  test("a malformed --addr or CREDBROKER_ADDR says so (usage, exit 2), not connection refused", async () => {
    const malformed = [
      "http//host:1",
      "host:notaport",
      "ftp://x",
      "localhost",
      "127.0.0.1:0",
      "host:70000",
    ];
    type Run = { addr: string; args: string[]; extra: Record<string, string>; source: string };
    const runs = malformed.map(
      (addr, i): Run =>
        i % 2 === 0
          ? { addr, args: ["cred", "list", "--addr", addr], extra: {}, source: "--addr" }
          : {
              addr,
              args: ["cred", "list"],
              extra: { CREDBROKER_ADDR: addr },
              source: "CREDBROKER_ADDR",
            },
    );
    runs.push({
      addr: "http//host:1",
      args: ["exec", "-c", "task-key", "--", "true"],
      extra: { CREDBROKER_ADDR: "http//host:1" },
      source: "CREDBROKER_ADDR",
    });
    for (const { addr, args, extra, source } of runs) {
      const r = await run(args, extra);
      assert.equal(r.code, 2, `${addr} via ${source}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`: ${source}: malformed address: `));
      assert.doesNotMatch(r.stderr, /connection refused|cannot reach/);
      assert.ok(!r.stderr.includes(addr), `the typed address is not repeated: ${r.stderr}`);
    }
    // Well-formed addresses still reach the daemon.
    const port = new URL(daemon.url).port;
    for (const addr of [`127.0.0.1:${port}`, `http://127.0.0.1:${port}/`]) {
      const r = await run(["cred", "list", "-n", "team-a", "--addr", addr]);
      assert.equal(r.code, 0, `${addr}: ${r.stderr}`);
    }
  });
});
