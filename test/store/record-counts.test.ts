import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { CallerRole, CallerSchema } from "../../gen/credbroker/v1/caller_pb.js";
import { MAX_BATCH } from "../../src/store/key-rotation.js";
import { LevelCredentialStore } from "../../src/store/level/level-store.js";
import { deriveDataKey, MASTER_KEY_BYTES, Sealer } from "../../src/store/sealing.js";
import { accessKeyInput, FIXED_NOW } from "../core/fixtures.js";
import { removeDir, tempDir } from "./helpers.js";

/** KeyRotation.recordCounts (GetServerStatus's counts) on the real LevelDB store, across batches. */
describe("record counts", () => {
  let dir: string;
  let store: LevelCredentialStore;
  const credentials = MAX_BATCH + 3;

  before(async () => {
    dir = await tempDir();
    store = await LevelCredentialStore.open({
      location: path.join(dir, "db"),
      now: () => new Date(FIXED_NOW.getTime()),
      sealer: async () => new Sealer([deriveDataKey(Buffer.alloc(MASTER_KEY_BYTES, 0x33))]),
    });
  });
  after(async () => {
    await store?.close();
    await removeDir(dir);
  });

  test("an empty store counts nothing", async () => {
    assert.deepEqual(await store.keyRotation().recordCounts(), { credentials: 0, callers: 0 });
  });

  test(`${credentials} credentials in two namespaces (more than one batch) and 2 callers`, async () => {
    for (let i = 0; i < credentials; i += 1000) {
      const batch = Array.from({ length: Math.min(1000, credentials - i) }, (_, j) => ({
        ...accessKeyInput({ namespace: (i + j) % 2 === 0 ? "even" : "odd", name: `k${i + j}` }),
        id: randomUUID(),
      }));
      await store.createMany(batch);
    }
    for (const name of ["ci", "ops"]) {
      const caller = create(CallerSchema, { name, role: CallerRole.READER, namespaces: ["even"] });
      await store.createCaller(caller, randomUUID().replaceAll("-", "").padEnd(64, "0"));
    }
    assert.deepEqual(await store.keyRotation().recordCounts(), { credentials, callers: 2 });
    await store.delete("odd", "k1", "");
    assert.deepEqual(await store.keyRotation().recordCounts(), {
      credentials: credentials - 1,
      callers: 2,
    });
  });
});
