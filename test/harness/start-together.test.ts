/**
 * The test harness itself: servers started together are all stopped when one
 * fails to start. Before startTogether, a Swift that did not come up left the
 * daemon started beside it running, and the test file never ended.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { test } from "node:test";
import { type RunningDaemon, removeDir, startDaemon } from "../support/daemon.js";
import { startTogether } from "../support/start-together.js";

test("one start fails: the daemon that started is stopped, and the error is the failure's", async () => {
  let started: RunningDaemon | undefined;
  const daemon = startDaemon().then((d) => {
    started = d;
    return d;
  });
  const broken = new Promise<{ stop(): Promise<void> }>((_, reject) =>
    setTimeout(() => reject(new Error("swift did not come up")), 50),
  );
  await assert.rejects(startTogether([daemon, broken]), /swift did not come up/);
  assert.ok(started, "the daemon had started");
  const child = started.process;
  if (child.exitCode === null && child.signalCode === null) await once(child, "exit");
  assert.ok(child.exitCode !== null || child.signalCode !== null, "the daemon process is gone");
  await removeDir(started.dataDir);
});

test("all start: each result in order, none stopped", async () => {
  const stops: string[] = [];
  const server = (name: string) => ({ name, stop: async () => void stops.push(name) });
  const [a, b] = await startTogether([
    Promise.resolve(server("a")),
    Promise.resolve({ name: "b", close: async () => void stops.push("b") }),
  ]);
  assert.equal(a.name, "a");
  assert.equal(b.name, "b");
  assert.deepEqual(stops, []);
});
