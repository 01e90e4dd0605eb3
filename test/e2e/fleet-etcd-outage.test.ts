/**
 * A fleet when etcd is unreachable (docs/ARCHITECTURE.md, "When etcd is
 * unreachable"): two real daemons on one real etcd, one with a short stale
 * limit (--etcd-stale-limit 6) and one that fails closed (0).
 *
 * - etcd frozen (SIGSTOP: connections stay open, nothing answers, as in a
 *   silent partition): the first daemon keeps signing with what it had read,
 *   quickly, until the limit, then fails `unavailable` saying why; the second
 *   fails `unavailable` within a few seconds; writes fail `unavailable`;
 *   thawed, both sign and write again.
 * - etcd killed (SIGKILL) and started again in the middle of a load of
 *   creates and updates through both daemons: every acknowledged write is
 *   there afterwards, and every failure was `unavailable`.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { type EtcdServer, startEtcd } from "../support/etcd.js";
import { type Fleet, startFleet } from "../support/fleet.js";

const SECRET = "outage/secret/KEY000000000000000000000000";
const STALE_LIMIT_S = 6;
/** Where signing requests point (never sent: signing needs no STS). */
const URL = "http://127.0.0.1:9/";

const codeOf = (p: Promise<unknown>): Promise<Code | "ok"> =>
  p.then(
    () => "ok" as const,
    (e: unknown) => ConnectError.from(e).code,
  );
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("a fleet while etcd is unreachable", () => {
  let etcd: EtcdServer;
  let fleet: Fleet;

  before(async () => {
    etcd = await startEtcd();
    fleet = await startFleet({
      etcd,
      size: 2,
      prefix: "/outage-test/",
      argsOf: (i) => ["--etcd-stale-limit", i === 0 ? String(STALE_LIMIT_S) : "0"],
    });
  });

  after(async () => {
    etcd?.resume();
    await fleet?.stop();
    await etcd?.stop();
  });

  test(`etcd frozen: cached credentials sign for at most ${STALE_LIMIT_S} s (or not at all with limit 0), writes fail unavailable, then all recovers`, async (t) => {
    await fleet.createKey(0, "warm", "AKIAOUTAGEWARM000001", SECRET);
    for (const on of [0, 1]) for (let i = 0; i < 3; i++) await fleet.sign(on, "warm", URL);

    etcd.pause();
    const frozen = performance.now();
    const since = () => performance.now() - frozen;
    try {
      // The stale limit counts from the last confirmation (a heartbeat, about
      // 1 s before the freeze): signing goes on, without waiting on etcd, for 3 s.
      let slowest = 0;
      while (since() < 3000) {
        const started = performance.now();
        const signed = await fleet.sign(0, "warm", URL);
        slowest = Math.max(slowest, performance.now() - started);
        assert.ok(signed.headers.some((h) => h.name === "authorization"));
        await sleep(50);
      }
      t.diagnostic(`slowest signature while etcd was frozen: ${slowest.toFixed(1)} ms`);
      assert.ok(slowest < 1000, `a stale-served signature took ${slowest} ms`);

      // Limit 0 fails closed once the heartbeat goes unanswered (≤ 2 s), within a call's timeout.
      assert.equal(await codeOf(fleet.sign(1, "warm", URL)), Code.Unavailable);
      // A write cannot be made.
      const write = performance.now();
      assert.equal(
        await codeOf(fleet.createKey(0, "during", "AKIAOUTAGEDURING0001", SECRET)),
        Code.Unavailable,
      );
      t.diagnostic(`a write failed unavailable after ${(performance.now() - write).toFixed(0)} ms`);

      // Past the limit the first daemon fails closed too, saying why.
      while (since() < (STALE_LIMIT_S + 0.5) * 1000) await sleep(100);
      const err = await fleet.sign(0, "warm", URL).then(
        () => assert.fail("signed past the stale limit"),
        (e: unknown) => ConnectError.from(e),
      );
      assert.equal(err.code, Code.Unavailable, err.message);
      assert.match(err.message, /--etcd-stale-limit/);
    } finally {
      etcd.resume();
    }

    // Thawed: both sign and write again, within a few heartbeats.
    const thawed = performance.now();
    for (const on of [0, 1]) {
      for (;;) {
        if ((await codeOf(fleet.sign(on, "warm", URL))) === "ok") break;
        assert.ok(performance.now() - thawed < 15_000, `daemon ${on} does not sign again`);
        await sleep(100);
      }
    }
    await fleet.createKey(1, "after", "AKIAOUTAGEAFTER00001", SECRET);
    t.diagnostic(`signing again ${(performance.now() - thawed).toFixed(0)} ms after the thaw`);
    assert.match(fleet.daemons[0]?.output() ?? "", /serving cached credentials and callers/);
    assert.ok(!(fleet.daemons[0]?.output() ?? "").includes(SECRET));
  });

  test("etcd killed and restarted in the middle of a load: no acknowledged write is lost", async (t) => {
    const WORKERS = 6;
    const acked = new Map<string, number>(); // credential → the last acknowledged version
    const failures = new Map<Code, number>();
    let stop = false;
    let ackedWhileDown = 0;
    let down = false;
    const worker = async (w: number) => {
      const on = w % 2;
      for (let n = 0; !stop; n++) {
        const name = `w${w}-${n}`;
        const outcome = await codeOf(
          fleet.createKey(
            on,
            name,
            `AKIAOUTAGE${String(w).padStart(2, "0")}${String(n).padStart(8, "0")}`,
            SECRET,
          ),
        );
        if (outcome === "ok") {
          acked.set(name, 0);
          if (down) ackedWhileDown++;
          // …then a few updates of it, through the other daemon.
          for (let v = 1; v <= 3 && !stop; v++) {
            const updated = await codeOf(
              fleet.creds[1 - on]?.updateCredential({
                name,
                credential: { description: `v${v}` },
                updateMask: { paths: ["description"] },
              }) ?? Promise.reject(new Error("no client")),
            );
            if (updated !== "ok") {
              failures.set(updated, (failures.get(updated) ?? 0) + 1);
              break;
            }
            acked.set(name, v);
          }
        } else {
          failures.set(outcome, (failures.get(outcome) ?? 0) + 1);
          await sleep(50);
        }
      }
    };
    const load = Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
    await sleep(1500);
    const before = acked.size;
    await etcd.kill("SIGKILL");
    down = true;
    await sleep(1500);
    down = false;
    await etcd.start();
    const restarted = acked.size;
    await sleep(2500);
    stop = true;
    await load;

    t.diagnostic(
      `acknowledged credentials: ${before} before the kill, ${restarted} by the restart, ${acked.size} in all; failures: ${JSON.stringify(Object.fromEntries(failures))}`,
    );
    assert.ok(before > 0, "writes were acknowledged before the kill");
    assert.ok(acked.size > restarted, "writes are acknowledged again after the restart");
    assert.ok(
      ackedWhileDown <= WORKERS,
      "nothing is acknowledged while etcd is down (but writes in flight)",
    );
    for (const code of failures.keys())
      assert.equal(code, Code.Unavailable, `failed with ${Code[code]}`);

    // Every acknowledged create reads back on both daemons, at least at its acknowledged version.
    for (const [name, version] of acked) {
      for (const on of [0, 1]) {
        const got = await fleet.creds[on]?.getCredential({ name });
        const stored = got?.credential?.description ?? "";
        const seen = stored === "" ? 0 : Number(stored.slice(1));
        assert.ok(
          seen >= version,
          `${name}: v${version} was acknowledged, daemon ${on} reads "${stored}"`,
        );
      }
    }
    // …and its sealed secret still opens: a sample signs.
    const sample = [...acked.keys()].filter((_, i) => i % 25 === 0);
    for (const name of sample) await fleet.sign(0, name, URL);
  });
});
