/**
 * ForwardRequest throughput: h2load sends ForwardRequest (Connect unary,
 * 64 in flight: 4 connections × 16 streams) to the real daemon, which GETs
 * a ~100-byte answer from a local node:http upstream (bench/forward-upstream.ts,
 * its own process) with a bearer token credential, over its undici pool;
 * the baseline, in the same run, is this process calling the same upstream
 * directly with an undici Pool (keep-alive), 64 in flight. Each figure is
 * the median of BENCH_ROUNDS (default 5) pairs, alternating which goes first.
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import { Pool } from "undici";
import { TokenPlacement } from "../gen/credbroker/v1/credential_pb.js";
import { ForwardRequestRequestSchema } from "../gen/credbroker/v1/signing_service_pb.js";
import { createBrokerClient } from "../src/client/broker-client.js";
import { h2load } from "../test/support/h2load.js";
import { type Child, failedRpcs, startChild, startDaemonChild } from "./child.js";
import { load } from "./load.js";
import type { Bench, Row } from "./table.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const IN_FLIGHT = 64;
const FORWARD = "/credbroker.v1.SigningService/ForwardRequest";

interface Side {
  perSecond: number;
  p99: number;
}

export const forward: Bench = {
  name: "forward",
  async run(): Promise<Row[]> {
    const dir = await mkdtemp(path.join(os.tmpdir(), "credbroker-bench-forward-"));
    const children: Child[] = [];
    const direct: Pool[] = [];
    try {
      const upstream = await startChild([path.join(here, "forward-upstream.js")], /(http:\/\/\S+)/);
      children.push(upstream);
      const daemon = await startDaemonChild(path.join(dir, "data"), ["--rate-limit", "0"]);
      children.push(daemon);
      const client = createBrokerClient({ addr: daemon.url, token: daemon.token });
      await client.credentials.createCredential({
        credential: {
          name: "bench",
          kind: {
            case: "token",
            value: { token: "tok_BENCHsecret0123456789abcdef", placement: TokenPlacement.BEARER },
          },
          allowedHosts: ["127.0.0.1"],
        },
      });
      const url = `${upstream.url}/v1/items/0001`;
      const request = create(ForwardRequestRequestSchema, {
        credential: "bench",
        method: "GET",
        url,
      });
      // One call checked end to end: the upstream's answer comes back.
      const sample = await client.signing.forwardRequest(request);
      const expected = Buffer.from(sample.body).toString("utf8");
      if (sample.status !== 200 || !expected.includes('"status":"ok"')) {
        throw new Error(`forward bench: the sample forward answered ${sample.status}`);
      }

      const forwarded = async (): Promise<Side> => {
        const run = await h2load({
          url: `${daemon.url}${FORWARD}`,
          body: toBinary(ForwardRequestRequestSchema, request),
          headers: {
            "content-type": "application/proto",
            "connect-protocol-version": "1",
            authorization: `Bearer ${daemon.token}`,
          },
          connections: 4,
          streams: IN_FLIGHT / 4,
          seconds: SECONDS,
        });
        if (run.failed > 0) throw new Error(`forward bench: ${run.failed} forwards failed`);
        return run;
      };
      const pool = new Pool(upstream.url, { connections: IN_FLIGHT });
      direct.push(pool);
      const call = async () => {
        const res = await pool.request({
          method: "GET",
          path: "/v1/items/0001",
          headers: { authorization: "Bearer tok_BENCHsecret0123456789abcdef" },
        });
        const text = await res.body.text();
        if (res.statusCode !== 200 || text !== expected) {
          throw new Error(`forward bench: the direct call answered ${res.statusCode}`);
        }
      };
      const directly = () => load(call, IN_FLIGHT, SECONDS);

      const failedBefore = failedRpcs(daemon.out());
      const pairs: { b: Side; o: Side; ratio: number }[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        let b: Side;
        let o: Side;
        if (round % 2 === 0) {
          b = await directly();
          o = await forwarded();
        } else {
          o = await forwarded();
          b = await directly();
        }
        const ratio = o.perSecond / b.perSecond;
        process.stderr.write(
          `forward round ${round + 1}: forwarded ${Math.round(o.perSecond)}/s, direct ${Math.round(b.perSecond)}/s, ${ratio.toFixed(2)}×\n`,
        );
        pairs.push({ b, o, ratio });
      }
      const failed = failedRpcs(daemon.out()) - failedBefore;
      if (failed > 0) throw new Error(`forward bench: the daemon logged ${failed} failed RPCs`);
      pairs.sort((x, y) => x.ratio - y.ratio);
      const { b, o, ratio } = pairs[pairs.length >> 1] as (typeof pairs)[number];
      return [
        {
          figure: `ForwardRequest throughput, GET of ${expected.length} bytes from a local node:http upstream, ${IN_FLIGHT} in flight, Connect protocol`,
          credbroker: `${Math.round(o.perSecond)}/s (p99 ${o.p99.toFixed(1)} ms)`,
          baseline: `${Math.round(b.perSecond)}/s (p99 ${b.p99.toFixed(1)} ms, direct, undici Pool keep-alive)`,
          ratio,
          target: "≥ 0.5×",
          met: ratio >= 0.5,
        },
      ];
    } finally {
      await Promise.all(direct.map((p) => p.destroy()));
      for (const child of children) child.child.kill("SIGTERM");
      await rm(dir, { recursive: true, force: true });
    }
  },
};
