import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The built CLI, as `npx credbroker` runs it. */
export const CLI = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface RunningDaemon {
  readonly url: string;
  readonly dataDir: string;
  /** The admin token the daemon wrote to admin.token. */
  readonly token: string;
  readonly process: ChildProcess;
  /** Everything the daemon wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves when the process has exited. */
  readonly exited: Promise<Exit>;
  /** Sends `signal` (default SIGTERM) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<Exit>;
}

export interface StartOptions {
  dataDir?: string;
  env?: Record<string, string>;
  args?: string[];
}

/** A fresh temp dir, removed by the returned cleanup. */
export async function tempDir(prefix = "credbroker-test-"): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), prefix));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** Runs the CLI to completion (for commands that exit, like a second `serve`). */
export function runCli(
  args: string[],
  env: Record<string, string> = {},
): Promise<Exit & { stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.once("exit", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/**
 * Starts the real daemon (`credbroker serve`) on 127.0.0.1, port 0, and waits
 * for its "listening" log line. The data dir is a new temp dir unless given.
 */
export async function startDaemon(opts: StartOptions = {}): Promise<RunningDaemon> {
  const dataDir = opts.dataDir ?? (await tempDir());
  const child = spawn(
    process.execPath,
    [CLI, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, ...(opts.args ?? [])],
    {
      env: { ...process.env, CREDBROKER_MASTER_KEY: "", ...opts.env },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let output = "";
  const exited = new Promise<Exit>((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }));
  });
  const url = await new Promise<string>((resolve, reject) => {
    const onData = (d: Buffer) => {
      output += d.toString();
      const match = /"url":"(https?:\/\/[^"]+)"[^\n]*"msg":"listening"/.exec(output);
      if (match?.[1] !== undefined) resolve(match[1]);
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    void exited.then((e) =>
      reject(new Error(`daemon exited (${e.code ?? e.signal}) before listening:\n${output}`)),
    );
  });
  const token = (await readFile(path.join(dataDir, "admin.token"), "utf8")).trim();
  return {
    url,
    dataDir,
    token,
    process: child,
    output: () => output,
    exited,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** The URL a daemon logged with `msg` ("imds listening", "container credentials listening"). */
export function listenerUrl(daemon: RunningDaemon, msg: string): string {
  const m = new RegExp(`"url":"(http://[^"]+)"[^\\n]*"msg":"${msg}"`).exec(daemon.output());
  assert.ok(m?.[1], `the daemon logs its ${msg} URL`);
  return m[1];
}
