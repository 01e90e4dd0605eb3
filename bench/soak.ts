/**
 * The soak: one real daemon under a steady mixed load for SOAK_MINUTES
 * (default 10), outside CI (`npm run soak`).
 *
 * Each second: SignRequest ×200, GetCredential ×40, ListCredentials ×10
 * (pages of 100), IMDS credential fetches ×20 (token PUT + GET), creates ×5
 * and updates ×5, all through real clients (gRPC, Connect, plain HTTP). Every
 * answer is checked; the daemon's resident memory is sampled every 5 s.
 *
 * Holds (exit 1 otherwise):
 * - zero unexpected errors (every call of the mix must succeed);
 * - p99 stable: each op's p99 in the last minute ≤ 2× its p99 in the first
 *   minute after warm-up (plus 2 ms, so sub-millisecond noise cannot fail it);
 * - memory flat after warm-up: the daemon's own memory (RssAnon) at the end
 *   is within 10% + 10 MB of its value at the end of the first minute (the
 *   store grows by ~3,000 credentials, a few MB of LevelDB).
 *
 * Prints a per-minute table (ops, p50/p99 per op, RSS) for docs/BENCHMARKS.md.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createBrokerClient } from "../src/client/broker-client.js";
import { startFakeSts } from "../test/support/sts-server.js";
import { startDaemonChild } from "./child.js";

const MINUTES = Number(process.env.SOAK_MINUTES ?? 10);
const WARM_UP_S = 60;
const RATES = { sign: 200, get: 40, list: 10, imds: 20, create: 5, update: 5 } as const;
type Op = keyof typeof RATES;
const KEY = {
  accessKeyId: "AKIASOAK000000000001",
  secretAccessKey: "soak/secret/KEY0000000000000000000000000",
  arn: "arn:aws:iam::123456789012:user/soak",
  account: "123456789012",
};

/** Latencies (ms) of one op in one minute. */
type Window = Record<Op, number[]>;
const emptyWindow = (): Window => ({
  sign: [],
  get: [],
  list: [],
  imds: [],
  create: [],
  update: [],
});
const quantile = (values: number[], q: number) => {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
};

async function memoryOf(pid: number): Promise<{ rss: number; anon: number }> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rss: kb("VmRSS") / 1024, anon: kb("RssAnon") / 1024 };
}

async function main(): Promise<number> {
  const sts = await startFakeSts();
  sts.addKey(KEY);
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "credbroker-soak-"));
  const daemon = await startDaemonChild(dataDir, [
    ...["--sts-endpoint", sts.endpoint, "--rate-limit", "0"],
    ...["--imds-listen", "127.0.0.1:0", "--imds-credential", "soak"],
  ]);
  const pid = daemon.child.pid ?? 0;
  const imdsUrl = /"url":"(http:\/\/[^"]+)"[^\n]*"msg":"imds listening"/.exec(daemon.out())?.[1];
  const grpc = createBrokerClient({ addr: daemon.url, token: daemon.token });
  const connect = createBrokerClient({
    addr: daemon.url,
    token: daemon.token,
    transport: "connect",
  });
  const errors: string[] = [];
  const windows: Window[] = [];
  const memory: { at: number; rss: number; anon: number }[] = [];
  try {
    await grpc.credentials.createCredential({
      credential: {
        name: "soak",
        allowedInTasks: true,
        allowedScopes: [{ bucket: "reports", prefixes: ["2026/"], actions: ["get_object"] }],
        kind: {
          case: "accessKey",
          value: { accessKeyId: KEY.accessKeyId, secretAccessKey: KEY.secretAccessKey },
        },
      },
    });
    let created = 0;
    const ops: Record<Op, (i: number) => Promise<unknown>> = {
      sign: (i) =>
        (i % 2 === 0 ? grpc : connect).signing.signRequest({
          credential: "soak",
          method: "GET",
          url: `https://reports.s3.eu-west-1.amazonaws.com/2026/q${i % 4}.csv`,
        }),
      get: () => connect.credentials.getCredential({ name: "soak" }),
      list: () => grpc.credentials.listCredentials({ pageSize: 100 }),
      imds: async () => {
        const token = await fetch(`${imdsUrl}/latest/api/token`, {
          method: "PUT",
          headers: { "x-aws-ec2-metadata-token-ttl-seconds": "60" },
        });
        const res = await fetch(`${imdsUrl}/latest/meta-data/iam/security-credentials/soak`, {
          headers: { "x-aws-ec2-metadata-token": await token.text() },
        });
        const body = (await res.json()) as { Code?: string };
        if (res.status !== 200 || body.Code !== "Success") throw new Error(`IMDS ${res.status}`);
      },
      create: () =>
        grpc.credentials.createCredential({
          credential: {
            name: `soak-${created++}`,
            allowedHosts: ["*.amazonaws.com"],
            kind: { case: "token", value: { token: `soak-token-${created}` } },
          },
        }),
      update: (i) =>
        connect.credentials.updateCredential({
          name: `soak-${Math.floor(Math.random() * Math.max(1, created - 5))}`,
          credential: { description: `update ${i}` },
          updateMask: { paths: ["description"] },
        }),
    };

    const started = performance.now();
    const inFlight = new Set<Promise<void>>();
    const memoryTimer = setInterval(() => {
      void memoryOf(pid).then((m) => memory.push({ at: performance.now() - started, ...m }));
    }, 5000);
    // Each second's calls start evenly spread over that second.
    for (let second = 0; second < MINUTES * 60; second++) {
      const minute = Math.floor(second / 60);
      windows[minute] ??= emptyWindow();
      const window = windows[minute] as Window;
      for (const op of Object.keys(RATES) as Op[]) {
        const n = RATES[op];
        for (let k = 0; k < n; k++) {
          const i = second * n + k;
          const at = started + second * 1000 + (k * 1000) / n;
          const call = (async () => {
            const wait = at - performance.now();
            if (wait > 0) await new Promise((r) => setTimeout(r, wait));
            const t0 = performance.now();
            try {
              await ops[op](i);
              window[op].push(performance.now() - t0);
            } catch (err) {
              errors.push(`${op}: ${(err as Error).message}`);
            }
          })();
          inFlight.add(call);
          void call.finally(() => inFlight.delete(call));
        }
      }
      const next = started + (second + 1) * 1000 - 200;
      const wait = next - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    await Promise.all(inFlight);
    clearInterval(memoryTimer);
  } finally {
    daemon.child.kill("SIGTERM");
    await sts.stop();
    await rm(dataDir, { recursive: true, force: true });
  }

  console.log(
    `\nsoak: ${MINUTES} min, ${os.cpus().length} cores, Node ${process.version}; per second: ${Object.entries(
      RATES,
    )
      .map(([op, n]) => `${op} ${n}`)
      .join(", ")}\n`,
  );
  const ops = Object.keys(RATES) as Op[];
  console.log(
    `| minute | calls | ${ops.map((op) => `${op} p50/p99 ms`).join(" | ")} | RSS / RssAnon MB |`,
  );
  console.log(`|---|---|${ops.map(() => "---").join("|")}|---|`);
  windows.forEach((w, minute) => {
    const m = memory.filter((s) => s.at < (minute + 1) * 60_000).at(-1);
    const calls = ops.reduce((sum, op) => sum + w[op].length, 0);
    const cells = ops.map(
      (op) => `${quantile(w[op], 0.5).toFixed(1)} / ${quantile(w[op], 0.99).toFixed(1)}`,
    );
    console.log(
      `| ${minute + 1} | ${calls} | ${cells.join(" | ")} | ${m ? `${m.rss.toFixed(0)} / ${m.anon.toFixed(0)}` : "–"} |`,
    );
  });

  const problems: string[] = [];
  if (errors.length > 0) {
    problems.push(
      `${errors.length} unexpected errors, first: ${[...new Set(errors)].slice(0, 5).join("; ")}`,
    );
  }
  const first = windows[Math.ceil(WARM_UP_S / 60)];
  const last = windows.at(-1);
  if (first !== undefined && last !== undefined && first !== last) {
    for (const op of ops) {
      const [a, b] = [quantile(first[op], 0.99), quantile(last[op], 0.99)];
      if (b > 2 * a + 2) problems.push(`${op} p99 grew from ${a.toFixed(1)} to ${b.toFixed(1)} ms`);
    }
  }
  const warm = memory.find((s) => s.at >= WARM_UP_S * 1000);
  const final = memory.at(-1);
  if (warm !== undefined && final !== undefined && final.anon > warm.anon * 1.1 + 10) {
    problems.push(
      `RssAnon grew from ${warm.anon.toFixed(0)} to ${final.anon.toFixed(0)} MB after warm-up`,
    );
  }
  console.log(problems.length === 0 ? "\nsoak: ok" : `\nsoak: FAILED\n- ${problems.join("\n- ")}`);
  return problems.length === 0 ? 0 : 1;
}

process.exit(await main());
