/**
 * IMDS credential fetch (credentials GET with a cached token, as SDKs do)
 * through the real daemon's IMDS listener, against a
 * bare node:http server answering the same bytes, at 1 and 64 connections,
 * driven by autocannon. Sessions come from the fake STS (test/support).
 *
 *   npm run bench -- imds
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import autocannon from "autocannon";
import { CredentialService } from "../gen/credbroker/v1/credential_service_pb.js";
import { startFakeSts } from "../test/support/sts-server.js";
import { startChild, startDaemonChild } from "./child.js";
import type { Bench, Row } from "./table.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const KEY = {
  accessKeyId: "AKIABENCH00000000001",
  secretAccessKey: "bench/secret/KEY00000000000000000000000",
  arn: "arn:aws:iam::123456789012:user/bench",
  account: "123456789012",
};

interface Fetches {
  perSecond: number;
  p99: number;
}

/**
 * Credential fetches per second (GETs with a token taken once, as SDKs
 * cache it) and p99, ms. Not a PUT per fetch: the daemon's token table
 * keeps every token presented until it expires (docs/SECURITY.md), so a PUT
 * per fetch would fill it within a second and measure its 503s.
 */
async function fetches(url: string, connections: number): Promise<Fetches> {
  const put = await fetch(`${url}/latest/api/token`, {
    method: "PUT",
    headers: { "x-aws-ec2-metadata-token-ttl-seconds": "21600" },
  });
  const token = await put.text();
  if (put.status !== 200) throw new Error(`${url}: token PUT answered ${put.status}`);
  const result = await autocannon({
    url,
    connections,
    duration: SECONDS,
    requests: [
      {
        method: "GET",
        path: "/latest/meta-data/iam/security-credentials/bench",
        headers: { "x-aws-ec2-metadata-token": token },
      },
    ],
  });
  if (result.non2xx > 0 || result.errors > 0) {
    throw new Error(`${url}: ${result.non2xx} non-2xx, ${result.errors} errors`);
  }
  return { perSecond: result.requests.average, p99: result.latency.p99 };
}

export const imds: Bench = {
  name: "imds",
  async run(): Promise<Row[]> {
    const sts = await startFakeSts();
    sts.addKey(KEY);
    const dataDir = await mkdtemp(path.join(os.tmpdir(), "credbroker-bench-imds-"));
    const daemon = await startDaemonChild(dataDir, [
      "--sts-endpoint",
      sts.endpoint,
      "--imds-listen",
      "127.0.0.1:0",
      "--imds-credential",
      "bench",
    ]);
    const baseline = await startChild([path.join(here, "imds-baseline.js")], /(http:\/\/\S+)/);
    try {
      const imdsUrl =
        /"url":"(http:\/\/[^"]+)"[^\n]*"msg":"imds listening"/.exec(daemon.out())?.[1] ?? "";
      const token = daemon.token;
      await createClient(
        CredentialService,
        createConnectTransport({ baseUrl: daemon.url, httpVersion: "2" }),
      ).createCredential(
        {
          credential: {
            name: "bench",
            allowedInTasks: true,
            kind: {
              case: "accessKey",
              value: { accessKeyId: KEY.accessKeyId, secretAccessKey: KEY.secretAccessKey },
            },
          },
        },
        { headers: { authorization: `Bearer ${token}` } },
      );
      const rows: Row[] = [];
      for (const connections of [1, 64]) {
        // The median of 3 pairs, alternating which side goes first, so drift hits both.
        const pairs: { base: Fetches; ours: Fetches; ratio: number }[] = [];
        for (let round = 0; round < 3; round++) {
          const first = await fetches(round % 2 === 0 ? baseline.url : imdsUrl, connections);
          const second = await fetches(round % 2 === 0 ? imdsUrl : baseline.url, connections);
          const [base, ours] = round % 2 === 0 ? [first, second] : [second, first];
          pairs.push({ base, ours, ratio: ours.perSecond / base.perSecond });
        }
        pairs.sort((a, b) => a.ratio - b.ratio);
        const { base, ours, ratio } = pairs[1] as (typeof pairs)[number];
        rows.push({
          figure: `IMDS credential fetch (GET, cached token), ${connections} connection${connections > 1 ? "s" : ""}`,
          credbroker: `${Math.round(ours.perSecond)}/s, p99 ${ours.p99} ms`,
          baseline: `${Math.round(base.perSecond)}/s, p99 ${base.p99} ms (bare node:http)`,
          ratio,
          target: connections === 64 ? "≥ 0.6×" : "recorded",
          met: connections === 64 ? ratio >= 0.6 : undefined,
        });
      }
      // One GetSessionToken serves the whole run (sessions are cached until near expiry).
      if (sts.calls.length !== 1) throw new Error(`imds bench: ${sts.calls.length} STS calls`);
      return rows;
    } finally {
      daemon.child.kill("SIGTERM");
      baseline.child.kill("SIGTERM");
      await sts.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  },
};
