import { readFile } from "node:fs/promises";
import { type FlagSpec, type ParsedFlags, UsageError } from "./flags.js";
import type { Io } from "./io.js";

/**
 * Secrets never come from argv, where `ps` and shell history show them: only
 * from stdin, a file, an environment variable, or a prompt without echo.
 */
export function secretFlags(prefix: string, what: string): FlagSpec[] {
  return [
    { name: `${prefix}-stdin`, kind: "boolean", help: `read the ${what} from stdin` },
    { name: `${prefix}-file`, kind: "string", value: "FILE", help: `read the ${what} from FILE` },
    {
      name: `${prefix}-env`,
      kind: "string",
      value: "NAME",
      help: `read the ${what} from environment variable NAME`,
    },
  ];
}

/** True when any of the prefix's secret flags is on the command line. */
export function secretGiven(flags: ParsedFlags, prefix: string): boolean {
  return ["stdin", "file", "env"].some((s) => flags.given(`${prefix}-${s}`));
}

/**
 * Reads the secret named by the `prefix` flags. When none is given: prompts
 * without echo on a terminal if `prompt` is set, else returns undefined.
 */
export async function readSecret(
  flags: ParsedFlags,
  prefix: string,
  io: Io,
  prompt?: string,
): Promise<string | undefined> {
  const sources = ["stdin", "file", "env"].filter((s) => flags.given(`${prefix}-${s}`));
  if (sources.length > 1) {
    throw new UsageError(`give one of --${prefix}-stdin, --${prefix}-file, --${prefix}-env`);
  }
  let value: string | undefined;
  if (flags.bool(`${prefix}-stdin`)) {
    value = chomp(await readAll(io.stdin));
  } else if (flags.given(`${prefix}-file`)) {
    const file = flags.string(`${prefix}-file`) ?? "";
    value = chomp(
      await readFile(file, "utf8").catch((err: NodeJS.ErrnoException) => {
        throw new UsageError(
          `--${prefix}-file: cannot read the file (${err.code ?? "unreadable"})`,
        );
      }),
    );
  } else if (flags.given(`${prefix}-env`)) {
    const name = flags.string(`${prefix}-env`) ?? "";
    value = io.env[name];
    // The variable's name is not repeated: it may be the secret itself, typed in the wrong place.
    if (value === undefined) throw new UsageError(`--${prefix}-env: no such environment variable`);
  } else if (prompt !== undefined && io.stdin.isTTY && io.stdin.setRawMode) {
    value = await promptHidden(prompt, io);
  } else {
    return undefined;
  }
  if (value === "") throw new UsageError(`--${prefix}-*: the value is empty`);
  return value;
}

/** Drops one trailing newline, as `echo` and editors add one. */
function chomp(text: string): string {
  return text.replace(/\r?\n$/, "");
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) {
    chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** Reads one line from a terminal in raw mode, echoing nothing. */
function promptHidden(prompt: string, io: Io): Promise<string> {
  const stdin = io.stdin;
  io.err(prompt);
  stdin.setRawMode?.(true);
  stdin.setEncoding("utf8");
  stdin.resume();
  let value = "";
  return new Promise((resolve, reject) => {
    const finish = () => {
      stdin.off("data", onData);
      stdin.setRawMode?.(false);
      stdin.pause();
      io.err("\n");
    };
    const onData = (chunk: string | Buffer) => {
      for (const ch of chunk.toString()) {
        if (ch === "\r" || ch === "\n" || ch === "\u0004") {
          finish();
          resolve(value);
          return;
        }
        if (ch === "\u0003") {
          finish();
          reject(new UsageError("cancelled"));
          return;
        }
        value = ch === "\u007f" || ch === "\b" ? value.slice(0, -1) : value + ch;
      }
    };
    stdin.on("data", onData);
  });
}
