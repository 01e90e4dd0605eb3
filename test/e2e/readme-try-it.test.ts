/**
 * The README's "Try it locally" section, run as written, step by step, with a
 * fresh HOME: the commands are extracted from README.md, so they cannot drift.
 *
 * How the section is read:
 * - Each ```sh block is one step, run in order by `bash -euo pipefail` in the
 *   clone. Variables a step exports reach the later steps (as in one shell).
 * - A command line (continuation lines joined) that ends in `&` (before an
 *   optional `# comment`) starts a server: the test starts it in its own
 *   process group with the step's environment, waits until every
 *   `127.0.0.1:PORT` and `--port PORT` on its line accepts connections, and
 *   at the end stops the group with SIGTERM (what the README's `kill %1 %2
 *   %3` does).
 * - Every port the section names is replaced by a free one, the same one
 *   everywhere, so parallel runs cannot collide; nothing else is changed.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { REPO_ROOT, readmeSection, shBlocks } from "../support/readme.js";
import { freePorts } from "../support/swift.js";

const HEADING = "Try it locally";
const PORT_RE = /(127\.0\.0\.1:|--port )(\d+)\b/g;
const STEP_TIMEOUT_MS = 120_000;
const READY_TIMEOUT_MS = 60_000;

interface Server {
  command: string;
  child: ChildProcess;
  output: () => string;
  exited: Promise<void>;
}

/** One part of a step: commands for bash, or one server to start. */
type Part = { kind: "run"; script: string } | { kind: "server"; command: string };

/** Splits a step into runs of plain commands and the `&` server lines between them. */
function parts(step: string): Part[] {
  const lines = step.replace(/\\\n/g, " ").split("\n");
  const out: Part[] = [];
  let pending: string[] = [];
  for (const line of lines) {
    const server = /^(.*[^&])&\s*(#.*)?$/.exec(line);
    if (server === null) {
      pending.push(line);
      continue;
    }
    if (pending.join("").trim() !== "") out.push({ kind: "run", script: pending.join("\n") });
    pending = [];
    out.push({ kind: "server", command: (server[1] ?? "").trim() });
  }
  if (pending.join("").trim() !== "") out.push({ kind: "run", script: pending.join("\n") });
  return out;
}

/** The section's text with each port it names replaced by a free one. */
async function withFreePorts(section: string): Promise<string> {
  const named = [...new Set([...section.matchAll(PORT_RE)].map((m) => m[2] ?? ""))];
  const free = await freePorts(named.length);
  const map = new Map(named.map((p, i) => [p, String(free[i])]));
  return section.replace(PORT_RE, (_all, prefix: string, port: string) => {
    return `${prefix}${map.get(port)}`;
  });
}

/**
 * The test's environment without AWS_* and CREDBROKER_* (the README sets its
 * own), HOME fresh. npm keeps the user's cache: in an empty one, the first
 * `npx credbroker` spends some 20 s of CPU linking the clone into it; and npm
 * does not ask the registry for a newer npm.
 */
function freshEnv(home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith("AWS_") && !key.startsWith("CREDBROKER_")) env[key] = value;
  }
  env.npm_config_cache = process.env.npm_config_cache ?? path.join(os.homedir(), ".npm");
  env.npm_config_update_notifier = "false";
  env.HOME = home;
  delete env.XDG_DATA_HOME;
  return env;
}

function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.setTimeout(1_000);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
    socket.once("timeout", () => {
      socket.destroy();
      resolve(false);
    });
  });
}

class TryIt {
  readonly servers: Server[] = [];
  /** What each step printed (stdout and stderr), in order. */
  readonly outputs: string[] = [];

  constructor(
    private readonly env: NodeJS.ProcessEnv,
    /** The exported variables, carried from step to step. */
    private readonly state: string,
  ) {}

  async step(index: number, text: string): Promise<void> {
    let printed = "";
    for (const part of parts(text)) {
      if (part.kind === "run") printed += await this.run(index, part.script);
      else await this.start(index, part.command);
    }
    this.outputs[index] = printed;
  }

  private run(index: number, script: string): Promise<string> {
    const body = `set -euo pipefail\nsource ${this.state}\n${script}\nexport -p > ${this.state}\n`;
    return new Promise((resolve, reject) => {
      const child = spawn("bash", ["-c", body], {
        cwd: REPO_ROOT,
        env: this.env,
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      child.stdout.on("data", (d: Buffer) => {
        out += d.toString();
      });
      child.stderr.on("data", (d: Buffer) => {
        out += d.toString();
      });
      const timer = setTimeout(() => child.kill("SIGKILL"), STEP_TIMEOUT_MS);
      child.once("error", reject);
      child.once("close", (code, signal) => {
        clearTimeout(timer);
        if (code === 0) resolve(out);
        else {
          reject(
            new Error(
              `step ${index + 1} failed (${code ?? signal}):\n${script}\n--- output\n${out}${this.serverLogs()}`,
            ),
          );
        }
      });
    });
  }

  private async start(index: number, command: string): Promise<void> {
    const child = spawn("bash", ["-c", `source ${this.state}\n${command}`], {
      cwd: REPO_ROOT,
      env: this.env,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr?.on("data", (d: Buffer) => {
      out += d.toString();
    });
    const server: Server = {
      command,
      child,
      output: () => out,
      exited: new Promise<void>((resolve) => child.once("close", () => resolve())),
    };
    this.servers.push(server);
    const ports = [...command.matchAll(PORT_RE)].map((m) => Number(m[2]));
    assert.ok(ports.length > 0, `step ${index + 1}: the server line names its ports: ${command}`);
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (const port of ports) {
      while (!(await connects(port))) {
        if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
          throw new Error(
            `step ${index + 1}: ${command}\nnot listening on ${port} (exit ${child.exitCode ?? child.signalCode})\n${out}`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  }

  serverLogs(): string {
    return this.servers.map((s) => `\n--- ${s.command}\n${s.output()}`).join("");
  }

  /** SIGTERM to each server's process group (last started first), SIGKILL after 10 s. */
  async stop(): Promise<void> {
    for (const server of [...this.servers].reverse()) {
      const pid = server.child.pid;
      if (pid === undefined || server.child.exitCode !== null) continue;
      const signal = (sig: NodeJS.Signals) => {
        try {
          process.kill(-pid, sig);
        } catch {
          // the group is gone already
        }
      };
      signal("SIGTERM");
      const timer = setTimeout(() => signal("SIGKILL"), 10_000);
      await server.exited;
      clearTimeout(timer);
    }
  }
}

describe("the README's Try it section, run as written", () => {
  let home: string;
  let work: string;
  let tryIt: TryIt;
  let steps: string[];

  before(async () => {
    home = await mkdtemp(path.join(os.tmpdir(), "credbroker-try-home-"));
    work = await mkdtemp(path.join(os.tmpdir(), "credbroker-try-state-"));
    const state = path.join(work, "exported.sh");
    await writeFile(state, "");
    tryIt = new TryIt(freshEnv(home), state);
    steps = shBlocks(await withFreePorts(await readmeSection(HEADING)));
  });

  after(async () => {
    await tryIt?.stop();
    await rm(home, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  });

  test("every step succeeds, and the S3 lists and reads what was put through credbroker", async () => {
    assert.ok(steps.length >= 5, "servers, serve, credentials, IMDS, sign/exec");
    for (const [i, step] of steps.entries()) await tryIt.step(i, step);
    const all = tryIt.outputs.join("\n");

    const banners = tryIt.servers.map((s) => s.output()).join("\n");
    assert.match(banners, /access key\s+test:tester/);
    assert.match(banners, /secret\s+testing/);
    assert.match(banners, /LOCAL STAND-IN for AWS STS/);
    assert.match(banners, /accepts ANY access key/);

    assert.match(all, /^try\s+reader\s+role\b/m);
    assert.match(all, /^try\s+s3\s+access-key\b/m);
    assert.match(all, /^live\.get_caller_identity\s+ok\b/m);
    // The AWS CLI through IMDS: bucket made, object put and listed; the SDK read it back.
    assert.match(all, /^make_bucket: demo$/m);
    assert.match(all, /^\S+ \S+\s+22 hello\.txt$/m);
    assert.match(all, /^sdk: hello from credbroker$/m);
    // credbroker sign: the presigned GET read the object; the PUT was refused by scope.
    assert.match(all, /^hello from credbroker$/m);
    assert.match(all, /ActionNotInScope: put_object/);
    assert.match(all, /^refused: exit 9$/m);
    // credbroker exec listed the bucket with the role's session (the last listing).
    const signStep = tryIt.outputs.at(-1) ?? "";
    assert.match(signStep, /^\S+ \S+\s+22 hello\.txt$/m);

    // The sessions came from credbroker's listeners, as the audit log says.
    const audit = await readFile(path.join(home, "credbroker-try", "audit.log"), "utf8");
    assert.match(
      audit,
      /"rpc":"imds:GET \/latest\/meta-data\/iam\/security-credentials\/s3".*"credential":"s3","decision":"allow"/,
    );
    assert.match(
      audit,
      /"rpc":"container:GET \/v1\/credentials".*"credential":"reader","decision":"allow"/,
    );
  });
});
