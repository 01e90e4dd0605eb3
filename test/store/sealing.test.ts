import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { isDomainError } from "../../src/core/errors.js";
import { loadMasterKey } from "../../src/store/master-key.js";
import { deriveDataKey, MASTER_KEY_BYTES, Sealer } from "../../src/store/sealing.js";
import { domainError } from "../core/fixtures.js";

const MASTER_A = Buffer.alloc(MASTER_KEY_BYTES, 0xa1);
const MASTER_B = Buffer.alloc(MASTER_KEY_BYTES, 0xb2);
const KEY_A = deriveDataKey(MASTER_A);
const KEY_B = deriveDataKey(MASTER_B);

const PLAINTEXT = Buffer.from("the quick brown fox: AKIA secret wJalrXUtnFEMI", "utf8");

/** Every rendering of key material a message must never contain. */
function keyRenderings(...keys: Buffer[]): string[] {
  return keys.flatMap((k) => [k.toString("hex"), k.toString("base64"), k.toString("base64url")]);
}

describe("Sealer", () => {
  test("round trip", () => {
    const sealer = new Sealer([KEY_A]);
    const sealed = sealer.seal(PLAINTEXT, "cred/one");
    assert.deepEqual(sealer.open(sealed, "cred/one"), PLAINTEXT);
  });

  test("round trip of an empty plaintext", () => {
    const sealer = new Sealer([KEY_A]);
    assert.deepEqual(sealer.open(sealer.seal(Buffer.alloc(0), "k"), "k"), Buffer.alloc(0));
  });

  test("opens a sealed record given as a subarray of a larger buffer", () => {
    const sealer = new Sealer([KEY_A]);
    const sealed = sealer.seal(PLAINTEXT, "cred/one");
    const padded = Buffer.concat([Buffer.from("xxxx"), sealed, Buffer.from("yyyy")]);
    const view = new Uint8Array(padded.buffer, padded.byteOffset + 4, sealed.length);
    assert.deepEqual(sealer.open(view, "cred/one"), PLAINTEXT);
  });

  test("envelope layout: version 1, key id, nonce, ciphertext, 16-byte tag", () => {
    const sealed = new Sealer([KEY_A]).seal(PLAINTEXT, "cred/one");
    assert.equal(sealed[0], 0x01);
    assert.equal(sealed.subarray(1, 9).toString("hex"), KEY_A.id);
    assert.equal(sealed.length, 1 + 8 + 12 + PLAINTEXT.length + 16);
    assert.equal(Sealer.keyIdOf(sealed), KEY_A.id);
  });

  test("a record opened under another storage key (AAD) is data_loss", () => {
    const sealer = new Sealer([KEY_A]);
    const sealed = sealer.seal(PLAINTEXT, "cred/one");
    assert.throws(() => sealer.open(sealed, "cred/two"), domainError("data_loss", "cred/two"));
    assert.throws(() => sealer.open(sealed, "cred/one "), domainError("data_loss"));
    assert.throws(() => sealer.open(sealed, ""), domainError("data_loss"));
  });

  test("every single flipped byte anywhere in the envelope fails with data_loss", () => {
    const sealer = new Sealer([KEY_A]);
    const sealed = sealer.seal(Buffer.from("tiny"), "cred/one");
    assert.equal(sealed.length, 1 + 8 + 12 + 4 + 16);
    for (let i = 0; i < sealed.length; i++) {
      for (const mask of [0x01, 0x80, 0xff]) {
        const damaged = Buffer.from(sealed);
        damaged[i] = (damaged[i] ?? 0) ^ mask;
        let opened: Buffer | undefined;
        try {
          opened = sealer.open(damaged, "cred/one");
        } catch (err) {
          assert.ok(
            isDomainError(err, "data_loss"),
            `byte ${i} ^ ${mask}: expected data_loss, got ${String(err)}`,
          );
          continue;
        }
        assert.fail(`byte ${i} ^ ${mask}: opened to ${opened.toString("hex")}`);
      }
    }
  });

  test("truncated, extended or empty envelopes fail with data_loss", () => {
    const sealer = new Sealer([KEY_A]);
    const sealed = sealer.seal(Buffer.from("tiny"), "cred/one");
    const variants = [
      Buffer.alloc(0),
      sealed.subarray(0, 1),
      sealed.subarray(0, 1 + 8 + 12 + 15),
      sealed.subarray(0, sealed.length - 1),
      sealed.subarray(1),
      Buffer.concat([sealed, Buffer.of(0)]),
      Buffer.concat([sealed.subarray(0, 21), sealed.subarray(25)]),
    ];
    for (const [i, v] of variants.entries()) {
      assert.throws(() => sealer.open(v, "cred/one"), domainError("data_loss"), `variant ${i}`);
    }
  });

  test("a record sealed under key A does not open with key B; the message names ids, not keys", () => {
    const sealed = new Sealer([KEY_A]).seal(PLAINTEXT, "cred/one");
    assert.throws(
      () => new Sealer([KEY_B]).open(sealed, "cred/one"),
      (err: unknown) => {
        domainError("data_loss", KEY_A.id, KEY_B.id)(err);
        const message = (err as Error).message;
        for (const r of keyRenderings(MASTER_A, MASTER_B, KEY_A.key, KEY_B.key)) {
          assert.ok(!message.includes(r), `message leaks key material: ${message}`);
        }
        return true;
      },
    );
  });

  test("a record claiming key B's id but sealed with A fails authentication", () => {
    const sealed = new Sealer([KEY_A]).seal(PLAINTEXT, "cred/one");
    Buffer.from(KEY_B.id, "hex").copy(sealed, 1);
    assert.throws(() => new Sealer([KEY_B]).open(sealed, "cred/one"), domainError("data_loss"));
  });

  test("a Sealer of [B, A] opens A's records and seals new ones under B", () => {
    const old = new Sealer([KEY_A]).seal(PLAINTEXT, "cred/one");
    const rotated = new Sealer([KEY_B, KEY_A]);
    assert.equal(rotated.currentKeyId, KEY_B.id);
    assert.deepEqual(rotated.open(old, "cred/one"), PLAINTEXT);
    const fresh = rotated.seal(PLAINTEXT, "cred/one");
    assert.equal(Sealer.keyIdOf(fresh), KEY_B.id);
    assert.deepEqual(new Sealer([KEY_B]).open(fresh, "cred/one"), PLAINTEXT);
    assert.throws(() => new Sealer([KEY_A]).open(fresh, "cred/one"), domainError("data_loss"));
  });

  test("ciphertext does not contain the plaintext; two seals differ (random nonce)", () => {
    const sealer = new Sealer([KEY_A]);
    const one = sealer.seal(PLAINTEXT, "cred/one");
    const two = sealer.seal(PLAINTEXT, "cred/one");
    for (const sealed of [one, two]) {
      assert.equal(sealed.indexOf(PLAINTEXT), -1);
      assert.equal(sealed.indexOf(PLAINTEXT.subarray(0, 8)), -1);
    }
    assert.notDeepEqual(one, two);
    assert.notDeepEqual(one.subarray(9, 21), two.subarray(9, 21), "nonces differ");
    assert.deepEqual(sealer.open(one, "cred/one"), sealer.open(two, "cred/one"));
  });

  test("keyIdOf is undefined for what is not an envelope", () => {
    assert.equal(Sealer.keyIdOf(Buffer.alloc(0)), undefined);
    assert.equal(Sealer.keyIdOf(Buffer.alloc(36, 0)), undefined);
    assert.equal(Sealer.keyIdOf(Buffer.alloc(36, 1)), undefined, "too short");
    assert.equal(Sealer.keyIdOf(Buffer.alloc(37, 1)), "0101010101010101");
  });
});

describe("deriveDataKey", () => {
  test("is deterministic", () => {
    const again = deriveDataKey(Buffer.from(MASTER_A));
    assert.equal(again.id, KEY_A.id);
    assert.deepEqual(again.key, KEY_A.key);
  });

  test("ids and keys differ across master keys", () => {
    assert.notEqual(KEY_A.id, KEY_B.id);
    assert.notDeepEqual(KEY_A.key, KEY_B.key);
    const ids = new Set(Array.from({ length: 20 }, () => deriveDataKey(randomBytes(32)).id));
    assert.equal(ids.size, 20);
  });

  test("the id is 16 hex characters; the data key is 32 bytes and not the master key", () => {
    assert.match(KEY_A.id, /^[0-9a-f]{16}$/);
    assert.equal(KEY_A.key.length, 32);
    assert.notDeepEqual(KEY_A.key, MASTER_A);
    assert.ok(!MASTER_A.toString("hex").includes(KEY_A.id));
  });

  test("a master key of the wrong length is invalid_argument", () => {
    for (const n of [0, 16, 31, 33, 64]) {
      assert.throws(() => deriveDataKey(Buffer.alloc(n, 1)), domainError("invalid_argument"));
    }
  });
});

describe("loadMasterKey", () => {
  let dir = "";
  let n = 0;
  /** A path in the temp dir no test used before. */
  const freshFile = (): string => {
    n += 1;
    return path.join(dir, `master-${n}.key`);
  };

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "credbroker-master-key-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("from the environment: base64 of 32 bytes", async () => {
    const key = randomBytes(32);
    const file = freshFile();
    const loaded = await loadMasterKey({ envValue: key.toString("base64"), file, fresh: true });
    assert.equal(loaded.origin, "env");
    assert.deepEqual(loaded.key, key);
    await assert.rejects(stat(file), { code: "ENOENT" }, "no key file written");
  });

  const badEnv: [label: string, value: string][] = [
    ["31 bytes", randomBytes(31).toString("base64")],
    ["33 bytes", randomBytes(33).toString("base64")],
    ["64 bytes", randomBytes(64).toString("base64")],
    ["hex of 32 bytes", randomBytes(32).toString("hex")],
    ["invalid base64", "not-base64!!!secretish-value-1234567890"],
    ["base64url of 32 bytes", Buffer.alloc(32, 0xfb).toString("base64url")],
    ["base64 with a trailing newline", `${randomBytes(32).toString("base64")}\n`],
  ];
  for (const [label, value] of badEnv) {
    test(`an environment value of ${label} is an error that does not echo it`, async () => {
      await assert.rejects(
        loadMasterKey({ envValue: value, file: freshFile(), fresh: true }),
        (err: unknown) => {
          domainError("invalid_argument", "CREDBROKER_MASTER_KEY")(err);
          const message = (err as Error).message;
          assert.ok(!message.includes(value.trim()), `message echoes the value: ${message}`);
          assert.ok(!message.includes(value.trim().slice(0, 12)), message);
          return true;
        },
      );
    });
  }

  test("an empty environment value counts as unset", async () => {
    const loaded = await loadMasterKey({ envValue: "", file: freshFile(), fresh: true });
    assert.equal(loaded.origin, "created");
  });

  test("missing file + fresh: creates a 0600 key file that reads back", async () => {
    const file = freshFile();
    const created = await loadMasterKey({ envValue: undefined, file, fresh: true });
    assert.equal(created.origin, "created");
    assert.equal(created.key.length, 32);
    const st = await stat(file);
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(await readFile(file, "utf8"), `${created.key.toString("base64")}\n`);
    const again = await loadMasterKey({ envValue: undefined, file, fresh: false });
    assert.equal(again.origin, "file");
    assert.deepEqual(again.key, created.key);
  });

  test("missing file + not fresh: failed_precondition, and no file is created", async () => {
    const file = freshFile();
    await assert.rejects(
      loadMasterKey({ envValue: undefined, file, fresh: false }),
      domainError("failed_precondition", file, "CREDBROKER_MASTER_KEY"),
    );
    await assert.rejects(stat(file), { code: "ENOENT" });
  });

  test("an existing file is read back (not replaced), fresh or not", async () => {
    const file = freshFile();
    const key = randomBytes(32);
    await writeFile(file, `${key.toString("base64")}\n`, { mode: 0o600 });
    for (const fresh of [true, false]) {
      const loaded = await loadMasterKey({ envValue: undefined, file, fresh });
      assert.equal(loaded.origin, "file");
      assert.deepEqual(loaded.key, key);
    }
    assert.equal(await readFile(file, "utf8"), `${key.toString("base64")}\n`);
  });

  test("the environment wins over the file", async () => {
    const file = freshFile();
    await writeFile(file, `${randomBytes(32).toString("base64")}\n`, { mode: 0o600 });
    const key = randomBytes(32);
    const loaded = await loadMasterKey({ envValue: key.toString("base64"), file, fresh: false });
    assert.equal(loaded.origin, "env");
    assert.deepEqual(loaded.key, key);
  });

  test("a malformed key file is an error naming the file, not its content", async () => {
    const file = freshFile();
    const content = randomBytes(20).toString("base64");
    await writeFile(file, `${content}\n`, { mode: 0o600 });
    await assert.rejects(loadMasterKey({ envValue: undefined, file, fresh: false }), (err) => {
      domainError("invalid_argument", file)(err);
      assert.ok(!(err as Error).message.includes(content));
      return true;
    });
  });

  test("an unreadable key path (a directory) is failed_precondition", async () => {
    await assert.rejects(
      loadMasterKey({ envValue: undefined, file: dir, fresh: true }),
      domainError("failed_precondition", dir),
    );
  });
});
