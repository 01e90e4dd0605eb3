import { spawn, spawnSync } from "node:child_process";
import { CLI } from "./daemon.js";

/** What one CLI run left behind. */
export interface CliResult {
  /** The exit status; null when killed by a signal (e.g. the timeout). */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliRunOptions {
  /**
   * Environment on top of the test's own, from which every CREDBROKER_* variable
   * is removed first (so the caller's shell cannot change a result); a value of
   * undefined removes that variable.
   */
  env?: Record<string, string | undefined>;
  /** Written to stdin, which is then closed; without it stdin is /dev/null. */
  stdin?: string;
  /** Killed (SIGKILL) after this long; default 20 s. */
  timeoutMs?: number;
}

/** The test process's environment without CREDBROKER_* variables, plus `extra`. */
export function cliEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith("CREDBROKER_")) env[key] = value;
  }
  for (const [key, value] of Object.entries(extra)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

/** Runs the built CLI (`node dist/src/cli/main.js ARGS…`, as `npx credbroker` does) to completion. */
export function runCredbroker(
  args: readonly string[],
  opts: CliRunOptions = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: cliEnv(opts.env),
      stdio: [opts.stdin === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    if (child.stdout === null || child.stderr === null) throw new Error("no stdout/stderr pipe");
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 20_000);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    if (opts.stdin !== undefined && child.stdin !== null) {
      // The CLI may exit before reading everything (e.g. on a usage error).
      child.stdin.on("error", () => {});
      child.stdin.end(opts.stdin);
    }
  });
}

/** True when util-linux `script` (used to run the CLI under a pseudo-terminal) is installed. */
export function haveScript(): boolean {
  const r = spawnSync("script", ["--version"], { encoding: "utf8" });
  return r.status === 0 && /util-linux/.test(`${r.stdout}${r.stderr}`);
}

/** A word for `sh -c`, quoted so that the shell passes it through unchanged. */
export function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

export interface PtyResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Everything the terminal showed (stdout and stderr of the CLI, and any echo). */
  output: string;
  /** Whether `prompt` appeared (and `answer` was typed). */
  prompted: boolean;
}

export interface PtyOptions {
  env?: Record<string, string | undefined>;
  /** Text that, once it appears on the terminal, is answered with `answer` + Enter. */
  prompt: string;
  answer: string;
  /** Pause between seeing the prompt and typing, as a person would; default 150 ms. */
  typeDelayMs?: number;
  timeoutMs?: number;
}

/**
 * Runs the CLI under a pseudo-terminal (`script -qec "node main.js ARGS…" /dev/null`)
 * and types `answer` followed by a carriage return once `prompt` is on the screen.
 * `script -e` exits with the CLI's status.
 */
export function runCredbrokerInPty(args: readonly string[], opts: PtyOptions): Promise<PtyResult> {
  const command = [process.execPath, CLI, ...args].map(shellQuote).join(" ");
  return new Promise((resolve, reject) => {
    const child = spawn("script", ["-qec", command, "/dev/null"], {
      env: cliEnv(opts.env),
      stdio: ["pipe", "pipe", "pipe"],
    });
    let output = "";
    let prompted = false;
    const onData = (d: string) => {
      output += d;
      if (!prompted && output.includes(opts.prompt)) {
        prompted = true;
        setTimeout(() => {
          if (child.exitCode === null && child.signalCode === null) {
            child.stdin.write(`${opts.answer}\r`);
          }
        }, opts.typeDelayMs ?? 150);
      }
    };
    child.stdout.setEncoding("utf8").on("data", onData);
    child.stderr.setEncoding("utf8").on("data", onData);
    child.stdin.on("error", () => {});
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 20_000);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      child.stdin.destroy();
      resolve({ code, signal, output, prompted });
    });
  });
}
