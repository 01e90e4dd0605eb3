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
import { create } from "@bufbuild/protobuf";
import { Provider } from "../gen/credbroker/v1/credential_pb.js";
import {
  type ImportCredentialsRequest,
  ImportCredentialsRequestSchema,
} from "../gen/credbroker/v1/credential_service_pb.js";
import { encodePageToken } from "../src/api/page-token.js";
import { type BrokerClient, createBrokerClient } from "../src/client/broker-client.js";
import { type Child, startDaemonChild } from "./child.js";
import type { Bench, Row } from "./table.js";

const LARGE = Number(process.env.BENCH_LARGE ?? 1_000_000);
const SMALL = 1_000;
const BATCH = 1_000;
const PER_CALL = 100_000;
const name = (i: number) => `cred-${String(i).padStart(8, "0")}`;

interface Daemon {
  child: Child;
  client: BrokerClient;
  startMs: number;
}

async function serve(dataDir: string): Promise<Daemon> {
  const started = performance.now();
  const child = await startDaemonChild(dataDir, ["--rate-limit", "0"]);
  const startMs = performance.now() - started;
  return { child, client: createBrokerClient({ addr: child.url, token: child.token }), startMs };
}

async function stop(d: Daemon): Promise<void> {
  const exited = new Promise((resolve) => d.child.child.once("exit", resolve));
  d.child.child.kill("SIGTERM");
  await exited;
}

async function* rows(from: number, to: number): AsyncGenerator<ImportCredentialsRequest> {
  for (let start = from; start < to; start += BATCH) {
    const items = [];
    for (let i = start; i < Math.min(to, start + BATCH); i++) {
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
  // A call takes at most 100,000 rows.
  for (let from = 0; from < count; from += PER_CALL) {
    const to = Math.min(count, from + PER_CALL);
    const res = await d.client.credentials.importCredentials(rows(from, to));
    if (Number(res.created) !== to - from) {
      throw new Error(
        `import: ${res.created} of ${to - from} created; ${res.failures[0]?.message}`,
      );
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

interface Memory {
  /** VmRSS, MiB: everything resident, file-backed pages included. */
  rss: number;
  /** RssAnon, MiB: the process's own memory (heap, LevelDB's caches and tables' in-memory parts). */
  anon: number;
  /** Resident pages of LevelDB's memory-mapped table files, MiB (page cache). */
  tables: number;
}

async function memory(pid: number | undefined): Promise<Memory> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1]);
  let tables = 0;
  let inTable = false;
  for (const line of (await readFile(`/proc/${pid}/smaps`, "utf8")).split("\n")) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) inTable = line.endsWith(".ldb");
    else if (inTable && line.startsWith("Rss:")) tables += Number(/(\d+) kB/.exec(line)?.[1]);
  }
  return { rss: kb("VmRSS") / 1024, anon: kb("RssAnon") / 1024, tables: tables / 1024 };
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
      const measured: Memory[] = [];
      for (const [dataDir, count] of [
        [empty, 0],
        [large, LARGE],
      ] as const) {
        const d = await serve(dataDir);
        await exercise(d, count);
        measured.push(await memory(d.child.child.pid));
        await stop(d);
      }
      const [e, l] = measured as [Memory, Memory];
      const mb = (mib: number) => mib * 1.048576;
      rows.push({
        figure: `resident memory serving ${LARGE.toLocaleString("en")} credentials: the daemon's own (RssAnon)`,
        credbroker: `${l.anon.toFixed(0)} MiB (+${mb(l.anon - e.anon).toFixed(0)} MB)`,
        baseline: `${e.anon.toFixed(0)} MiB (empty store)`,
        ratio: l.anon / e.anon,
        target: "≤ +100 MB",
        met: mb(l.anon - e.anon) <= 100,
      });
      rows.push({
        figure: `resident memory serving ${LARGE.toLocaleString("en")} credentials: all of it (VmRSS)`,
        credbroker: `${l.rss.toFixed(0)} MiB, of which LevelDB's mmap'd tables ${l.tables.toFixed(0)} MiB`,
        baseline: `${e.rss.toFixed(0)} MiB (empty store)`,
        ratio: l.rss / e.rss,
        target: "recorded (file pages: page cache)",
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
