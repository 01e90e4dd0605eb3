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
  override readonly name: string = "UsageError";
}

/** A flag the parser refused (unknown, missing its value, …): told in one line. */
export class FlagError extends UsageError {
  override readonly name = "FlagError";
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

/**
 * Parses `argv` against `specs`. Unknown flags, missing values and values
 * given to boolean flags are UsageErrors of one line that name the flag as
 * typed (never a value: a value may be a secret typed after the wrong flag).
 */
export function parseFlags(
  specs: readonly FlagSpec[],
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): ParsedFlags {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {};
  for (const s of specs) {
    options[s.name] = {
      type: s.kind === "boolean" ? "boolean" : "string",
      ...(s.short ? { short: s.short } : {}),
    };
  }
  // Non-strict tokens, checked here: parseArgs's own errors quote what was typed.
  const { tokens } = parseArgs({
    args: [...argv],
    options,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const values = new Map<string, string | true | string[]>();
  const positionals: string[] = [];
  for (const token of tokens) {
    if (token.kind === "positional") positionals.push(token.value);
    if (token.kind !== "option") continue;
    const s = specs.find((f) => f.name === token.name);
    if (s === undefined) throw new FlagError(unknownFlag(token.rawName, specs));
    if (s.kind === "boolean") {
      if (token.inlineValue) throw new FlagError(`${token.rawName} takes no value`);
      values.set(s.name, true);
      continue;
    }
    const value = token.value;
    if (value === undefined || (!token.inlineValue && isFlagLike(value))) {
      const needs = `${token.rawName} needs a value${s.value ? ` (${s.value})` : ""}`;
      throw new FlagError(
        value === undefined
          ? needs
          : `${needs}, not another flag; for a value that starts with "-", write --${s.name}=VALUE`,
      );
    }
    if (s.kind === "list") {
      const list = values.get(s.name);
      values.set(s.name, Array.isArray(list) ? [...list, value] : [value]);
    } else {
      values.set(s.name, value);
    }
  }
  const spec = (name: string) => {
    const s = specs.find((f) => f.name === name);
    if (s === undefined) throw new Error(`no flag --${name} is declared`);
    return s;
  };
  return {
    positionals,
    string(name) {
      const s = spec(name);
      const v = values.get(name);
      if (typeof v === "string") return v;
      const fromEnv = s.env === undefined ? undefined : env[s.env];
      return fromEnv !== undefined && fromEnv !== "" ? fromEnv : s.default;
    },
    bool(name) {
      spec(name);
      return values.get(name) === true;
    },
    list(name) {
      spec(name);
      const v = values.get(name);
      return Array.isArray(v) ? v : [];
    },
    given(name) {
      spec(name);
      return values.has(name);
    },
  };
}

/** As parseArgs decides: "-x" and "--x" look like flags, a lone "-" does not. */
function isFlagLike(value: string): boolean {
  return value.length > 1 && value.startsWith("-");
}

/** A flag name typed on the command line, shown only when it looks like one. */
const SHOWABLE = /^--?[A-Za-z0-9][A-Za-z0-9_-]{0,40}$/;

/** "unknown flag --secret-access-key; did you mean --secret-stdin?" */
export function unknownFlag(rawName: string, specs: readonly FlagSpec[]): string {
  if (!SHOWABLE.test(rawName)) return "unknown flag";
  if (!rawName.startsWith("--")) {
    const shorts = specs.filter((s) => s.short).map((s) => `-${s.short}`);
    return `unknown flag ${rawName}${shorts.length ? `; short flags here: ${shorts.join(" ")}` : ""}`;
  }
  const best = closestFlag(rawName.slice(2), specs);
  return `unknown flag ${rawName}${best ? `; did you mean --${best}?` : ""}`;
}

/**
 * The declared flag most like `typed`: the longest shared leading part wins
 * (people remember how a flag starts), then the fewest edits, then the
 * order of declaration. Undefined when nothing is close.
 */
export function closestFlag(typed: string, specs: readonly FlagSpec[]): string | undefined {
  const want = typed.toLowerCase();
  let best: { name: string; prefix: number; edits: number } | undefined;
  for (const { name } of specs) {
    let prefix = 0;
    while (prefix < name.length && name[prefix] === want[prefix]) prefix++;
    const edits = editDistance(want, name);
    const close = prefix >= Math.min(3, want.length) || edits <= Math.max(1, want.length / 3);
    if (!close) continue;
    if (
      best === undefined ||
      prefix > best.prefix ||
      (prefix === best.prefix && edits < best.edits)
    ) {
      best = { name, prefix, edits };
    }
  }
  return best?.name;
}

/** Levenshtein distance, with adjacent swaps counting one edit. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = d[i] as number[];
      const up = d[i - 1] as number[];
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min(
        (up[j] as number) + 1,
        (row[j - 1] as number) + 1,
        (up[j - 1] as number) + cost,
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        row[j] = Math.min(row[j] as number, ((d[i - 2] as number[])[j - 2] as number) + 1);
      }
    }
  }
  return (d[a.length] as number[])[b.length] as number;
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
