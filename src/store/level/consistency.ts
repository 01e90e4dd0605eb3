import type { Credential } from "../../../gen/credbroker/v1/credential_pb.js";
import { isDomainError } from "../../core/errors.js";
import { displayName } from "../../core/names.js";
import { openCaller } from "../caller-plan.js";
import {
  CALLER_PREFIX,
  callerHashKey,
  callerKey,
  callerTokenKey,
  indexEntries,
  KEYCHECK_KEY,
  prefixEnd,
  recordKey,
} from "../keys.js";
import type { Sealer } from "../sealing.js";
import { openRecord } from "../write-plan.js";
import { levelReason } from "./level-errors.js";
import type { Db } from "./level-handle.js";

/** What is wrong with one key of the store. */
export type ProblemKind =
  /** A sealed value (credential, caller, key check) that does not open: lost. */
  | "damaged"
  /** A record whose index entry is missing or names another id. */
  | "missing_index"
  /** An index entry whose record is missing, or is not what the record would write. */
  | "stray_index"
  /** LevelDB could not read a range of keys at all. */
  | "unreadable";

export interface Problem {
  kind: ProblemKind;
  /** The storage key concerned. */
  key: string;
  /** "ns/name" when known (for a damaged record: from its name index entry); never a secret. */
  credential?: string;
  detail: string;
  /** A damaged credential record's index entries (they name its id). */
  entries?: string[];
}

export interface StoreCheck {
  /** Credential records that open, with every index entry they own. */
  credentials: number;
  callers: number;
  /** Index entries that match their record. */
  indexEntries: number;
  problems: Problem[];
}

const INDEX_PREFIXES = ["name/", "prov/", "default/", "ref/"] as const;
const CHUNK = 512;

/**
 * Walks every key of a closed-to-writers LevelDB store and checks it against
 * the layout in keys.ts: every sealed value opens, every credential record
 * has exactly its index entries (`indexEntries`) and every index entry has
 * its record, and the caller keys agree. Two passes in chunks (records, then
 * index entries), so memory stays bounded by the chunk, not the store.
 * Reports problems; changes nothing. Used by `credbroker repair` and the
 * fault tests.
 */
export async function checkStore(db: Db, sealer: Sealer): Promise<StoreCheck> {
  const check: StoreCheck = { credentials: 0, callers: 0, indexEntries: 0, problems: [] };
  const damaged = new Map<string, Problem>();
  let owned = 0;
  await checkKeycheck(db, sealer, check);
  await scan(db, "cred/", check, async (chunk) => {
    const opened: { id: string; c: Credential }[] = [];
    for (const [key, value] of chunk) {
      const id = key.slice("cred/".length);
      try {
        opened.push({ id, c: openRecord(sealer, id, value) });
      } catch (err) {
        const problem: Problem = { kind: "damaged", key, detail: reasonOf(err) };
        check.problems.push(problem);
        damaged.set(id, problem);
      }
    }
    const wanted = opened.flatMap(({ id, c }) =>
      [...indexEntries(c)].map(([entry, want]) => ({ id, c, entry, want })),
    );
    const found = await db.getMany(wanted.map((w) => w.entry));
    const bad = new Set<string>();
    wanted.forEach(({ id, c, entry, want }, i) => {
      const got = found[i]?.toString("utf8");
      if (got === want) {
        owned++;
        return;
      }
      bad.add(id);
      check.problems.push({
        kind: "missing_index",
        key: recordKey(id),
        credential: displayName(c.namespace, c.name),
        detail: got === undefined ? `${entry} is missing` : `${entry} names ${got}`,
      });
    });
    check.credentials += opened.filter(({ id }) => !bad.has(id)).length;
  });
  // Every entry a record owns was found above. An entry whose record is
  // there and opens is therefore a stray only when there are more of them
  // than owned entries found, so records are opened again only then.
  const candidates = await scanIndex(db, check, damaged, undefined);
  if (candidates === owned) check.indexEntries = owned;
  else check.indexEntries = await scanIndex(db, check, damaged, sealer);
  await checkCallers(db, sealer, check);
  return check;
}

/**
 * Walks the index entries. Without a sealer: reports entries whose record is
 * missing, names damaged records from their name entries, and counts the
 * rest. With one: reports only entries their (present) record does not
 * own, and counts the owned ones.
 */
async function scanIndex(
  db: Db,
  check: StoreCheck,
  damaged: ReadonlyMap<string, Problem>,
  sealer: Sealer | undefined,
): Promise<number> {
  let counted = 0;
  for (const prefix of INDEX_PREFIXES) {
    await scan(db, prefix, check, async (chunk) => {
      const ids = chunk.map(([, v]) => v.toString("utf8"));
      const records = await db.getMany(ids.map(recordKey));
      chunk.forEach(([key], i) => {
        const id = ids[i] ?? "";
        const value = records[i];
        const lost = damaged.get(id);
        if (lost !== undefined) {
          // Damage is reported once, on the record; its name entry names it.
          if (prefix === "name/") lost.credential = key.slice(prefix.length);
          if (sealer === undefined) lost.entries = [...(lost.entries ?? []), key];
          return;
        }
        if (value === undefined) {
          if (sealer === undefined) {
            const detail = `its record ${recordKey(id)} is missing`;
            check.problems.push({ kind: "stray_index", key, detail });
          }
          return;
        }
        if (sealer === undefined || ownedBy(sealer, id, value, key)) {
          counted++;
          return;
        }
        const detail = `its record ${recordKey(id)} does not own it`;
        check.problems.push({ kind: "stray_index", key, detail });
      });
    });
  }
  return counted;
}

function ownedBy(sealer: Sealer, id: string, value: Buffer, key: string): boolean {
  try {
    return indexEntries(openRecord(sealer, id, value)).get(key) === id;
  } catch {
    return false;
  }
}

async function checkKeycheck(db: Db, sealer: Sealer, check: StoreCheck): Promise<void> {
  const value = await db.get(KEYCHECK_KEY);
  if (value === undefined) return;
  try {
    sealer.open(value, KEYCHECK_KEY);
  } catch (err) {
    check.problems.push({ kind: "damaged", key: KEYCHECK_KEY, detail: reasonOf(err) });
  }
}

/** caller/<name> opens; callerhash/<name> and callertoken/<hash> point at each other. */
async function checkCallers(db: Db, sealer: Sealer, check: StoreCheck): Promise<void> {
  await scan(db, CALLER_PREFIX, check, async (chunk) => {
    const names = chunk.map(([key]) => key.slice(CALLER_PREFIX.length));
    const hashes = await db.getMany(names.map(callerHashKey));
    const tokens = await db.getMany(
      hashes.map((h) => (h === undefined ? callerTokenKey("") : callerTokenKey(h.toString()))),
    );
    chunk.forEach(([key, value], i) => {
      const name = names[i] ?? "";
      try {
        openCaller(sealer, name, value);
      } catch (err) {
        check.problems.push({ kind: "damaged", key, detail: reasonOf(err) });
        return;
      }
      if (hashes[i] === undefined || tokens[i]?.toString() !== name) {
        check.problems.push({
          kind: "missing_index",
          key,
          detail: `${callerHashKey(name)} and its token entry do not name this caller`,
        });
        return;
      }
      check.callers++;
    });
  });
  for (const prefix of ["callertoken/", "callerhash/"]) {
    await scan(db, prefix, check, async (chunk) => {
      const names = chunk.map(([key, value]) =>
        prefix === "callerhash/" ? key.slice(prefix.length) : value.toString(),
      );
      const callers = await db.getMany(names.map(callerKey));
      chunk.forEach(([key], i) => {
        if (callers[i] !== undefined) return;
        check.problems.push({
          kind: "stray_index",
          key,
          detail: `its caller ${callerKey(names[i] ?? "")} is missing`,
        });
      });
    });
  }
}

/** Every key under `prefix`, in chunks; a range LevelDB cannot read is one problem. */
async function scan(
  db: Db,
  prefix: string,
  check: StoreCheck,
  body: (chunk: [string, Buffer][]) => Promise<void>,
): Promise<void> {
  let chunk: [string, Buffer][] = [];
  try {
    for await (const entry of db.iterator({ gte: prefix, lt: prefixEnd(prefix) })) {
      chunk.push(entry);
      if (chunk.length === CHUNK) {
        await body(chunk);
        chunk = [];
      }
    }
    if (chunk.length > 0) await body(chunk);
  } catch (err) {
    check.problems.push({ kind: "unreadable", key: prefix, detail: levelReason(err) });
  }
}

function reasonOf(err: unknown): string {
  return isDomainError(err) ? err.message : levelReason(err);
}

/**
 * The keys `credbroker repair --drop-damaged` deletes: damaged credential
 * records with their index entries, and index entries that name no record
 * or one that does not own them. Never the key check, callers, or a record
 * that opens (a record missing an index entry is reported, not dropped).
 */
export function droppable(check: StoreCheck): string[] {
  return check.problems.flatMap((p) => {
    if (p.kind === "damaged" && p.key.startsWith("cred/")) return [p.key, ...(p.entries ?? [])];
    return p.kind === "stray_index" ? [p.key] : [];
  });
}
