import { execFile } from "node:child_process";
import { readFile, realpath } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

/** The package root: dist/src/daemon/version-info.js is three levels below it. */
const PACKAGE_ROOT = fileURLToPath(new URL("../../../", import.meta.url));

/** The store backends serve can use, each with the module it needs. */
const BACKENDS: readonly { name: string; module: string }[] = [
  { name: "leveldb", module: "level" },
  { name: "etcd", module: "etcd3" },
];

export interface VersionInfo {
  readonly version: string;
  /** The git commit of the clone the program runs from; undefined for an installed package. */
  readonly commit: string | undefined;
  readonly node: string;
  readonly stores: readonly string[];
}

/** What `credbroker version` prints. */
export async function versionInfo(): Promise<VersionInfo> {
  const [build, stores] = await Promise.all([buildInfo(), availableStores()]);
  return { ...build, stores };
}

/** The version, commit and Node of this program (GetServerStatus answers these). */
export async function buildInfo(): Promise<Omit<VersionInfo, "stores">> {
  const pkg = JSON.parse(await readFile(`${PACKAGE_ROOT}package.json`, "utf8")) as {
    version?: unknown;
  };
  return {
    version: typeof pkg.version === "string" ? pkg.version : "unknown",
    commit: await gitCommit(),
    node: process.version,
  };
}

/** HEAD of the clone whose top level is the package root; undefined anywhere else (an install). */
async function gitCommit(): Promise<string | undefined> {
  const git = (...args: string[]) =>
    promisify(execFile)("git", ["-C", PACKAGE_ROOT, ...args], { timeout: 2000 }).then((r) =>
      r.stdout.trim(),
    );
  try {
    // An install inside some other repository must not report that repository's commit.
    const [top, root] = await Promise.all([
      git("rev-parse", "--show-toplevel").then(realpath),
      realpath(PACKAGE_ROOT),
    ]);
    if (top !== root) return undefined;
    const head = await git("rev-parse", "--short=12", "HEAD");
    const dirty = (await git("status", "--porcelain", "--untracked-files=no")) !== "";
    return dirty ? `${head} (modified)` : head;
  } catch {
    return undefined;
  }
}

/** A backend is available when its module loads (LevelDB's native binding included). */
async function availableStores(): Promise<string[]> {
  const loaded = await Promise.all(
    BACKENDS.map(async (b) => {
      try {
        await import(b.module);
        return b.name;
      } catch {
        return undefined;
      }
    }),
  );
  return loaded.filter((name) => name !== undefined);
}
