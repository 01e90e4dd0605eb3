import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { create, equals } from "@bufbuild/protobuf";
import {
  AccessKeySchema,
  type Credential,
  CredentialSchema,
  Provider,
  RoleSchema,
} from "../../gen/credbroker/v1/credential_pb.js";
import { applyUpdate, prepareNew } from "../../src/core/lifecycle.js";
import type { CreateManyResult, CredentialStore } from "../../src/store/credential-store.js";
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

export interface OpenedStore {
  store: CredentialStore;
  /** Closes the store and removes whatever it was kept in. */
  cleanup(): Promise<void>;
}

/** The names of a page or a list, in the order the store gave them. */
const names = (cs: readonly Credential[]): string[] => cs.map((c) => c.name);

/** Every credential of a namespace (and provider), page by page. */
async function listAll(
  store: CredentialStore,
  namespace: string,
  provider: Provider = Provider.UNSPECIFIED,
  limit = 1000,
): Promise<Credential[]> {
  const out: Credential[] = [];
  let after = "";
  for (let pages = 0; pages < 10_000; pages++) {
    const page = await store.list({ namespace, provider, limit, after });
    assert.ok(page.credentials.length <= limit, "a page holds at most limit credentials");
    out.push(...page.credentials);
    const last = page.credentials.at(-1);
    if (!page.more || last === undefined) return out;
    assert.equal(page.credentials.length, limit, "only the last page may be short");
    after = last.name;
  }
  throw new Error("listing never ended");
}

/** Equal as protobuf messages (secrets, timestamps and etag included). */
function assertSame(actual: Credential, expected: Credential, what = "credential"): void {
  assert.ok(
    equals(CredentialSchema, actual, expected),
    `${what}: ${actual.namespace}/${actual.name} differs from what was stored`,
  );
}

/**
 * The contract every CredentialStore passes. `openStore` gives a new, empty
 * store for each test; its cleanup closes and removes it.
 */
export function credentialStoreContract(name: string, openStore: () => Promise<OpenedStore>): void {
  /** A test with a fresh store, a fresh ambient (fixed clock, counter ids) and cleanup. */
  const it = (
    title: string,
    body: (store: CredentialStore, ambient: TestAmbient) => Promise<void>,
  ): void => {
    test(title, async () => {
      const { store, cleanup } = await openStore();
      try {
        await body(store, new TestAmbient());
      } finally {
        await cleanup();
      }
    });
  };

  /** Prepares (id, timestamps) as the service does, then stores. */
  const put = (store: CredentialStore, ambient: TestAmbient, input: Credential) =>
    store.create(prepareNew(input, ambient));

  /** An update as the service does it: applyUpdate of `paths` from `patch`. */
  const change = (
    store: CredentialStore,
    ambient: TestAmbient,
    target: { namespace: string; name: string },
    paths: string[],
    patch: Credential,
    etag = "",
  ) =>
    store.update(
      target.namespace,
      target.name,
      (current) => applyUpdate(current, patch, paths, ambient),
      etag,
    );

  const patchOf = (fields: Partial<Credential>): Credential =>
    Object.assign(create(CredentialSchema), fields);

  describe(`CredentialStore contract: ${name}`, () => {
    describe("create and get", () => {
      it("round trip keeps every field, secrets included, and assigns an etag", async (store, ambient) => {
        const input = prepareNew(
          edited(accessKeyInput(), (c) => {
            if (c.kind.case === "accessKey") c.kind.value.sessionToken = SESSION_TOKEN;
          }),
          ambient,
        );
        const created = await store.create(input);
        assert.notEqual(created.etag, "");
        assertSame(created, { ...input, etag: created.etag });
        const got = await store.get("team-a", "s3-writer");
        assertSame(got, created);
        if (got.kind.case !== "accessKey") throw new Error("an access key comes back");
        assert.equal(got.kind.value.secretAccessKey, SECRET_ACCESS_KEY);
        assert.equal(got.kind.value.sessionToken, SESSION_TOKEN);
      });

      it("round trip of a token and of a role", async (store, ambient) => {
        await put(store, ambient, accessKeyInput());
        const token = await put(store, ambient, tokenInput());
        const role = await put(store, ambient, roleInput());
        const gotToken = await store.get("team-a", "github");
        assertSame(gotToken, token);
        if (gotToken.kind.case !== "token") throw new Error("a token comes back");
        assert.equal(gotToken.kind.value.token, BEARER_TOKEN);
        assertSame(await store.get("team-a", "deployer"), role);
      });

      it("does not let the caller's object alias the stored one", async (store, ambient) => {
        const input = prepareNew(accessKeyInput(), ambient);
        await store.create(input);
        input.description = "mutated after create";
        if (input.kind.case === "accessKey") input.kind.value.secretAccessKey = "mutated";
        const got = await store.get("team-a", "s3-writer");
        assert.equal(got.description, "writes build artifacts");
        if (got.kind.case !== "accessKey") throw new Error("an access key comes back");
        assert.equal(got.kind.value.secretAccessKey, SECRET_ACCESS_KEY);
      });

      it("every write gives a new etag", async (store, ambient) => {
        const a = await put(store, ambient, accessKeyInput({ name: "a" }));
        const b = await put(store, ambient, accessKeyInput({ name: "b" }));
        const a2 = await change(store, ambient, a, ["description"], patchOf({ description: "x" }));
        const a3 = await change(store, ambient, a, ["description"], patchOf({ description: "x" }));
        assert.equal(new Set([a.etag, b.etag, a2.etag, a3.etag]).size, 4);
      });

      it("a second credential of the same name is already_exists; the first is kept", async (store, ambient) => {
        const first = await put(store, ambient, accessKeyInput());
        await assert.rejects(
          put(store, ambient, tokenInput({ name: "s3-writer" })),
          domainError("already_exists", "team-a/s3-writer"),
        );
        assertSame(await store.get("team-a", "s3-writer"), first);
        const list = await listAll(store, "team-a");
        assert.deepEqual(names(list), ["s3-writer"]);
      });

      it("the same name in another namespace is another credential", async (store, ambient) => {
        const a = await put(store, ambient, accessKeyInput({ namespace: "team-a" }));
        const b = await put(store, ambient, accessKeyInput({ namespace: "team-b" }));
        const w = await put(store, ambient, accessKeyInput({ namespace: "" }));
        assertSame(await store.get("team-a", "s3-writer"), a);
        assertSame(await store.get("team-b", "s3-writer"), b);
        assertSame(await store.get("", "s3-writer"), w);
      });

      it("absent credentials are not_found for get, update and delete", async (store, ambient) => {
        await put(store, ambient, accessKeyInput({ namespace: "team-a" }));
        await assert.rejects(store.get("team-a", "nope"), domainError("not_found", "team-a/nope"));
        await assert.rejects(store.get("team-b", "s3-writer"), domainError("not_found"));
        await assert.rejects(store.get("", "s3-writer"), domainError("not_found", "s3-writer"));
        await assert.rejects(
          change(store, ambient, { namespace: "team-a", name: "nope" }, ["region"], patchOf({})),
          domainError("not_found"),
        );
        await assert.rejects(store.delete("team-a", "nope", ""), domainError("not_found"));
      });

      it("getDefault is undefined when there is none", async (store, ambient) => {
        await put(store, ambient, accessKeyInput());
        assert.equal(await store.getDefault("team-a", Provider.AWS), undefined);
      });
    });

    describe("list", () => {
      const shuffled = ["golf", "alpha", "echo", "charlie", "foxtrot", "bravo", "delta"];

      it("lists in name order, page by page with after and more", async (store, ambient) => {
        for (const n of shuffled)
          await put(store, ambient, tokenInput({ namespace: "a", name: n }));
        const sorted = [...shuffled].sort();
        const p1 = await store.list({ namespace: "a", provider: 0, limit: 3, after: "" });
        assert.deepEqual(names(p1.credentials), sorted.slice(0, 3));
        assert.equal(p1.more, true);
        const p2 = await store.list({ namespace: "a", provider: 0, limit: 3, after: "charlie" });
        assert.deepEqual(names(p2.credentials), sorted.slice(3, 6));
        assert.equal(p2.more, true);
        const p3 = await store.list({ namespace: "a", provider: 0, limit: 3, after: "foxtrot" });
        assert.deepEqual(names(p3.credentials), ["golf"]);
        assert.equal(p3.more, false);
        const beyond = await store.list({ namespace: "a", provider: 0, limit: 3, after: "golf" });
        assert.deepEqual(beyond, { credentials: [], more: false });
        for (const limit of [1, 2, 6, 7, 8, 100]) {
          assert.deepEqual(names(await listAll(store, "a", Provider.UNSPECIFIED, limit)), sorted);
        }
      });

      it("after need not be a stored name", async (store, ambient) => {
        for (const n of shuffled)
          await put(store, ambient, tokenInput({ namespace: "a", name: n }));
        const page = await store.list({ namespace: "a", provider: 0, limit: 2, after: "c" });
        assert.deepEqual(names(page.credentials), ["charlie", "delta"]);
        assert.equal(page.more, true);
      });

      it("orders by the bytes of the name", async (store, ambient) => {
        const odd = ["b", "B", "a.b", "a-b", "a_b", "a", "A", "0", "a0", "z"];
        for (const n of odd) await put(store, ambient, tokenInput({ namespace: "", name: n }));
        const expected = [...odd].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
        assert.deepEqual(names(await listAll(store, "")), expected);
        assert.deepEqual(names(await listAll(store, "", Provider.UNSPECIFIED, 3)), expected);
      });

      it("lists one namespace only: no leakage between '', 'a', 'a.b' and 'ab'", async (store, ambient) => {
        const layout: Record<string, string[]> = {
          "": ["w1", "w2"],
          a: ["a1", "x"],
          "a.b": ["ab1", "x"],
          ab: ["ab2", "x"],
          "a-": ["dash"],
          a0: ["zero"],
        };
        for (const [namespace, ns] of Object.entries(layout)) {
          for (const n of ns) await put(store, ambient, tokenInput({ namespace, name: n }));
        }
        for (const [namespace, ns] of Object.entries(layout)) {
          for (const provider of [Provider.UNSPECIFIED, Provider.GENERIC]) {
            const listed = await listAll(store, namespace, provider);
            assert.deepEqual(names(listed), [...ns].sort(), `namespace "${namespace}"`);
            assert.ok(listed.every((c) => c.namespace === namespace));
            const paged = await listAll(store, namespace, provider, 1);
            assert.deepEqual(names(paged), [...ns].sort(), `namespace "${namespace}" by 1`);
          }
          assert.deepEqual(await listAll(store, namespace, Provider.AWS), []);
        }
        assert.deepEqual(await listAll(store, "b"), []);
        const afterLast = await store.list({ namespace: "a", provider: 0, limit: 5, after: "x" });
        assert.deepEqual(afterLast, { credentials: [], more: false });
      });

      it("filters by provider, with paging", async (store, ambient) => {
        const aws = ["k1", "k3", "k5", "k7"];
        const generic = ["k2", "k4", "k6"];
        for (const n of aws) await put(store, ambient, accessKeyInput({ namespace: "p", name: n }));
        for (const n of generic) await put(store, ambient, tokenInput({ namespace: "p", name: n }));
        await put(store, ambient, tokenInput({ namespace: "q", name: "k0" }));
        assert.deepEqual(names(await listAll(store, "p", Provider.AWS)), aws);
        assert.deepEqual(names(await listAll(store, "p", Provider.AWS, 3)), aws);
        assert.deepEqual(names(await listAll(store, "p", Provider.GENERIC)), generic);
        assert.deepEqual(names(await listAll(store, "p", Provider.GENERIC, 2)), generic);
        assert.deepEqual(names(await listAll(store, "p")), [...aws, ...generic].sort());
        const page = await store.list({
          namespace: "p",
          provider: Provider.AWS,
          limit: 2,
          after: "k2",
        });
        assert.deepEqual(names(page.credentials), ["k3", "k5"]);
        assert.equal(page.more, true);
      });

      it("listed credentials are whole (secrets included) and equal to get", async (store, ambient) => {
        await put(store, ambient, accessKeyInput());
        await put(store, ambient, tokenInput());
        for (const c of await listAll(store, "team-a")) {
          assertSame(c, await store.get(c.namespace, c.name));
        }
      });
    });

    describe("update", () => {
      it("with the current etag: applies, changes the etag, persists", async (store, ambient) => {
        const created = await put(store, ambient, accessKeyInput());
        ambient.advance(60_000);
        const updated = await change(
          store,
          ambient,
          created,
          ["description"],
          patchOf({ description: "new" }),
          created.etag,
        );
        assert.equal(updated.description, "new");
        assert.notEqual(updated.etag, created.etag);
        assert.equal(updated.id, created.id);
        assertSame(await store.get("team-a", "s3-writer"), updated);
      });

      it("with a stale etag: aborted, nothing changed", async (store, ambient) => {
        const created = await put(store, ambient, accessKeyInput());
        const updated = await change(
          store,
          ambient,
          created,
          ["region"],
          patchOf({ region: "x-1" }),
        );
        await assert.rejects(
          change(store, ambient, created, ["region"], patchOf({ region: "y-2" }), created.etag),
          domainError("aborted", "team-a/s3-writer"),
        );
        await assert.rejects(
          store.delete("team-a", "s3-writer", created.etag),
          domainError("aborted"),
        );
        assertSame(await store.get("team-a", "s3-writer"), updated);
      });

      it("a change that throws leaves the credential as it was", async (store, ambient) => {
        const created = await put(store, ambient, accessKeyInput());
        await assert.rejects(
          store.update(
            "team-a",
            "s3-writer",
            () => {
              throw new Error("boom");
            },
            "",
          ),
          /boom/,
        );
        assertSame(await store.get("team-a", "s3-writer"), created);
      });

      it("a rename moves the name index", async (store, ambient) => {
        const created = await put(store, ambient, accessKeyInput({ name: "old" }));
        await put(store, ambient, accessKeyInput({ name: "zz-other" }));
        const renamed = await change(store, ambient, created, ["name"], patchOf({ name: "new" }));
        assert.equal(renamed.id, created.id);
        await assert.rejects(store.get("team-a", "old"), domainError("not_found"));
        assertSame(await store.get("team-a", "new"), renamed);
        assert.deepEqual(names(await listAll(store, "team-a")), ["new", "zz-other"]);
        assert.deepEqual(names(await listAll(store, "team-a", Provider.AWS)), ["new", "zz-other"]);
        // The old name is free again.
        await put(store, ambient, tokenInput({ name: "old" }));
        assert.deepEqual(names(await listAll(store, "team-a")), ["new", "old", "zz-other"]);
      });

      it("a rename onto an existing name is already_exists, nothing changed", async (store, ambient) => {
        const a = await put(store, ambient, accessKeyInput({ name: "a" }));
        const b = await put(store, ambient, accessKeyInput({ name: "b" }));
        await assert.rejects(
          change(store, ambient, a, ["name"], patchOf({ name: "b" })),
          domainError("already_exists", "team-a/b"),
        );
        assertSame(await store.get("team-a", "a"), a);
        assertSame(await store.get("team-a", "b"), b);
        assert.deepEqual(names(await listAll(store, "team-a")), ["a", "b"]);
      });

      it("a change of id or namespace is refused", async (store, ambient) => {
        const created = await put(store, ambient, accessKeyInput());
        for (const mutate of [
          (c: Credential) => ({ ...c, id: "other-id" }),
          (c: Credential) => ({ ...c, namespace: "team-b" }),
        ]) {
          await assert.rejects(
            store.update("team-a", "s3-writer", mutate, ""),
            domainError("invalid_argument"),
          );
        }
        assertSame(await store.get("team-a", "s3-writer"), created);
        assert.deepEqual(await listAll(store, "team-b"), []);
      });

      it("a provider change moves the provider index", async (store, ambient) => {
        const created = await put(store, ambient, accessKeyInput({ name: "k" }));
        await change(
          store,
          ambient,
          created,
          ["provider"],
          patchOf({ provider: Provider.GENERIC }),
        );
        assert.deepEqual(await listAll(store, "team-a", Provider.AWS), []);
        assert.deepEqual(names(await listAll(store, "team-a", Provider.GENERIC)), ["k"]);
        assert.deepEqual(names(await listAll(store, "team-a")), ["k"]);
      });

      it("rotating a secret keeps everything else", async (store, ambient) => {
        const created = await put(store, ambient, accessKeyInput());
        const patch = patchOf({
          kind: {
            case: "accessKey",
            value: create(AccessKeySchema, { secretAccessKey: "rotated-secret-0001" }),
          },
        });
        const updated = await change(
          store,
          ambient,
          created,
          ["access_key.secret_access_key"],
          patch,
        );
        const got = await store.get("team-a", "s3-writer");
        assertSame(got, updated);
        if (got.kind.case !== "accessKey") throw new Error("still an access key");
        assert.equal(got.kind.value.secretAccessKey, "rotated-secret-0001");
        assert.equal(got.kind.value.accessKeyId, "AKIAIOSFODNN7EXAMPLE");
      });
    });

    describe("provider default", () => {
      const defaults = async (store: CredentialStore, namespace: string, provider: Provider) =>
        (await listAll(store, namespace, provider))
          .filter((c) => c.providerDefault)
          .map((c) => c.name);

      const asDefault = (input: Credential): Credential =>
        edited(input, (c) => {
          c.providerDefault = true;
        });

      it("setting a default on B demotes A, in the store", async (store, ambient) => {
        const a = await put(store, ambient, asDefault(accessKeyInput({ name: "a" })));
        assert.equal((await store.getDefault("team-a", Provider.AWS))?.id, a.id);
        ambient.advance(1000);
        const b = await put(store, ambient, asDefault(accessKeyInput({ name: "b" })));
        assertSame((await store.getDefault("team-a", Provider.AWS)) ?? a, b, "the default");
        const demoted = await store.get("team-a", "a");
        assert.equal(demoted.providerDefault, false);
        assert.notEqual(demoted.etag, a.etag, "the demotion is a write: new etag");
        assert.deepEqual(await defaults(store, "team-a", Provider.AWS), ["b"]);
        // A's old etag is stale now.
        await assert.rejects(
          change(store, ambient, a, ["region"], patchOf({ region: "x-1" }), a.etag),
          domainError("aborted"),
        );
      });

      it("defaults are per (namespace, provider)", async (store, ambient) => {
        const a = await put(
          store,
          ambient,
          asDefault(accessKeyInput({ namespace: "n", name: "a" })),
        );
        const t = await put(store, ambient, asDefault(tokenInput({ namespace: "n", name: "t" })));
        const o = await put(
          store,
          ambient,
          asDefault(accessKeyInput({ namespace: "m", name: "o" })),
        );
        const w = await put(
          store,
          ambient,
          asDefault(accessKeyInput({ namespace: "", name: "w" })),
        );
        assert.equal((await store.getDefault("n", Provider.AWS))?.id, a.id);
        assert.equal((await store.getDefault("n", Provider.GENERIC))?.id, t.id);
        assert.equal((await store.getDefault("m", Provider.AWS))?.id, o.id);
        assert.equal((await store.getDefault("", Provider.AWS))?.id, w.id);
        assert.equal((await store.getDefault("m", Provider.GENERIC))?.id, undefined);
        for (const [ns, n] of [
          ["n", "a"],
          ["n", "t"],
          ["m", "o"],
          ["", "w"],
        ] as const) {
          assert.equal((await store.get(ns, n)).providerDefault, true, `${ns}/${n}`);
        }
      });

      it("updating A back to default demotes B; clearing it leaves none", async (store, ambient) => {
        const a = await put(store, ambient, asDefault(accessKeyInput({ name: "a" })));
        await put(store, ambient, asDefault(accessKeyInput({ name: "b" })));
        await change(store, ambient, a, ["provider_default"], patchOf({ providerDefault: true }));
        assert.equal((await store.getDefault("team-a", Provider.AWS))?.name, "a");
        assert.equal((await store.get("team-a", "b")).providerDefault, false);
        assert.deepEqual(await defaults(store, "team-a", Provider.AWS), ["a"]);
        await change(store, ambient, a, ["provider_default"], patchOf({ providerDefault: false }));
        assert.equal(await store.getDefault("team-a", Provider.AWS), undefined);
        assert.deepEqual(await defaults(store, "team-a", Provider.AWS), []);
      });

      it("a default that changes provider takes the new provider's default", async (store, ambient) => {
        const a = await put(store, ambient, asDefault(accessKeyInput({ name: "a" })));
        await put(store, ambient, asDefault(tokenInput({ name: "t" })));
        await change(store, ambient, a, ["provider"], patchOf({ provider: Provider.GENERIC }));
        assert.equal(await store.getDefault("team-a", Provider.AWS), undefined);
        assert.equal((await store.getDefault("team-a", Provider.GENERIC))?.name, "a");
        assert.equal((await store.get("team-a", "t")).providerDefault, false);
        assert.deepEqual(await defaults(store, "team-a", Provider.GENERIC), ["a"]);
      });

      it("a renamed default stays the default", async (store, ambient) => {
        const a = await put(store, ambient, asDefault(accessKeyInput({ name: "a" })));
        await change(store, ambient, a, ["name"], patchOf({ name: "a2" }));
        const d = await store.getDefault("team-a", Provider.AWS);
        assert.equal(d?.name, "a2");
        assert.equal(d?.id, a.id);
      });
    });

    describe("role source integrity", () => {
      it("a role whose source is missing is failed_precondition and not stored", async (store, ambient) => {
        await assert.rejects(
          put(store, ambient, roleInput({ source: "missing" })),
          domainError("failed_precondition", "team-a/missing"),
        );
        await assert.rejects(store.get("team-a", "deployer"), domainError("not_found"));
        assert.deepEqual(await listAll(store, "team-a"), []);
      });

      it("a role whose source is not an access key is failed_precondition", async (store, ambient) => {
        await put(store, ambient, tokenInput({ name: "tok" }));
        await assert.rejects(
          put(store, ambient, roleInput({ source: "tok" })),
          domainError("failed_precondition", "not an access_key"),
        );
      });

      it("a source in another namespace does not count", async (store, ambient) => {
        await put(store, ambient, accessKeyInput({ namespace: "team-a" }));
        await assert.rejects(
          put(store, ambient, roleInput({ namespace: "team-b" })),
          domainError("failed_precondition", "team-b/s3-writer"),
        );
      });

      it("a referred source cannot be deleted, renamed or change kind; the error names the role", async (store, ambient) => {
        const source = await put(store, ambient, accessKeyInput());
        await put(store, ambient, roleInput({ name: "deployer", source: "s3-writer" }));
        await assert.rejects(
          store.delete("team-a", "s3-writer", ""),
          domainError("failed_precondition", "team-a/deployer"),
        );
        await assert.rejects(
          change(store, ambient, source, ["name"], patchOf({ name: "renamed" })),
          domainError("failed_precondition", "team-a/deployer"),
        );
        await assert.rejects(
          change(store, ambient, source, ["token"], tokenInput()),
          domainError("failed_precondition", "team-a/deployer"),
        );
        assertSame(await store.get("team-a", "s3-writer"), source);
        await assert.rejects(store.get("team-a", "renamed"), domainError("not_found"));
        // Other changes to the source are fine.
        await change(store, ambient, source, ["description"], patchOf({ description: "ok" }));
      });

      it("once the role is deleted the source can be deleted", async (store, ambient) => {
        await put(store, ambient, accessKeyInput());
        await put(store, ambient, roleInput());
        await store.delete("team-a", "deployer", "");
        await store.delete("team-a", "s3-writer", "");
        assert.deepEqual(await listAll(store, "team-a"), []);
      });

      /** A patch that turns a credential into a role whose source is `source`. */
      const roleOn = (source: string, fields: Partial<Credential> = {}): Credential =>
        patchOf({
          ...fields,
          kind: {
            case: "role",
            value: create(RoleSchema, {
              roleArn: "arn:aws:iam::123456789012:role/Self",
              externalId: "ext-self",
              durationSeconds: 3600,
              sourceCredential: source,
            }),
          },
        });

      // The source check of an update must judge the source as it will be
      // after the write, not as it is before: the credential being updated may
      // itself be the source it names.
      it("an access key cannot become a role whose source is itself", async (store, ambient) => {
        const k = await put(store, ambient, accessKeyInput({ name: "k" }));
        await assert.rejects(
          change(store, ambient, k, ["role"], roleOn("k")),
          domainError("failed_precondition", "team-a/k"),
        );
        assertSame(await store.get("team-a", "k"), k);
        await store.delete("team-a", "k", "");
      });

      it("an access key cannot be renamed into a role whose source is its old name", async (store, ambient) => {
        const k = await put(store, ambient, accessKeyInput({ name: "k" }));
        await assert.rejects(
          change(store, ambient, k, ["name", "role"], roleOn("k", { name: "k2" })),
          domainError("failed_precondition", "team-a/k"),
        );
        assertSame(await store.get("team-a", "k"), k);
        await assert.rejects(store.get("team-a", "k2"), domainError("not_found"));
      });

      it("the reference follows a renamed role and a role that changes its source", async (store, ambient) => {
        await put(store, ambient, accessKeyInput({ name: "src1" }));
        await put(store, ambient, accessKeyInput({ name: "src2" }));
        const role = await put(store, ambient, roleInput({ name: "r", source: "src1" }));
        const renamed = await change(store, ambient, role, ["name"], patchOf({ name: "r2" }));
        await assert.rejects(
          store.delete("team-a", "src1", ""),
          domainError("failed_precondition", "team-a/r2"),
        );
        const patch = patchOf({
          kind: { case: "role", value: create(RoleSchema, { sourceCredential: "src2" }) },
        });
        await change(store, ambient, renamed, ["role.source_credential"], patch);
        await store.delete("team-a", "src1", "");
        await assert.rejects(
          store.delete("team-a", "src2", ""),
          domainError("failed_precondition", "team-a/r2"),
        );
        const missing = patchOf({
          kind: { case: "role", value: create(RoleSchema, { sourceCredential: "src1" }) },
        });
        await assert.rejects(
          change(store, ambient, renamed, ["role.source_credential"], missing),
          domainError("failed_precondition", "team-a/src1"),
        );
        await change(store, ambient, renamed, ["token"], tokenInput());
        await store.delete("team-a", "src2", "");
      });
    });

    describe("delete", () => {
      it("removes the record and every index entry", async (store, ambient) => {
        const c = await put(
          store,
          ambient,
          edited(accessKeyInput({ name: "gone" }), (k) => {
            k.providerDefault = true;
          }),
        );
        await store.delete("team-a", "gone", c.etag);
        await assert.rejects(store.get("team-a", "gone"), domainError("not_found"));
        for (const provider of [Provider.UNSPECIFIED, Provider.AWS, Provider.GENERIC]) {
          assert.deepEqual(await listAll(store, "team-a", provider), []);
        }
        assert.equal(await store.getDefault("team-a", Provider.AWS), undefined);
        await assert.rejects(store.delete("team-a", "gone", ""), domainError("not_found"));
        // The name is free again, for a new credential with a new id.
        const again = await put(store, ambient, tokenInput({ name: "gone" }));
        assert.notEqual(again.id, c.id);
        assert.deepEqual(names(await listAll(store, "team-a")), ["gone"]);
        assert.equal(await store.getDefault("team-a", Provider.AWS), undefined);
      });

      it("deleting a role removes its reference entry", async (store, ambient) => {
        await put(store, ambient, accessKeyInput());
        await put(store, ambient, roleInput());
        await store.delete("team-a", "deployer", "");
        await change(
          store,
          ambient,
          { namespace: "team-a", name: "s3-writer" },
          ["name"],
          patchOf({ name: "renamed-now" }),
        );
      });
    });

    describe("createMany", () => {
      /** Prepares every input, then stores them in one createMany. */
      const putMany = (store: CredentialStore, ambient: TestAmbient, inputs: Credential[]) =>
        store.createMany(inputs.map((c) => prepareNew(c, ambient)));

      /** "ok", or the error code, per outcome. */
      const verdicts = (r: CreateManyResult): string[] =>
        r.outcomes.map((o) => (o.ok ? "ok" : o.error.code));

      it("stores every credential, in order, each as create would", async (store, ambient) => {
        const inputs = Array.from({ length: 600 }, (_, i) =>
          accessKeyInput({ namespace: "bulk", name: `c-${String(i).padStart(4, "0")}` }),
        );
        const res = await putMany(store, ambient, inputs);
        assert.equal(res.outcomes.length, 600);
        assert.deepEqual(res.demoted, []);
        const listed = await listAll(store, "bulk");
        assert.deepEqual(names(listed), names(inputs));
        assert.deepEqual(names(await listAll(store, "bulk", Provider.AWS, 250)), names(inputs));
        for (const [i, outcome] of res.outcomes.entries()) {
          if (!outcome.ok) throw outcome.error;
          assert.notEqual(outcome.credential.etag, "");
          assertSame(listed[i] ?? outcome.credential, outcome.credential);
        }
        const got = await store.get("bulk", "c-0042");
        if (got.kind.case !== "accessKey") throw new Error("an access key comes back");
        assert.equal(got.kind.value.secretAccessKey, SECRET_ACCESS_KEY);
      });

      it("an empty call stores nothing", async (store) => {
        assert.deepEqual(await store.createMany([]), { outcomes: [], demoted: [] });
      });

      it("a name taken in the store or earlier in the call is already_exists; the rest are stored", async (store, ambient) => {
        const first = await put(store, ambient, tokenInput({ name: "taken" }));
        const res = await putMany(store, ambient, [
          accessKeyInput({ name: "a" }),
          accessKeyInput({ name: "taken" }),
          tokenInput({ name: "b" }),
          accessKeyInput({ name: "a" }),
          accessKeyInput({ namespace: "other", name: "a" }),
        ]);
        assert.deepEqual(verdicts(res), ["ok", "already_exists", "ok", "already_exists", "ok"]);
        const [, taken, , dup] = res.outcomes;
        assert.ok(taken && !taken.ok && taken.error.message.includes("team-a/taken"));
        assert.ok(dup && !dup.ok && dup.error.message.includes("team-a/a"));
        assert.deepEqual(names(await listAll(store, "team-a")), ["a", "b", "taken"]);
        assertSame(await store.get("team-a", "taken"), first, "the stored one");
        assert.equal((await store.get("team-a", "a")).kind.case, "accessKey", "the first a");
      });

      it("a role may name a source created earlier in the call, not later, and not a token", async (store, ambient) => {
        const res = await putMany(store, ambient, [
          roleInput({ name: "early", source: "key" }),
          accessKeyInput({ name: "key" }),
          roleInput({ name: "late", source: "key" }),
          tokenInput({ name: "tok" }),
          roleInput({ name: "on-token", source: "tok" }),
          roleInput({ name: "self", source: "self" }),
        ]);
        assert.deepEqual(verdicts(res), [
          "failed_precondition",
          "ok",
          "ok",
          "ok",
          "failed_precondition",
          "failed_precondition",
        ]);
        assert.deepEqual(names(await listAll(store, "team-a")), ["key", "late", "tok"]);
        // The reference entry of "late" was written with it; the refused roles left none.
        await assert.rejects(
          store.delete("team-a", "key", ""),
          domainError("failed_precondition", "team-a/late"),
        );
        await store.delete("team-a", "late", "");
        await store.delete("team-a", "key", "");
      });

      it("a later provider default demotes the stored one and earlier ones in the call", async (store, ambient) => {
        const asDefault = (input: Credential) =>
          edited(input, (c) => {
            c.providerDefault = true;
          });
        const old = await put(store, ambient, asDefault(accessKeyInput({ name: "old" })));
        const res = await putMany(store, ambient, [
          asDefault(accessKeyInput({ name: "x" })),
          asDefault(tokenInput({ name: "t" })),
          asDefault(accessKeyInput({ name: "y" })),
          asDefault(accessKeyInput({ namespace: "n", name: "z" })),
        ]);
        assert.deepEqual(verdicts(res), ["ok", "ok", "ok", "ok"]);
        assert.deepEqual(res.demoted, [old.id]);
        const [x, , y] = res.outcomes;
        assert.ok(x?.ok && y?.ok);
        assert.equal(x.credential.providerDefault, false, "x comes back as stored: demoted");
        assertSame(await store.get("team-a", "x"), x.credential);
        assert.equal((await store.getDefault("team-a", Provider.AWS))?.name, "y");
        assert.equal((await store.getDefault("team-a", Provider.GENERIC))?.name, "t");
        assert.equal((await store.getDefault("n", Provider.AWS))?.name, "z");
        const demoted = await store.get("team-a", "old");
        assert.equal(demoted.providerDefault, false);
        assert.notEqual(demoted.etag, old.etag);
        assert.deepEqual(
          (await listAll(store, "team-a", Provider.AWS))
            .filter((c) => c.providerDefault)
            .map((c) => c.name),
          ["y"],
        );
      });

      it("a refused credential leaves no trace, and a default it asked for is not taken", async (store, ambient) => {
        const d = await put(
          store,
          ambient,
          edited(accessKeyInput({ name: "d" }), (c) => {
            c.providerDefault = true;
          }),
        );
        const res = await putMany(store, ambient, [
          edited(roleInput({ name: "r", source: "missing" }), (c) => {
            c.providerDefault = true;
          }),
        ]);
        assert.deepEqual(verdicts(res), ["failed_precondition"]);
        assert.deepEqual(res.demoted, []);
        assertSame(await store.get("team-a", "d"), d);
        assert.equal((await store.getDefault("team-a", Provider.AWS))?.id, d.id);
        assert.deepEqual(names(await listAll(store, "team-a")), ["d"]);
      });

      it("is serialized with other writes: concurrent creates of the same names, one wins each", async (store, ambient) => {
        const inputs = Array.from({ length: 50 }, (_, i) => tokenInput({ name: `n-${i}` }));
        const [many, ...singles] = await Promise.allSettled([
          putMany(store, ambient, inputs),
          ...inputs.map((c) => put(store, ambient, c)),
        ]);
        assert.ok(many?.status === "fulfilled");
        const wonMany = many.value.outcomes.filter((o) => o.ok).length;
        const wonSingle = singles.filter((r) => r.status === "fulfilled").length;
        assert.equal(wonMany + wonSingle, 50);
        assert.equal((await listAll(store, "team-a")).length, 50);
      });
    });

    describe("concurrency", () => {
      it("200 concurrent creates all succeed and read back", async (store, ambient) => {
        const inputs = Array.from({ length: 200 }, (_, i) =>
          prepareNew(
            accessKeyInput({ namespace: "bulk", name: `c-${String(i).padStart(3, "0")}` }),
            ambient,
          ),
        );
        const created = await Promise.all(inputs.map((c) => store.create(c)));
        assert.equal(created.length, 200);
        const listed = await listAll(store, "bulk");
        assert.deepEqual(
          names(listed),
          inputs.map((c) => c.name),
        );
        assert.deepEqual(names(await listAll(store, "bulk", Provider.AWS, 7)), names(listed));
        const got = await Promise.all(inputs.map((c) => store.get("bulk", c.name)));
        for (const [i, c] of got.entries()) {
          const made = created[i];
          assert.ok(made);
          assertSame(c, made);
        }
      });

      it("concurrent creates of one name: exactly one wins", async (store, ambient) => {
        const inputs = Array.from({ length: 20 }, () =>
          prepareNew(tokenInput({ name: "same" }), ambient),
        );
        const results = await Promise.allSettled(inputs.map((c) => store.create(c)));
        const won = results.filter((r) => r.status === "fulfilled");
        assert.equal(won.length, 1);
        for (const r of results) {
          if (r.status === "rejected") domainError("already_exists")(r.reason);
        }
        assert.equal(names(await listAll(store, "team-a")).length, 1);
      });

      it("concurrent updates with the same etag: exactly one wins, the rest are aborted", async (store, ambient) => {
        const created = await put(store, ambient, accessKeyInput());
        const results = await Promise.allSettled(
          Array.from({ length: 20 }, (_, i) =>
            change(
              store,
              ambient,
              created,
              ["description"],
              patchOf({ description: `writer ${i}` }),
              created.etag,
            ),
          ),
        );
        const won = results.filter(
          (r): r is PromiseFulfilledResult<Credential> => r.status === "fulfilled",
        );
        assert.equal(won.length, 1);
        for (const r of results) {
          if (r.status === "rejected") domainError("aborted")(r.reason);
        }
        const winner = won[0]?.value;
        assert.ok(winner);
        assertSame(await store.get("team-a", "s3-writer"), winner);
      });

      it("concurrent read-modify-write updates without an etag all land", async (store, ambient) => {
        await put(store, ambient, accessKeyInput());
        await Promise.all(
          Array.from({ length: 30 }, (_, i) =>
            store.update(
              "team-a",
              "s3-writer",
              (current) =>
                applyUpdate(
                  current,
                  patchOf({ metadata: { ...current.metadata, [`k${i}`]: String(i) } }),
                  ["metadata"],
                  ambient,
                ),
              "",
            ),
          ),
        );
        const got = await store.get("team-a", "s3-writer");
        for (let i = 0; i < 30; i++) assert.equal(got.metadata[`k${i}`], String(i));
      });
    });
  });
}
