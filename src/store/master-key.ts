import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { DomainError } from "../core/errors.js";
import { MASTER_KEY_BYTES } from "./sealing.js";

export interface MasterKeyOptions {
  /** The value of CREDBROKER_MASTER_KEY (base64 of 32 bytes), if set. */
  envValue: string | undefined;
  /** The master.key file in the data dir. */
  file: string;
  /** True when the data dir holds no records yet: only then may a key be created. */
  fresh: boolean;
  /** The error's message when no key is found and none may be created (default: a LevelDB's). */
  absent?: string | undefined;
}

export interface MasterKey {
  key: Buffer;
  origin: "env" | "file" | "created";
}

/**
 * The master key: from the environment, else the key file, else (only for a
 * fresh data dir) a new random key written 0600. Errors name where the key was
 * looked for and never echo key material.
 */
export async function loadMasterKey(opts: MasterKeyOptions): Promise<MasterKey> {
  if (opts.envValue !== undefined && opts.envValue !== "") {
    return { key: decode(opts.envValue, "CREDBROKER_MASTER_KEY"), origin: "env" };
  }
  const text = await readFile(opts.file, "utf8").catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return undefined;
    throw new DomainError("failed_precondition", `cannot read master key file ${opts.file}`, {
      cause: err,
    });
  });
  if (text !== undefined) return { key: decode(text.trim(), opts.file), origin: "file" };
  if (!opts.fresh) {
    throw new DomainError(
      "failed_precondition",
      opts.absent ??
        `the data dir holds sealed records but no master key was given: set CREDBROKER_MASTER_KEY or restore ${opts.file}`,
    );
  }
  const key = randomBytes(MASTER_KEY_BYTES);
  await writeFile(opts.file, `${key.toString("base64")}\n`, { mode: 0o600, flag: "wx" });
  return { key, origin: "created" };
}

function decode(value: string, where: string): Buffer {
  const key = Buffer.from(value, "base64");
  if (key.length !== MASTER_KEY_BYTES || key.toString("base64") !== value) {
    throw new DomainError(
      "invalid_argument",
      `${where}: the master key must be the base64 of exactly ${MASTER_KEY_BYTES} bytes`,
    );
  }
  return key;
}

export interface PreviousKeysOptions {
  /** The value of CREDBROKER_PREVIOUS_MASTER_KEYS (base64 keys, separated by commas or whitespace), if set. */
  envValue: string | undefined;
  /** master.key.previous in the data dir: one base64 key per line. */
  file: string;
}

export interface PreviousMasterKeys {
  keys: Buffer[];
  /** Where they came from, for the log; "none" when neither place holds any. */
  origin: "env" | "file" | "none";
}

/**
 * Previous master keys: keys that only open records, loaded while a master
 * key rotation re-seals what they sealed (docs/ARCHITECTURE.md, "Master key
 * rotation"). From the environment if set, else the file if it exists. A
 * line starting with '#' is a comment. Errors name the place and the line,
 * never key material.
 */
export async function loadPreviousMasterKeys(
  opts: PreviousKeysOptions,
): Promise<PreviousMasterKeys> {
  if (opts.envValue !== undefined && opts.envValue.trim() !== "") {
    const values = opts.envValue.split(/[\s,]+/).filter((v) => v !== "");
    return {
      keys: values.map((v, i) => decode(v, `CREDBROKER_PREVIOUS_MASTER_KEYS (key ${i + 1})`)),
      origin: "env",
    };
  }
  const text = await readFile(opts.file, "utf8").catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return undefined;
    throw new DomainError("failed_precondition", `cannot read previous master keys ${opts.file}`, {
      cause: err,
    });
  });
  if (text === undefined) return { keys: [], origin: "none" };
  const keys: Buffer[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (line !== "" && !line.startsWith("#")) keys.push(decode(line, `${opts.file} line ${i + 1}`));
  });
  return { keys, origin: keys.length === 0 ? "none" : "file" };
}
