import {
  collectSealed,
  type OpenedKeys,
  openKeys,
  ROTATION_KEY,
  type SealedEntry,
} from "../rotation.js";
import type { Sealer } from "../sealing.js";
import type { Db, LevelHandle } from "./level-handle.js";

/**
 * Master key rotation on LevelDB: the reads and the open-time write of the
 * rules in rotation.ts.
 */

/** Up to `limit` sealed entries after `after`, in key order (records, callers). */
export function sealedBatch(db: Db, after: string, limit: number): Promise<SealedEntry[]> {
  return collectSealed(after, limit, async (range, max) => {
    const out: SealedEntry[] = [];
    for await (const [key, value] of db.iterator({ ...range, limit: max }))
      out.push({ key, value });
    return out;
  });
}

/**
 * Applies `openKeys` to an opened database: reads the rotation marker and,
 * when the current key is new, writes the keycheck and the marker under it
 * in one synced batch before the store serves anything.
 */
export async function openLevelKeys(
  handle: LevelHandle,
  sealer: Sealer,
  check: Buffer,
  where: string,
): Promise<OpenedKeys> {
  const marker = await handle.db.get(ROTATION_KEY);
  const opened = openKeys(sealer, check, marker, where);
  if (opened.ops.length > 0) {
    await handle.write(async (db) => {
      await db.batch(
        opened.ops.map((op) =>
          op.type === "put"
            ? { type: "put", key: op.key, value: op.value }
            : { type: "del", key: op.key },
        ),
        { sync: true },
      );
    });
  }
  return opened;
}
