import { type ChildProcess, spawn } from "node:child_process";
import { stripVTControlCharacters } from "node:util";
import { CLI } from "./daemon.js";

/**
 * A relay in Python's pty module (Node has none): runs its arguments with a
 * pseudo-terminal as stdin, stdout and stderr; copies our stdin to the
 * terminal and the terminal's output to our stdout; forwards SIGTERM and
 * SIGINT; exits with the child's code.
 */
const RELAY = `
import os, pty, select, signal, sys
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
forward = lambda sig, _frame: os.kill(pid, sig)
signal.signal(signal.SIGTERM, forward)
signal.signal(signal.SIGINT, forward)
stdin_open = True
while True:
    r, _, _ = select.select([fd] + ([0] if stdin_open else []), [], [])
    if 0 in r:
        data = os.read(0, 4096)
        if data:
            os.write(fd, data)
        else:
            stdin_open = False
    if fd in r:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        os.write(1, data)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)
`;

/** Terminal output without its colour codes. */
export const withoutColour = (text: string): string => stripVTControlCharacters(text);

export interface OnPty {
  readonly process: ChildProcess;
  /** What the terminal showed so far, with the terminal's \r\n as \n. */
  output(): string;
  /** Types `text` (a newline is Enter). */
  type(text: string): void;
  /** Resolves when `pattern` has appeared in the output, colours removed; rejects after `ms`. */
  waitFor(pattern: RegExp, ms?: number): Promise<string>;
  /** Resolves with the exit code when the program has ended. */
  readonly exited: Promise<number | null>;
}

/** Runs the built CLI (`credbroker ARGS…`) on a pseudo-terminal. */
export function credbrokerOnPty(args: readonly string[], env: NodeJS.ProcessEnv): OnPty {
  const child = spawn("/usr/bin/python3", ["-c", RELAY, process.execPath, CLI, ...args], {
    env: { ...env, TERM: "dumb" },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let out = "";
  const waiters = new Set<() => void>();
  child.stdout?.setEncoding("utf8").on("data", (d: string) => {
    out += d.replaceAll("\r\n", "\n");
    for (const wake of waiters) wake();
  });
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    out += `[relay] ${d}`;
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
  return {
    process: child,
    output: () => out,
    type: (text) => child.stdin?.write(text),
    exited,
    waitFor(pattern, ms = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = pattern.exec(withoutColour(out));
          if (m === null) return;
          done();
          resolve(m[0]);
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`not shown within ${ms} ms: ${pattern}\n--- the terminal:\n${out}`));
        }, ms);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
  };
}
