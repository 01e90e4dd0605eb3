/**
 * docs/OPERATIONS.md, "Backup and restore" (LevelDB), step by step on a real
 * daemon: stop it, copy the data dir without master.key (the same tar
 * command), restore the copy elsewhere; it refuses to start without the key
 * or with another one, and with the key kept apart it serves and signs with
 * the credential stored before the backup.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { after, describe, it } from "node:test";
import { promisify } from "node:util";
import { runCredbroker } from "../support/cli-run.js";
import { removeDir, startDaemon, tempDir } from "../support/daemon.js";

const run = promisify(execFile);
const SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

describe("backup and restore of a LevelDB data dir (docs/OPERATIONS.md)", () => {
  const dirs: string[] = [];
  after(async () => {
    for (const dir of dirs) await removeDir(dir);
  });

  it("a stopped daemon's copy without master.key restores with the key given apart", async () => {
    const work = await tempDir("credbroker-backup-");
    dirs.push(work);
    const live = path.join(work, "live");
    const daemon = await startDaemon({ dataDir: live });
    const client = (url: string, dataDir: string) => [
      "--addr",
      url,
      "--token-file",
      path.join(dataDir, "admin.token"),
    ];
    const created = await runCredbroker(
      [
        "cred",
        "create",
        "k1",
        "--access-key-id",
        "AKIAIOSFODNN7EXAMPLE",
        "--secret-stdin",
        ...client(daemon.url, live),
      ],
      { stdin: `${SECRET}\n` },
    );
    assert.equal(created.code, 0, created.stderr);
    assert.equal((await daemon.stop()).code, 0, "the daemon stops cleanly before the copy");

    // Step 2, as documented: the data dir without the key files.
    const archive = path.join(work, "backup.tgz");
    await run("tar", [
      "-C",
      live,
      "--exclude=./master.key",
      "--exclude=./master.key.previous",
      "-czf",
      archive,
      ".",
    ]);
    const masterKey = (await readFile(path.join(live, "master.key"), "utf8")).trim();

    const restored = path.join(work, "restored");
    await mkdir(restored, { mode: 0o700 });
    await run("tar", ["-C", restored, "-xzf", archive]);
    const files = await readdir(restored);
    assert.ok(files.includes("db") && files.includes("admin.token"), files.join(" "));
    assert.equal(files.includes("master.key"), false, "the backup holds no key");

    const serveArgs = ["serve", "--listen", "127.0.0.1:0", "--data-dir", restored];
    const keyless = await runCredbroker(serveArgs);
    assert.equal(keyless.code, 1);
    assert.match(keyless.stderr, /holds sealed records but no master key was given/);
    assert.equal(
      (await readdir(restored)).includes("master.key"),
      false,
      "no new key is made for a data dir that has records",
    );
    const otherKey = Buffer.alloc(32, 7).toString("base64");
    const wrong = await runCredbroker(serveArgs, { env: { CREDBROKER_MASTER_KEY: otherKey } });
    assert.equal(wrong.code, 1, wrong.stderr);

    const back = await startDaemon({
      dataDir: restored,
      env: { CREDBROKER_MASTER_KEY: masterKey },
    });
    try {
      const got = await runCredbroker([
        "cred",
        "get",
        "k1",
        "-o",
        "json",
        ...client(back.url, restored),
      ]);
      assert.equal(got.code, 0, got.stderr);
      assert.equal(
        JSON.parse(got.stdout).credential?.accessKey?.accessKeyId,
        "AKIAIOSFODNN7EXAMPLE",
        got.stdout,
      );
      const signed = await runCredbroker([
        "sign",
        "-c",
        "k1",
        "https://sts.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
        ...client(back.url, restored),
      ]);
      assert.equal(signed.code, 0, signed.stderr);
      assert.match(
        signed.stdout,
        /^authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE\//im,
      );
      assert.equal(signed.stdout.includes(SECRET), false);
    } finally {
      await back.stop();
    }
  });
});
