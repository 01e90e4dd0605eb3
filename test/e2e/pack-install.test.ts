/**
 * credbroker installs and runs outside the clone: `npm pack`, then
 * `npm install -g` of the tarball into a temp prefix, then the installed bin
 * is run from another directory. The tarball is packed from the built dist/
 * (--ignore-scripts: the test suite has just built it); its production
 * dependencies come from npm's cache when there (--prefer-offline), else the
 * registry.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { cliEnv } from "../support/cli-run.js";
import { CLI, removeDir, tempDir } from "../support/daemon.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const run = promisify(execFile);

/** The test's own node first on PATH: npm, and the bin's `#!/usr/bin/env node`, run under it. */
const env = cliEnv({ PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? ""}` });

interface PackedFile {
  path: string;
}

describe("npm pack, npm install -g, run outside the clone", () => {
  let dir: string;
  let tarball: string;
  let files: string[];
  let bin: string;
  let elsewhere: string;

  before(async () => {
    dir = await tempDir("credbroker-pack-");
    const packed = await run(
      "npm",
      ["pack", "--ignore-scripts", "--json", "--pack-destination", dir],
      { cwd: ROOT, env, maxBuffer: 64 * 1024 * 1024 },
    );
    const [info] = JSON.parse(packed.stdout) as { filename: string; files: PackedFile[] }[];
    assert.ok(info);
    tarball = path.join(dir, info.filename);
    files = info.files.map((f) => f.path);
    const prefix = path.join(dir, "prefix");
    await run(
      "npm",
      ["install", "-g", "--prefix", prefix, "--prefer-offline", "--no-audit", "--no-fund", tarball],
      { cwd: dir, env, timeout: 100_000 },
    );
    bin = path.join(prefix, "bin", "credbroker");
    elsewhere = await tempDir("credbroker-elsewhere-");
  });
  after(async () => {
    await removeDir(dir);
    await removeDir(elsewhere);
  });

  test("the tarball holds the runtime, the license and the notice, and no tests", () => {
    for (const f of ["package.json", "LICENSE", "NOTICE", "README.md", "dist/src/cli/main.js"]) {
      assert.ok(files.includes(f), `the package contains ${f}`);
    }
    assert.ok(files.some((f) => f.startsWith("dist/gen/credbroker/v1/")));
    assert.ok(!files.some((f) => f.startsWith("dist/test/") || f.startsWith("src/")));
  });

  test("NOTICE passes on the NOTICE of every installed production dependency", async () => {
    const installed = path.join(bin, "..", "..", "lib", "node_modules", "credbroker");
    const ours = await readFile(path.join(installed, "NOTICE"), "utf8");
    const entries = await readdir(path.join(installed, "node_modules"), { recursive: true });
    const notices = entries.filter((e) => /(^|\/)NOTICE(\.[a-z]+)?$/i.test(e));
    for (const notice of notices) {
      const first = (await readFile(path.join(installed, "node_modules", notice), "utf8"))
        .split("\n")
        .find((l) => l.trim() !== "");
      assert.ok(first === undefined || ours.includes(first.trim()), `NOTICE carries ${notice}`);
    }
  });

  test("the installed credbroker --version names the package version and Node, no commit", async () => {
    const pkg = JSON.parse(await readFile(path.join(ROOT, "package.json"), "utf8")) as {
      version: string;
    };
    const res = await run(bin, ["--version"], { cwd: elsewhere, env });
    assert.match(res.stdout, new RegExp(`^credbroker ${pkg.version.replace(/\./g, "\\.")}\\n`));
    assert.match(res.stdout, new RegExp(`^node +${process.version.replace(/\./g, "\\.")}$`, "m"));
    assert.match(res.stdout, /^stores +leveldb, etcd$/m);
    assert.doesNotMatch(res.stdout, /^commit/m, "an install is not a clone");
    assert.equal(res.stderr, "");
    const version = await run(bin, ["version"], { cwd: elsewhere, env });
    assert.equal(version.stdout, res.stdout);
  });

  test("in the clone, credbroker version names HEAD's commit", async () => {
    const head = (
      await run("git", ["rev-parse", "--short=12", "HEAD"], { cwd: ROOT })
    ).stdout.trim();
    const res = await run(process.execPath, [CLI, "version"], { cwd: elsewhere, env });
    assert.match(res.stdout, new RegExp(`^commit +${head}( \\(modified\\))?$`, "m"));
  });

  test("the installed credbroker serve answers health from another directory", async () => {
    const dataDir = path.join(elsewhere, "data");
    const child: ChildProcess = spawn(
      bin,
      ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir],
      {
        cwd: elsewhere,
        env: { ...env, CREDBROKER_MASTER_KEY: "" },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let output = "";
        const onData = (d: Buffer) => {
          output += d.toString();
          const m = /"url":"(http:\/\/[^"]+)"[^\n]*"msg":"listening"/.exec(output);
          if (m?.[1]) resolve(m[1]);
        };
        child.stdout?.on("data", onData);
        child.stderr?.on("data", onData);
        child.once("exit", (code) => reject(new Error(`serve exited (${code}):\n${output}`)));
      });
      const res = await fetch(`${url}/grpc.health.v1.Health/Check`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { status: "SERVING" });
      assert.ok((await stat(path.join(dataDir, "admin.token"))).isFile());
      assert.ok((await readdir(dataDir)).includes("master.key"));
    } finally {
      child.kill("SIGTERM");
    }
  });
});
