import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { type Client, createClient } from "@connectrpc/connect";
import { Level } from "level";
import {
  KeyService,
  type RotateMasterKeyResponse,
} from "../../gen/credbroker/v1/key_service_pb.js";
import { SigningService } from "../../gen/credbroker/v1/signing_service_pb.js";
import { checkStore, type StoreCheck } from "../../src/store/level/consistency.js";
import { deriveDataKey, Sealer } from "../../src/store/sealing.js";
import { credentialClient, transport } from "../support/clients.js";
import { type RunningDaemon, startDaemon } from "../support/daemon.js";

/**
 * `credbroker repair`'s check, without LevelDB's repair: opens a stopped
 * daemon's database with the master key it wrote and checks every key.
 */
export async function checkDataDir(dataDir: string): Promise<StoreCheck> {
  const master = Buffer.from(
    (await readFile(path.join(dataDir, "master.key"), "utf8")).trim(),
    "base64",
  );
  const db = new Level<string, Buffer>(path.join(dataDir, "db"), { valueEncoding: "buffer" });
  await db.open();
  try {
    return await checkStore(db, new Sealer([deriveDataKey(master)]));
  } finally {
    await db.close();
  }
}

/** Signs an STS GetCallerIdentity with `credential` and checks the access key id it signed with. */
export async function assertSignsWith(
  signing: Client<typeof SigningService>,
  namespace: string,
  credential: string,
  accessKeyId: string,
): Promise<void> {
  const signed = await signing.signRequest({
    namespace,
    credential,
    method: "POST",
    url: "https://sts.us-east-1.amazonaws.com/",
    service: "sts",
    region: "us-east-1",
    payload: { case: "body", value: Buffer.from("Action=GetCallerIdentity&Version=2011-06-15") },
  });
  const authorization = signed.headers.find((h) => h.name.toLowerCase() === "authorization");
  assert.match(authorization?.value ?? "", new RegExp(`Credential=${accessKeyId}/`));
}

/** Starts `serve`, which must exit before listening; returns what it printed. */
export async function refusedStart(
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

/** No form of a base64 master key in `text` (a daemon's output, an error). */
export function assertNoKey(text: string, ...keys: string[]): void {
  for (const k of keys) {
    const raw = Buffer.from(k, "base64");
    for (const r of [k, raw.toString("hex"), raw.toString("base64url")]) {
      assert.ok(!text.includes(r), "no key material in the daemon's output");
    }
  }
}

/** What a rotation test stored: `count` access keys in `namespace`, named and keyed by index. */
export interface StoredKeys {
  namespace: string;
  count: number;
  nameOf(i: number): string;
  accessKeyId(i: number): string;
  /** Indexes of the credentials that must sign. */
  sample: readonly number[];
  /** Every secret starts with it (searched for where no secret may be). */
  secretMark: string;
  /** The one host they may sign for. */
  host: string;
}

/**
 * `count` access keys in `namespace`: k0, k1, … with ids AKIA<tag>000…i,
 * secrets starting with a random mark, allowed to sign for STS only.
 */
export function storedKeys(namespace: string, count: number, tag: string): StoredKeys {
  return {
    namespace,
    count,
    nameOf: (i) => `k${i}`,
    accessKeyId: (i) => `AKIA${tag}${String(i).padStart(16 - tag.length, "0")}`,
    sample: Array.from({ length: 40 }, (_, i) => (i * 127) % count),
    secretMark: `Secret${tag}${randomBytes(12).toString("hex")}`,
    host: "sts.us-east-1.amazonaws.com",
  };
}

/** Imports the `count` access keys through `daemon`, 1000 per message, and checks all were created. */
export async function importKeys(daemon: RunningDaemon, stored: StoredKeys): Promise<void> {
  const client = credentialClient(daemon.url, "grpc-h2", daemon.token);
  async function* messages() {
    for (let i = 0; i < stored.count; i += 1000) {
      const n = Math.min(1000, stored.count - i);
      yield {
        items: Array.from({ length: n }, (_, j) => ({
          line: BigInt(i + j + 1),
          credential: {
            namespace: stored.namespace,
            name: stored.nameOf(i + j),
            allowedHosts: [stored.host],
            kind: {
              case: "accessKey" as const,
              value: {
                accessKeyId: stored.accessKeyId(i + j),
                secretAccessKey: `${stored.secretMark}${i + j}`,
              },
            },
          },
        })),
      };
    }
  }
  const res = await client.importCredentials(messages());
  assert.equal(res.created, BigInt(stored.count));
}

/**
 * Every credential lists (each record opened) with its access key id, every
 * acknowledged update (name → description) is there, and the sample reads
 * back one by one and signs.
 */
export async function assertAllReadable(
  daemon: RunningDaemon,
  stored: StoredKeys,
  acked: ReadonlyMap<string, string>,
): Promise<void> {
  const creds = credentialClient(daemon.url, "connect-h2", daemon.token);
  const signing = createClient(SigningService, transport(daemon.url, "grpc-h2", daemon.token));
  const seen = new Map<string, { accessKeyId: string; description: string }>();
  let pageToken = "";
  do {
    const page = await creds.listCredentials({
      namespace: stored.namespace,
      pageSize: 1000,
      pageToken,
    });
    for (const c of page.credentials) {
      const id = c.kind.case === "accessKey" ? c.kind.value.accessKeyId : "";
      seen.set(c.name, { accessKeyId: id, description: c.description });
    }
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  assert.equal(seen.size, stored.count);
  for (let i = 0; i < stored.count; i++) {
    assert.equal(seen.get(stored.nameOf(i))?.accessKeyId, stored.accessKeyId(i));
  }
  for (const [name, description] of acked) {
    assert.equal(seen.get(name)?.description, description, `acknowledged update of ${name}`);
  }
  await Promise.all(
    stored.sample.map(async (i) => {
      const name = stored.nameOf(i);
      const got = await creds.getCredential({ namespace: stored.namespace, name });
      const id =
        got.credential?.kind.case === "accessKey" ? got.credential.kind.value.accessKeyId : "";
      assert.equal(id, stored.accessKeyId(i));
      await assertSignsWith(signing, stored.namespace, name, id);
    }),
  );
}

/**
 * Runs RotateMasterKey on `daemon` in batches of 100 and SIGKILLs it (by
 * PID) after `killAfter` progress messages, calling `killing()` just before;
 * the rotation must not finish first. `each` sees every message.
 */
export async function rotateThenKill(
  daemon: RunningDaemon,
  killAfter: number,
  killing: () => void,
  each: (p: RotateMasterKeyResponse) => void = () => undefined,
): Promise<void> {
  const keys = createClient(KeyService, transport(daemon.url, "grpc-h2", daemon.token));
  let seen = 0;
  let killed = false;
  try {
    for await (const p of keys.rotateMasterKey({ batchSize: 100 })) {
      each(p);
      assert.equal(p.done, false, "the rotation must not finish before the kill");
      if (++seen === killAfter) {
        killed = true;
        killing();
        process.kill(daemon.process.pid ?? 0, "SIGKILL");
      }
    }
  } catch (err) {
    assert.ok(killed, `rotation failed before the kill: ${String(err)}`);
  }
  assert.equal((await daemon.exited).signal, "SIGKILL");
}

/**
 * `workers` writers updating descriptions through `daemon` until `stopped()`,
 * each acknowledged update recorded in `acked`. Writer w updates credential
 * `pick(n)` for n = w, w + workers, …; `pick` must never give two writers
 * the same credential, so the last acknowledged update of each is the one
 * stored. A failure once `stopped()` (the daemon was killed) ends the writer;
 * before, it fails the test.
 */
export async function updateDescriptions(
  daemon: RunningDaemon,
  stored: StoredKeys,
  opts: {
    workers: number;
    pick(n: number): number;
    acked: Map<string, string>;
    stopped(): boolean;
  },
): Promise<void> {
  const client = credentialClient(daemon.url, "connect-h2", daemon.token);
  const writer = async (w: number) => {
    for (let n = w; !opts.stopped(); n += opts.workers) {
      const name = stored.nameOf(opts.pick(n));
      const description = `updated ${n} ${randomBytes(4).toString("hex")}`;
      try {
        await client.updateCredential({
          namespace: stored.namespace,
          name,
          credential: { description },
          updateMask: { paths: ["description"] },
        });
        opts.acked.set(name, description);
      } catch (err) {
        if (opts.stopped()) return;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: opts.workers }, (_, w) => writer(w)));
}
