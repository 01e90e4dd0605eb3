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
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { Level } from "level";
import { KeyService } from "../../gen/credbroker/v1/key_service_pb.js";
import { SigningService } from "../../gen/credbroker/v1/signing_service_pb.js";
import { KEYCHECK_KEY } from "../../src/store/keys.js";
import { ROTATION_KEY, SEALED_PREFIXES } from "../../src/store/rotation.js";
import { deriveDataKey, Sealer } from "../../src/store/sealing.js";
import { credentialClient, transport } from "../support/clients.js";
import { type RunningDaemon, removeDir, startDaemon, tempDir } from "../support/daemon.js";
import { startEtcd } from "../support/etcd.js";
import { assertSignsWith } from "./offline-check.js";

const COUNT = 5000;
const NS = "rot";
const HOST = "sts.us-east-1.amazonaws.com";
/** Every credential's secret starts with it: searched for in the data dir. */
const SECRET_MARK = `RotSecret${randomBytes(12).toString("hex")}`;
const SAMPLE = Array.from({ length: 40 }, (_, i) => `k${(i * 127) % COUNT}`);

const accessKeyId = (i: number) => `AKIAROT${String(i).padStart(13, "0")}`;
const nameOf = (i: number) => `k${i}`;
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
    await importAll(daemon);
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
    let seen = 0;
    try {
      for await (const p of keys.rotateMasterKey({ batchSize: 100 })) {
        assert.equal(p.done, false, "the rotation must not finish before the kill");
        if (++seen === killAfter) {
          killed = true;
          process.kill(running.process.pid ?? 0, "SIGKILL");
        }
      }
    } catch (err) {
      assert.ok(killed, `rotation failed before the kill: ${String(err)}`);
    }
    assert.equal((await running.exited).signal, "SIGKILL");
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
    await assertAllReadable(daemon, acked);
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
    await assertAllReadable(daemon, acked);
    await rotationIsDone(resumed);
    await daemon.stop();

    // 7. The old key removed: the new key alone opens everything.
    await rm(`${previousFile}.away`);
    const final = await checkSealed(dir, [newKey]);
    assert.deepEqual([...final.keys()], [NEW_ID], "every sealed value is under the new key");
    daemon = await startDaemon({ dataDir: dir, env: NO_ENV_KEYS });
    await assertAllReadable(daemon, acked);
    await daemon.stop();
    await assertNoPlaintext(dir);
  });
});

describe("master key rotation on etcd", () => {
  test("is refused clearly: failed_precondition naming the reason, at the RPC and at start", async () => {
    const etcd = await startEtcd();
    const dir = await tempDir();
    const masterKey = randomBytes(32).toString("base64");
    const args = ["--store", "etcd", "--etcd-endpoints", etcd.endpoint];
    try {
      const daemon = await startDaemon({
        dataDir: dir,
        args,
        env: { CREDBROKER_MASTER_KEY: masterKey },
      });
      try {
        const keys = createClient(KeyService, transport(daemon.url, "grpc-h2", daemon.token));
        for (const call of [
          () => keys.getKeyStatus({}),
          () => keys.retirePreviousKeys({}),
          async () => {
            for await (const _ of keys.rotateMasterKey({})) break;
          },
        ]) {
          await assert.rejects(call(), (err: unknown) => {
            assert.ok(
              err instanceof ConnectError && err.code === Code.FailedPrecondition,
              String(err),
            );
            assert.match(err.rawMessage, /not supported with --store etcd/);
            return true;
          });
        }
      } finally {
        await daemon.stop();
      }
      const previous = randomBytes(32).toString("base64");
      const refused = await refusedStart(
        dir,
        {
          CREDBROKER_MASTER_KEY: masterKey,
          CREDBROKER_PREVIOUS_MASTER_KEYS: previous,
        },
        args,
      );
      assert.match(refused, /not supported with --store etcd/);
      assertNoKey(refused, masterKey, previous);
    } finally {
      await etcd.stop();
      await removeDir(dir);
    }
  });
});

/** Starts `serve`, which must exit before listening; returns what it printed. */
async function refusedStart(
  dir: string,
  env: Record<string, string>,
  args: string[] = [],
): Promise<string> {
  let started: RunningDaemon;
  try {
    started = await startDaemon({ dataDir: dir, env, args });
  } catch (err) {
    const message = (err as Error).message;
    assert.match(message, /daemon exited \(1\) before listening/);
    return message;
  }
  await started.stop("SIGKILL");
  assert.fail("the daemon started, though a key it needs is missing");
}

async function importAll(daemon: RunningDaemon): Promise<void> {
  const client = credentialClient(daemon.url, "grpc-h2", daemon.token);
  async function* messages() {
    for (let i = 0; i < COUNT; i += 1000) {
      yield {
        items: Array.from({ length: 1000 }, (_, j) => ({
          line: BigInt(i + j + 1),
          credential: {
            namespace: NS,
            name: nameOf(i + j),
            allowedHosts: [HOST],
            kind: {
              case: "accessKey" as const,
              value: { accessKeyId: accessKeyId(i + j), secretAccessKey: `${SECRET_MARK}${i + j}` },
            },
          },
        })),
      };
    }
  }
  const res = await client.importCredentials(messages());
  assert.equal(res.created, BigInt(COUNT));
}

/** Four writers updating descriptions until `stopped()`; records what was acknowledged. */
async function updateLoop(
  daemon: RunningDaemon,
  acked: Map<string, string>,
  stopped: () => boolean,
): Promise<void> {
  await Promise.all([0, 1, 2, 3].map((w) => updater(daemon, w, acked, stopped)));
}

async function updater(
  daemon: RunningDaemon,
  worker: number,
  acked: Map<string, string>,
  stopped: () => boolean,
): Promise<void> {
  const client = credentialClient(daemon.url, "connect-h2", daemon.token);
  for (let n = worker; !stopped(); n += 4) {
    const name = nameOf((n * 7919) % COUNT);
    const description = `updated ${n} ${randomBytes(4).toString("hex")}`;
    try {
      await client.updateCredential({
        namespace: NS,
        name,
        credential: { description },
        updateMask: { paths: ["description"] },
      });
      acked.set(name, description);
    } catch (err) {
      if (stopped()) return;
      throw err;
    }
  }
}

/** Every credential lists (each record opened), acknowledged updates are there, a sample signs. */
async function assertAllReadable(daemon: RunningDaemon, acked: ReadonlyMap<string, string>) {
  const creds = credentialClient(daemon.url, "connect-h2", daemon.token);
  const signing = createClient(SigningService, transport(daemon.url, "grpc-h2", daemon.token));
  const seen = new Map<string, { accessKeyId: string; description: string }>();
  let pageToken = "";
  do {
    const page = await creds.listCredentials({ namespace: NS, pageSize: 1000, pageToken });
    for (const c of page.credentials) {
      const id = c.kind.case === "accessKey" ? c.kind.value.accessKeyId : "";
      seen.set(c.name, { accessKeyId: id, description: c.description });
    }
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  assert.equal(seen.size, COUNT);
  for (let i = 0; i < COUNT; i++) assert.equal(seen.get(nameOf(i))?.accessKeyId, accessKeyId(i));
  for (const [name, description] of acked) {
    assert.equal(seen.get(name)?.description, description, `acknowledged update of ${name}`);
  }
  await Promise.all(
    SAMPLE.map(async (name) => {
      const got = await creds.getCredential({ namespace: NS, name });
      const id =
        got.credential?.kind.case === "accessKey" ? got.credential.kind.value.accessKeyId : "";
      assert.equal(id, seen.get(name)?.accessKeyId);
      await assertSignsWith(signing, NS, name, id);
    }),
  );
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

function assertNoKey(text: string, ...keys: string[]): void {
  for (const k of keys) {
    const raw = Buffer.from(k, "base64");
    for (const r of [k, raw.toString("hex"), raw.toString("base64url")]) {
      assert.ok(!text.includes(r), "no key material in the daemon's output");
    }
  }
}

/** No file under the data dir, nor any value LevelDB decompresses, holds a secret. */
async function assertNoPlaintext(dir: string): Promise<void> {
  const needles = [
    Buffer.from(SECRET_MARK),
    Buffer.from(Buffer.from(SECRET_MARK).toString("hex")),
    Buffer.from(Buffer.from(SECRET_MARK).toString("base64").slice(0, 16)),
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
