import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The buf CLI installed by @bufbuild/buf (dist/test/support → repo root). */
export const BUF = fileURLToPath(new URL("../../../node_modules/.bin/buf", import.meta.url));

export interface ExecResult {
  /** The exit status (0 on success). */
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `file` with `args` to completion and resolves with its exit status and
 * output, also when the status is non-zero. Rejects only when the program
 * cannot be started or is killed (e.g. by the timeout).
 */
export function exec(file: string, args: string[], timeoutMs = 20_000): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { encoding: "utf8", timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err === null) {
          resolve({ code: 0, stdout, stderr });
        } else if (typeof err.code === "number") {
          resolve({ code: err.code, stdout, stderr });
        } else {
          reject(new Error(`${file} ${args.join(" ")}: ${err.message}\n${stderr}`, { cause: err }));
        }
      },
    );
  });
}
