/**
 * A fleet's SignRequest capacity: daemons on one real etcd (Debian's
 * etcd-server, test/support/etcd.ts), driven by h2load with raw gRPC frames,
 * 64 calls in flight in all.
 *
 * - 2 daemons (two h2load runs at once, 32 in flight each, summed) against
 *   1 daemon (one h2load run, 64 in flight), both on etcd.
 * - 1 daemon on etcd against 1 daemon on LevelDB: the store is not on the
 *   hot path once a credential is cached (a heartbeat a second is all etcd
 *   sees), so this should be ~1×.
 *
 * Every figure is the median of BENCH_ROUNDS pairs in alternating order; all
 * daemons must log zero failed RPCs.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { SignRequestRequestSchema } from "../gen/credbroker/v1/signing_service_pb.js";
import { createBrokerClient } from "../src/client/broker-client.js";
import { startEtcd } from "../test/support/etcd.js";
import { grpcFrame, type H2loadRun, h2load } from "../test/support/h2load.js";
import { type DaemonChild, failedRpcs, startDaemonChild } from "./child.js";
import type { Bench, Row } from "./table.js";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SIGN = "/credbroker.v1.SigningService/SignRequest";

/** Calls per second of `daemons` loaded at once, 64 in flight split evenly (16 streams a connection). */
async function load(daemons: DaemonChild[], body: Uint8Array): Promise<number> {
  const connections = 4 / daemons.length;
  const runs: H2loadRun[] = await Promise.all(
    daemons.map((d) =>
      h2load({
        url: `${d.url}${SIGN}`,
        body: grpcFrame(body),
        headers: {
          "content-type": "application/grpc",
          te: "trailers",
          authorization: `Bearer ${d.token}`,
        },
        connections,
        streams: 16,
        seconds: SECONDS,
      }),
    ),
  );
  if (runs.some((r) => r.failed > 0)) throw new Error("fleet bench: h2load saw failed requests");
  return runs.reduce((sum, r) => sum + r.perSecond, 0);
}

/** The median of ROUNDS `ours ÷ base` ratios, run in alternating order. */
async function medianRatio(base: () => Promise<number>, ours: () => Promise<number>) {
  const pairs: { b: number; o: number }[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const first = round % 2 === 0 ? await base() : await ours();
    const second = round % 2 === 0 ? await ours() : await base();
    pairs.push(round % 2 === 0 ? { b: first, o: second } : { b: second, o: first });
  }
  pairs.sort((x, y) => x.o / x.b - y.o / y.b);
  const median = pairs[pairs.length >> 1] as { b: number; o: number };
  return { ...median, ratio: median.o / median.b };
}

export const fleet: Bench = {
  name: "fleet",
  async run() {
    const dir = await mkdtemp(path.join(os.tmpdir(), "credbroker-bench-fleet-"));
    const etcd = await startEtcd();
    const daemons: DaemonChild[] = [];
    try {
      const key = { CREDBROKER_MASTER_KEY: randomBytes(32).toString("base64") };
      const onEtcd = ["--store", "etcd", "--etcd-endpoints", etcd.endpoint];
      const common = ["--rate-limit", "0"];
      const [a, b, level] = await Promise.all([
        startDaemonChild(path.join(dir, "a"), [...common, ...onEtcd], key),
        startDaemonChild(path.join(dir, "b"), [...common, ...onEtcd], key),
        startDaemonChild(path.join(dir, "level"), common),
      ]);
      daemons.push(a, b, level);
      const credential = {
        name: "bench",
        kind: {
          case: "accessKey" as const,
          value: {
            accessKeyId: "AKIAIOSFODNN7EXAMPLE",
            secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
          },
        },
        allowedScopes: [{ bucket: "reports", prefixes: ["2026/"], actions: ["get_object"] }],
      };
      // One create on the fleet (it reaches b through etcd), one on LevelDB.
      for (const d of [a, level]) {
        await createBrokerClient({ addr: d.url, token: d.token }).credentials.createCredential({
          credential,
        });
      }
      const request = create(SignRequestRequestSchema, {
        credential: "bench",
        method: "GET",
        url: "https://reports.s3.eu-west-1.amazonaws.com/2026/q1.csv",
      });
      for (const d of [a, b, level]) {
        await createBrokerClient({ addr: d.url, token: d.token }).signing.signRequest(request);
      }
      const body = toBinary(SignRequestRequestSchema, request);

      const rows: Row[] = [];
      const two = await medianRatio(
        () => load([a], body),
        () => load([a, b], body),
      );
      rows.push({
        figure: "SignRequest throughput on one etcd, 64 in flight, gRPC: 2 daemons",
        credbroker: `${Math.round(two.o)}/s (2 daemons, 32 in flight each)`,
        baseline: `${Math.round(two.b)}/s (1 daemon)`,
        ratio: two.ratio,
        target: "recorded",
      });
      const store = await medianRatio(
        () => load([level], body),
        () => load([a], body),
      );
      rows.push({
        figure: "SignRequest throughput, 64 in flight, gRPC: 1 daemon on etcd",
        credbroker: `${Math.round(store.o)}/s (etcd)`,
        baseline: `${Math.round(store.b)}/s (LevelDB)`,
        ratio: store.ratio,
        target: "recorded",
      });
      const failed = daemons.reduce((sum, d) => sum + failedRpcs(d.out()), 0);
      if (failed > 0) throw new Error(`fleet bench: the daemons logged ${failed} failed RPCs`);
      return rows;
    } finally {
      for (const d of daemons) d.child.kill("SIGTERM");
      await etcd.stop();
      await rm(dir, { recursive: true, force: true });
    }
  },
};
