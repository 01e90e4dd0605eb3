/**
 * A full disk under the real daemon: its data dir is on a small tmpfs the
 * test mounts and fills. Writes fail `unavailable` saying so while reads,
 * lists and signing go on; nothing is half-written; once space is freed,
 * creates work again without a restart (the store reopens LevelDB after a
 * write error), and after a restart every acknowledged write is there and
 * every refused one is not.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, open, rm } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { SigningService } from "../../gen/credbroker/v1/signing_service_pb.js";
import { credentialClient, transport } from "../support/clients.js";
import { type RunningDaemon, removeDir, startDaemon, tempDir } from "../support/daemon.js";
import { checkDataDir } from "./offline-check.js";

const HOST = "sts.us-east-1.amazonaws.com";
const NS = "disk";

/** Mounts a tmpfs of `size` on `dir` (root, else passwordless sudo). */
function mountTmpfs(dir: string, size: string): void {
  const args = ["mount", "-t", "tmpfs", "-o", `size=${size},mode=0700`, "tmpfs", dir];
  const asRoot = process.getuid?.() === 0;
  try {
    execFileSync(asRoot ? (args[0] ?? "mount") : "sudo", asRoot ? args.slice(1) : ["-n", ...args], {
      stdio: "pipe",
    });
  } catch (err) {
    throw new Error(
      `the disk-full test mounts a ${size} tmpfs and needs root or passwordless sudo: ${String(err)}`,
    );
  }
}

function unmount(dir: string): void {
  const asRoot = process.getuid?.() === 0;
  execFileSync(asRoot ? "umount" : "sudo", asRoot ? [dir] : ["-n", "umount", dir], {
    stdio: "pipe",
  });
}

/** Writes `file` until the file system refuses: big chunks, then pages. */
async function fill(file: string): Promise<void> {
  const handle = await open(file, "w");
  try {
    for (const size of [1 << 20, 4096, 512]) {
      const chunk = Buffer.alloc(size, 0x61);
      for (;;) {
        try {
          await handle.write(chunk);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
          break;
        }
      }
    }
  } finally {
    await handle.close().catch(() => undefined);
  }
}

const isCode = (err: unknown, code: Code) => err instanceof ConnectError && err.code === code;

describe("a full disk under the daemon", () => {
  let root: string;
  let mnt: string;
  let dataDir: string;
  let daemon: RunningDaemon | undefined;
  let mounted = false;
  const acked: string[] = [];
  const refused: string[] = [];

  const start = async () => {
    daemon = await startDaemon({
      dataDir,
      // The audit log (fail-closed) is not what this test fills.
      env: { CREDBROKER_AUDIT_LOG: path.join(root, "audit.log") },
    });
    const d = daemon;
    return {
      creds: credentialClient(d.url, "connect-h2", d.token),
      signing: createClient(SigningService, transport(d.url, "grpc-h2", d.token)),
    };
  };
  const create = (creds: ReturnType<typeof credentialClient>, name: string): Promise<unknown> =>
    creds.createCredential({
      credential: {
        namespace: NS,
        name,
        allowedHosts: [HOST],
        kind: {
          case: "accessKey",
          value: {
            accessKeyId: `AKIA${randomBytes(8).toString("hex").toUpperCase()}`,
            secretAccessKey: randomBytes(30).toString("base64"),
          },
        },
      },
    });

  before(async () => {
    root = await tempDir();
    mnt = path.join(root, "mnt");
    await mkdir(mnt);
    mountTmpfs(mnt, "8m");
    mounted = true;
    dataDir = path.join(mnt, "data");
  });
  after(async () => {
    await daemon?.stop("SIGKILL");
    if (mounted) unmount(mnt);
    await removeDir(root);
  });

  test("writes fail unavailable, reads go on, and writes resume once space is freed", async () => {
    const { creds, signing } = await start();
    for (let i = 0; i < 20; i++) {
      await create(creds, `before-${i}`);
      acked.push(`before-${i}`);
    }
    const filler = path.join(mnt, "filler");
    await fill(filler);

    // The log's last page may still take a few records; then LevelDB refuses.
    let failure: unknown;
    for (let i = 0; i < 500 && failure === undefined; i++) {
      await create(creds, `full-${i}`).then(
        () => acked.push(`full-${i}`),
        (err: unknown) => {
          failure = err;
          refused.push(`full-${i}`);
        },
      );
    }
    assert.ok(isCode(failure, Code.Unavailable), String(failure));
    assert.match(
      (failure as ConnectError).rawMessage,
      /cannot take writes .*No space left on device/,
    );

    // Until reopened, every mutation fails unavailable without touching LevelDB.
    for (let i = 0; i < 5; i++) {
      await assert.rejects(create(creds, `refused-${i}`), (err) => isCode(err, Code.Unavailable));
      refused.push(`refused-${i}`);
    }
    await assert.rejects(creds.deleteCredential({ namespace: NS, name: "before-0" }), (err) =>
      isCode(err, Code.Unavailable),
    );

    // Reads, lists and signing go on.
    const got = await creds.getCredential({ namespace: NS, name: "before-3" });
    assert.equal(got.credential?.name, "before-3");
    const listed = await creds.listCredentials({ namespace: NS, pageSize: 1000 });
    assert.deepEqual(listed.credentials.map((c) => c.name).sort(), [...acked].sort());
    const signed = await signing.signRequest({
      namespace: NS,
      credential: "before-5",
      method: "POST",
      url: `https://${HOST}/`,
      service: "sts",
      region: "us-east-1",
      payload: { case: "body", value: Buffer.from("Action=GetCallerIdentity&Version=2011-06-15") },
    });
    assert.ok(signed.headers.some((h) => h.name.toLowerCase() === "authorization"));

    await rm(filler);
    const deadline = Date.now() + 10_000;
    for (let i = 0; ; i++) {
      try {
        await create(creds, `freed-${i}`);
        acked.push(`freed-${i}`);
        break;
      } catch (err) {
        assert.ok(isCode(err, Code.Unavailable), String(err));
        refused.push(`freed-${i}`);
        assert.ok(Date.now() < deadline, "creates work again within 10 s of freeing space");
        await sleep(50);
      }
    }
    for (let i = 0; i < 20; i++) {
      await create(creds, `after-${i}`);
      acked.push(`after-${i}`);
    }
    await creds.deleteCredential({ namespace: NS, name: "before-0" });
    acked.shift();
    const all = await creds.listCredentials({ namespace: NS, pageSize: 1000 });
    assert.deepEqual(all.credentials.map((c) => c.name).sort(), [...acked].sort());
  });

  test("after a restart: every acknowledged write is there, no refused one, nothing half-written", async () => {
    await daemon?.stop();
    daemon = undefined;
    assert.deepEqual((await checkDataDir(dataDir)).problems, []);
    const { creds } = await start();
    const all = await creds.listCredentials({ namespace: NS, pageSize: 1000 });
    assert.deepEqual(all.credentials.map((c) => c.name).sort(), [...acked].sort());
    for (const name of refused) {
      await assert.rejects(creds.getCredential({ namespace: NS, name }), (err) =>
        isCode(err, Code.NotFound),
      );
    }
  });
});
