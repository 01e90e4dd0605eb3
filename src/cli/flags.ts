import { parseArgs } from "node:util";

/** One command-line flag; the same spec drives parsing and `--help`. */
export interface FlagSpec {
  readonly name: string;
  readonly short?: string;
  /** "list" flags repeat: --allowed-host a --allowed-host b. */
  readonly kind: "string" | "boolean" | "list";
  /** Shown after the flag in help, e.g. "HOST:PORT". */
  readonly value?: string;
  /** Read when the flag is absent. */
  readonly env?: string;
  /** Applied when neither the flag nor its env var is set; shown in help. */
  readonly default?: string;
  readonly help: string;
}

/** A mistake in the command line: the CLI prints it with the usage and exits 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

export interface ParsedFlags {
  readonly positionals: readonly string[];
  /** The flag's value: command line, else env var, else default. */
  string(name: string): string | undefined;
  bool(name: string): boolean;
  list(name: string): string[];
  /** True when given on the command line (not from env or default). */
  given(name: string): boolean;
}

/** Parses `argv` against `specs`; unknown flags and missing values are UsageErrors. */
export function parseFlags(
  specs: readonly FlagSpec[],
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): ParsedFlags {
  const options: Record<
    string,
    { type: "string" | "boolean"; short?: string; multiple?: boolean }
  > = {};
  for (const s of specs) {
    options[s.name] = {
      type: s.kind === "boolean" ? "boolean" : "string",
      ...(s.short ? { short: s.short } : {}),
      ...(s.kind === "list" ? { multiple: true } : {}),
    };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
  const spec = (name: string) => {
    const s = specs.find((f) => f.name === name);
    if (s === undefined) throw new Error(`no flag --${name} is declared`);
    return s;
  };
  return {
    positionals: parsed.positionals,
    string(name) {
      const s = spec(name);
      const v = values[name];
      if (typeof v === "string") return v;
      const fromEnv = s.env === undefined ? undefined : env[s.env];
      return fromEnv !== undefined && fromEnv !== "" ? fromEnv : s.default;
    },
    bool(name) {
      spec(name);
      return values[name] === true;
    },
    list(name) {
      spec(name);
      const v = values[name];
      return Array.isArray(v) ? v : [];
    },
    given(name) {
      spec(name);
      return values[name] !== undefined;
    },
  };
}

/** The `--help` text: usage, what the command does, then every flag with its env var and default. */
export function helpText(usage: string, about: string, specs: readonly FlagSpec[]): string {
  const left = specs.map((s) => {
    const flag = `${s.short ? `-${s.short}, ` : "    "}--${s.name}${s.value ? ` ${s.value}` : ""}`;
    return s.kind === "list" ? `${flag} …` : flag;
  });
  const width = Math.max(...left.map((l) => l.length)) + 2;
  const lines = specs.map((s, i) => {
    const notes = [
      s.env ? `env ${s.env}` : "",
      s.default !== undefined ? `default ${s.default === "" ? '""' : s.default}` : "",
    ].filter(Boolean);
    const tail = notes.length ? ` [${notes.join("; ")}]` : "";
    return `  ${(left[i] ?? "").padEnd(width)}${s.help}${tail}`;
  });
  return `Usage: ${usage}\n\n${about}\n\nFlags:\n${lines.join("\n")}\n`;
}
