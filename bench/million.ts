/**
 * A million credentials: three data dirs filled through the bulk import RPC
 * (empty, 1,000, and BENCH_LARGE, default 1,000,000, all in one namespace),
 * then the daemon started on each:
 *
 * - ListCredentials, a page of 100 from the middle of the large store, vs
 *   the same page at 1,000 (median of many calls over gRPC);
 * - time from `credbroker serve` to its "listening" line, large vs empty
 *   (median of 3 starts; start-up must not scan the store);
 * - resident memory after the same reads, large vs empty.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { Provider } from "../gen/credbroker/v1/credential_pb.js";
import {
  type ImportCredentialsRequest,
  ImportCredentialsRequestSchema,
} from "../gen/credbroker/v1/credential_service_pb.js";
import { encodePageToken } from "../src/api/page-token.js";
import { type BrokerClient, createBrokerClient } from "../src/client/broker-client.js";
import { type Child, startChild } from "./child.js";
import type { Bench, Row } from "./table.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const LARGE = Number(process.env.BENCH_LARGE ?? 1_000_000);
const SMALL = 1_000;
const BATCH = 1_000;
const name = (i: number) => `cred-${String(i).padStart(8, "0")}`;

interface Daemon {
  child: Child;
  client: BrokerClient;
  startMs: number;
}

async function serve(dataDir: string): Promise<Daemon> {
  const started = performance.now();
  const child = await startChild(
    [
      path.join(here, "../src/cli/main.js"),
      "serve",
      "--listen",
      "127.0.0.1:0",
      "--data-dir",
      dataDir,
      "--rate-limit",
      "0",
    ],
    /"url":"(http:\/\/[^"]+)"[^\n]*"msg":"listening"/,
  );
  const startMs = performance.now() - started;
  const token = (await readFile(path.join(dataDir, "admin.token"), "utf8")).trim();
  return { child, client: createBrokerClient({ addr: child.url, token }), startMs };
}

async function stop(d: Daemon): Promise<void> {
  const exited = new Promise((resolve) => d.child.child.once("exit", resolve));
  d.child.child.kill("SIGTERM");
  await exited;
}

async function* rows(count: number): AsyncGenerator<ImportCredentialsRequest> {
  for (let start = 0; start < count; start += BATCH) {
    const items = [];
    for (let i = start; i < Math.min(count, start + BATCH); i++) {
      items.push({
        line: BigInt(i + 1),
        credential: {
          namespace: "bench",
          name: name(i),
          // Every third one is GENERIC, so a provider filter has to skip some.
          provider: i % 3 === 0 ? Provider.GENERIC : Provider.AWS,
          kind: {
            case: "accessKey" as const,
            value: { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: `bench-secret-${i}` },
          },
          allowedHosts: ["*.amazonaws.com"],
        },
      });
    }
    yield create(ImportCredentialsRequestSchema, { items });
  }
}

/** Fills a fresh data dir with `count` credentials; seconds taken. */
async function fill(dataDir: string, count: number): Promise<number> {
  const d = await serve(dataDir);
  const t = performance.now();
  if (count > 0) {
    const res = await d.client.credentials.importCredentials(rows(count));
    if (Number(res.created) !== count) {
      throw new Error(`import: ${res.created} of ${count} created; ${res.failures[0]?.message}`);
    }
  }
  const seconds = (performance.now() - t) / 1000;
  await stop(d);
  return seconds;
}

/** Median µs of a ListCredentials page of 100 read from the middle of `count`. */
async function pageMicros(d: Daemon, count: number, provider: Provider): Promise<number> {
  const pageToken = encodePageToken({ namespace: "bench", provider, after: name(count / 2) });
  const samples: number[] = [];
  for (let i = 0; i < 300; i++) {
    const t = performance.now();
    const page = await d.client.credentials.listCredentials({
      namespace: "bench",
      provider,
      pageSize: 100,
      pageToken,
    });
    samples.push((performance.now() - t) * 1000);
    if (page.credentials.length !== 100) throw new Error("short page");
  }
  samples.sort((a, b) => a - b);
  return samples[samples.length >> 1] ?? Number.NaN;
}

/** Reads before the large daemon's memory is measured: 2,000 gets spread over the store. */
async function exercise(d: Daemon, count: number): Promise<void> {
  for (let i = 0; i < 2_000 && count > 0; i++) {
    await d.client.credentials.getCredential({
      namespace: "bench",
      name: name((i * 7919) % count),
    });
  }
}

async function rssMiB(pid: number | undefined): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) / 1024;
}

async function medianStart(dataDir: string): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const d = await serve(dataDir);
    times.push(d.startMs);
    await stop(d);
  }
  times.sort((a, b) => a - b);
  return times[1] ?? Number.NaN;
}

export const million: Bench = {
  name: "million",
  async run(): Promise<Row[]> {
    const dir = await mkdtemp(path.join(os.tmpdir(), "credbroker-bench-million-"));
    const [empty, small, large] = ["empty", "small", "large"].map((n) => path.join(dir, n)) as [
      string,
      string,
      string,
    ];
    try {
      await fill(empty, 0);
      await fill(small, SMALL);
      const fillSeconds = await fill(large, LARGE);
      process.stderr.write(
        `  imported ${LARGE.toLocaleString("en")} in ${fillSeconds.toFixed(1)} s (${Math.round(LARGE / fillSeconds)}/s)\n`,
      );
      const rows: Row[] = [];
      const [smallD, largeD] = [await serve(small), await serve(large)];
      try {
        for (const [label, provider] of [
          ["all providers", Provider.UNSPECIFIED],
          ["provider filter", Provider.AWS],
        ] as const) {
          const base = await pageMicros(smallD, SMALL, provider);
          const big = await pageMicros(largeD, LARGE, provider);
          rows.push({
            figure: `ListCredentials page of 100 in the middle of ${LARGE.toLocaleString("en")} (${label})`,
            credbroker: `${big.toFixed(0)} µs`,
            baseline: `${base.toFixed(0)} µs (same page at ${SMALL.toLocaleString("en")})`,
            ratio: big / base,
            target: "≤ 2×",
            met: big / base <= 2,
          });
        }
      } finally {
        await stop(smallD);
        await stop(largeD);
      }
      const emptyStart = await medianStart(empty);
      const largeStart = await medianStart(large);
      rows.push({
        figure: `ready to serve after start, ${LARGE.toLocaleString("en")} credentials`,
        credbroker: `${largeStart.toFixed(0)} ms`,
        baseline: `${emptyStart.toFixed(0)} ms (empty store)`,
        ratio: largeStart / emptyStart,
        target: "≤ 2× and ≤ 1 s",
        met: largeStart / emptyStart <= 2 && largeStart <= 1000,
      });
      const memory: number[] = [];
      for (const [dataDir, count] of [
        [empty, 0],
        [large, LARGE],
      ] as const) {
        const d = await serve(dataDir);
        await exercise(d, count);
        memory.push(await rssMiB(d.child.child.pid));
        await stop(d);
      }
      const [emptyRss = 0, largeRss = 0] = memory;
      rows.push({
        figure: `resident memory serving ${LARGE.toLocaleString("en")} credentials`,
        credbroker: `${largeRss.toFixed(0)} MiB`,
        baseline: `${emptyRss.toFixed(0)} MiB (empty store)`,
        ratio: largeRss / emptyRss,
        target: "≤ +100 MB",
        met: (largeRss - emptyRss) * 1.048576 <= 100,
      });
      rows.push({
        figure: `bulk import of ${LARGE.toLocaleString("en")} credentials (ImportCredentials, batches of ${BATCH})`,
        credbroker: `${fillSeconds.toFixed(1)} s, ${Math.round(LARGE / fillSeconds)}/s`,
        baseline: "–",
        ratio: Number.NaN,
        target: "recorded",
      });
      return rows;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
};
