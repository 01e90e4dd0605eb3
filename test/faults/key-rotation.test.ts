/**
 * Master key rotation under kill -9 (issue 11): 5,000 credentials sealed
 * under the daemon's first key; the daemon restarted with a new key and the
 * old one as previous; `RotateMasterKey` re-seals in batches while updates
 * go on, and the daemon is SIGKILLed (by PID) mid-way. Then:
 * - the stopped data dir holds records under both keys, and every one opens
 *   with the two keys together (with the same additional data);
 * - neither key alone starts the daemon (each refusal names what is missing);
 * - with both (given through the environment this time) the daemon serves
 *   everything, the rotation finishes, every acknowledged update is there,
 *   every credential reads back and a sample signs; the old key is retired;
 * - with the new key alone the daemon starts and everything still opens and signs;
 * - no file of the data dir, nor any value LevelDB decompresses, holds a secret.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, describe, test } from "node:test";
import { type Client, createClient } from "@connectrpc/connect";
import { Level } from "level";
import { KeyService } from "../../gen/credbroker/v1/key_service_pb.js";
import { KEYCHECK_KEY } from "../../src/store/keys.js";
import { ROTATION_KEY, SEALED_PREFIXES } from "../../src/store/rotation.js";
import { deriveDataKey, Sealer } from "../../src/store/sealing.js";
import { transport } from "../support/clients.js";
import { type RunningDaemon, removeDir, startDaemon, tempDir } from "../support/daemon.js";
import {
  assertAllReadable,
  assertNoKey,
  importKeys,
  refusedStart,
  rotateThenKill,
  storedKeys,
  updateDescriptions,
} from "./offline-check.js";

const COUNT = 5000;
const NS = "rot";

const STORED = storedKeys(NS, COUNT, "ROT");
/** Keys given to `serve` explicitly, so nothing leaks in from the test's environment. */
const NO_ENV_KEYS = { CREDBROKER_MASTER_KEY: "", CREDBROKER_PREVIOUS_MASTER_KEYS: "" };

describe("master key rotation survives kill -9", () => {
  let dataDir: string | undefined;
  let daemon: RunningDaemon | undefined;
  after(async () => {
    await daemon?.stop("SIGKILL");
    if (dataDir !== undefined) await removeDir(dataDir);
  });

  test("5,000 credentials: kill mid-rotation, finish, retire, new key only", async (t) => {
    const dir = await tempDir();
    dataDir = dir;
    const keyFile = path.join(dir, "master.key");
    const previousFile = `${keyFile}.previous`;

    // 1. Credentials under the daemon's own first key.
    daemon = await startDaemon({ dataDir: dir, env: NO_ENV_KEYS });
    await importKeys(daemon, STORED);
    await daemon.stop();
    const oldKey = (await readFile(keyFile, "utf8")).trim();
    const newKey = randomBytes(32).toString("base64");
    const OLD_ID = deriveDataKey(Buffer.from(oldKey, "base64")).id;
    const NEW_ID = deriveDataKey(Buffer.from(newKey, "base64")).id;

    // 2. The operator's step: the new key current, the old one previous.
    await writeFile(previousFile, `${oldKey}\n`, { mode: 0o600 });
    await writeFile(keyFile, `${newKey}\n`, { mode: 0o600 });
    daemon = await startDaemon({ dataDir: dir, env: NO_ENV_KEYS });
    const running = daemon;
    const keys = createClient(KeyService, transport(running.url, "grpc-h2", running.token));
    const status = await keys.getKeyStatus({});
    assert.deepEqual(
      [status.currentKeyId, status.previousKeyIds, status.rotationInProgress],
      [NEW_ID, [OLD_ID], true],
    );

    // 3. Re-seal in batches of 100 while updates go on; SIGKILL after a few batches.
    const acked = new Map<string, string>();
    let killed = false;
    const updates = updateLoop(running, acked, () => killed);
    const killAfter = 2 + Math.floor(Math.random() * 8);
    t.diagnostic(`SIGKILL after ${killAfter} progress messages`);
    await rotateThenKill(running, killAfter, () => {
      killed = true;
    });
    await updates;
    t.diagnostic(`${acked.size} updates acknowledged before the kill`);

    // 4. The stopped store: both keys in use, every sealed value opens with both.
    const under = await checkSealed(dir, [newKey, oldKey]);
    t.diagnostic(`sealed values by key id: ${JSON.stringify(Object.fromEntries(under))}`);
    assert.ok((under.get(NEW_ID) ?? 0) > 1, "some records were re-sealed before the kill");
    assert.ok((under.get(OLD_ID) ?? 0) > 0, "the kill landed mid-rotation");

    // 5. Either key alone is refused, naming what is missing; nothing is written.
    await rename(previousFile, `${previousFile}.away`);
    const onlyNew = await refusedStart(dir, NO_ENV_KEYS);
    assert.match(onlyNew, new RegExp(`rotation .* not finished.*${OLD_ID}.*previous key`));
    const onlyOld = await refusedStart(dir, { ...NO_ENV_KEYS, CREDBROKER_MASTER_KEY: oldKey });
    assert.match(onlyOld, new RegExp(`does not open this data dir.*${NEW_ID}`));
    for (const out of [onlyNew, onlyOld]) assertNoKey(out, oldKey, newKey);

    // 6. Both keys (through the environment): everything serves, the rotation finishes.
    daemon = await startDaemon({
      dataDir: dir,
      env: { CREDBROKER_MASTER_KEY: newKey, CREDBROKER_PREVIOUS_MASTER_KEYS: oldKey },
    });
    await assertAllReadable(daemon, STORED, acked);
    const resumed = createClient(KeyService, transport(daemon.url, "connect-h2", daemon.token));
    const finalUpdates = new Map<string, string>();
    let stop = false;
    const moreUpdates = updateLoop(daemon, finalUpdates, () => stop);
    let last: { done: boolean; scanned: bigint; resealed: bigint } | undefined;
    for await (const p of resumed.rotateMasterKey({ batchSize: 500 })) last = p;
    stop = true;
    await moreUpdates;
    assert.ok(last?.done, "the resumed rotation finishes");
    t.diagnostic(`resumed: ${last.resealed} of ${last.scanned} re-sealed`);
    assert.ok(last.resealed > 0n && last.resealed < BigInt(COUNT));
    for (const [name, value] of finalUpdates) acked.set(name, value);
    const retired = await resumed.retirePreviousKeys({});
    assert.deepEqual(retired.retiredKeyIds, [OLD_ID]);
    assert.equal(retired.checked, BigInt(COUNT));
    // The caches are dropped: signing derives again, from records opened under the new key.
    await assertAllReadable(daemon, STORED, acked);
    await rotationIsDone(resumed);
    await daemon.stop();

    // 7. The old key removed: the new key alone opens everything.
    await rm(`${previousFile}.away`);
    const final = await checkSealed(dir, [newKey]);
    assert.deepEqual([...final.keys()], [NEW_ID], "every sealed value is under the new key");
    daemon = await startDaemon({ dataDir: dir, env: NO_ENV_KEYS });
    await assertAllReadable(daemon, STORED, acked);
    await daemon.stop();
    await assertNoPlaintext(dir);
  });
});

/** Four writers updating descriptions until `stopped()` (offline-check.ts). */
function updateLoop(
  daemon: RunningDaemon,
  acked: Map<string, string>,
  stopped: () => boolean,
): Promise<void> {
  return updateDescriptions(daemon, STORED, {
    workers: 4,
    pick: (n) => (n * 7919) % COUNT,
    acked,
    stopped,
  });
}

async function rotationIsDone(keys: Client<typeof KeyService>): Promise<void> {
  const status = await keys.getKeyStatus({});
  assert.equal(status.rotationInProgress, false);
  assert.deepEqual(status.previousKeyIds, []);
}

/**
 * Opens the stopped daemon's LevelDB and every sealed value in it with the
 * given keys (the first current), with its key as additional data; returns
 * how many values each key id sealed (the keycheck and marker included).
 */
async function checkSealed(dir: string, masters: string[]): Promise<Map<string, number>> {
  const keys = masters.map((m) => deriveDataKey(Buffer.from(m, "base64")));
  const sealer = new Sealer(keys as [ReturnType<typeof deriveDataKey>]);
  const db = new Level<string, Buffer>(path.join(dir, "db"), { valueEncoding: "buffer" });
  await db.open();
  const under = new Map<string, number>();
  try {
    for await (const [key, value] of db.iterator()) {
      const sealed = key === KEYCHECK_KEY || key === ROTATION_KEY;
      if (!sealed && !SEALED_PREFIXES.some((p) => key.startsWith(p))) continue;
      sealer.open(value, key);
      const id = Sealer.keyIdOf(value) ?? "none";
      under.set(id, (under.get(id) ?? 0) + 1);
    }
  } finally {
    await db.close();
  }
  return under;
}

/** No file under the data dir, nor any value LevelDB decompresses, holds a secret. */
async function assertNoPlaintext(dir: string): Promise<void> {
  const needles = [
    Buffer.from(STORED.secretMark),
    Buffer.from(Buffer.from(STORED.secretMark).toString("hex")),
    Buffer.from(Buffer.from(STORED.secretMark).toString("base64").slice(0, 16)),
  ];
  const files = (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) =>
    e.isFile(),
  );
  for (const f of files) {
    const bytes = await readFile(path.join(f.parentPath, f.name));
    for (const n of needles) assert.equal(bytes.indexOf(n), -1, `${f.name} holds a secret`);
  }
  const db = new Level<string, Buffer>(path.join(dir, "db"), { valueEncoding: "buffer" });
  await db.open();
  try {
    for await (const [key, value] of db.iterator()) {
      for (const n of needles) assert.equal(value.indexOf(n), -1, `${key} holds a secret`);
    }
  } finally {
    await db.close();
  }
}
