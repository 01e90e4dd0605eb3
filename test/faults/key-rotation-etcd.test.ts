/**
 * Master key rotation of a fleet (two daemons on one real etcd) under kill -9:
 * - a daemon given the new key as its master key seals under the fleet's key
 *   (the keycheck's) until `key rotate` moves the fleet;
 * - `key rotate` is refused, nothing changed, while a running daemon of the
 *   fleet does not hold the new key (its member record names the daemon);
 * - once every daemon holds it, `key rotate` on one daemon moves the fleet
 *   and re-seals in batches while both daemons take updates; the other
 *   daemon, still configured with the old key as its own, is fenced by the
 *   keycheck's revision and seals under the new key from its next write on:
 *   none of its updates fails;
 * - the rotating daemon is SIGKILLed mid-way: every value in etcd then opens
 *   with the two keys; neither key alone starts a third daemon;
 * - restarted, the rotation resumes and finishes; every value in etcd is under
 *   the new key (the fenced daemon's writes too), every acknowledged update
 *   reads back on both daemons, a sample signs on both; the old key retires,
 *   and a daemon with the new key alone serves everything;
 * - no value in etcd holds a secret, no output a key.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, describe, test } from "node:test";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { Etcd3 } from "etcd3";
import { KeyService } from "../../gen/credbroker/v1/key_service_pb.js";
import { MEMBER_PREFIX } from "../../src/store/etcd/etcd-members.js";
import { KEYCHECK_KEY } from "../../src/store/keys.js";
import { ROTATION_KEY, SEALED_PREFIXES } from "../../src/store/rotation.js";
import { deriveDataKey, Sealer } from "../../src/store/sealing.js";
import { credentialClient, transport } from "../support/clients.js";
import { type RunningDaemon, removeDir, startDaemon, tempDir } from "../support/daemon.js";
import { type EtcdServer, startEtcd } from "../support/etcd.js";
import {
  assertAllReadable,
  assertNoKey,
  importKeys,
  refusedStart,
  rotateThenKill,
  storedKeys,
  updateDescriptions,
} from "./offline-check.js";

const COUNT = 2000;
const NS = "fleetrot";
const PREFIX = "/rotation/";

const OLD = randomBytes(32).toString("base64");
const NEW = randomBytes(32).toString("base64");
const OLD_ID = deriveDataKey(Buffer.from(OLD, "base64")).id;
const NEW_ID = deriveDataKey(Buffer.from(NEW, "base64")).id;

const STORED = storedKeys(NS, COUNT, "FLT");
const { nameOf } = STORED;

describe("master key rotation of a fleet on etcd survives kill -9", () => {
  let etcd: EtcdServer | undefined;
  const dirs: string[] = [];
  const running: RunningDaemon[] = [];
  after(async () => {
    await Promise.all(running.map((d) => d.stop("SIGKILL")));
    await etcd?.stop();
    for (const d of dirs) await removeDir(d);
  });

  test("two daemons, 2,000 credentials: refused, moved, fenced, killed, finished, retired", async (t) => {
    etcd = await startEtcd();
    const args = ["--store", "etcd", "--etcd-endpoints", etcd.endpoint, "--etcd-prefix", PREFIX];
    const dirA = await tempDir();
    const dirB = await tempDir();
    const dirC = await tempDir();
    dirs.push(dirA, dirB, dirC);
    const start = async (dataDir: string, master: string, previous = "") => {
      const daemon = await startDaemon({
        dataDir,
        args,
        env: { CREDBROKER_MASTER_KEY: master, CREDBROKER_PREVIOUS_MASTER_KEYS: previous },
      });
      running.push(daemon);
      return daemon;
    };
    const keysOf = (d: RunningDaemon) =>
      createClient(KeyService, transport(d.url, "grpc-h2", d.token));

    // 1. A fleet on the old key, with credentials.
    let a = await start(dirA, OLD);
    let b = await start(dirB, OLD);
    await importKeys(a, STORED);

    // 2. A restarted with the new key as its own: it still seals under the fleet's.
    await a.stop();
    a = await start(dirA, NEW, OLD);
    const status = await keysOf(a).getKeyStatus({});
    assert.deepEqual(
      [status.currentKeyId, status.masterKeyId, status.rotationInProgress],
      [OLD_ID, NEW_ID, false],
    );
    assert.match(a.output(), /the fleet seals under another key than this daemon's master key/);

    // 3. B does not hold the new key: the move is refused, naming B; nothing changes.
    const refusal = await firstError(keysOf(a));
    assert.equal(refusal.code, Code.FailedPrecondition, refusal.message);
    assert.match(refusal.rawMessage, new RegExp(`do not hold key id ${NEW_ID}`));
    assert.match(refusal.rawMessage, new RegExp(`pid ${b.process.pid}\\b`));
    await credentialClient(b.url, "connect-h2", b.token).updateCredential({
      namespace: NS,
      name: nameOf(0),
      credential: { description: "written by B before the move" },
      updateMask: { paths: ["description"] },
    });
    assert.deepEqual(
      [...(await sealedKeyIds(etcd)).keys()],
      [OLD_ID],
      "still all under the old key",
    );

    // 4. B restarted holding the new key too, its own key still the old one.
    await b.stop();
    b = await start(dirB, OLD, NEW);

    // 5. Rotate on A while both take updates; SIGKILL A after a few batches.
    const acked = new Map<string, string>();
    let killed = false;
    const onA = updateLoop(a, "a", acked, () => killed);
    let stopB = false;
    const onB = updateLoop(b, "b", acked, () => stopB);
    const killAfter = 2 + Math.floor(Math.random() * 8);
    t.diagnostic(`SIGKILL after ${killAfter} progress messages`);
    await rotateThenKill(
      a,
      killAfter,
      () => {
        killed = true;
      },
      (p) => assert.equal(p.currentKeyId, NEW_ID),
    );
    await onA;
    // B was fenced by the moved keycheck and took the new key.
    assert.match(b.output(), /the fleet's master key moved/);

    // 6. etcd now: values under both keys, each opening with the two together.
    const under = await sealedKeyIds(etcd);
    t.diagnostic(`sealed values by key id: ${JSON.stringify(Object.fromEntries(under))}`);
    assert.ok((under.get(NEW_ID) ?? 0) > 1, "some records were re-sealed before the kill");
    assert.ok((under.get(OLD_ID) ?? 0) > 0, "the kill landed mid-rotation");

    // 7. A third daemon with either key alone is refused, naming what is missing.
    const onlyOld = await refusedStart(dirC, { CREDBROKER_MASTER_KEY: OLD }, args);
    assert.match(onlyOld, new RegExp(`does not open etcd .*sealed under key id ${NEW_ID}`));
    const onlyNew = await refusedStart(dirC, { CREDBROKER_MASTER_KEY: NEW }, args);
    assert.match(onlyNew, new RegExp(`rotation .* not finished.*${OLD_ID}.*previous key`));
    for (const out of [onlyOld, onlyNew]) assertNoKey(out, OLD, NEW);

    // 8. A back: the rotation resumes and finishes while B keeps writing.
    a = await start(dirA, NEW, OLD);
    let last: { done: boolean; resealed: bigint; scanned: bigint } | undefined;
    for await (const p of keysOf(a).rotateMasterKey({ batchSize: 500 })) last = p;
    assert.ok(last?.done, "the resumed rotation finishes");
    t.diagnostic(`resumed: ${last.resealed} of ${last.scanned} re-sealed`);
    assert.ok(last.resealed > 0n);
    // B writes after the rotation too: still under the new key, though its own key is the old.
    await new Promise((r) => setTimeout(r, 200));
    stopB = true;
    await onB;
    t.diagnostic(`${acked.size} credentials updated`);
    assert.deepEqual(
      [...(await sealedKeyIds(etcd)).keys()],
      [NEW_ID],
      "every value is under the new key, B's writes included",
    );
    for (const d of [a, b]) await assertAllReadable(d, STORED, acked);

    // 9. Retire on A; B says the fleet's key is the new one, its own the old.
    const retired = await keysOf(a).retirePreviousKeys({});
    assert.deepEqual(retired.retiredKeyIds, [OLD_ID]);
    assert.equal(retired.checked, BigInt(COUNT));
    const onB2 = await keysOf(b).getKeyStatus({});
    assert.deepEqual(
      [onB2.currentKeyId, onB2.masterKeyId, onB2.rotationInProgress],
      [NEW_ID, OLD_ID, false],
    );
    await assertAllReadable(a, STORED, acked);

    // 10. The new key alone serves everything.
    await Promise.all([a.stop(), b.stop()]);
    const c = await start(dirC, NEW);
    await assertAllReadable(c, STORED, acked);
    await c.stop();
    for (const d of running) assertNoKey(d.output(), OLD, NEW);
    await assertNoSecretIn(etcd);
  });
});

/** The error of the first RotateMasterKey message. */
async function firstError(keys: Client<typeof KeyService>): Promise<ConnectError> {
  try {
    for await (const _ of keys.rotateMasterKey({})) break;
  } catch (err) {
    assert.ok(err instanceof ConnectError, String(err));
    return err;
  }
  assert.fail("the rotation started");
}

/**
 * Two writers updating descriptions through `daemon` until `stopped()`: A's
 * take even credentials, B's odd ones (offline-check.ts, updateDescriptions).
 */
function updateLoop(
  daemon: RunningDaemon,
  side: "a" | "b",
  acked: Map<string, string>,
  stopped: () => boolean,
): Promise<void> {
  return updateDescriptions(daemon, STORED, {
    workers: 2,
    pick: (n) => ((n * 7919) % (COUNT / 2)) * 2 + (side === "a" ? 0 : 1),
    acked,
    stopped,
  });
}

/** Every value under the prefix, by logical key. */
async function values(etcd: EtcdServer): Promise<Map<string, Buffer>> {
  const client = new Etcd3({ hosts: etcd.endpoint });
  try {
    const all = await client.getAll().prefix(PREFIX).buffers();
    return new Map(Object.entries(all).map(([k, v]) => [k.slice(PREFIX.length), v]));
  } finally {
    client.close();
  }
}

/**
 * Opens every sealed value in etcd with the two keys (its logical key as
 * additional data); returns how many each key id sealed (keycheck and marker included).
 */
async function sealedKeyIds(etcd: EtcdServer): Promise<Map<string, number>> {
  const sealer = new Sealer([
    deriveDataKey(Buffer.from(NEW, "base64")),
    deriveDataKey(Buffer.from(OLD, "base64")),
  ]);
  const under = new Map<string, number>();
  for (const [key, value] of await values(etcd)) {
    const sealed = key === KEYCHECK_KEY || key === ROTATION_KEY;
    if (!sealed && !SEALED_PREFIXES.some((p) => key.startsWith(p))) continue;
    sealer.open(value, key);
    const id = Sealer.keyIdOf(value) ?? "none";
    under.set(id, (under.get(id) ?? 0) + 1);
  }
  return under;
}

/** No value in etcd holds a secret; member records hold key ids only. */
async function assertNoSecretIn(etcd: EtcdServer): Promise<void> {
  const needles = [
    Buffer.from(STORED.secretMark),
    Buffer.from(Buffer.from(STORED.secretMark).toString("hex")),
  ];
  for (const [key, value] of await values(etcd)) {
    for (const n of needles) assert.equal(value.indexOf(n), -1, `${key} holds a secret`);
    if (key.startsWith(MEMBER_PREFIX)) assertNoKey(value.toString("utf8"), OLD, NEW);
  }
}
