import { existsSync } from "node:fs";

/**
 * "--flag PATH" when PATH names something that exists, else "--flag" alone.
 * A value typed after a flag may be a secret typed in the wrong place; a path
 * that names nothing is not repeated, while a real file the user can go and
 * look at is named (docs/SECURITY.md, "What error messages show").
 */
export function flagAndPath(flag: string, file: string): string {
  return existsSync(file) ? `${flag} ${file}` : flag;
}

/** "PATH: why" when PATH exists (as flagAndPath), else "why" alone. */
export function aboutPath(file: string, why: string): string {
  return existsSync(file) ? `${file}: ${why}` : why;
}

/** Why a file cannot be read, in words. */
export function unreadable(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case "ENOENT":
      return "no such file (ENOENT)";
    case "ENOTDIR":
      return "no such file (ENOTDIR: a part of the path is not a directory)";
    case "EACCES":
    case "EPERM":
      return `cannot read the file: permission denied (${err.code})`;
    case "EISDIR":
      return "is a directory, not a file";
    default:
      return `cannot read the file (${err.code ?? "error"})`;
  }
}
