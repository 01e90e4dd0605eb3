import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { KEYCHECK_KEY } from "../../src/store/keys.js";
import { loadPreviousMasterKeys } from "../../src/store/master-key.js";
import {
  fleetKeys,
  notUnderCurrent,
  openKeys,
  openMarker,
  planFleetMove,
  planReseal,
  ROTATION_KEY,
  sealedRanges,
  sealMarker,
} from "../../src/store/rotation.js";
import { type DataKey, deriveDataKey, MASTER_KEY_BYTES, Sealer } from "../../src/store/sealing.js";
import { KEYCHECK_PLAINTEXT } from "../../src/store/store-rules.js";
import { domainError } from "../core/fixtures.js";

const MASTER_OLD = Buffer.alloc(MASTER_KEY_BYTES, 0x01);
const MASTER_NEW = Buffer.alloc(MASTER_KEY_BYTES, 0x02);
const MASTER_NEWER = Buffer.alloc(MASTER_KEY_BYTES, 0x03);
// Fresh DataKeys per sealer: retirePrevious wipes the retired keys' bytes.
const oldKey = (): DataKey => deriveDataKey(MASTER_OLD);
const newKey = (): DataKey => deriveDataKey(MASTER_NEW);
const OLD_ID = oldKey().id;
const NEW_ID = newKey().id;
const NEWER_ID = deriveDataKey(MASTER_NEWER).id;

const keycheck = (sealer: Sealer) => sealer.seal(KEYCHECK_PLAINTEXT, KEYCHECK_KEY);
const noKeyMaterial = (text: string) => {
  for (const m of [MASTER_OLD, MASTER_NEW, MASTER_NEWER]) {
    for (const r of [m.toString("base64"), m.toString("hex")]) assert.ok(!text.includes(r));
  }
};

describe("sealedRanges", () => {
  test("from the start: callers, then records", () => {
    assert.deepEqual(sealedRanges(""), [
      { gte: "caller/", lt: "caller0" },
      { gte: "cred/", lt: "cred0" },
    ]);
  });

  test("after a caller: the rest of the callers, then records", () => {
    assert.deepEqual(sealedRanges("caller/ci"), [
      { gt: "caller/ci", lt: "caller0" },
      { gte: "cred/", lt: "cred0" },
    ]);
  });

  test("after a record: the rest of the records", () => {
    assert.deepEqual(sealedRanges("cred/abc"), [{ gt: "cred/abc", lt: "cred0" }]);
  });

  test("callertoken/ and callerhash/ (index entries) are outside the caller range", () => {
    const [callers] = sealedRanges("");
    assert.ok(callers !== undefined && "callertoken/x" >= callers.lt);
    assert.ok("callerhash/x" >= callers.lt);
  });
});

describe("Sealer during a rotation", () => {
  test("reseal: same plaintext, same additional data, current key", () => {
    const old = new Sealer([oldKey()]);
    const both = new Sealer([newKey(), oldKey()]);
    const sealed = old.seal(Buffer.from("secret"), "cred/1");
    const again = both.reseal(sealed, "cred/1");
    assert.equal(Sealer.keyIdOf(again), NEW_ID);
    assert.ok(both.isCurrent(again) && !both.isCurrent(sealed));
    assert.deepEqual(new Sealer([newKey()]).open(again, "cred/1"), Buffer.from("secret"));
    assert.throws(() => new Sealer([newKey()]).open(again, "cred/2"), domainError("data_loss"));
  });

  test("retirePrevious forgets and wipes the previous keys only", () => {
    const previous = oldKey();
    const sealer = new Sealer([newKey(), previous]);
    const underOld = new Sealer([oldKey()]).seal(Buffer.from("x"), "k");
    assert.deepEqual(sealer.previousKeyIds, [OLD_ID]);
    assert.deepEqual(sealer.retirePrevious(), [OLD_ID]);
    assert.deepEqual(sealer.previousKeyIds, []);
    assert.ok(
      previous.key.every((b) => b === 0),
      "the retired key's bytes are wiped",
    );
    assert.throws(() => sealer.open(underOld, "k"), domainError("data_loss", OLD_ID));
    assert.deepEqual(sealer.open(sealer.seal(Buffer.from("y"), "k"), "k"), Buffer.from("y"));
  });
});

describe("openKeys", () => {
  const where = "this data dir";

  test("the keycheck under the current key, no marker: nothing to do", () => {
    const sealer = new Sealer([newKey()]);
    assert.deepEqual(openKeys(sealer, keycheck(sealer), undefined, where), {
      ops: [],
      draining: [],
    });
  });

  test("a new current key with the old one as previous starts the rotation", () => {
    const check = keycheck(new Sealer([oldKey()]));
    const sealer = new Sealer([newKey(), oldKey()]);
    const opened = openKeys(sealer, check, undefined, where);
    assert.deepEqual(opened.draining, [OLD_ID]);
    assert.deepEqual(
      opened.ops.map((o) => o.key),
      [KEYCHECK_KEY, ROTATION_KEY],
    );
    const [newCheck, marker] = opened.ops;
    assert.ok(newCheck?.type === "put" && marker?.type === "put");
    assert.equal(Sealer.keyIdOf(newCheck.value), NEW_ID, "the keycheck moves to the new key");
    assert.deepEqual(openMarker(sealer, marker.value), { to: NEW_ID, from: [OLD_ID] });

    // After that write: only the old key, or only the new key, is refused.
    assert.throws(
      () => openKeys(new Sealer([oldKey()]), newCheck.value, marker.value, where),
      (err: unknown) => {
        noKeyMaterial((err as Error).message);
        return domainError("failed_precondition", "does not open this data dir", NEW_ID)(err);
      },
    );
    assert.throws(
      () => openKeys(new Sealer([newKey()]), newCheck.value, marker.value, where),
      domainError("failed_precondition", "rotation", "not finished", OLD_ID, "key rotate"),
    );
    // Both: the rotation goes on, nothing more to write.
    assert.deepEqual(openKeys(sealer, newCheck.value, marker.value, where), {
      ops: [],
      draining: [OLD_ID],
    });
  });

  test("the old key alone before any rotation is still fine; a stranger key is refused", () => {
    const check = keycheck(new Sealer([oldKey()]));
    assert.deepEqual(openKeys(new Sealer([oldKey()]), check, undefined, where).ops, []);
    assert.throws(
      () => openKeys(new Sealer([newKey()]), check, undefined, where),
      domainError("failed_precondition", "does not open this data dir", OLD_ID, "no previous key"),
    );
  });

  test("a third key mid-rotation drains both older keys", () => {
    const during = new Sealer([newKey(), oldKey()]);
    const check = keycheck(during);
    const marker = sealMarker(during, { to: NEW_ID, from: [OLD_ID] });
    const newest = new Sealer([deriveDataKey(MASTER_NEWER), newKey(), oldKey()]);
    const opened = openKeys(newest, check, marker, where);
    assert.deepEqual(opened.draining.sort(), [NEW_ID, OLD_ID].sort());
    // Without the oldest key it is refused: records may still be under it.
    assert.throws(
      () => openKeys(new Sealer([deriveDataKey(MASTER_NEWER), newKey()]), check, marker, where),
      domainError("failed_precondition", OLD_ID),
    );
    assert.ok(NEWER_ID !== NEW_ID);
  });

  test("rotating back to a key being drained does not drain it", () => {
    const during = new Sealer([newKey(), oldKey()]);
    const check = keycheck(during);
    const marker = sealMarker(during, { to: NEW_ID, from: [OLD_ID] });
    const back = new Sealer([oldKey(), newKey()]);
    const opened = openKeys(back, check, marker, where);
    assert.deepEqual(opened.draining, [NEW_ID]);
  });

  test("a damaged marker is data_loss", () => {
    const sealer = new Sealer([newKey()]);
    const marker = sealer.seal(Buffer.from('{"to":1}'), ROTATION_KEY);
    assert.throws(
      () => openKeys(sealer, keycheck(sealer), marker, where),
      domainError("data_loss"),
    );
  });
});

describe("planReseal", () => {
  test("re-seals only what is not under the current key; a damaged record fails the batch", () => {
    const old = new Sealer([oldKey()]);
    const both = new Sealer([newKey(), oldKey()]);
    const entries = [
      { key: "caller/ci", value: old.seal(Buffer.from("c"), "caller/ci") },
      { key: "cred/1", value: both.seal(Buffer.from("one"), "cred/1") },
      { key: "cred/2", value: old.seal(Buffer.from("two"), "cred/2") },
    ];
    const plan = planReseal(both, entries);
    assert.deepEqual(plan.resealed, ["caller/ci", "cred/2"]);
    assert.deepEqual(notUnderCurrent(both, entries), ["caller/ci", "cred/2"]);
    const written = plan.ops.flatMap((o) =>
      o.type === "put" ? [{ key: o.key, value: o.value }] : [],
    );
    assert.deepEqual(notUnderCurrent(both, written), []);
    const onlyNew = new Sealer([newKey()]);
    assert.deepEqual(
      written.map((e) => onlyNew.open(e.value, e.key).toString()),
      ["c", "two"],
    );
    const moved = { key: "cred/3", value: old.seal(Buffer.from("x"), "cred/2") };
    assert.throws(() => planReseal(both, [...entries, moved]), domainError("data_loss", "cred/3"));
  });
});

describe("loadPreviousMasterKeys", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "credbroker-prev-"));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  test("none anywhere", async () => {
    assert.deepEqual(
      await loadPreviousMasterKeys({ envValue: undefined, file: path.join(dir, "none") }),
      {
        keys: [],
        origin: "none",
      },
    );
  });

  test("from the environment: commas or whitespace", async () => {
    const got = await loadPreviousMasterKeys({
      envValue: `${MASTER_OLD.toString("base64")}, ${MASTER_NEW.toString("base64")}`,
      file: path.join(dir, "none"),
    });
    assert.equal(got.origin, "env");
    assert.deepEqual(got.keys, [MASTER_OLD, MASTER_NEW]);
  });

  test("from the file: one per line, comments skipped; a bad line is named, never echoed", async () => {
    const file = path.join(dir, "master.key.previous");
    await writeFile(file, `# retired 2030-01\n${MASTER_OLD.toString("base64")}\n\n`);
    assert.deepEqual(await loadPreviousMasterKeys({ envValue: "", file }), {
      keys: [MASTER_OLD],
      origin: "file",
    });
    await writeFile(file, `${MASTER_OLD.toString("base64")}\nnot-a-key\n`);
    await assert.rejects(
      loadPreviousMasterKeys({ envValue: undefined, file }),
      domainError("invalid_argument", `${file} line 2`),
    );
  });
});

describe("fleetKeys and planFleetMove (etcd)", () => {
  test("a daemon seals under the fleet's key (the keycheck's), whatever its own master key", () => {
    const check = keycheck(new Sealer([oldKey()]));
    const sealer = new Sealer([newKey(), oldKey()]);
    assert.deepEqual(fleetKeys(sealer, check, undefined, "etcd"), {
      keyId: OLD_ID,
      draining: [],
    });
    // Taking it is the caller's: fleetKeys itself changes nothing.
    assert.equal(sealer.currentKeyId, NEW_ID);
  });

  test("refused, naming key ids, when the fleet's key or a drained key is not loaded", () => {
    const onlyOld = new Sealer([oldKey()]);
    const check = keycheck(new Sealer([newKey()]));
    assert.throws(
      () => fleetKeys(onlyOld, check, undefined, "etcd x"),
      domainError("failed_precondition", `sealed under key id ${NEW_ID}, which is not loaded`),
    );
    const marker = sealMarker(new Sealer([newKey(), oldKey()]), { to: NEW_ID, from: [OLD_ID] });
    assert.throws(
      () => fleetKeys(new Sealer([newKey()]), check, marker, "etcd x"),
      domainError("failed_precondition", `records may still be sealed under key id ${OLD_ID}`),
    );
    const both = new Sealer([oldKey(), newKey()]);
    assert.deepEqual(fleetKeys(both, check, marker, "etcd x"), {
      keyId: NEW_ID,
      draining: [OLD_ID],
    });
  });

  test("a move seals keycheck and marker under the target, draining the fleet's key and what it drained", () => {
    const sealer = new Sealer([oldKey(), newKey(), deriveDataKey(MASTER_NEWER)]);
    const { ops, next } = planFleetMove(sealer, { keyId: NEW_ID, draining: [OLD_ID] }, NEWER_ID);
    assert.deepEqual(next, { keyId: NEWER_ID, draining: [OLD_ID, NEW_ID] });
    const [check, marker] = ops;
    assert.ok(check?.type === "put" && check.key === KEYCHECK_KEY);
    assert.equal(Sealer.keyIdOf(check.value), NEWER_ID);
    assert.ok(marker?.type === "put" && marker.key === ROTATION_KEY);
    assert.equal(Sealer.keyIdOf(marker.value), NEWER_ID);
    assert.deepEqual(openMarker(sealer, marker.value), { to: NEWER_ID, from: [OLD_ID, NEW_ID] });
    // The sealer still seals under its own current key: the move is not committed yet.
    assert.equal(sealer.currentKeyId, OLD_ID);
    // Moving back to a drained key takes it off the list.
    const back = planFleetMove(sealer, next, OLD_ID);
    assert.deepEqual(back.next, { keyId: OLD_ID, draining: [NEW_ID, NEWER_ID] });
  });

  test("sealUnder seals under another loaded key; an unknown key id is refused", () => {
    const sealer = new Sealer([newKey(), oldKey()]);
    sealer.sealUnder(OLD_ID);
    assert.equal(sealer.currentKeyId, OLD_ID);
    assert.deepEqual(sealer.previousKeyIds, [NEW_ID]);
    assert.equal(Sealer.keyIdOf(sealer.seal(Buffer.from("x"), "k")), OLD_ID);
    assert.throws(() => sealer.sealUnder(NEWER_ID), /not loaded/);
    assert.throws(() => sealer.seal(Buffer.from("x"), "k", NEWER_ID), /not loaded/);
  });
});
