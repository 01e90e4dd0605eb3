import { readFile, stat } from "node:fs/promises";
import { type ParsedFlags, UsageError } from "./flags.js";
import type { Io } from "./io.js";
import { readSecret, secretGiven } from "./secret-input.js";

/** Google's key files are about 2.3 KiB; anything far larger is not one. */
const MAX_KEY_BYTES = 64 * 1024;

/** The fields a service account key must have, as strings. */
const REQUIRED = ["client_email", "private_key", "private_key_id"] as const;

/**
 * The secret of the credential being written: a service account's JSON key from
 * --key-file, or the --secret-* value. A key is checked here for its shape so a
 * wrong file fails before it reaches the daemon; messages name the field, never
 * its value (JSON.parse's own message quotes the text, so it is not passed on).
 */
export async function readKindSecret(
  flags: ParsedFlags,
  io: Io,
  serviceAccount: boolean,
  prompt?: string,
): Promise<string | undefined> {
  if (flags.given("key-file")) {
    if (secretGiven(flags, "secret")) {
      throw new UsageError("give the key with --key-file or --secret-*, not both");
    }
    const file = flags.string("key-file") ?? "";
    const text = await readKeyFile(file);
    checkServiceAccountKey(text, "--key-file");
    return text;
  }
  const secret = await readSecret(flags, "secret", io, prompt);
  if (serviceAccount && secret !== undefined) checkServiceAccountKey(secret, "--secret-*");
  return secret;
}

async function readKeyFile(file: string): Promise<string> {
  const cannot = (err: NodeJS.ErrnoException): never => {
    throw new UsageError(`--key-file: cannot read the file (${err.code ?? "unreadable"})`);
  };
  const size = (await stat(file).catch(cannot)).size;
  if (size > MAX_KEY_BYTES) {
    throw new UsageError(`--key-file: larger than ${MAX_KEY_BYTES} bytes, not a key file`);
  }
  return readFile(file, "utf8").catch(cannot);
}

/** A Google service account key file: JSON, type service_account, an email and a PEM key. */
export function checkServiceAccountKey(text: string, source: string): void {
  let key: unknown;
  try {
    key = JSON.parse(text);
  } catch {
    throw new UsageError(`${source}: not JSON (a service account key file is a JSON object)`);
  }
  if (typeof key !== "object" || key === null || Array.isArray(key)) {
    throw new UsageError(`${source}: not a JSON object`);
  }
  const fields = key as Record<string, unknown>;
  if (fields.type !== "service_account") {
    throw new UsageError(`${source}: field "type" must be "service_account"`);
  }
  for (const name of REQUIRED) {
    if (typeof fields[name] !== "string" || fields[name] === "") {
      throw new UsageError(`${source}: field "${name}" is missing or not a string`);
    }
  }
  if (!String(fields.client_email).includes("@")) {
    throw new UsageError(`${source}: field "client_email" is not an email address`);
  }
  if (!String(fields.private_key).includes("-----BEGIN PRIVATE KEY-----")) {
    throw new UsageError(`${source}: field "private_key" is not a PEM private key`);
  }
}
