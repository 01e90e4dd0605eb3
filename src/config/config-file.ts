import { readFile } from "node:fs/promises";
import { parse, TomlError } from "smol-toml";
import { ConfigInvalid, type ConfigProblem } from "./problems.js";
import { flagAndPath, unreadable } from "./shown-path.js";

/** A config file's settings, by flag name ("imds-listen"): strings, or booleans for switches. */
export type FileSettings = ReadonlyMap<string, string | boolean>;

/** What a config file holds: settings, and the declared [[credentials]] and [[callers]] (raw, with their lines). */
export interface ConfigFile {
  /** The file's name, as given (what messages show). */
  name: string;
  settings: FileSettings;
  /** The line where a key (or [[table]]) is, for error messages. */
  lineOf(key: string): number;
  credentials: Declared[];
  callers: Declared[];
  /** What is wrong with the top-level keys (unknown, wrong type), in line order. */
  problems: ConfigProblem[];
}

/** One [[credentials]] or [[callers]] table, as parsed, and the line it starts on. */
export interface Declared {
  line: number;
  fields: Record<string, unknown>;
  /** The line of `key = …` in this table (the table's line when not found). */
  fieldLine(key: string): number;
}

/**
 * The one rule that names a setting everywhere: flag `--imds-listen`,
 * config key `imds_listen`, environment variable `CREDBROKER_IMDS_LISTEN`.
 */
export function keyOf(flag: string): string {
  return flag.replaceAll("-", "_");
}

export function envOf(flag: string): string {
  return `CREDBROKER_${keyOf(flag).toUpperCase()}`;
}

/** The line of `key = …` (or a `[key]`/`[[key]]` table) in the file, for error messages (1 when not found). */
function lineOf(lines: readonly string[], key: string): number {
  const i = lines.findIndex((l) =>
    new RegExp(`^\\s*(${escaped(key)}\\s*=|\\[\\[?\\s*${escaped(key)}\\s*\\]\\]?)`).test(l),
  );
  return i < 0 ? 1 : i + 1;
}

/** The line of `key = …` in the table that starts on `start`, before the next table header. */
function fieldLineIn(lines: readonly string[], start: number, key: string): number {
  for (let i = start; i < lines.length; i++) {
    const l = lines[i] ?? "";
    if (/^\s*\[/.test(l)) break;
    if (new RegExp(`^\\s*["']?${escaped(key)}["']?\\s*=`).test(l)) return i + 1;
  }
  return start;
}

/**
 * Reads a TOML config file: top-level keys are settings (`flags` maps each
 * allowed flag name to whether it is a switch). An unreadable file or a TOML
 * syntax error is a ConfigInvalid naming the file and line; unknown keys and
 * wrong types are all collected in `problems`.
 */
export async function loadConfigFile(
  file: string,
  /** The settings allowed; undefined skips them (a reload reads only the declarations). */
  flags: ReadonlyMap<string, "string" | "boolean"> | undefined,
): Promise<ConfigFile> {
  const text = await readFile(file, "utf8").catch((err: NodeJS.ErrnoException) => {
    throw new ConfigInvalid([
      { message: `${flagAndPath("config file", file)}: ${unreadable(err)}` },
    ]);
  });
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof TomlError) {
      throw new ConfigInvalid([
        {
          file,
          line: err.line,
          column: err.column,
          message: err.message.split("\n")[0] ?? "Invalid TOML",
        },
      ]);
    }
    throw err;
  }
  const lines = text.split("\n");
  const problems: ConfigProblem[] = [];
  const settings = new Map<string, string | boolean>();
  const declared = { credentials: [] as Declared[], callers: [] as Declared[] };
  for (const [key, value] of Object.entries(doc)) {
    const flag = key.replaceAll("_", "-");
    const kind = flags?.get(flag);
    const problem = (message: string) =>
      problems.push({ file, line: lineOf(lines, key), path: key, message });
    if (key === "credentials" || key === "callers") {
      if (!Array.isArray(value)) {
        problem(`expected [[${key}]] tables`);
        continue;
      }
      const starts = tableLines(lines, key);
      declared[key] = value.map((fields, i) => {
        const line = starts[i] ?? 1;
        return {
          line,
          fields:
            typeof fields === "object" && fields !== null
              ? (fields as Record<string, unknown>)
              : {},
          fieldLine: (field: string) => fieldLineIn(lines, line, field),
        };
      });
      continue;
    }
    if (flags === undefined) continue;
    if (kind === undefined || key.includes("-")) {
      problem('unknown key (settings are the serve flags, with "_" for "-")');
    } else if (kind === "boolean") {
      if (typeof value === "boolean") settings.set(flag, value);
      else problem("expected true or false");
    } else if (typeof value === "string" || (typeof value === "number" && Number.isFinite(value))) {
      settings.set(flag, String(value));
    } else {
      problem("expected a string or a number");
    }
  }
  return { name: file, settings, ...declared, problems, lineOf: (key) => lineOf(lines, key) };
}

/** A key as a literal in a regular expression (a file's keys may hold any character). */
function escaped(key: string): string {
  return key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The lines where each [[key]] table starts. */
function tableLines(lines: readonly string[], key: string): number[] {
  const out: number[] = [];
  lines.forEach((l, i) => {
    if (new RegExp(`^\\s*\\[\\[\\s*${key}\\s*\\]\\]`).test(l)) out.push(i + 1);
  });
  return out;
}
