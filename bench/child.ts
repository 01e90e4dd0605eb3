import { type ChildProcess, spawn } from "node:child_process";

export interface Child {
  child: ChildProcess;
  /** Everything it printed on stdout so far. */
  out(): string;
  /** The first capture of `ready` in its stdout. */
  url: string;
}

/** Starts `node ARGS` and waits until its stdout matches `ready` (whose group 1 is a URL). */
export function startChild(args: string[], ready: RegExp): Promise<Child> {
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
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
