/**
 * ListCredentials page cost against store size: a page of 100 from the middle
 * of a large namespace versus the same page from a namespace of 1,000. Both
 * stores are built in this run; the ratio is what the figure claims.
 *
 *   npm run bench            (BENCH_LARGE=100000 by default)
 */
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { CredentialSchema, Provider } from "../gen/credbroker/v1/credential_pb.js";
import { type Ambient, prepareNew } from "../src/core/lifecycle.js";
import type { CredentialStore } from "../src/store/credential-store.js";
import { LevelCredentialStore } from "../src/store/level-store.js";
import { deriveDataKey, Sealer } from "../src/store/sealing.js";

const SMALL = 1_000;
const LARGE = Number(process.env.BENCH_LARGE ?? 100_000);
const PAGE = 100;
const ROUNDS = 300;

const ambient: Ambient = { now: () => new Date(), newId: randomUUID };
const name = (i: number) => `cred-${String(i).padStart(8, "0")}`;

async function build(count: number): Promise<{ store: CredentialStore; dir: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "credbroker-bench-"));
  const store = await LevelCredentialStore.open({
    location: dir,
    now: ambient.now,
    sealer: async () => new Sealer([deriveDataKey(randomBytes(32))]),
  });
  const chunk = 1000;
  for (let start = 0; start < count; start += chunk) {
    const n = Math.min(chunk, count - start);
    await Promise.all(
      Array.from({ length: n }, (_, k) =>
        store.create(
          prepareNew(
            create(CredentialSchema, {
              namespace: "bench",
              name: name(start + k),
              // Every third one is GENERIC, so the provider filter skips some.
              provider: (start + k) % 3 === 0 ? Provider.GENERIC : Provider.AWS,
              kind: {
                case: "accessKey",
                value: { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "bench-secret" },
              },
            }),
            ambient,
          ),
        ),
      ),
    );
  }
  return { store, dir };
}

/** Median microseconds of one page read from the middle. */
async function pageMicros(
  store: CredentialStore,
  count: number,
  provider: Provider,
): Promise<number> {
  const after = name(Math.floor(count / 2));
  const samples: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const t = process.hrtime.bigint();
    const page = await store.list({ namespace: "bench", provider, limit: PAGE, after });
    samples.push(Number(process.hrtime.bigint() - t) / 1000);
    if (page.credentials.length !== PAGE) throw new Error("short page");
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)] ?? Number.NaN;
}

const small = await build(SMALL);
const t0 = Date.now();
const large = await build(LARGE);
const fillSeconds = (Date.now() - t0) / 1000;

const rows: string[][] = [];
for (const [label, provider] of [
  ["all providers", Provider.UNSPECIFIED],
  ["provider filter", Provider.AWS],
] as const) {
  const base = await pageMicros(small.store, SMALL, provider);
  const big = await pageMicros(large.store, LARGE, provider);
  rows.push([
    `ListCredentials page of ${PAGE} in the middle of ${LARGE.toLocaleString("en")} (${label})`,
    `${big.toFixed(0)} µs`,
    `${base.toFixed(0)} µs (at ${SMALL.toLocaleString("en")})`,
    `${(big / base).toFixed(2)}×`,
    "≤ 2×",
  ]);
}

console.log(`\n| figure | credbroker | baseline, same run | ratio | target |`);
console.log(`|---|---|---|---|---|`);
for (const r of rows) console.log(`| ${r.join(" | ")} |`);
console.log(
  `\n(${LARGE.toLocaleString("en")} sealed credentials written in ${fillSeconds.toFixed(1)} s, ` +
    `${Math.round(LARGE / fillSeconds)} synced creates/s; node ${process.version}, ${os.cpus().length} cores)`,
);

for (const s of [small, large]) {
  await s.store.close();
  await rm(s.dir, { recursive: true, force: true });
}
