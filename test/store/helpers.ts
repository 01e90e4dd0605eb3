import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Level } from "level";
import { LevelCredentialStore } from "../../src/store/level/level-store.js";
import { deriveDataKey, MASTER_KEY_BYTES, Sealer } from "../../src/store/sealing.js";
import { FIXED_NOW } from "../core/fixtures.js";
import type { OpenedStore } from "./contract.js";

export const MASTER_A = Buffer.alloc(MASTER_KEY_BYTES, 0x5a);
export const MASTER_B = Buffer.alloc(MASTER_KEY_BYTES, 0xa5);

export async function tempDir(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), "credbroker-store-"));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** Opens the real LevelDB store in `location` under `master`; records each `fresh` asked. */
export function openLevelStore(
  location: string,
  master: Buffer = MASTER_A,
  freshSeen: boolean[] = [],
): Promise<LevelCredentialStore> {
  return LevelCredentialStore.open({
    location,
    now: () => new Date(FIXED_NOW.getTime()),
    async sealer(fresh) {
      freshSeen.push(fresh);
      return new Sealer([deriveDataKey(master)]);
    },
  });
}

/** A new store in a new temp dir; cleanup closes it and removes the dir. */
export async function openTempLevelStore(): Promise<OpenedStore> {
  const dir = await tempDir();
  const store = await openLevelStore(path.join(dir, "db"));
  return {
    store,
    async cleanup() {
      await store.close();
      await removeDir(dir);
    },
  };
}

/** Every key and value of a closed LevelDB, read raw (as bytes). */
export async function rawEntries(location: string): Promise<[Buffer, Buffer][]> {
  const db = new Level<Buffer, Buffer>(location, {
    keyEncoding: "buffer",
    valueEncoding: "buffer",
  });
  await db.open();
  try {
    const out: [Buffer, Buffer][] = [];
    for await (const [k, v] of db.iterator()) out.push([k, v]);
    return out;
  } finally {
    await db.close();
  }
}

/** Runs `fn` on the raw LevelDB at `location` (the store must be closed). */
export async function withRawDb<T>(
  location: string,
  fn: (db: Level<string, Buffer>) => Promise<T>,
): Promise<T> {
  const db = new Level<string, Buffer>(location, { valueEncoding: "buffer" });
  await db.open();
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}
