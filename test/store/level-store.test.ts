import assert from "node:assert/strict";
import path from "node:path";
import { describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import {
  AccessKeySchema,
  CredentialSchema,
  Provider,
} from "../../gen/credbroker/v1/credential_pb.js";
import { applyUpdate, prepareNew } from "../../src/core/lifecycle.js";
import { nameKey, recordKey } from "../../src/store/keys.js";
import { LevelCredentialStore } from "../../src/store/level/level-store.js";
import { deriveDataKey, Sealer } from "../../src/store/sealing.js";
import {
  accessKeyInput,
  BEARER_TOKEN,
  domainError,
  edited,
  roleInput,
  SECRET_ACCESS_KEY,
  SESSION_TOKEN,
  TestAmbient,
  tokenInput,
} from "../core/fixtures.js";
import { credentialStoreContract } from "./contract.js";
import {
  MASTER_A,
  MASTER_B,
  openLevelStore,
  openTempLevelStore,
  rawEntries,
  removeDir,
  tempDir,
  withRawDb,
} from "./helpers.js";

credentialStoreContract("LevelCredentialStore", openTempLevelStore);

/** A temp dir with a `db` location inside, removed afterwards. */
async function inTempDir(body: (location: string) => Promise<void>): Promise<void> {
  const dir = await tempDir();
  try {
    await body(path.join(dir, "db"));
  } finally {
    await removeDir(dir);
  }
}

/** Key → value, hex, for comparing a raw database before and after. */
async function snapshot(location: string): Promise<Map<string, string>> {
  const entries = await rawEntries(location);
  return new Map(entries.map(([k, v]) => [k.toString("hex"), v.toString("hex")]));
}

describe("LevelCredentialStore (LevelDB specifics)", () => {
  test("a second open of the same location is unavailable, 'in use'", async () => {
    await inTempDir(async (location) => {
      const first = await openLevelStore(location);
      try {
        await assert.rejects(openLevelStore(location), domainError("unavailable", "in use"));
        // The first is unharmed.
        const ambient = new TestAmbient();
        await first.create(prepareNew(tokenInput(), ambient));
        assert.equal((await first.get("team-a", "github")).name, "github");
      } finally {
        await first.close();
      }
      // Once closed, the location opens again.
      const again = await openLevelStore(location);
      await again.close();
    });
  });

  test("the sealer is asked for a fresh key only the first time", async () => {
    await inTempDir(async (location) => {
      const fresh: boolean[] = [];
      await (await openLevelStore(location, MASTER_A, fresh)).close();
      await (await openLevelStore(location, MASTER_A, fresh)).close();
      assert.deepEqual(fresh, [true, false]);
    });
  });

  test("an acknowledged write survives close and reopen", async () => {
    await inTempDir(async (location) => {
      const ambient = new TestAmbient();
      const store = await openLevelStore(location);
      const created = await store.create(prepareNew(accessKeyInput(), ambient));
      await store.close();
      const reopened = await openLevelStore(location);
      try {
        const got = await reopened.get("team-a", "s3-writer");
        assert.equal(got.etag, created.etag);
        if (got.kind.case !== "accessKey") throw new Error("an access key");
        assert.equal(got.kind.value.secretAccessKey, SECRET_ACCESS_KEY);
      } finally {
        await reopened.close();
      }
    });
  });

  test("createMany writes the keys one create at a time would, and they survive reopen", async () => {
    const inputs = (ambient: TestAmbient) =>
      [
        accessKeyInput({ name: "src" }),
        roleInput({ name: "role", source: "src" }),
        edited(tokenInput({ name: "tok" }), (c) => {
          c.providerDefault = true;
        }),
      ].map((c) => prepareNew(c, ambient));
    const keysAfter = async (write: (store: LevelCredentialStore) => Promise<void>) => {
      let keys: string[] = [];
      await inTempDir(async (location) => {
        const store = await openLevelStore(location);
        await write(store);
        await store.close();
        keys = (await rawEntries(location)).map(([k]) => k.toString("utf8"));
        const reopened = await openLevelStore(location);
        try {
          assert.equal((await reopened.get("team-a", "role")).kind.case, "role");
        } finally {
          await reopened.close();
        }
      });
      return keys;
    };
    const one = await keysAfter(async (store) => {
      for (const c of inputs(new TestAmbient())) await store.create(c);
    });
    const many = await keysAfter(async (store) => {
      await store.createMany(inputs(new TestAmbient()));
    });
    assert.deepEqual(many, one);
    assert.ok(one.includes("ref/team-a/src/role") && one.some((k) => k.startsWith("default/")));
  });

  test("reopening under another master key is failed_precondition and writes nothing", async () => {
    await inTempDir(async (location) => {
      const ambient = new TestAmbient();
      const store = await openLevelStore(location, MASTER_A);
      await store.create(prepareNew(accessKeyInput(), ambient));
      await store.close();
      const before = await snapshot(location);
      const idA = deriveDataKey(MASTER_A).id;
      const idB = deriveDataKey(MASTER_B).id;
      const fresh: boolean[] = [];
      await assert.rejects(openLevelStore(location, MASTER_B, fresh), (err: unknown) => {
        domainError("failed_precondition", idA, idB)(err);
        const message = (err as Error).message;
        for (const k of [MASTER_A, MASTER_B]) {
          assert.ok(!message.includes(k.toString("base64")), message);
          assert.ok(!message.includes(k.toString("hex")), message);
        }
        return true;
      });
      assert.deepEqual(fresh, [false], "a non-fresh dir never asks for a new key");
      assert.deepEqual(await snapshot(location), before, "the database is unchanged");
      // The lock was released and the right key still opens it.
      const reopened = await openLevelStore(location, MASTER_A);
      try {
        assert.equal((await reopened.get("team-a", "s3-writer")).name, "s3-writer");
      } finally {
        await reopened.close();
      }
    });
  });

  test("a sealer with the new key first and the old key second opens the old data", async () => {
    await inTempDir(async (location) => {
      const ambient = new TestAmbient();
      const store = await openLevelStore(location, MASTER_A);
      await store.create(prepareNew(accessKeyInput(), ambient));
      await store.close();
      const rotated = await LevelCredentialStore.open({
        location,
        now: () => ambient.now(),
        sealer: async () => new Sealer([deriveDataKey(MASTER_B), deriveDataKey(MASTER_A)]),
      });
      try {
        const got = await rotated.get("team-a", "s3-writer");
        if (got.kind.case !== "accessKey") throw new Error("an access key");
        assert.equal(got.kind.value.secretAccessKey, SECRET_ACCESS_KEY);
      } finally {
        await rotated.close();
      }
    });
  });

  test("the raw database holds no plaintext secret, in any encoding", async () => {
    await inTempDir(async (location) => {
      const ambient = new TestAmbient();
      const rotated = "rotated-secret-VALUE-0002";
      const store = await openLevelStore(location);
      await store.create(
        prepareNew(
          edited(accessKeyInput(), (c) => {
            c.providerDefault = true;
            if (c.kind.case === "accessKey") c.kind.value.sessionToken = SESSION_TOKEN;
          }),
          ambient,
        ),
      );
      await store.create(prepareNew(tokenInput(), ambient));
      await store.create(prepareNew(roleInput(), ambient));
      // A second default demotes the first (another sealed write of its record).
      await store.create(
        prepareNew(
          edited(accessKeyInput({ name: "second" }), (c) => {
            c.providerDefault = true;
          }),
          ambient,
        ),
      );
      // An update that rotates the secret of "second".
      await store.update(
        "team-a",
        "second",
        (current) =>
          applyUpdate(
            current,
            create(CredentialSchema, {
              kind: {
                case: "accessKey",
                value: create(AccessKeySchema, { secretAccessKey: rotated }),
              },
            }),
            ["access_key.secret_access_key"],
            ambient,
          ),
        "",
      );
      await store.close();

      const entries = await rawEntries(location);
      const keys = entries.map(([k]) => k.toString("utf8"));
      // The scan sees the database: the index keys are there.
      assert.ok(keys.includes("name/team-a/s3-writer"), keys.join(", "));
      assert.ok(keys.includes("ref/team-a/s3-writer/deployer"), keys.join(", "));
      const records = entries.filter(([k]) => k.toString("utf8").startsWith("cred/"));
      assert.equal(records.length, 4);
      const keyId = deriveDataKey(MASTER_A).id;
      for (const [, v] of records) assert.equal(Sealer.keyIdOf(v), keyId);

      const secrets = [SECRET_ACCESS_KEY, SESSION_TOKEN, BEARER_TOKEN, rotated];
      const needles = secrets.flatMap((s) => {
        const b = Buffer.from(s, "utf8");
        return [
          b,
          Buffer.from(b.toString("base64")),
          Buffer.from(b.toString("base64url")),
          Buffer.from(b.toString("hex")),
          Buffer.from(b.toString("hex").toUpperCase()),
          // A distinctive part, in case something stores a prefix or a slice.
          b.subarray(0, 12),
        ];
      });
      for (const [k, v] of entries) {
        for (const needle of needles) {
          assert.equal(k.indexOf(needle), -1, `key ${k.toString("utf8")} holds a secret`);
          assert.equal(v.indexOf(needle), -1, `value of ${k.toString("utf8")} holds a secret`);
        }
      }
    });
  });

  test("a record copied under another credential's id fails to open: data_loss", async () => {
    await inTempDir(async (location) => {
      const ambient = new TestAmbient();
      const store = await openLevelStore(location);
      const x = await store.create(prepareNew(accessKeyInput({ name: "x" }), ambient));
      const y = await store.create(prepareNew(tokenInput({ name: "y" }), ambient));
      await store.close();
      await withRawDb(location, async (db) => {
        const value = await db.get(recordKey(x.id));
        assert.ok(value, "x's record exists");
        await db.put(recordKey(y.id), value);
      });
      const reopened = await openLevelStore(location);
      try {
        await assert.rejects(
          reopened.get("team-a", "y"),
          domainError("data_loss", recordKey(y.id)),
        );
        await assert.rejects(
          reopened.list({
            namespace: "team-a",
            provider: Provider.UNSPECIFIED,
            limit: 10,
            after: "",
          }),
          domainError("data_loss"),
        );
        assert.equal((await reopened.get("team-a", "x")).name, "x");
      } finally {
        await reopened.close();
      }
    });
  });

  test("a damaged record is data_loss, never garbage", async () => {
    await inTempDir(async (location) => {
      const ambient = new TestAmbient();
      const store = await openLevelStore(location);
      const x = await store.create(prepareNew(accessKeyInput({ name: "x" }), ambient));
      await store.close();
      await withRawDb(location, async (db) => {
        const value = await db.get(recordKey(x.id));
        assert.ok(value);
        const damaged = Buffer.from(value);
        const last = damaged.length - 1;
        damaged[last] = (damaged[last] ?? 0) ^ 1;
        await db.put(recordKey(x.id), damaged);
      });
      const reopened = await openLevelStore(location);
      try {
        await assert.rejects(reopened.get("team-a", "x"), domainError("data_loss"));
      } finally {
        await reopened.close();
      }
    });
  });

  test("an index entry pointed at another credential's record is data_loss, not that credential", async () => {
    await inTempDir(async (location) => {
      const ambient = new TestAmbient();
      const store = await openLevelStore(location);
      await store.create(prepareNew(accessKeyInput({ name: "a" }), ambient));
      const b = await store.create(prepareNew(accessKeyInput({ name: "b" }), ambient));
      await store.close();
      await withRawDb(location, async (db) => {
        await db.put(nameKey("team-a", "a"), Buffer.from(b.id));
      });
      const reopened = await openLevelStore(location);
      try {
        await assert.rejects(reopened.get("team-a", "a"), domainError("data_loss", "team-a/a"));
        await assert.rejects(
          reopened.list({
            namespace: "team-a",
            provider: Provider.UNSPECIFIED,
            limit: 10,
            after: "",
          }),
          domainError("data_loss"),
        );
        assert.equal((await reopened.get("team-a", "b")).id, b.id);
      } finally {
        await reopened.close();
      }
    });
  });

  test("etags are hex, so `--etag VALUE` never looks like a flag", async () => {
    await inTempDir(async (location) => {
      const ambient = new TestAmbient();
      const store = await openLevelStore(location);
      try {
        for (let i = 0; i < 50; i++) {
          const c = await store.create(prepareNew(accessKeyInput({ name: `e${i}` }), ambient));
          assert.match(c.etag, /^[0-9a-f]{24}$/);
        }
      } finally {
        await store.close();
      }
    });
  });
});
