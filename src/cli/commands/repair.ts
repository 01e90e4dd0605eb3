import { readdir } from "node:fs/promises";
import path from "node:path";
import { Level } from "level";
import { DomainError } from "../../core/errors.js";
import { KEYCHECK_KEY } from "../../store/keys.js";
import {
  checkStore,
  droppable,
  type Problem,
  type StoreCheck,
} from "../../store/level/consistency.js";
import { levelCode, levelReason } from "../../store/level/level-errors.js";
import type { Db } from "../../store/level/level-handle.js";
import { loadMasterKey, loadPreviousMasterKeys } from "../../store/master-key.js";
import { deriveDataKey, Sealer } from "../../store/sealing.js";
import { assertKeyOpens } from "../../store/store-rules.js";
import { dataDirFlag, dataDirOf } from "../data-dir.js";
import { EXIT } from "../exit-codes.js";
import { type FlagSpec, helpText, parseFlags, UsageError } from "../flags.js";
import type { Io } from "../io.js";

export const FLAGS: readonly FlagSpec[] = [
  dataDirFlag("the stopped daemon's data dir (its db/ and master.key)"),
  {
    name: "drop-damaged",
    kind: "boolean",
    help: "then delete damaged credential records and index entries naming no record, so their names can be used again",
  },
  { name: "help", short: "h", kind: "boolean", help: "show this help" },
];

const USAGE = "credbroker repair [--data-dir DIR] [--drop-damaged]";
const ABOUT =
  "With the daemon stopped: runs LevelDB's repair on the data dir's database,\n" +
  "then opens every sealed record and index entry with the master key as serve\n" +
  "finds it (CREDBROKER_MASTER_KEY, else master.key in the data dir; previous\n" +
  "keys of a rotation too) and reports what\n" +
  "survived and what was lost, by credential name, never a secret. Exit code 0:\n" +
  "nothing lost; 10: something was lost or inconsistent (listed); 6: a daemon\n" +
  "holds the data dir.";

/** LevelDB's RepairDB; `level` exports classic-level's class, whose typings omit it. */
const repairDb = (Level as unknown as { repair(location: string): Promise<void> }).repair.bind(
  Level,
);

/** `credbroker repair`: returns the exit code. */
export async function repairCommand(argv: readonly string[], io: Io): Promise<number> {
  try {
    const flags = parseFlags(FLAGS, argv, io.env);
    if (flags.bool("help")) {
      io.out(helpText(USAGE, ABOUT, FLAGS));
      return EXIT.ok;
    }
    if (flags.positionals.length > 0)
      throw new UsageError("unexpected argument (repair takes none)");
    const dataDir = path.resolve(dataDirOf(flags, io.env));
    const location = path.join(dataDir, "db");
    // A typed or exported path is not repeated (it may be a secret in the wrong place).
    const shown = flags.given("data-dir")
      ? "the --data-dir directory"
      : io.env.CREDBROKER_DATA_DIR
        ? "the CREDBROKER_DATA_DIR directory"
        : dataDir;
    await assertStopped(location, shown);
    // Before anything changes: without the keys nothing could be verified.
    // Keys as serve finds them, previous ones included (a rotation in progress).
    const file = path.join(dataDir, "master.key");
    const master = await loadMasterKey({
      envValue: io.env.CREDBROKER_MASTER_KEY,
      file,
      fresh: false,
    });
    const previous = await loadPreviousMasterKeys({
      envValue: io.env.CREDBROKER_PREVIOUS_MASTER_KEYS,
      file: `${file}.previous`,
    });
    const sealer = new Sealer([
      deriveDataKey(master.key),
      ...previous.keys.map((k) => deriveDataKey(k)),
    ]);
    // LevelDB's repair moves what it replaces (logs, manifests) and table
    // files it cannot read into lost/; only the tables mean lost data.
    const lostDir = path.join(location, "lost");
    const tablesBefore = new Set(await tablesIn(lostDir));
    await repairDb(location);
    const setAside = (await tablesIn(lostDir)).filter((f) => !tablesBefore.has(f));
    io.out(`LevelDB repair of ${location}: done\n`);
    if (setAside.length > 0) {
      io.out(`unreadable table files set aside in ${lostDir}: ${setAside.join(", ")}\n`);
    }
    const check = await verify(location, sealer);
    io.out(report(check));
    if (flags.bool("drop-damaged")) {
      const keys = droppable(check);
      if (keys.length > 0) {
        await dropKeys(location, keys);
        const names = check.problems.flatMap((p) =>
          p.kind === "damaged" && p.credential !== undefined ? [p.credential] : [],
        );
        io.out(
          `dropped ${keys.length} keys${names.length > 0 ? `; these names can be created again: ${names.join(", ")}` : ""}\n`,
        );
        io.out(report(await verify(location, sealer)));
      }
    }
    return check.problems.length === 0 && setAside.length === 0 ? EXIT.ok : EXIT.partial;
  } catch (err) {
    io.err(`credbroker repair: ${(err as Error).message}\n`);
    if (err instanceof UsageError) return EXIT.usage;
    return err instanceof DomainError && err.code === "unavailable" ? EXIT.unavailable : EXIT.error;
  }
}

/**
 * LevelDB's repair takes no lock, so take the database's own first: a
 * running daemon holds it. Any other failure to open is what repair is for.
 */
async function assertStopped(location: string, shown: string): Promise<void> {
  if ((await filesIn(location)).length === 0) {
    throw new UsageError(`no database (db/) in ${shown}`);
  }
  const db: Db = new Level<string, Buffer>(location, { valueEncoding: "buffer" });
  try {
    await db.open();
  } catch (err) {
    if (levelCode(err) === "LEVEL_LOCKED") {
      throw new DomainError(
        "unavailable",
        `data dir ${path.dirname(location)} is in use by a running credbroker (LevelDB lock held): stop the daemon first`,
        { cause: err },
      );
    }
    return;
  }
  await db.close();
}

/** Deletes `keys` in one synced batch. */
async function dropKeys(location: string, keys: readonly string[]): Promise<void> {
  const db: Db = new Level<string, Buffer>(location, { valueEncoding: "buffer" });
  await db.open();
  try {
    await db.batch(
      keys.map((key) => ({ type: "del" as const, key })),
      { sync: true },
    );
  } finally {
    await db.close();
  }
}

/** Opens the repaired database and checks it; the master key must open its key check. */
async function verify(location: string, sealer: Sealer): Promise<StoreCheck> {
  const db: Db = new Level<string, Buffer>(location, { valueEncoding: "buffer" });
  try {
    await db.open();
  } catch (err) {
    throw new DomainError("internal", `cannot open ${location} after repair: ${levelReason(err)}`, {
      cause: err,
    });
  }
  try {
    const keycheck = await db.get(KEYCHECK_KEY);
    if (keycheck !== undefined) assertKeyOpens(sealer, keycheck, location);
    return await checkStore(db, sealer);
  } finally {
    await db.close();
  }
}

function report(check: StoreCheck): string {
  const lost = check.problems.filter((p) => p.kind === "damaged" && p.key.startsWith("cred/"));
  const lines = [
    `survived: ${check.credentials} credentials, ${check.callers} callers, ${check.indexEntries} index entries`,
    `lost: ${lost.length} credentials, ${check.problems.length - lost.length} other problems`,
    ...check.problems.map(problemLine),
  ];
  return `${lines.join("\n")}\n`;
}

function problemLine(p: Problem): string {
  const who = p.credential === undefined ? "" : ` (${p.credential})`;
  return `  ${p.kind} ${p.key}${who}: ${p.detail}`;
}

async function filesIn(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => []);
}

async function tablesIn(dir: string): Promise<string[]> {
  return (await filesIn(dir)).filter((f) => f.endsWith(".ldb") || f.endsWith(".sst"));
}
