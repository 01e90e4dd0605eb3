/**
 * Damage in LevelDB table files (.ldb), not the write-ahead log (LevelDB
 * here does not check its log strictly). One flipped byte inside a sealed
 * record: that credential fails `data_loss` naming it, never garbage, and
 * the daemon serves the others; `credbroker repair` names it as lost. A
 * table that does not read at all: the daemon refuses to start, `data_loss`;
 * repair sets the table aside and the daemon serves what survived.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { Level } from "level";
import { SigningService } from "../../gen/credbroker/v1/signing_service_pb.js";
import { credentialClient, transport } from "../support/clients.js";
import { type RunningDaemon, removeDir, runCli, startDaemon, tempDir } from "../support/daemon.js";
import { checkDataDir } from "./offline-check.js";

const HOST = "sts.us-east-1.amazonaws.com";
const SECRET_PREFIX = "fault/secret/";

const names = (n: number) => Array.from({ length: n }, (_, i) => `k${String(i).padStart(2, "0")}`);

/** Creates access keys `names` in `namespace`; returns their ids by name. */
async function createKeys(
  daemon: RunningDaemon,
  namespace: string,
  keys: readonly string[],
): Promise<Map<string, string>> {
  const client = credentialClient(daemon.url, "connect-h2", daemon.token);
  const ids = new Map<string, string>();
  for (const name of keys) {
    const res = await client.createCredential({
      credential: {
        namespace,
        name,
        allowedHosts: [HOST],
        kind: {
          case: "accessKey",
          value: {
            accessKeyId: `AKIA${randomBytes(8).toString("hex").toUpperCase()}`,
            secretAccessKey: `${SECRET_PREFIX}${randomBytes(20).toString("hex")}`,
          },
        },
      },
    });
    ids.set(name, res.credential?.id ?? "");
  }
  return ids;
}

/** Opens and closes the stopped daemon's database: LevelDB writes its log out as a table. */
async function flushToTables(dataDir: string, read?: string): Promise<Buffer | undefined> {
  const db = new Level<string, Buffer>(path.join(dataDir, "db"), { valueEncoding: "buffer" });
  await db.open();
  try {
    return read === undefined ? undefined : await db.get(read);
  } finally {
    await db.close();
  }
}

async function tables(dataDir: string): Promise<string[]> {
  const dir = path.join(dataDir, "db");
  return (await readdir(dir))
    .filter((f) => f.endsWith(".ldb"))
    .sort()
    .map((f) => path.join(dir, f));
}

async function expectCode(call: Promise<unknown>, code: Code, ...includes: string[]) {
  await assert.rejects(call, (err: unknown) => {
    assert.ok(err instanceof ConnectError, String(err));
    assert.equal(err.code, code, err.message);
    for (const s of includes) assert.ok(err.rawMessage.includes(s), err.rawMessage);
    assert.ok(!err.rawMessage.includes(SECRET_PREFIX));
    return true;
  });
}

const signRequest = (credential: string) => ({
  namespace: "team-a",
  credential,
  method: "POST",
  url: `https://${HOST}/`,
  service: "sts",
  region: "us-east-1",
  payload: {
    case: "body" as const,
    value: Buffer.from("Action=GetCallerIdentity&Version=2011-06-15"),
  },
});

describe("one flipped byte in a record's table file", () => {
  let dataDir: string;
  let daemon: RunningDaemon | undefined;
  let damagedId: string;

  before(async () => {
    dataDir = await tempDir();
    daemon = await startDaemon({ dataDir });
    const ids = await createKeys(daemon, "team-a", names(40));
    await createKeys(daemon, "team-b", names(10));
    damagedId = ids.get("k17") ?? "";
    await daemon.stop();
    daemon = undefined;
  });
  after(async () => {
    await daemon?.stop("SIGKILL");
    await removeDir(dataDir);
  });

  test("repair of an intact store: LevelDB's repair keeps everything, exit 0", async () => {
    const res = await runCli(["repair", "--data-dir", dataDir]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /survived: 50 credentials, 0 callers, 100 index entries/);
    assert.match(res.stdout, /lost: 0 credentials, 0 other problems/);
  });

  test("flip one byte inside the sealed record of team-a/k17", async () => {
    const sealed = await flushToTables(dataDir, `cred/${damagedId}`);
    assert.ok(sealed !== undefined);
    const hits: string[] = [];
    for (const file of await tables(dataDir)) {
      const bytes = await readFile(file);
      const offset: number = bytes.indexOf(sealed);
      if (offset < 0) continue;
      assert.equal(bytes.indexOf(sealed, offset + 1), -1);
      bytes[offset + (sealed.length >> 1)] ^= 0x20;
      await writeFile(file, bytes);
      hits.push(file);
    }
    assert.equal(hits.length, 1, "the record is in exactly one table file");
  });

  test("the damaged credential fails data_loss, naming it; the others serve", async () => {
    daemon = await startDaemon({ dataDir });
    const creds = credentialClient(daemon.url, "grpc-h2", daemon.token);
    const signing = createClient(SigningService, transport(daemon.url, "connect-h2", daemon.token));
    const damaged = ["team-a/k17", "damaged"];

    await expectCode(
      creds.getCredential({ namespace: "team-a", name: "k17" }),
      Code.DataLoss,
      ...damaged,
    );
    await expectCode(signing.signRequest(signRequest("k17")), Code.DataLoss, ...damaged);
    await expectCode(
      creds.updateCredential({
        namespace: "team-a",
        name: "k17",
        credential: { enabled: false },
        updateMask: { paths: ["enabled"] },
      }),
      Code.DataLoss,
      ...damaged,
    );
    await expectCode(
      creds.deleteCredential({ namespace: "team-a", name: "k17" }),
      Code.DataLoss,
      ...damaged,
    );
    // A page that crosses the damaged record fails rather than silently skip it.
    await expectCode(
      creds.listCredentials({ namespace: "team-a", pageSize: 100 }),
      Code.DataLoss,
      ...damaged,
    );

    for (const name of ["k16", "k18", "k39"]) {
      const got = await creds.getCredential({ namespace: "team-a", name });
      assert.equal(got.credential?.name, name);
      const signed = await signing.signRequest(signRequest(name));
      assert.ok(signed.headers.some((h) => h.name.toLowerCase() === "authorization"));
    }
    const first = await creds.listCredentials({ namespace: "team-a", pageSize: 10 });
    assert.deepEqual(
      first.credentials.map((c) => c.name),
      names(10),
    );
    const other = await creds.listCredentials({ namespace: "team-b", pageSize: 100 });
    assert.equal(other.credentials.length, 10);
    await createKeys(daemon, "team-a", ["after-damage"]);
    assert.doesNotMatch(daemon.output(), new RegExp(SECRET_PREFIX));
  });

  test("repair refuses while the daemon holds the data dir", async () => {
    const res = await runCli(["repair", "--data-dir", dataDir]);
    assert.equal(res.code, 6);
    assert.match(res.stderr, /in use by a running credbroker.*stop the daemon first/);
    assert.equal(res.stdout, "");
  });

  test("repair of the stopped daemon names the lost credential, exit 10", async () => {
    await daemon?.stop();
    daemon = undefined;
    const res = await runCli(["repair", "--data-dir", dataDir]);
    assert.equal(res.code, 10, res.stderr);
    assert.match(res.stdout, /survived: 50 credentials, 0 callers, 100 index entries/);
    assert.match(res.stdout, /lost: 1 credentials, 0 other problems/);
    assert.match(
      res.stdout,
      new RegExp(`damaged cred/${damagedId} \\(team-a/k17\\): .*failed authentication`),
    );
    assert.ok(!res.stdout.includes(SECRET_PREFIX));

    daemon = await startDaemon({ dataDir });
    const creds = credentialClient(daemon.url, "connect-h1", daemon.token);
    assert.equal(
      (await creds.getCredential({ namespace: "team-a", name: "k18" })).credential?.name,
      "k18",
    );
    await expectCode(
      creds.getCredential({ namespace: "team-a", name: "k17" }),
      Code.DataLoss,
      "team-a/k17",
    );
  });

  test("repair --drop-damaged deletes the damaged record and its index entries; the name can be created again", async () => {
    await daemon?.stop();
    daemon = undefined;
    const res = await runCli(["repair", "--data-dir", dataDir, "--drop-damaged"]);
    assert.equal(res.code, 10, res.stderr);
    assert.match(res.stdout, /dropped 3 keys; these names can be created again: team-a\/k17/);
    assert.match(
      res.stdout,
      /survived: 50 credentials, 0 callers, 100 index entries\nlost: 0 credentials, 0 other problems\n$/,
    );
    assert.ok(!res.stdout.includes(SECRET_PREFIX));
    const again = await runCli(["repair", "--data-dir", dataDir]);
    assert.equal(again.code, 0, again.stdout);

    daemon = await startDaemon({ dataDir });
    const creds = credentialClient(daemon.url, "connect-h1", daemon.token);
    await expectCode(creds.getCredential({ namespace: "team-a", name: "k17" }), Code.NotFound);
    await createKeys(daemon, "team-a", ["k17"]);
    const listed = await creds.listCredentials({ namespace: "team-a", pageSize: 100 });
    assert.equal(
      listed.credentials.length,
      41,
      "40, less the lost k17, + after-damage + the new k17",
    );
    assert.equal(listed.credentials.filter((c) => c.name === "k17").length, 1);
  });
});

describe("a table file that does not read at all", () => {
  let dataDir: string;
  let daemon: RunningDaemon | undefined;

  before(async () => {
    dataDir = await tempDir();
    daemon = await startDaemon({ dataDir });
    await createKeys(daemon, "team-a", names(10));
    await daemon.stop();
    await flushToTables(dataDir);
    daemon = await startDaemon({ dataDir });
    await createKeys(daemon, "team-b", names(10));
    await daemon.stop();
    daemon = undefined;
    await flushToTables(dataDir);
  });
  after(async () => {
    await daemon?.stop("SIGKILL");
    await removeDir(dataDir);
  });

  test("a broken footer: the daemon refuses to start with data_loss", async () => {
    const newest = (await tables(dataDir)).at(-1) ?? "";
    const bytes = await readFile(newest);
    bytes.fill(0, bytes.length - 8); // the table's magic number
    await writeFile(newest, bytes);
    await assert.rejects(startDaemon({ dataDir }), /is damaged: Corruption: .*bad magic number/);
  });

  test("repair sets the table aside; the daemon serves what survived", async () => {
    const res = await runCli(["repair", "--data-dir", dataDir]);
    assert.equal(res.code, 10, res.stderr);
    assert.match(res.stdout, /unreadable table files set aside in .*lost: \d+\.ldb/);
    assert.match(res.stdout, /survived: 10 credentials/);
    daemon = await startDaemon({ dataDir });
    const creds = credentialClient(daemon.url, "connect-h2", daemon.token);
    const a = await creds.listCredentials({ namespace: "team-a", pageSize: 100 });
    assert.deepEqual(
      a.credentials.map((c) => c.name),
      names(10),
    );
    const b = await creds.listCredentials({ namespace: "team-b", pageSize: 100 });
    assert.equal(b.credentials.length, 0);
  });
});

describe("the key-by-key check repair runs", () => {
  test("finds an index entry without its record, a stray one, and a record without its entry", async () => {
    const dataDir = await tempDir();
    try {
      const daemon = await startDaemon({ dataDir });
      const ids = await createKeys(daemon, "team-a", names(3));
      await daemon.stop();
      const db = new Level<string, Buffer>(path.join(dataDir, "db"), { valueEncoding: "buffer" });
      await db.open();
      await db.put("name/team-a/ghost", Buffer.from("no-such-id"));
      await db.put("prov/1/team-a/alias", Buffer.from(ids.get("k00") ?? ""));
      await db.del("prov/1/team-a/k01");
      await db.close();

      const check = await checkDataDir(dataDir);
      assert.deepEqual(
        check.problems.map((p) => `${p.kind} ${p.key} ${p.credential ?? "-"}: ${p.detail}`).sort(),
        [
          `missing_index cred/${ids.get("k01")} team-a/k01: prov/1/team-a/k01 is missing`,
          "stray_index name/team-a/ghost -: its record cred/no-such-id is missing",
          `stray_index prov/1/team-a/alias -: its record cred/${ids.get("k00")} does not own it`,
        ],
      );
      assert.equal(check.credentials, 2);
      assert.equal(check.indexEntries, 5);
    } finally {
      await removeDir(dataDir);
    }
  });
});
