/**
 * The IMDSv2 token table as a pure unit: issue/valid with an injected clock,
 * the TTL bounds, expiry, the size bound under a flood (100,000 issues), against a simple
 * reference model (a full table refuses, never evicts), per-peer shares, and
 * that only digests are held.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { inspect } from "node:util";
import { isDomainError } from "../../src/core/errors.js";
import { TokenTable } from "../../src/metadata/ec2/token-table.js";

const T0 = new Date("2026-11-24T10:00:00.000Z");
const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);

/** A small deterministic PRNG (mulberry32), so the model test is repeatable. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("TokenTable", () => {
  test("a token is 256 random bits in base64url, and each is new", () => {
    const table = new TokenTable(16);
    const a = table.issue(60, T0);
    const b = table.issue(60, T0);
    assert.match(a, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(a, "base64url").length, 32);
    assert.notEqual(a, b);
  });

  test("the token bytes come from the injected source", () => {
    const table = new TokenTable(4, (n) => Buffer.alloc(n, 0xab));
    assert.equal(table.issue(1, T0), Buffer.alloc(32, 0xab).toString("base64url"));
  });

  test("valid until its TTL has passed, invalid from then on", () => {
    const table = new TokenTable(16);
    const token = table.issue(60, T0);
    assert.equal(table.valid(token, T0), true);
    assert.equal(table.valid(token, new Date(at(60).getTime() - 1)), true);
    assert.equal(table.valid(token, at(60)), false);
    assert.equal(table.valid(token, at(3600)), false);
  });

  test("TTL bounds: 1 and 21600 are issued; 0, 21601, fractions, NaN are invalid_argument", () => {
    const table = new TokenTable(16);
    assert.equal(table.valid(table.issue(1, T0), T0), true);
    assert.equal(table.valid(table.issue(21_600, T0), at(21_599)), true);
    for (const ttl of [0, -1, 21_601, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(
        () => table.issue(ttl, T0),
        (e: unknown) => isDomainError(e, "invalid_argument"),
      );
    }
  });

  test("unknown, empty and oversized tokens are invalid", () => {
    const table = new TokenTable(16);
    const token = table.issue(60, T0);
    const altered = `${token.slice(0, -1)}${token.endsWith("A") ? "B" : "A"}`;
    assert.equal(table.valid(altered, T0), false);
    assert.equal(table.valid("", T0), false);
    assert.equal(table.valid("x".repeat(10_000), T0), false);
    assert.equal(table.valid(Buffer.alloc(32).toString("base64url"), T0), false);
  });

  test("maxTokens must be a positive integer", () => {
    for (const max of [0, -1, 1.5, Number.NaN]) {
      assert.throws(
        () => new TokenTable(max),
        (e: unknown) => isDomainError(e, "invalid_argument"),
      );
    }
  });

  test("holds only digests: no issued token appears anywhere in the table", () => {
    const table = new TokenTable(8);
    const issued = [table.issue(60, T0), table.issue(120, T0), table.issue(30, T0)];
    const dump = inspect(table, { depth: Number.POSITIVE_INFINITY, showHidden: true });
    for (const token of issued) assert.equal(dump.includes(token), false);
  });

  test("a full table makes room with the oldest token never presented; a used one is never evicted; all used: resource_exhausted", () => {
    const table = new TokenTable(3);
    const used = table.issue(100, T0);
    assert.equal(table.valid(used, T0), true);
    const a = table.issue(10, T0);
    const b = table.issue(50, T0);
    const c = table.issue(70, T0); // the table is full: `a`, the oldest unused, makes room
    assert.equal(table.size, 3);
    assert.equal(table.valid(a, T0), false);
    for (const t of [used, b, c]) assert.equal(table.valid(t, T0), true);
    // Every token has been presented now: nothing may go.
    assert.throws(
      () => table.issue(70, T0),
      (e: unknown) => isDomainError(e, "resource_exhausted"),
    );
    assert.equal(table.size, 3);
    for (const t of [used, b, c]) assert.equal(table.valid(t, T0), true);
    // Room again once one expires.
    assert.equal(table.valid(table.issue(70, at(50)), at(50)), true);
  });

  test("one peer's share is bounded: its own oldest unused token makes room, never another peer's", () => {
    const table = new TokenTable(10, undefined, 3);
    const other = table.issue(60, T0, "10.0.0.2");
    const mine = [0, 1, 2].map(() => table.issue(60, T0, "10.0.0.1"));
    const fourth = table.issue(60, T0, "10.0.0.1");
    assert.equal(table.valid(mine[0] as string, T0), false, "the peer's oldest unused went");
    assert.equal(table.valid(other, T0), true, "another peer's unused token stays");
    for (const t of [...mine.slice(1), fourth]) assert.equal(table.valid(t, T0), true);
    assert.throws(
      () => table.issue(60, T0, "10.0.0.1"),
      (e: unknown) => isDomainError(e, "resource_exhausted"),
    );
    assert.equal(table.valid(table.issue(60, T0, "10.0.0.3"), T0), true);
    // Expiry gives the peer its share back.
    assert.equal(table.valid(table.issue(60, at(60), "10.0.0.1"), at(60)), true);
    assert.throws(
      () => new TokenTable(4, undefined, 0),
      (e: unknown) => isDomainError(e, "invalid_argument"),
    );
  });

  test("expired tokens are dropped when the next one is issued", () => {
    const table = new TokenTable(100);
    for (let i = 0; i < 50; i++) table.issue(1, T0);
    const keeper = table.issue(3600, T0);
    assert.equal(table.size, 51);
    table.issue(1, at(2));
    assert.equal(table.size, 2);
    assert.equal(table.valid(keeper, at(2)), true);
  });

  test("bound: 100,000 unused issues against a full table hold maxTokens, and a used token survives them", () => {
    const max = 4096;
    const table = new TokenTable(max);
    const started = performance.now();
    const early = table.issue(21_600, T0);
    assert.equal(table.valid(early, T0), true);
    for (let i = 0; i < 100_000; i++) {
      table.issue(600, T0);
      if (table.size > max) assert.fail(`size ${table.size} > ${max} after ${i + 1} issues`);
    }
    const ms = performance.now() - started;
    assert.equal(table.size, max);
    assert.equal(table.valid(early, T0), true);
    assert.ok(ms < 10_000, `100,000 issues took ${ms.toFixed(0)} ms`);
  });

  test("matches a reference model under random TTLs, uses and a moving clock", () => {
    const random = prng(20261124);
    const max = 16;
    const table = new TokenTable(max);
    interface Held {
      token: string;
      expiresAtMs: number;
      seq: number;
      used: boolean;
    }
    let model: Held[] = [];
    const all: Held[] = [];
    let nowMs = T0.getTime();
    for (let seq = 0; seq < 5000; seq++) {
      nowMs += Math.floor(random() * 3000);
      const ttl = 1 + Math.floor(random() * 60);
      const now = new Date(nowMs);
      model = model.filter((h) => h.expiresAtMs > nowMs);
      if (model.length >= max) {
        const unused = model.filter((h) => !h.used).sort((x, y) => x.seq - y.seq)[0];
        if (unused === undefined) {
          assert.throws(
            () => table.issue(ttl, now),
            (e: unknown) => isDomainError(e, "resource_exhausted"),
          );
          assert.equal(table.size, model.length);
          continue;
        }
        model = model.filter((h) => h !== unused);
      }
      const held = {
        token: table.issue(ttl, now),
        expiresAtMs: nowMs + ttl * 1000,
        seq,
        used: false,
      };
      model.push(held);
      all.push(held);
      assert.equal(table.size, model.length);
      // Some tokens are presented (which protects them), at random.
      if (random() < 0.5) {
        const h = model[Math.floor(random() * model.length)] as Held;
        assert.equal(table.valid(h.token, now), true);
        h.used = true;
      }
      if (seq % 97 === 0) {
        for (const h of all.slice(-200)) {
          const expected = model.includes(h) && nowMs < h.expiresAtMs;
          assert.equal(table.valid(h.token, now), expected, `token #${h.seq} at step ${seq}`);
          if (expected) h.used = true;
        }
      }
    }
  });
});
