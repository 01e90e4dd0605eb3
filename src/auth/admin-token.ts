import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";

export const ADMIN_TOKEN_FILE = "admin.token";

/** A new bearer token: a recognizable prefix (for secret scanners) and 256 random bits. */
export function newToken(): string {
  return `cbt_${randomBytes(32).toString("base64url")}`;
}

/**
 * The admin token of a data dir: read from admin.token, or created there
 * (0600, exclusive create) on first start. Returns the token and the file's path.
 */
export async function ensureAdminToken(
  dataDir: string,
): Promise<{ token: string; file: string; created: boolean }> {
  const file = path.join(dataDir, ADMIN_TOKEN_FILE);
  const existing = await readFile(file, "utf8").catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return undefined;
    throw err;
  });
  if (existing !== undefined && existing.trim() !== "") {
    return { token: existing.trim(), file, created: false };
  }
  const token = newToken();
  await writeFile(file, `${token}\n`, { mode: 0o600, flag: existing === undefined ? "wx" : "w" });
  return { token, file, created: true };
}
