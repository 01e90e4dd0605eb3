/**
 * The ReadCache over the real LevelDB store: it keeps no secret, a hit is
 * memory only, it stays bounded (least recently used out first), a read
 * racing a write does not cache the old record, and while the store watch is
 * down it reads through and serves a cached copy only within the stale limit.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Credential } from "../../gen/credbroker/v1/credential_pb.js";
import { DomainError } from "../../src/core/errors.js";
import { prepareNew } from "../../src/core/lifecycle.js";
import type { CredentialStore } from "../../src/store/credential-store.js";
import { ReadCache } from "../../src/store/read-cache.js";
import { StoreTrust } from "../../src/store/store-trust.js";
import {
  accessKeyInput,
  BEARER_TOKEN,
  edited,
  roleInput,
  SECRET_ACCESS_KEY,
  SESSION_TOKEN,
  TestAmbient,
  tokenInput,
} from "../core/fixtures.js";
import { secretsIn } from "../support/retained.js";
import type { OpenedStore } from "./contract.js";
import { openTempLevelStore } from "./helpers.js";

const SECRETS = [SECRET_ACCESS_KEY, SESSION_TOKEN, BEARER_TOKEN];

/** The store, counting reads (each one opens a sealed record). */
function counting(store: CredentialStore): Pick<CredentialStore, "get"> & { reads: number } {
  return {
    reads: 0,
    get(namespace, name) {
      this.reads++;
      return store.get(namespace, name);
    },
  };
}

/** The store, whose reads answer only after `release()`: reads held in flight. */
function gated(store: CredentialStore): { store: Pick<CredentialStore, "get">; release(): void } {
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  return {
    store: {
      async get(namespace, name): Promise<Credential> {
        const c = await store.get(namespace, name);
        await gate;
        return c;
      },
    },
    release: () => release(),
  };
}

describe("ReadCache", () => {
  let opened: OpenedStore;
  const ambient = new TestAmbient();

  before(async () => {
    opened = await openTempLevelStore();
    const { store } = opened;
    await store.create(
      prepareNew(
        edited(accessKeyInput(), (c) => {
          if (c.kind.case === "accessKey") c.kind.value.sessionToken = SESSION_TOKEN;
        }),
        ambient,
      ),
    );
    await store.create(prepareNew(tokenInput(), ambient));
    await store.create(prepareNew(roleInput(), ambient));
    for (let i = 0; i < 4; i++) {
      await store.create(prepareNew(accessKeyInput({ name: `k${i}` }), ambient));
    }
  });

  after(() => opened.cleanup());

  test("keeps no secret: every cached value, searched deeply, holds none", async () => {
    const reads = new ReadCache(opened.store);
    const names = ["s3-writer", "github", "deployer"];
    for (const name of names) {
      const got = await reads.get("team-a", name);
      assert.deepEqual(secretsIn(got, SECRETS), [], `${name}: what get returns`);
      assert.equal(await reads.get("team-a", name), got, "a hit");
    }
    const key = await reads.get("team-a", "s3-writer");
    assert.equal(key.kind.case, "accessKey");
    assert.equal(key.kind.value?.accessKeyId, "AKIAIOSFODNN7EXAMPLE", "the key id is public");

    // The secrets are there for whoever asks for them, and still not cached.
    const whole = await reads.getWithSecrets("team-a", "s3-writer");
    assert.equal(
      whole.kind.case === "accessKey" && whole.kind.value.secretAccessKey,
      SECRET_ACCESS_KEY,
    );
    assert.equal(whole.kind.case === "accessKey" && whole.kind.value.sessionToken, SESSION_TOKEN);
    const token = await reads.getWithSecrets("team-a", "github");
    assert.equal(token.kind.case === "token" && token.kind.value.token, BEARER_TOKEN);

    assert.equal(reads.size, names.length);
    assert.deepEqual(secretsIn([...reads.values()], SECRETS), []);
  });

  test("a hit reads nothing from the store; getWithSecrets always does", async () => {
    const store = counting(opened.store);
    const reads = new ReadCache(store);
    await reads.get("team-a", "s3-writer");
    for (let i = 0; i < 10; i++) await reads.get("team-a", "s3-writer");
    assert.equal(store.reads, 1);
    await reads.getWithSecrets("team-a", "s3-writer");
    await reads.getWithSecrets("team-a", "s3-writer");
    assert.equal(store.reads, 3);
    await assert.rejects(reads.get("team-a", "nope"), { code: "not_found" });
    await assert.rejects(reads.get("team-a", "nope"), { code: "not_found" });
    assert.equal(store.reads, 5, "absence is not cached");
  });

  test("bounded: the least recently used entry goes first", async () => {
    const store = counting(opened.store);
    const reads = new ReadCache(store, 3);
    for (const name of ["k0", "k1", "k2"]) await reads.get("team-a", name);
    await reads.get("team-a", "k0"); // k1 is now the least recently used
    await reads.get("team-a", "k3");
    assert.equal(reads.size, 3);
    assert.equal(store.reads, 4);
    await reads.get("team-a", "k0");
    await reads.get("team-a", "k2");
    await reads.get("team-a", "k3");
    assert.equal(store.reads, 4, "k0, k2, k3 stayed");
    await reads.get("team-a", "k1");
    assert.equal(store.reads, 5, "k1 went");
    assert.equal(reads.size, 3);
  });

  test("forget(id) drops that credential and the cached provider defaults, nothing else", async () => {
    const store = counting(opened.store);
    const reads = new ReadCache(store);
    const k0 = await reads.get("team-a", "k0");
    await reads.get("team-a", "k1");
    const defaults = [...reads.values()].filter((c) => c.providerDefault);
    assert.equal(defaults.length, 0, "the fixture's k0 and k1 are not defaults");
    reads.forget(k0.id);
    await reads.get("team-a", "k0");
    await reads.get("team-a", "k1");
    assert.equal(store.reads, 3, "k0 read again, k1 still cached");
    reads.forget("some-other-id");
    await reads.get("team-a", "k0");
    await reads.get("team-a", "k1");
    assert.equal(store.reads, 3, "another credential's write drops neither");
  });

  test("a cached provider default is dropped by any write (a write may demote it)", async () => {
    const defaulted = opened.store;
    await defaulted.create(
      prepareNew(
        edited(accessKeyInput({ name: "the-default" }), (c) => {
          c.providerDefault = true;
        }),
        ambient,
      ),
    );
    const store = counting(defaulted);
    const reads = new ReadCache(store);
    await reads.get("team-a", "the-default");
    await reads.get("team-a", "k2");
    reads.forget("an-unrelated-id");
    await reads.get("team-a", "the-default");
    await reads.get("team-a", "k2");
    assert.equal(store.reads, 3, "the default read again, k2 not");
    await defaulted.delete("team-a", "the-default", "");
  });

  test("a read in flight across a forget of what it reads does not cache it; of something else, it does", async () => {
    const { store: slow, release } = gated(opened.store);
    const reads = new ReadCache(slow);
    const k0 = await opened.store.get("team-a", "k0");
    const pending = [reads.get("team-a", "k0"), reads.get("team-a", "k1")];
    reads.forget(k0.id); // k0 was written while the reads were in flight
    release();
    await Promise.all(pending);
    assert.deepEqual(
      [...reads.values()].map((c) => c.name),
      ["k1"],
    );
  });

  test("a read begun before clear() does not cache what it read", async () => {
    const { store: slow, release } = gated(opened.store);
    const reads = new ReadCache(slow);
    const pending = reads.get("team-a", "k0");
    const pendingWhole = reads.getWithSecrets("team-a", "k1");
    reads.clear(); // a write landed while the reads were in flight
    release();
    assert.equal((await pending).name, "k0", "the caller still gets its answer");
    assert.equal((await pendingWhole).name, "k1");
    assert.equal(reads.size, 0);
  });

  test("not trusted (a store watch is down): reads go to the store; unreachable, a cached copy serves within the stale limit", async () => {
    let clock = 0;
    const trust = new StoreTrust({
      staleLimitMs: 30_000,
      confirmWithinMs: 3000,
      clock: () => clock,
    });
    let reachable = true;
    const store = counting({
      get: (namespace, name) =>
        reachable
          ? opened.store.get(namespace, name)
          : Promise.reject(new DomainError("unavailable", "etcd test is unavailable (down)")),
    } as CredentialStore);
    const reads = new ReadCache(store, undefined, trust);
    await reads.get("team-a", "s3-writer");
    await reads.get("team-a", "s3-writer");
    assert.equal(store.reads, 1, "trusted: a hit reads nothing");

    clock = 1000;
    trust.lose();
    await reads.get("team-a", "s3-writer");
    await reads.getWithSecrets("team-a", "k0");
    assert.equal(store.reads, 3, "not trusted: every read goes to the store");
    assert.equal(reads.size, 2, "and refreshes the cached copy");

    reachable = false;
    clock = 29_000;
    assert.equal(
      (await reads.get("team-a", "s3-writer")).name,
      "s3-writer",
      "stale, within the limit",
    );
    await assert.rejects(
      reads.getWithSecrets("team-a", "k0"),
      /unavailable/,
      "secrets are never cached",
    );
    await assert.rejects(reads.get("team-a", "k1"), /unavailable/, "nothing cached: unavailable");
    clock = 30_001;
    await assert.rejects(
      reads.get("team-a", "s3-writer"),
      (err: DomainError) => err.code === "unavailable" && /--etcd-stale-limit/.test(err.message),
      "past the limit: fail closed, saying why",
    );

    // Back: caches start empty (changes may have been missed), then hits are memory again.
    reachable = true;
    trust.regain(clock);
    assert.equal(reads.size, 0);
    await reads.get("team-a", "s3-writer");
    await reads.get("team-a", "s3-writer");
    assert.equal(store.reads, 8);
    // Unconfirmed for longer than confirmWithinMs: not trusted even though the watch seems up.
    clock += 3001;
    await reads.get("team-a", "s3-writer");
    assert.equal(store.reads, 9);
  });

  test("a record found deleted while not trusted is never served stale", async () => {
    let clock = 0;
    const trust = new StoreTrust({
      staleLimitMs: 30_000,
      confirmWithinMs: 3000,
      clock: () => clock,
    });
    let answer: "store" | "gone" | "down" = "store";
    const store: Pick<CredentialStore, "get"> = {
      get: (namespace, name) =>
        answer === "store"
          ? opened.store.get(namespace, name)
          : Promise.reject(
              answer === "gone"
                ? new DomainError("not_found", "gone")
                : new DomainError("unavailable", "down"),
            ),
    };
    const reads = new ReadCache(store, undefined, trust);
    await reads.get("team-a", "k2");
    trust.lose();
    clock = 10;
    answer = "gone";
    await assert.rejects(reads.get("team-a", "k2"), /gone/);
    answer = "down";
    await assert.rejects(reads.get("team-a", "k2"), /down/);
  });
});
