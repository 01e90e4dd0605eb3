import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Etcd3 } from "etcd3";
import { CallerSchema } from "../../gen/credbroker/v1/caller_pb.js";
import { type Credential, CredentialSchema } from "../../gen/credbroker/v1/credential_pb.js";
import { applyUpdate, prepareNew } from "../../src/core/lifecycle.js";
import { EtcdCredentialStore } from "../../src/store/etcd/etcd-store.js";
import { deriveDataKey, Sealer } from "../../src/store/sealing.js";
import {
  accessKeyInput,
  BEARER_TOKEN,
  domainError,
  edited,
  FIXED_NOW,
  roleInput,
  SECRET_ACCESS_KEY,
  SESSION_TOKEN,
  TestAmbient,
  tokenInput,
} from "../core/fixtures.js";
import { type EtcdServer, startEtcd } from "../support/etcd.js";
import { credentialStoreContract } from "./contract.js";
import { MASTER_A, MASTER_B } from "./helpers.js";

/** One etcd for the whole file, started on first use; each store gets its own prefix. */
let shared: Promise<EtcdServer> | undefined;
const etcd = (): Promise<EtcdServer> => {
  shared ??= startEtcd();
  return shared;
};
after(async () => {
  if (shared !== undefined) await (await shared).stop();
});

let prefixes = 0;
const freshPrefix = (): string => `/credbroker-test-${process.pid}-${++prefixes}/`;

function openEtcdStore(
  endpoint: string,
  prefix: string,
  master: Buffer = MASTER_A,
  freshSeen: boolean[] = [],
  callTimeoutMs = 5000,
): Promise<EtcdCredentialStore> {
  return EtcdCredentialStore.open({
    endpoints: [endpoint],
    prefix,
    callTimeoutMs,
    now: () => new Date(FIXED_NOW.getTime()),
    memberName: "etcd-store.test",
    async sealer(fresh) {
      freshSeen.push(fresh);
      return new Sealer([deriveDataKey(master)]);
    },
  });
}

/** Every raw key and value under `prefix`, straight from etcd. */
async function rawEntries(endpoint: string, prefix: string): Promise<[string, Buffer, string][]> {
  const client = new Etcd3({ hosts: endpoint });
  try {
    const res = await client.kv.range({
      key: Buffer.from(prefix),
      range_end: Buffer.from(`${prefix.slice(0, -1)}0`),
    });
    return res.kvs.map((kv) => [kv.key.toString("utf8"), kv.value, kv.mod_revision]);
  } finally {
    client.close();
  }
}

credentialStoreContract("EtcdCredentialStore", async () => {
  const server = await etcd();
  const prefix = freshPrefix();
  const store = await openEtcdStore(server.endpoint, prefix);
  return {
    store,
    async cleanup() {
      await store.close();
      const client = new Etcd3({ hosts: server.endpoint });
      try {
        await client.delete().prefix(prefix);
      } finally {
        client.close();
      }
    },
  };
});

/** Two stores ("daemons") on one etcd prefix. */
async function twoDaemons(
  body: (a: EtcdCredentialStore, b: EtcdCredentialStore, ambient: TestAmbient) => Promise<void>,
): Promise<void> {
  const server = await etcd();
  const prefix = freshPrefix();
  const a = await openEtcdStore(server.endpoint, prefix);
  const b = await openEtcdStore(server.endpoint, prefix);
  try {
    await body(a, b, new TestAmbient());
  } finally {
    await a.close();
    await b.close();
  }
}

const describeAs = (description: string) => (current: Credential) =>
  applyUpdate(
    current,
    create(CredentialSchema, { description }),
    ["description"],
    new TestAmbient(),
  );

describe("EtcdCredentialStore (etcd specifics)", () => {
  test("a credential written through one daemon is read, listed and updated by another", async () => {
    await twoDaemons(async (a, b, ambient) => {
      const created = await a.create(prepareNew(accessKeyInput(), ambient));
      const seen = await b.get("team-a", "s3-writer");
      assert.equal(seen.etag, created.etag);
      if (seen.kind.case !== "accessKey") throw new Error("an access key comes back");
      assert.equal(seen.kind.value.secretAccessKey, SECRET_ACCESS_KEY);
      const page = await b.list({ namespace: "team-a", provider: 0, limit: 10, after: "" });
      assert.deepEqual(
        page.credentials.map((c) => c.name),
        ["s3-writer"],
      );
      const updated = await b.update("team-a", "s3-writer", describeAs("by b"), created.etag);
      // a's copy is stale now: its etag no longer matches.
      await assert.rejects(
        a.update("team-a", "s3-writer", describeAs("by a"), created.etag),
        domainError("aborted", "team-a/s3-writer"),
      );
      assert.equal((await a.get("team-a", "s3-writer")).etag, updated.etag);
    });
  });

  test("etags are the record's etcd mod_revision", async () => {
    const server = await etcd();
    const prefix = freshPrefix();
    const store = await openEtcdStore(server.endpoint, prefix);
    try {
      const c = await store.create(prepareNew(tokenInput(), new TestAmbient()));
      const raw = await rawEntries(server.endpoint, prefix);
      const record = raw.find(([k]) => k === `${prefix}cred/${c.id}`);
      assert.ok(record);
      assert.equal(c.etag, record[2]);
      assert.match(c.etag, /^[1-9][0-9]*$/);
    } finally {
      await store.close();
    }
  });

  test("concurrent updates with the same etag on two daemons: exactly one winner", async () => {
    await twoDaemons(async (a, b, ambient) => {
      const created = await a.create(prepareNew(accessKeyInput(), ambient));
      const results = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) =>
          (i % 2 === 0 ? a : b).update(
            "team-a",
            "s3-writer",
            describeAs(`writer ${i}`),
            created.etag,
          ),
        ),
      );
      const won = results.filter(
        (r): r is PromiseFulfilledResult<Credential> => r.status === "fulfilled",
      );
      assert.equal(won.length, 1);
      for (const r of results) if (r.status === "rejected") domainError("aborted")(r.reason);
      const stored = await b.get("team-a", "s3-writer");
      assert.equal(stored.description, won[0]?.value.description);
      assert.equal(stored.etag, won[0]?.value.etag);
    });
  });

  test("concurrent read-modify-write updates on two daemons all land", async () => {
    await twoDaemons(async (a, b, ambient) => {
      await a.create(prepareNew(accessKeyInput(), ambient));
      await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          (i % 2 === 0 ? a : b).update(
            "team-a",
            "s3-writer",
            (current) =>
              applyUpdate(
                current,
                create(CredentialSchema, { metadata: { ...current.metadata, [`k${i}`]: `${i}` } }),
                ["metadata"],
                ambient,
              ),
            "",
          ),
        ),
      );
      const got = await a.get("team-a", "s3-writer");
      for (let i = 0; i < 20; i++) assert.equal(got.metadata[`k${i}`], `${i}`);
    });
  });

  test("concurrent creates of one name on two daemons: exactly one wins", async () => {
    await twoDaemons(async (a, b, ambient) => {
      const results = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) =>
          (i % 2 === 0 ? a : b).create(prepareNew(tokenInput({ name: "same" }), ambient)),
        ),
      );
      assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
      for (const r of results) if (r.status === "rejected") domainError("already_exists")(r.reason);
    });
  });

  test("a source deleted on one daemon while a role on it is created on another: never both", async () => {
    await twoDaemons(async (a, b, ambient) => {
      for (let i = 0; i < 15; i++) {
        await a.create(prepareNew(accessKeyInput({ name: `src-${i}` }), ambient));
        const [deleted, role] = await Promise.allSettled([
          a.delete("team-a", `src-${i}`, ""),
          b.create(prepareNew(roleInput({ name: `role-${i}`, source: `src-${i}` }), ambient)),
        ]);
        assert.ok(
          deleted.status === "rejected" || role.status === "rejected",
          `round ${i}: the source was deleted and a role on it created`,
        );
        if (deleted.status === "rejected") domainError("failed_precondition")(deleted.reason);
        if (role.status === "rejected") domainError("failed_precondition")(role.reason);
      }
    });
  });

  test("callers live in etcd, shared by the daemons", async () => {
    await twoDaemons(async (a, b) => {
      const caller = create(CallerSchema, { name: "ci" });
      await a.createCaller(caller, "aa".repeat(32));
      assert.equal((await b.callerByTokenHash("aa".repeat(32)))?.name, "ci");
      await b.rotateCallerToken("ci", "bb".repeat(32));
      assert.equal(await a.callerByTokenHash("aa".repeat(32)), undefined);
      assert.equal((await a.callerByTokenHash("bb".repeat(32)))?.name, "ci");
      await assert.rejects(a.createCaller(caller, "cc".repeat(32)), domainError("already_exists"));
      assert.deepEqual(
        (await b.listCallers()).map((c) => c.name),
        ["ci"],
      );
      await a.deleteCaller("ci");
      await assert.rejects(b.getCaller("ci"), domainError("not_found"));
      assert.equal(await b.callerByTokenHash("bb".repeat(32)), undefined);
    });
  });

  test("another master key fails at open with failed_precondition and writes nothing", async () => {
    const server = await etcd();
    const prefix = freshPrefix();
    const fresh: boolean[] = [];
    const store = await openEtcdStore(server.endpoint, prefix, MASTER_A, fresh);
    await store.create(prepareNew(accessKeyInput(), new TestAmbient()));
    await store.close();
    const before = await rawEntries(server.endpoint, prefix);
    await assert.rejects(
      openEtcdStore(server.endpoint, prefix, MASTER_B, fresh),
      domainError("failed_precondition", deriveDataKey(MASTER_A).id, deriveDataKey(MASTER_B).id),
    );
    assert.deepEqual(fresh, [true, false]);
    assert.deepEqual(await rawEntries(server.endpoint, prefix), before);
  });

  test("etcd holds no plaintext secret, in any encoding", async () => {
    const server = await etcd();
    const prefix = freshPrefix();
    const store = await openEtcdStore(server.endpoint, prefix);
    const ambient = new TestAmbient();
    try {
      await store.create(
        prepareNew(
          edited(accessKeyInput(), (c) => {
            if (c.kind.case === "accessKey") c.kind.value.sessionToken = SESSION_TOKEN;
          }),
          ambient,
        ),
      );
      await store.create(prepareNew(tokenInput(), ambient));
    } finally {
      await store.close();
    }
    const entries = await rawEntries(server.endpoint, prefix);
    assert.ok(entries.some(([k]) => k === `${prefix}name/team-a/s3-writer`));
    for (const secret of [SECRET_ACCESS_KEY, SESSION_TOKEN, BEARER_TOKEN]) {
      const b = Buffer.from(secret);
      for (const needle of [b, Buffer.from(b.toString("base64")), Buffer.from(b.toString("hex"))]) {
        for (const [k, v] of entries) {
          assert.equal(v.indexOf(needle), -1, `value of ${k} holds a secret`);
          assert.ok(!k.includes(needle.toString()), `key ${k} holds a secret`);
        }
      }
    }
  });

  test("etcd stopped: operations fail unavailable within the bound; restarted: they work again", async () => {
    // Its own etcd, so stopping it disturbs no other test.
    const server = await startEtcd();
    const prefix = freshPrefix();
    const ambient = new TestAmbient();
    const store = await openEtcdStore(server.endpoint, prefix, MASTER_A, [], 1000);
    try {
      const created = await store.create(prepareNew(accessKeyInput(), ambient));
      await server.kill();
      const attempts: [string, () => Promise<unknown>][] = [
        ["get", () => store.get("team-a", "s3-writer")],
        ["create", () => store.create(prepareNew(tokenInput(), ambient))],
        ["update", () => store.update("team-a", "s3-writer", describeAs("x"), "")],
        ["list", () => store.list({ namespace: "team-a", provider: 0, limit: 5, after: "" })],
      ];
      for (const [what, attempt] of attempts) {
        const started = Date.now();
        await assert.rejects(attempt(), domainError("unavailable", "etcd"), what);
        assert.ok(Date.now() - started < 5000, `${what} failed within 5 s`);
      }
      await assert.rejects(
        openEtcdStore(server.endpoint, freshPrefix(), MASTER_A, [], 1000),
        domainError("unavailable", server.endpoint),
      );
      await server.start();
      // The client reconnects on its own; a host skipped after failures is retried after 1 s.
      const deadline = Date.now() + 10_000;
      for (;;) {
        try {
          assert.equal((await store.get("team-a", "s3-writer")).etag, created.etag);
          break;
        } catch (err) {
          if (Date.now() > deadline) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      const updated = await store.update("team-a", "s3-writer", describeAs("after"), created.etag);
      assert.equal(updated.description, "after");
    } finally {
      await store.close();
      await server.stop();
    }
  });
});

describe("EtcdCredentialStore: master key rotation of a fleet", () => {
  const OLD_ID = deriveDataKey(MASTER_A).id;
  const NEW_ID = deriveDataKey(MASTER_B).id;
  /** A store ("daemon") holding `masters` (the first its own), named `name` in its member record. */
  const daemon = async (prefix: string, name: string, masters: Buffer[], moved: string[] = []) =>
    EtcdCredentialStore.open({
      endpoints: [(await etcd()).endpoint],
      prefix,
      now: () => new Date(FIXED_NOW.getTime()),
      memberName: name,
      keyMoved: (change) => moved.push(`${change.from}->${change.to}`),
      async sealer() {
        return new Sealer(masters.map(deriveDataKey) as [ReturnType<typeof deriveDataKey>]);
      },
    });
  const rotateAll = async (store: EtcdCredentialStore) => {
    for await (const _ of store.keyRotation().rotate(100));
  };
  const raw = async (prefix: string, key: string) =>
    (await rawEntries((await etcd()).endpoint, prefix)).find(([k]) => k === `${prefix}${key}`);

  test("a move is refused while a running daemon lacks the key: named, nothing written", async () => {
    const prefix = freshPrefix();
    const old = await daemon(prefix, "old-only daemon", [MASTER_A]);
    const next = await daemon(prefix, "rotating daemon", [MASTER_B, MASTER_A]);
    try {
      const before = await raw(prefix, "meta/keycheck");
      await assert.rejects(
        rotateAll(next),
        domainError("failed_precondition", `(old-only daemon): restart each with it`),
      );
      assert.deepEqual(await raw(prefix, "meta/keycheck"), before);
      assert.equal((await next.keyRotation().status()).currentKeyId, OLD_ID);
    } finally {
      await next.close();
      await old.close();
    }
  });

  test("a daemon holding the new key follows a move made elsewhere: its next write seals under it", async () => {
    const prefix = freshPrefix();
    const moved: string[] = [];
    const ambient = new TestAmbient();
    const follower = await daemon(prefix, "follower", [MASTER_A, MASTER_B], moved);
    const created = await follower.create(prepareNew(accessKeyInput(), ambient));
    const mover = await daemon(prefix, "mover", [MASTER_B, MASTER_A]);
    try {
      await rotateAll(mover);
      assert.equal(
        Sealer.keyIdOf((await raw(prefix, `cred/${created.id}`))?.[1] ?? Buffer.alloc(0)),
        NEW_ID,
      );
      const fresh = await follower.get("team-a", "s3-writer");
      await follower.update("team-a", "s3-writer", describeAs("after the move"), fresh.etag);
      assert.deepEqual(moved, [`${OLD_ID}->${NEW_ID}`]);
      const record = await raw(prefix, `cred/${created.id}`);
      assert.equal(Sealer.keyIdOf(record?.[1] ?? Buffer.alloc(0)), NEW_ID);
      const status = await follower.keyRotation().status();
      assert.deepEqual(
        [status.currentKeyId, status.masterKeyId, status.rotationInProgress],
        [NEW_ID, OLD_ID, false],
      );
    } finally {
      await mover.close();
      await follower.close();
    }
  });

  test("a member record whose lease etcd dropped is written again under a new lease", async () => {
    const prefix = freshPrefix();
    const lost: unknown[] = [];
    const store = await EtcdCredentialStore.open({
      endpoints: [(await etcd()).endpoint],
      prefix,
      now: () => new Date(FIXED_NOW.getTime()),
      memberName: "comes back",
      memberLost: (err) => lost.push(err),
      async sealer() {
        return new Sealer([deriveDataKey(MASTER_B), deriveDataKey(MASTER_A)]);
      },
    });
    const client = new Etcd3({ hosts: (await etcd()).endpoint });
    const member = async () =>
      (
        await client.kv.range({
          key: Buffer.from(`${prefix}member/`),
          range_end: Buffer.from(`${prefix}member0`),
        })
      ).kvs;
    try {
      const [first] = await member();
      assert.ok(first !== undefined, "the store wrote its member record at open");
      assert.deepEqual(JSON.parse(first.value.toString("utf8")), {
        name: "comes back",
        keyIds: [NEW_ID, OLD_ID],
      });
      // As after an outage longer than the lease: etcd drops it, and the record with it.
      await client.leaseClient.leaseRevoke({ ID: first.lease });
      const deadline = Date.now() + 15_000;
      for (;;) {
        const [again] = await member();
        if (again !== undefined) {
          assert.notEqual(again.lease, first.lease);
          assert.equal(again.key.toString("utf8"), first.key.toString("utf8"));
          break;
        }
        if (Date.now() > deadline) assert.fail("the member record was not written again");
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(lost.length, 1, "the loss is told once");
      // Closing deletes it.
      await store.close();
      assert.deepEqual(await member(), []);
    } finally {
      client.close();
      await store.close().catch(() => undefined);
    }
  });

  test("a daemon without the new key (its member record lapsed) writes nothing after a move", async () => {
    const prefix = freshPrefix();
    const ambient = new TestAmbient();
    const stale = await daemon(prefix, "stale", [MASTER_A]);
    const created = await stale.create(prepareNew(accessKeyInput(), ambient));
    const mover = await daemon(prefix, "mover", [MASTER_B, MASTER_A]);
    const client = new Etcd3({ hosts: (await etcd()).endpoint });
    try {
      // As if the stale daemon had been cut off from etcd past its lease.
      await client.delete().prefix(`${prefix}member/`);
      await rotateAll(mover);
      const before = await raw(prefix, `cred/${created.id}`);
      await assert.rejects(
        stale.update("team-a", "s3-writer", describeAs("stale"), ""),
        domainError("failed_precondition", `sealed under key id ${NEW_ID}, which is not loaded`),
      );
      await assert.rejects(
        stale.create(prepareNew({ ...accessKeyInput(), name: "another" }, ambient)),
        domainError("failed_precondition", NEW_ID),
      );
      assert.deepEqual(await raw(prefix, `cred/${created.id}`), before, "nothing written");
      assert.equal(
        (await rawEntries((await etcd()).endpoint, prefix)).filter(([k]) => k.includes("another"))
          .length,
        0,
      );
    } finally {
      client.close();
      await mover.close();
      await stale.close();
    }
  });
});
