import { readFile } from "node:fs/promises";
import { parse, TomlError } from "smol-toml";
import { DomainError } from "../core/errors.js";

/** A config file's settings, by flag name ("imds-listen"): strings, or booleans for switches. */
export type FileSettings = ReadonlyMap<string, string | boolean>;

/** What a config file holds: settings, and the declared [[credentials]] and [[callers]] (raw, with their lines). */
export interface ConfigFile {
  settings: FileSettings;
  /** The line where a key (or [[table]]) is, for error messages. */
  lineOf(key: string): number;
  credentials: Declared[];
  callers: Declared[];
}

/** One [[credentials]] or [[callers]] table, as parsed, and the line it starts on. */
export interface Declared {
  line: number;
  fields: Record<string, unknown>;
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
function lineOf(text: string, key: string): number {
  const i = text
    .split("\n")
    .findIndex((l) => new RegExp(`^\\s*(${key}\\s*=|\\[\\[?\\s*${key}\\s*\\]\\]?)`).test(l));
  return i < 0 ? 1 : i + 1;
}

/**
 * Reads a TOML config file: top-level keys are settings (`flags` maps each
 * allowed flag name to whether it is a switch). Unknown keys, wrong types and
 * TOML syntax errors are invalid_argument naming the file, line and key.
 */
export async function loadConfigFile(
  file: string,
  /** The settings allowed; undefined skips them (a reload reads only the declarations). */
  flags: ReadonlyMap<string, "string" | "boolean"> | undefined,
): Promise<ConfigFile> {
  const text = await readFile(file, "utf8").catch((err: NodeJS.ErrnoException) => {
    throw new DomainError(
      "invalid_argument",
      `--config: cannot read ${file} (${err.code ?? "error"})`,
    );
  });
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof TomlError) {
      throw new DomainError(
        "invalid_argument",
        `${file}:${err.line}:${err.column}: ${err.message.split("\n")[0]}`,
      );
    }
    throw err;
  }
  const settings = new Map<string, string | boolean>();
  const declared = { credentials: [] as Declared[], callers: [] as Declared[] };
  for (const [key, value] of Object.entries(doc)) {
    const flag = key.replaceAll("_", "-");
    const kind = flags?.get(flag);
    const at = `${file}:${lineOf(text, key)}: ${key}`;
    if (key === "credentials" || key === "callers") {
      if (!Array.isArray(value)) {
        throw new DomainError("invalid_argument", `${at}: expected [[${key}]] tables`);
      }
      const starts = tableLines(text, key);
      declared[key] = value.map((fields, i) => ({
        line: starts[i] ?? 1,
        fields:
          typeof fields === "object" && fields !== null ? (fields as Record<string, unknown>) : {},
      }));
      continue;
    }
    if (flags === undefined) continue;
    if (kind === undefined || key.includes("-")) {
      throw new DomainError(
        "invalid_argument",
        `${at}: unknown key (settings are the serve flags, with "_" for "-")`,
      );
    }
    if (kind === "boolean") {
      if (typeof value !== "boolean")
        throw new DomainError("invalid_argument", `${at}: expected true or false`);
      settings.set(flag, value);
    } else if (typeof value === "string" || (typeof value === "number" && Number.isFinite(value))) {
      settings.set(flag, String(value));
    } else {
      throw new DomainError("invalid_argument", `${at}: expected a string or a number`);
    }
  }
  return { settings, ...declared, lineOf: (key) => lineOf(text, key) };
}

/** The lines where each [[key]] table starts. */
function tableLines(text: string, key: string): number[] {
  const out: number[] = [];
  text.split("\n").forEach((l, i) => {
    if (new RegExp(`^\\s*\\[\\[\\s*${key}\\s*\\]\\]`).test(l)) out.push(i + 1);
  });
  return out;
}
