/**
 * deploy/systemd/credbroker.service: systemd's own checker accepts it without
 * a warning, it carries the hardening docs/OPERATIONS.md promises, and its
 * readiness probe (ExecStartPost) waits for a real daemon's health check.
 *
 * `systemd-analyze verify` also checks that every command of the unit exists,
 * and credbroker is not installed in /usr/local/bin on a test machine: the
 * checks run on a copy in a temp dir whose ExecStart names the built CLI
 * (dist/src/cli/main.js, executable), everything else unchanged.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { CLI, removeDir, startDaemon, tempDir } from "../support/daemon.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const UNIT = path.join(ROOT, "deploy", "systemd", "credbroker.service");
const INSTALLED_BIN = "/usr/local/bin/credbroker";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion; a non-zero exit resolves too. */
function run(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { encoding: "utf8", timeout: 60_000, env }, (err, stdout, stderr) => {
      if (err === null) resolve({ code: 0, stdout, stderr });
      else if (typeof err.code === "number") resolve({ code: err.code, stdout, stderr });
      else reject(err);
    });
  });
}

/** [Section] → key → every value given (a key may repeat; an empty value resets). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header?.[1] !== undefined) {
      current = new Map();
      sections.set(header[1], current);
      continue;
    }
    const eq = line.indexOf("=");
    assert.ok(current !== undefined && eq > 0, `a key=value line inside a section: ${line}`);
    const key = line.slice(0, eq);
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1)]);
  }
  return sections;
}

describe("deploy/systemd/credbroker.service", () => {
  let dir: string;
  let unitText: string;
  let service: Map<string, string[]>;

  before(async () => {
    dir = await tempDir("credbroker-systemd-");
    unitText = await readFile(UNIT, "utf8");
    const parsed = parseUnit(unitText);
    service = parsed.get("Service") ?? new Map();
  });
  after(() => removeDir(dir));

  /** The unit as it would be installed, but with ExecStart at the built CLI. */
  async function testCopy(name: string, edit: (text: string) => string = (t) => t) {
    assert.ok(
      unitText.includes(`ExecStart=${INSTALLED_BIN} `),
      "ExecStart names the installed bin",
    );
    const file = path.join(dir, name);
    await writeFile(
      file,
      edit(unitText.replace(`ExecStart=${INSTALLED_BIN} `, `ExecStart=${CLI} `)),
    );
    return file;
  }

  it("passes systemd-analyze verify with no warning", async () => {
    const r = await run("systemd-analyze", ["verify", await testCopy("credbroker.service")]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, "", "systemd-analyze printed warnings");
  });

  it("a broken unit makes the same check fail (the check can see a problem)", async () => {
    // verify exits 0 on an unknown key or a bad value: the warnings on stderr are the signal.
    const broken = await testCopy("credbroker.service", (t) =>
      t.replace("ProtectSystem=strict", "ProtectSystem=stricter").replace("UMask=", "UMsk="),
    );
    const r = await run("systemd-analyze", ["verify", broken]);
    assert.match(r.stderr, /protect system value/i);
    assert.match(r.stderr, /Unknown key 'UMsk'/);
    const missing = await testCopy("credbroker.service", (t) =>
      t.replace(`ExecStart=${CLI} `, `ExecStart=${path.join(dir, "no-such-credbroker")} `),
    );
    const r2 = await run("systemd-analyze", ["verify", missing]);
    assert.notEqual(r2.code, 0);
    assert.match(r2.stderr, /no-such-credbroker/);
  });

  it("has the directives docs/OPERATIONS.md promises", () => {
    const one = (key: string) => {
      const values = service.get(key);
      assert.ok(values !== undefined, `${key}= is set`);
      return values[values.length - 1];
    };
    const expected: Record<string, string> = {
      Type: "simple",
      DynamicUser: "yes",
      StateDirectory: "credbroker",
      StateDirectoryMode: "0700",
      UMask: "0077",
      ProtectSystem: "strict",
      ProtectHome: "yes",
      NoNewPrivileges: "yes",
      PrivateTmp: "yes",
      PrivateDevices: "yes",
      ProtectKernelTunables: "yes",
      ProtectKernelModules: "yes",
      ProtectKernelLogs: "yes",
      ProtectControlGroups: "yes",
      LockPersonality: "yes",
      SystemCallArchitectures: "native",
      CapabilityBoundingSet: "",
      ExecReload: "/bin/kill -HUP $MAINPID",
    };
    for (const [key, value] of Object.entries(expected)) assert.equal(one(key), value, key);
    assert.deepEqual(
      new Set(one("RestrictAddressFamilies").split(/\s+/)),
      new Set(["AF_INET", "AF_INET6", "AF_UNIX"]),
    );
    // The daemon's data dir is the state directory, /var/lib/<StateDirectory>.
    assert.match(
      one("ExecStart"),
      /^\/usr\/local\/bin\/credbroker serve --data-dir \/var\/lib\/credbroker$/,
    );
    // V8's JIT cannot run under it (the unit says why in a comment).
    assert.equal(service.has("MemoryDenyWriteExecute"), false);
    assert.match(unitText, /# MemoryDenyWriteExecute=yes is left off on purpose: V8's JIT/);
  });

  it("systemd-analyze security rates it below 2.0 (OK) offline", async () => {
    const r = await run("systemd-analyze", [
      "security",
      "--offline=true",
      "--no-pager",
      await testCopy("credbroker.service"),
    ]);
    const level = /Overall exposure level for credbroker\.service: (\d+\.\d+)/.exec(r.stdout);
    assert.ok(level?.[1] !== undefined, r.stdout + r.stderr);
    assert.ok(Number(level[1]) < 2, `exposure ${level[1]}`);
  });

  it("ExecStartPost waits until the daemon answers its health check", async () => {
    const post = service.get("ExecStartPost")?.[0];
    assert.ok(post !== undefined, "ExecStartPost= is set");
    const m = /^\/bin\/sh -c '(.*)'$/.exec(post);
    assert.ok(m?.[1] !== undefined, "ExecStartPost runs one sh -c command");
    // systemd turns $$ into $ before running the command line.
    const script = m[1].replaceAll("$$", "$");
    const port = await freePort();
    // The probe starts first, as systemd runs it right after forking ExecStart.
    const started = Date.now();
    const probe = run("/bin/sh", ["-c", script], {
      ...process.env,
      CREDBROKER_LISTEN: `127.0.0.1:${port}`,
    });
    await new Promise((r) => setTimeout(r, 1500));
    const daemon = await startDaemon({ args: ["--listen", `127.0.0.1:${port}`] });
    try {
      const r = await probe;
      assert.equal(r.code, 0, r.stderr);
      assert.ok(Date.now() - started >= 1500, "the probe waited for the daemon");
    } finally {
      await daemon.stop();
      await removeDir(daemon.dataDir);
    }
  });
});

/** A TCP port nothing listens on right now. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  assert.ok(address !== null && typeof address === "object");
  return address.port;
}
