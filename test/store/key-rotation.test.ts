import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { CallerRole, CallerSchema } from "../../gen/credbroker/v1/caller_pb.js";
import type { Credential } from "../../gen/credbroker/v1/credential_pb.js";
import type { RotationProgress } from "../../src/store/key-rotation.js";
import { LevelCredentialStore } from "../../src/store/level/level-store.js";
import { SEALED_PREFIXES } from "../../src/store/rotation.js";
import { deriveDataKey, MASTER_KEY_BYTES, Sealer } from "../../src/store/sealing.js";
import { accessKeyInput, domainError, FIXED_NOW, SECRET_ACCESS_KEY } from "../core/fixtures.js";
import { removeDir, tempDir, withRawDb } from "./helpers.js";

/**
 * A master key rotation on the real LevelDB store: the open rules, re-sealing
 * in batches while writes go on, retirement, and reopening with the new key only.
 */
const OLD = Buffer.alloc(MASTER_KEY_BYTES, 0x11);
const NEW = Buffer.alloc(MASTER_KEY_BYTES, 0x22);
const OLD_ID = deriveDataKey(OLD).id;
const NEW_ID = deriveDataKey(NEW).id;
const COUNT = 1200;
const NS = "rot";

function open(location: string, ...masters: Buffer[]): Promise<LevelCredentialStore> {
  return LevelCredentialStore.open({
    location,
    now: () => new Date(FIXED_NOW.getTime()),
    sealer: async () =>
      new Sealer(masters.map((m) => deriveDataKey(m)) as [ReturnType<typeof deriveDataKey>]),
  });
}

function prepared(i: number): Credential {
  return { ...accessKeyInput({ namespace: NS, name: `k${i}` }), id: randomUUID() };
}

/** Key ids of every sealed value of a closed store, counted. */
async function sealedUnder(location: string): Promise<Map<string, number>> {
  return withRawDb(location, async (db) => {
    const ids = new Map<string, number>();
    for await (const [key, value] of db.iterator()) {
      if (!SEALED_PREFIXES.some((p) => key.startsWith(p)) && !key.startsWith("meta/")) continue;
      const id = Sealer.keyIdOf(value) ?? "none";
      ids.set(id, (ids.get(id) ?? 0) + 1);
    }
    return ids;
  });
}

describe("master key rotation on LevelDB", () => {
  let dir: string;
  let location: string;

  before(async () => {
    dir = await tempDir();
    location = path.join(dir, "db");
    const store = await open(location, OLD);
    for (let i = 0; i < COUNT; i += 400) {
      const batch = Array.from({ length: Math.min(400, COUNT - i) }, (_, j) => prepared(i + j));
      await store.createMany(batch);
    }
    const caller = create(CallerSchema, { name: "ci", role: CallerRole.READER, namespaces: [NS] });
    await store.createCaller(caller, "ab".repeat(32));
    await store.close();
  });
  after(async () => removeDir(dir));

  test("a new key without the old one is refused, writing nothing", async () => {
    await assert.rejects(
      open(location, NEW),
      domainError("failed_precondition", "does not open this data dir", OLD_ID),
    );
    assert.deepEqual([...(await sealedUnder(location)).keys()], [OLD_ID]);
  });

  test("the new key with the old as previous starts the rotation: the keycheck moves first", async () => {
    const store = await open(location, NEW, OLD);
    assert.deepEqual(await store.keyRotation().status(), {
      currentKeyId: NEW_ID,
      masterKeyId: NEW_ID,
      previousKeyIds: [OLD_ID],
      rotationInProgress: true,
      drainingKeyIds: [OLD_ID],
    });
    await assert.rejects(
      store.keyRotation().retire(),
      domainError("failed_precondition", "not finished"),
    );
    await store.close();
    await withRawDb(location, async (db) => {
      const check = await db.get("meta/keycheck");
      assert.equal(check && Sealer.keyIdOf(check), NEW_ID);
    });
    await assert.rejects(open(location, OLD), domainError("failed_precondition", NEW_ID));
    await assert.rejects(
      open(location, NEW),
      domainError("failed_precondition", "not finished", OLD_ID),
    );
  });

  test("re-sealing in batches while updates go on loses no update", async () => {
    const store = await open(location, NEW, OLD);
    const progress: RotationProgress[] = [];
    const updated: string[] = [];
    const writer = (async () => {
      for (let i = 0; i < COUNT; i += 37) {
        await store.update(NS, `k${i}`, (c) => ({ ...c, description: "during rotation" }), "");
        updated.push(`k${i}`);
      }
    })();
    for await (const p of store.keyRotation().rotate(100)) progress.push(p);
    await writer;
    const last = progress.at(-1);
    assert.ok(last?.done);
    assert.equal(last.scanned, COUNT + 1, "every record and the caller");
    assert.ok(last.resealed <= COUNT + 1 && last.resealed > 0);
    assert.ok(progress.length >= 12, "progress after every batch");
    assert.equal((await store.keyRotation().status()).rotationInProgress, false);

    // Idempotent: a second pass finds nothing to do.
    const again: RotationProgress[] = [];
    for await (const p of store.keyRotation().rotate(500)) again.push(p);
    assert.equal(again.at(-1)?.resealed, 0);

    for (const name of updated) {
      assert.equal((await store.get(NS, name)).description, "during rotation", name);
    }
    const retired = await store.keyRotation().retire();
    assert.deepEqual(retired, { retired: [OLD_ID], checked: COUNT + 1 });
    const k0 = await store.get(NS, "k1");
    assert.equal(k0.kind.case === "accessKey" && k0.kind.value.secretAccessKey, SECRET_ACCESS_KEY);
    await store.close();
    assert.deepEqual([...(await sealedUnder(location)).keys()], [NEW_ID]);
  });

  test("after the rotation: the new key alone opens everything; the old alone opens nothing", async () => {
    await assert.rejects(open(location, OLD), domainError("failed_precondition", NEW_ID));
    const store = await open(location, NEW);
    try {
      let seen = 0;
      let after = "";
      for (;;) {
        const page = await store.list({ namespace: NS, provider: 0, limit: 500, after });
        seen += page.credentials.length;
        if (!page.more) break;
        after = page.credentials.at(-1)?.name ?? "";
      }
      assert.equal(seen, COUNT);
      assert.equal((await store.getCaller("ci")).name, "ci");
      assert.equal((await store.keyRotation().status()).rotationInProgress, false);
    } finally {
      await store.close();
    }
  });
});
