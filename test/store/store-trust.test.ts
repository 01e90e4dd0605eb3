/**
 * StoreTrust on a hand-moved clock: when cached copies may answer, when a
 * stale one may serve an unreachable store, and how it fails closed.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DomainError } from "../../src/core/errors.js";
import { StoreTrust } from "../../src/store/store-trust.js";

const down = new DomainError("unavailable", "etcd x is unavailable (unavailable)");

function trustAt(staleLimitMs: number) {
  const clock = { now: 0 };
  const staleNotes: number[] = [];
  const trust = new StoreTrust({
    staleLimitMs,
    confirmWithinMs: 3000,
    clock: () => clock.now,
    onStale: (since) => staleNotes.push(since),
  });
  return { clock, trust, staleNotes };
}

describe("StoreTrust", () => {
  test("trusted while watched and confirmed within confirmWithinMs", () => {
    const { clock, trust } = trustAt(30_000);
    assert.equal(trust.trusted, true);
    clock.now = 2500;
    trust.confirm(2000);
    clock.now = 5000;
    assert.equal(trust.trusted, true, "confirmed 3 s ago");
    clock.now = 5001;
    assert.equal(trust.trusted, false, "unconfirmed for longer: a silent stall is not trusted");
    trust.confirm(5001);
    assert.equal(trust.trusted, true);
    trust.lose();
    assert.equal(trust.trusted, false);
    trust.confirm(5002);
    assert.equal(trust.trusted, false, "a confirmation does not undo a lost watch; regain does");
  });

  test("stale: only for unavailable, only with a cached copy, only within the limit", () => {
    const { clock, trust, staleNotes } = trustAt(30_000);
    trust.lose();
    const notFound = new DomainError("not_found", "gone");
    assert.throws(() => trust.stale("copy", notFound), /gone/, "other errors pass through");
    assert.throws(() => trust.stale(undefined, down), /unavailable/, "nothing cached");
    clock.now = 30_000;
    assert.equal(trust.stale("copy", down), "copy");
    assert.equal(trust.stale("copy", down), "copy");
    assert.deepEqual(staleNotes, [30_000], "noted once per outage");
    clock.now = 30_001;
    assert.throws(
      () => trust.stale("copy", down),
      (err: DomainError) =>
        err.code === "unavailable" &&
        err.message.includes("cached copies serve for 30 s") &&
        err.message.includes("--etcd-stale-limit"),
    );
  });

  test("limit 0 fails closed: no stale copy, the store's error as is", () => {
    const { trust } = trustAt(0);
    trust.lose();
    trust.answering(false);
    assert.equal(trust.instead("copy"), undefined);
    assert.throws(
      () => trust.stale("copy", down),
      (err) => err === down,
    );
  });

  test("instead: a copy without asking the store only once it is known not to answer", () => {
    const { clock, trust } = trustAt(10_000);
    assert.equal(trust.instead("copy"), undefined, "trusted: the caller uses its hit itself");
    trust.lose();
    assert.equal(trust.instead("copy"), undefined, "unwatched but answering: ask the store");
    trust.answering(false);
    assert.equal(trust.instead(undefined), undefined);
    assert.equal(trust.instead("copy"), "copy");
    clock.now = 10_001;
    assert.equal(trust.instead("copy"), undefined, "past the limit: ask the store (and fail)");
  });

  test("regain: trusted again, listeners told, the limit counts from the new confirmation", () => {
    const { clock, trust } = trustAt(1000);
    let regained = 0;
    trust.onRegain(() => regained++);
    trust.lose();
    trust.answering(false);
    clock.now = 60_000;
    trust.regain(59_900);
    assert.equal(regained, 1);
    assert.equal(trust.trusted, true);
    trust.lose();
    clock.now = 60_500;
    assert.equal(trust.stale("copy", down), "copy");
    assert.equal(trust.instead("copy"), undefined, "answering again after regain");
  });

  test("always(): a store only this daemon writes is trusted forever", () => {
    const trust = StoreTrust.always();
    assert.equal(trust.trusted, true);
  });
});
