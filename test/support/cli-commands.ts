import { PassThrough } from "node:stream";
import type { Io } from "../../src/cli/io.js";
import { COMMANDS, runCli } from "../../src/cli/run.js";

/** What one in-process CLI run printed. */
export interface Captured {
  code: number;
  out: string;
  err: string;
}

/** Runs the CLI in this process with `env` as its whole environment and an empty stdin. */
export async function runInProcess(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = {},
): Promise<Captured> {
  let out = "";
  let err = "";
  const stdin = new PassThrough();
  stdin.end();
  const io: Io = {
    stdin,
    out: (t) => {
      out += t;
    },
    err: (t) => {
      err += t;
    },
    env,
  };
  const code = await runCli(argv, io);
  return { code, out, err };
}

/** One flag as a command's --help lists it (help is printed from the flag spec). */
export interface HelpFlag {
  readonly long: string;
  readonly short?: string;
}

/** A command that takes flags: its words, a sample of its positional arguments, its flags. */
export interface Leaf {
  readonly path: readonly string[];
  /** Placed after the flags: a NAME, a URL, or "-- true" for exec. */
  readonly positionals: readonly string[];
  readonly flags: readonly HelpFlag[];
}

/**
 * Every registered command (run.ts COMMANDS) and subcommand, found through
 * --help: a group lists its "Commands:", a command its "Usage:" and "Flags:".
 * A command added to COMMANDS is covered without changing the tests.
 */
export async function discoverCommands(): Promise<Leaf[]> {
  const leaves: Leaf[] = [];
  const visit = async (path: readonly string[]): Promise<void> => {
    const help = await runInProcess([...path, "--help"]);
    const text = `${help.out}${help.err}`;
    const group = /\nCommands:\n((?: {2}\S.*\n)+)/.exec(text);
    if (group?.[1] !== undefined) {
      for (const line of group[1].split("\n")) {
        const sub = /^ {2}(\S+)/.exec(line)?.[1];
        if (sub !== undefined) await visit([...path, sub]);
      }
      return;
    }
    const usage = /Usage: credbroker ([^\n]*)/.exec(text)?.[1]?.split(/\s+/) ?? [];
    const words = usage.slice(path.length);
    // "audit --help" shows "credbroker audit tail": the subcommand is a literal word.
    const more = words.findIndex((w) => !/^[a-z][a-z-]*$/.test(w));
    const extra = more < 0 ? words : words.slice(0, more);
    if (extra.length > 0 && usage.slice(0, path.length).join(" ") === path.join(" ")) {
      await visit([...path, ...extra]);
      return;
    }
    leaves.push({ path, positionals: samplePositionals(words), flags: helpFlags(text) });
  };
  for (const name of Object.keys(COMMANDS)) await visit([name]);
  return leaves;
}

function samplePositionals(usageWords: readonly string[]): string[] {
  if (usageWords.includes("--")) return ["--", "true"];
  if (usageWords.includes("URL")) return ["https://bucket.s3.amazonaws.com/key"];
  if (usageWords.includes("NAME")) return ["some-name"];
  if (usageWords.includes("ID")) return ["some-id"];
  return [];
}

/** The flags of a --help text's "Flags:" section. */
export function helpFlags(help: string): HelpFlag[] {
  const section = /\nFlags:\n([\s\S]*)$/.exec(help)?.[1] ?? "";
  const flags: HelpFlag[] = [];
  for (const line of section.split("\n")) {
    const m = /^ {2}(?:-([A-Za-z0-9]), )? *--([a-z0-9][a-z0-9-]*)/.exec(line);
    if (m?.[2] !== undefined) flags.push({ long: m[2], ...(m[1] ? { short: m[1] } : {}) });
  }
  return flags;
}
