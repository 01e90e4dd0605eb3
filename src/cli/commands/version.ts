import { execFile } from "node:child_process";
import { readFile, realpath } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { EXIT } from "../exit-codes.js";
import type { Io } from "../io.js";

/** The package root: dist/src/cli/commands/version.js is four levels below it. */
const PACKAGE_ROOT = fileURLToPath(new URL("../../../../", import.meta.url));

/** The store backends serve can use, each with the module it needs. */
const BACKENDS: readonly { name: string; module: string }[] = [
  { name: "leveldb", module: "level" },
  { name: "etcd", module: "etcd3" },
];

export interface VersionInfo {
  readonly version: string;
  /** The git commit of the clone the CLI runs from; undefined for an installed package. */
  readonly commit: string | undefined;
  readonly node: string;
  readonly stores: readonly string[];
}

/** `credbroker version` and `credbroker --version`. */
export async function versionCommand(argv: readonly string[], io: Io): Promise<number> {
  const usage =
    "Usage: credbroker version\n\nPrints the version, git commit (in a clone), Node version and store backends.\n";
  if (argv[0] === "--help" || argv[0] === "-h") {
    io.out(usage);
    return EXIT.ok;
  }
  if (argv.length > 0) {
    io.err(usage);
    return EXIT.usage;
  }
  const info = await versionInfo();
  io.out(
    `credbroker ${info.version}\n` +
      (info.commit ? `commit  ${info.commit}\n` : "") +
      `node    ${info.node}\n` +
      `stores  ${info.stores.join(", ")}\n`,
  );
  return EXIT.ok;
}

export async function versionInfo(): Promise<VersionInfo> {
  const pkg = JSON.parse(await readFile(`${PACKAGE_ROOT}package.json`, "utf8")) as {
    version?: unknown;
  };
  const [commit, stores] = await Promise.all([gitCommit(), availableStores()]);
  return {
    version: typeof pkg.version === "string" ? pkg.version : "unknown",
    commit,
    node: process.version,
    stores,
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
