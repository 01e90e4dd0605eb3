/**
 * Server capacity and latency of the hot RPCs, driven by h2load (a C load
 * generator, so the client is not the bottleneck) with raw gRPC and Connect
 * frames: the real daemon (a child process) against a bare node:http2
 * server answering the same bytes with the same framing (bench/h2-echo.ts).
 * connect-node answering a canned SignRequest (bench/echo-server.ts) is
 * measured the same way, for scale: it is the framework the fast unary path
 * steps around. Each figure is the median of BENCH_ROUNDS (default 5)
 * baseline/credbroker pairs run back to back in alternating order, so drift
 * in the machine's speed hits both sides.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import http2 from "node:http2";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { create, type DescMessage, type MessageShape, toBinary } from "@bufbuild/protobuf";
import {
  GetCredentialRequestSchema,
  GetCredentialResponseSchema,
} from "../gen/credbroker/v1/credential_service_pb.js";
import {
  SignRequestRequestSchema,
  SignRequestResponseSchema,
} from "../gen/credbroker/v1/signing_service_pb.js";
import { createBrokerClient } from "../src/client/broker-client.js";
import { grpcFrame, type H2loadRun, h2load } from "../test/support/h2load.js";
import { type Child, startChild, startDaemonChild } from "./child.js";
import type { Bench, Row } from "./table.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
/** Each figure is this many baseline/credbroker pairs, alternating which goes first; the median pair is reported. */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

/** Runs `base` and `ours` ROUNDS times, alternating the order (drift hits both), and returns the pair with the median `ratio`. */
async function medianPair(
  base: () => Promise<H2loadRun>,
  ours: () => Promise<H2loadRun>,
  ratio: (b: H2loadRun, o: H2loadRun) => number,
): Promise<{ b: H2loadRun; o: H2loadRun; ratio: number }> {
  const pairs: { b: H2loadRun; o: H2loadRun; ratio: number }[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    let b: H2loadRun;
    let o: H2loadRun;
    if (round % 2 === 0) {
      b = await base();
      o = await ours();
    } else {
      o = await ours();
      b = await base();
    }
    pairs.push({ b, o, ratio: ratio(b, o) });
  }
  pairs.sort((x, y) => x.ratio - y.ratio);
  return pairs[pairs.length >> 1] as { b: H2loadRun; o: H2loadRun; ratio: number };
}
const perSecond = (b: H2loadRun, o: H2loadRun) => o.perSecond / b.perSecond;
const SIGN = "/credbroker.v1.SigningService/SignRequest";
const GET = "/credbroker.v1.CredentialService/GetCredential";

type Protocol = "grpc" | "connect";

const protocolHeaders: Record<Protocol, Record<string, string>> = {
  grpc: { "content-type": "application/grpc", te: "trailers" },
  connect: { "content-type": "application/proto", "connect-protocol-version": "1" },
};

/** One call over raw HTTP/2; throws unless it succeeded (HTTP 200 and, for gRPC, grpc-status 0). */
async function sample(
  url: string,
  procedure: string,
  protocol: Protocol,
  body: Uint8Array,
  token: string,
) {
  const session = http2.connect(url);
  try {
    await new Promise<void>((resolve, reject) => {
      const req = session.request({
        ":method": "POST",
        ":path": procedure,
        authorization: `Bearer ${token}`,
        ...protocolHeaders[protocol],
      });
      let status = 0;
      let grpcStatus = protocol === "grpc" ? "" : "0";
      req.on("response", (h) => {
        status = Number(h[":status"]);
        grpcStatus = String(h["grpc-status"] ?? grpcStatus);
      });
      req.on("trailers", (h) => {
        grpcStatus = String(h["grpc-status"] ?? grpcStatus);
      });
      req.resume();
      req.on("end", () =>
        status === 200 && grpcStatus === "0"
          ? resolve()
          : reject(
              new Error(`${procedure} over ${protocol}: HTTP ${status}, grpc-status ${grpcStatus}`),
            ),
      );
      req.on("error", reject);
      req.end(protocol === "grpc" ? grpcFrame(body) : body);
    });
  } finally {
    session.close();
  }
}

export const rpc: Bench = {
  name: "rpc",
  async run() {
    const dir = await mkdtemp(path.join(os.tmpdir(), "credbroker-bench-rpc-"));
    const children: Child[] = [];
    try {
      const daemon = await startDaemonChild(path.join(dir, "data"), ["--rate-limit", "0"]);
      children.push(daemon);
      const token = daemon.token;
      const client = createBrokerClient({ addr: daemon.url, token });
      await client.credentials.createCredential({
        credential: {
          name: "bench",
          kind: {
            case: "accessKey",
            value: {
              accessKeyId: "AKIAIOSFODNN7EXAMPLE",
              secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            },
          },
          allowedScopes: [{ bucket: "reports", prefixes: ["2026/"], actions: ["get_object"] }],
        },
      });
      const signReq = create(SignRequestRequestSchema, {
        credential: "bench",
        method: "GET",
        url: "https://reports.s3.eu-west-1.amazonaws.com/2026/q1.csv",
      });
      const getReq = create(GetCredentialRequestSchema, { name: "bench" });

      /** A bare echo answering with a real response's bytes. */
      const echoOf = async <O extends DescMessage>(schema: O, message: MessageShape<O>) => {
        const file = path.join(dir, `${schema.typeName}.bin`);
        await writeFile(file, toBinary(schema, message));
        const echo = await startChild([path.join(here, "h2-echo.js"), file], /(http:\/\/\S+)/);
        children.push(echo);
        return echo.url;
      };
      const signEcho = await echoOf(
        SignRequestResponseSchema,
        await client.signing.signRequest(signReq),
      );
      const getEcho = await echoOf(
        GetCredentialResponseSchema,
        await client.credentials.getCredential(getReq),
      );
      const connectNode = await startChild([path.join(here, "echo-server.js")], /(http:\/\/\S+)/);
      children.push(connectNode);

      const signBody = toBinary(SignRequestRequestSchema, signReq);
      const getBody = toBinary(GetCredentialRequestSchema, getReq);
      for (const protocol of ["grpc", "connect"] as const) {
        await sample(daemon.url, SIGN, protocol, signBody, token);
      }
      await sample(daemon.url, GET, "grpc", getBody, token);

      const load = (
        url: string,
        procedure: string,
        protocol: Protocol,
        body: Uint8Array,
        inFlight: 1 | 64,
      ): Promise<H2loadRun> =>
        h2load({
          url: `${url}${procedure}`,
          body: protocol === "grpc" ? grpcFrame(body) : body,
          headers: { ...protocolHeaders[protocol], authorization: `Bearer ${token}` },
          // 64 in flight: 4 connections of 16 streams, as a few client processes would.
          connections: inFlight === 1 ? 1 : 4,
          streams: inFlight === 1 ? 1 : 16,
          seconds: SECONDS,
        });
      const failedBefore = failedRpcs(daemon.out());
      const rows: Row[] = [];
      const throughput = async (
        figure: string,
        url: string,
        base: string,
        procedure: string,
        protocol: Protocol,
        body: Uint8Array,
        target: number,
        baseLabel = "bare node:http2 echo",
      ) => {
        const { b, o, ratio } = await medianPair(
          () => load(base, procedure, protocol, body, 64),
          () => load(url, procedure, protocol, body, 64),
          perSecond,
        );
        rows.push({
          figure,
          credbroker: `${Math.round(o.perSecond)}/s (p99 ${o.p99.toFixed(1)} ms)`,
          baseline: `${Math.round(b.perSecond)}/s (${baseLabel})`,
          ratio,
          target: `≥ ${target}×`,
          met: ratio >= target && o.failed === 0,
        });
      };
      await throughput(
        "SignRequest throughput, 64 in flight, gRPC",
        daemon.url,
        signEcho,
        SIGN,
        "grpc",
        signBody,
        0.3,
      );
      await throughput(
        "SignRequest throughput, 64 in flight, Connect protocol",
        daemon.url,
        signEcho,
        SIGN,
        "connect",
        signBody,
        0.3,
      );
      const latency = await medianPair(
        () => load(signEcho, SIGN, "grpc", signBody, 1),
        () => load(daemon.url, SIGN, "grpc", signBody, 1),
        (b, o) => o.p99 / b.p99,
      );
      const { b: b1, o: o1 } = latency;
      rows.push({
        figure: "SignRequest p99 latency, 1 in flight, gRPC",
        credbroker: `${o1.p99.toFixed(3)} ms (p50 ${o1.p50.toFixed(3)})`,
        baseline: `${b1.p99.toFixed(3)} ms (p50 ${b1.p50.toFixed(3)}, bare echo)`,
        ratio: latency.ratio,
        target: "≤ 3× and ≤ 1 ms",
        met: latency.ratio <= 3 && o1.p99 <= 1,
      });
      await throughput(
        "GetCredential throughput, 64 in flight, gRPC",
        daemon.url,
        getEcho,
        GET,
        "grpc",
        getBody,
        0.25,
      );
      // For scale: the framework alone, no credbroker code behind it.
      const scale = await medianPair(
        () => load(signEcho, SIGN, "grpc", signBody, 64),
        () => load(connectNode.url, SIGN, "grpc", signBody, 64),
        perSecond,
      );
      rows.push({
        figure: "(for scale) connect-node alone, canned SignRequest, 64 in flight, gRPC",
        credbroker: `${Math.round(scale.o.perSecond)}/s`,
        baseline: `${Math.round(scale.b.perSecond)}/s (bare node:http2 echo)`,
        ratio: scale.ratio,
        target: "recorded",
      });
      const failed = failedRpcs(daemon.out()) - failedBefore;
      if (failed > 0) throw new Error(`rpc bench: the daemon logged ${failed} failed RPCs`);
      return rows;
    } finally {
      for (const child of children) child.child.kill("SIGTERM");
      await rm(dir, { recursive: true, force: true });
    }
  },
};

/** RPCs the daemon logged as failed (successes log at debug, which the bench does not enable). */
function failedRpcs(log: string): number {
  return log.split("\n").filter((l) => l.includes('"msg":"rpc"')).length;
}
