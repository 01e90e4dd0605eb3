import { type ChildProcess, spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

export interface Child {
  child: ChildProcess;
  /** Everything it printed on stdout so far. */
  out(): string;
  /** The first capture of `ready` in its stdout. */
  url: string;
}

/** Starts `node ARGS` and waits until its stdout matches `ready` (whose group 1 is a URL). */
export function startChild(
  args: string[],
  ready: RegExp,
  env: Record<string, string> = {},
): Promise<Child> {
  const child = spawn(process.execPath, args, {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, ...env },
  });
  let out = "";
  return new Promise((resolve, reject) => {
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      const m = ready.exec(out);
      if (m?.[1]) resolve({ child, out: () => out, url: m[1] });
    });
    child.once("exit", (code) => reject(new Error(`child exited ${code}: ${out}`)));
  });
}

export interface DaemonChild extends Child {
  /** The admin token the daemon wrote to its data dir. */
  token: string;
}

const CLI = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));

/**
 * Starts `credbroker serve` on 127.0.0.1 (port 0) over `dataDir`, with
 * `args` added, and waits for its "listening" line; `url` is the API's.
 */
export async function startDaemonChild(
  dataDir: string,
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<DaemonChild> {
  const child = await startChild(
    [CLI, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, ...args],
    /"url":"(http:\/\/[^"]+)"[^\n]*"msg":"listening"/,
    env,
  );
  const token = (await readFile(path.join(dataDir, "admin.token"), "utf8")).trim();
  return { ...child, token };
}

/** RPCs a daemon logged as failed (successes log at debug, which the benches do not enable). */
export function failedRpcs(log: string): number {
  return log.split("\n").filter((l) => l.includes('"msg":"rpc"')).length;
}
