import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { after, describe, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { Level } from "level";
import { credentialClient } from "../support/clients.js";
import { removeDir, runCli, startDaemon, tempDir } from "../support/daemon.js";

const dirs: string[] = [];
async function freshDir(): Promise<string> {
  const dir = await tempDir();
  dirs.push(dir);
  return dir;
}
after(async () => {
  await Promise.all(dirs.map(removeDir));
});

function accessKey(name: string) {
  return {
    credential: {
      namespace: "ops",
      name,
      kind: {
        case: "accessKey" as const,
        value: { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: `secret-${name}` },
      },
    },
  };
}

/**
 * A fingerprint of "nothing touched": every key and value in the database (read
 * raw, sealed as stored) and the data dir's own files. LevelDB may rewrite its
 * log into a table when it opens; that changes files, not contents.
 */
async function snapshot(dataDir: string): Promise<string[]> {
  const db = new Level<string, Buffer>(path.join(dataDir, "db"), { valueEncoding: "buffer" });
  const out: string[] = [];
  for await (const [key, value] of db.iterator()) out.push(`${key}=${value.toString("hex")}`);
  await db.close();
  for (const name of await readdir(dataDir)) {
    if (name !== "db")
      out.push(`${name}:${(await readFile(path.join(dataDir, name))).toString("hex")}`);
  }
  return out;
}

describe("daemon lifecycle", () => {
  test("first start creates a 0700 data dir, 0600 master.key and admin.token, and never logs the token", async () => {
    const dataDir = path.join(await freshDir(), "nested", "data");
    const daemon = await startDaemon({ dataDir });
    const exit = await daemon.stop();
    assert.equal(exit.code, 0);
    assert.equal((await stat(dataDir)).mode & 0o777, 0o700);
    assert.equal((await stat(path.join(dataDir, "master.key"))).mode & 0o777, 0o600);
    assert.equal((await stat(path.join(dataDir, "admin.token"))).mode & 0o777, 0o600);
    assert.match(daemon.output(), /admin\.token/);
    assert.ok(!daemon.output().includes(daemon.token), "the admin token must not be logged");
    assert.match(daemon.output(), /"msg":"stopped"/);
  });

  test("a second daemon on the same data dir fails at once; the first keeps serving", async () => {
    const first = await startDaemon({ dataDir: await freshDir() });
    try {
      const client = credentialClient(first.url, "connect-h1", first.token);
      await client.createCredential(accessKey("before"));
      const second = await runCli([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        first.dataDir,
      ]);
      assert.equal(second.code, 1);
      assert.match(second.stderr, /in use by another credbroker process/);
      const got = await client.getCredential({ namespace: "ops", name: "before" });
      assert.equal(got.credential?.name, "before");
      await client.createCredential(accessKey("after"));
    } finally {
      assert.equal((await first.stop()).code, 0);
    }
  });

  test("a wrong master key is a clear startup error that touches nothing", async () => {
    const dataDir = await freshDir();
    const keyA = randomBytes(32).toString("base64");
    const keyB = randomBytes(32).toString("base64");
    const daemon = await startDaemon({ dataDir, env: { CREDBROKER_MASTER_KEY: keyA } });
    const created = await credentialClient(daemon.url, "connect-h2", daemon.token).createCredential(
      accessKey("kept"),
    );
    await daemon.stop();

    const before = await snapshot(dataDir);
    const wrong = await runCli(["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir], {
      CREDBROKER_MASTER_KEY: keyB,
    });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /master key \(id [0-9a-f]{16}\) does not open this data dir/);
    assert.ok(!`${wrong.stdout}${wrong.stderr}`.includes(keyB), "the key is never echoed");
    const malformed = await runCli(["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir], {
      CREDBROKER_MASTER_KEY: "not-a-key",
    });
    assert.equal(malformed.code, 2, "an invalid config, refused before anything starts");
    assert.match(malformed.stderr, /base64 of exactly 32 bytes/);
    assert.deepEqual(await snapshot(dataDir), before);
    assert.ok(!(await readdir(dataDir)).includes("master.key"), "no key file is created");

    const again = await startDaemon({ dataDir, env: { CREDBROKER_MASTER_KEY: keyA } });
    try {
      const got = await credentialClient(again.url, "grpc-h2", again.token).getCredential({
        namespace: "ops",
        name: "kept",
      });
      assert.equal(got.credential?.id, created.credential?.id);
    } finally {
      await again.stop();
    }
  });

  test("SIGTERM finishes in-flight calls, closes the database and exits 0", async () => {
    const dataDir = await freshDir();
    const daemon = await startDaemon({ dataDir });
    const client = credentialClient(daemon.url, "connect-h2", daemon.token);
    const acked: string[] = [];
    let firstAck: () => void = () => {};
    const acking = new Promise<void>((resolve) => {
      firstAck = resolve;
    });
    const calls = Array.from({ length: 1000 }, (_, i) =>
      client.createCredential(accessKey(`drain-${i}`)).then(
        () => {
          acked.push(`drain-${i}`);
          firstAck();
        },
        (err: unknown) => {
          // Calls that arrive after the drain began are refused cleanly, never hung.
          assert.ok(err instanceof ConnectError, String(err));
        },
      ),
    );
    // SIGTERM once calls are being answered (a fixed wait raced the client on a loaded machine).
    await acking;
    const exit = await daemon.stop("SIGTERM");
    await Promise.all(calls);
    assert.equal(exit.code, 0);
    assert.ok(
      acked.length > 0 && acked.length < 1000,
      `SIGTERM came mid-flight (${acked.length} acknowledged)`,
    );

    const again = await startDaemon({ dataDir });
    try {
      const reader = credentialClient(again.url, "connect-h1", again.token);
      for (const name of acked) {
        const got = await reader.getCredential({ namespace: "ops", name });
        assert.equal(got.credential?.name, name);
      }
    } finally {
      await again.stop();
    }
  });

  test("kill -9 during concurrent creates loses no acknowledged create (3 rounds)", async () => {
    const dataDir = await freshDir();
    const acked = new Set<string>();
    for (let round = 0; round < 3; round++) {
      const daemon = await startDaemon({ dataDir });
      // Several connections, many streams each: real concurrency on the wire.
      const clients = [
        credentialClient(daemon.url, "connect-h2", daemon.token),
        credentialClient(daemon.url, "grpc-h2", daemon.token),
        credentialClient(daemon.url, "connect-h1", daemon.token),
      ];
      let killed = false;
      let ackedThisRound = 0;
      const calls = Array.from({ length: 300 }, (_, i) => {
        const name = `r${round}-${i}`;
        const client = clients[i % clients.length] as (typeof clients)[number];
        return client.createCredential(accessKey(name)).then(
          () => {
            if (killed) return;
            acked.add(name);
            ackedThisRound++;
          },
          () => undefined,
        );
      });
      // Kill at a different point each round, while creates are still in flight.
      const target = 40 + round * 50;
      while (ackedThisRound < target) await new Promise((r) => setTimeout(r, 1));
      // Only acknowledgements received before the kill count.
      daemon.process.kill("SIGKILL");
      killed = true;
      await daemon.exited;
      await Promise.all(calls);
    }

    const daemon = await startDaemon({ dataDir });
    try {
      const client = credentialClient(daemon.url, "connect-h2", daemon.token);
      const listed: string[] = [];
      let pageToken = "";
      do {
        const page = await client.listCredentials({ namespace: "ops", pageSize: 1000, pageToken });
        listed.push(...page.credentials.map((c) => c.name));
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      for (const name of acked) assert.ok(listed.includes(name), `acknowledged ${name} survives`);
      // No index entry without its record: every listed name reads back and decrypts.
      for (const name of listed) {
        const got = await client.getCredential({ namespace: "ops", name });
        assert.equal(got.credential?.name, name);
      }
    } finally {
      await daemon.stop();
    }
  });

  test("concurrent updates with the same etag: exactly one wins, the rest are aborted", async () => {
    const daemon = await startDaemon({ dataDir: await freshDir() });
    try {
      const client = credentialClient(daemon.url, "grpc-h2", daemon.token);
      const created = await client.createCredential(accessKey("contended"));
      const etag = created.credential?.etag ?? "";
      const results = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) =>
          client.updateCredential({
            namespace: "ops",
            name: "contended",
            credential: { description: `writer ${i}`, etag },
            updateMask: { paths: ["description"] },
          }),
        ),
      );
      const won = results.filter((r) => r.status === "fulfilled");
      const lost = results.filter((r) => r.status === "rejected");
      assert.equal(won.length, 1);
      for (const r of lost) assert.equal(ConnectError.from(r.reason).code, Code.Aborted);
      const final = await client.getCredential({ namespace: "ops", name: "contended" });
      assert.equal(final.credential?.description, won[0]?.value.credential?.description);
    } finally {
      await daemon.stop();
    }
  });

  test("bad serve flags exit 2 with usage", async () => {
    const res = await runCli(["serve", "--listen", "nonsense"]);
    assert.equal(res.code, 2);
    assert.match(res.stderr, /--listen: expected HOST:PORT/);
    const unknown = await runCli(["serve", "--bogus"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown flag --bogus/);
  });
});
