/**
 * SignRequest cost, as ratios against baselines measured in the same run:
 *
 * - over gRPC on loopback (connect-node's gRPC transport as the client), at
 *   1 and 64 calls in flight, against a bare connect-node server answering
 *   the same RPC with a canned response of the same size (bench/echo-server.ts);
 * - in process, policy + SigV4 signing against a minimal node:crypto signer
 *   holding a cached signing key.
 *
 *   npm run bench:sign
 */
import { createHash, createHmac } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { CredentialSchema } from "../gen/credbroker/v1/credential_pb.js";
import { CredentialService } from "../gen/credbroker/v1/credential_service_pb.js";
import {
  SigningService,
  SignRequestRequestSchema,
} from "../gen/credbroker/v1/signing_service_pb.js";
import { prepareNew } from "../src/core/lifecycle.js";
import { planSignature, validateSignRequest } from "../src/core/sign-plan.js";
import { SigningKeyCache } from "../src/sign/signing-keys.js";
import { sigv4 } from "../src/sign/sigv4.js";
import { startChild } from "./child.js";
import { load } from "./load.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const URL_TO_SIGN = "https://reports.s3.eu-west-1.amazonaws.com/2026/q1.csv";

/** Mean µs per call of a synchronous task, after a warm-up. */
function micros(task: () => unknown, rounds = 50000): number {
  for (let i = 0; i < 5000; i++) task();
  const t = process.hrtime.bigint();
  for (let i = 0; i < rounds; i++) task();
  return Number(process.hrtime.bigint() - t) / 1000 / rounds;
}

/**
 * The smallest honest SigV4 header signer: node:crypto, the signing key
 * derived once, and only the canonicalization any signer must do for a GET
 * of a URL (encode the path, sort the query and the headers). No policy,
 * no validation, no service rules.
 */
function minimalSigner() {
  const hmac = (key: Buffer | string, data: string) =>
    createHmac("sha256", key).update(data).digest();
  const date = "20261124";
  const key = ["eu-west-1", "s3", "aws4_request"].reduce(
    (k, part) => hmac(k, part),
    hmac(`AWS4${SECRET}`, date),
  );
  return (url: string, now: Date) => {
    const u = new URL(url);
    const amzDate = `${now.toISOString().replace(/[-:]/g, "").slice(0, 15)}Z`;
    const headers: [string, string][] = [
      ["host", u.host],
      ["x-amz-content-sha256", "UNSIGNED-PAYLOAD"],
      ["x-amz-date", amzDate],
    ];
    headers.sort(([a], [b]) => (a < b ? -1 : 1));
    const query = [...u.searchParams]
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
      .sort()
      .join("&");
    const signed = headers.map(([n]) => n).join(";");
    const canonical = [
      "GET",
      u.pathname.split("/").map(encodeURIComponent).join("/"),
      query,
      ...headers.map(([n, v]) => `${n}:${v.trim()}`),
      "",
      signed,
      "UNSIGNED-PAYLOAD",
    ].join("\n");
    const scope = `${date}/eu-west-1/s3/aws4_request`;
    const toSign = `AWS4-HMAC-SHA256\n${amzDate}\n${scope}\n${createHash("sha256").update(canonical).digest("hex")}`;
    return `AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/${scope}, SignedHeaders=${signed}, Signature=${createHmac("sha256", key).update(toSign).digest("hex")}`;
  };
}

const dataDir = await mkdtemp(path.join(os.tmpdir(), "credbroker-bench-sign-"));
const daemon = await startChild(
  [
    path.join(here, "../src/cli/main.js"),
    "serve",
    "--listen",
    "127.0.0.1:0",
    "--data-dir",
    dataDir,
  ],
  /"url":"(http:\/\/[^"]+)"/,
);
const echo = await startChild([path.join(here, "echo-server.js")], /(http:\/\/\S+)/);
try {
  const token = (await readFile(path.join(dataDir, "admin.token"), "utf8")).trim();
  const auth = { headers: { authorization: `Bearer ${token}` } };
  await createClient(
    CredentialService,
    createConnectTransport({ baseUrl: daemon.url, httpVersion: "2" }),
  ).createCredential(
    {
      credential: {
        name: "bench",
        kind: {
          case: "accessKey",
          value: { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: SECRET },
        },
        allowedScopes: [{ bucket: "reports", prefixes: ["2026/"], actions: ["get_object"] }],
      },
    },
    auth,
  );
  const request = { credential: "bench", method: "GET", url: URL_TO_SIGN };
  const rows: string[][] = [];
  for (const inFlight of [1, 64]) {
    const broker = createClient(SigningService, createGrpcTransport({ baseUrl: daemon.url }));
    const bare = createClient(SigningService, createGrpcTransport({ baseUrl: echo.url }));
    const base = await load(() => bare.signRequest(request), inFlight, SECONDS);
    const ours = await load(() => broker.signRequest(request, auth), inFlight, SECONDS);
    rows.push([
      `SignRequest throughput, gRPC, ${inFlight} in flight`,
      `${Math.round(ours.perSecond)}/s`,
      `${Math.round(base.perSecond)}/s (bare connect-node echo)`,
      `${(ours.perSecond / base.perSecond).toFixed(2)}×`,
      "≥ 0.6×",
    ]);
    if (inFlight === 1) {
      rows.push([
        "SignRequest p99 latency, 1 in flight",
        `${ours.p99.toFixed(2)} ms (p50 ${ours.p50.toFixed(2)})`,
        `${base.p99.toFixed(2)} ms (p50 ${base.p50.toFixed(2)})`,
        `${(ours.p99 / base.p99).toFixed(2)}×`,
        "(recorded)",
      ]);
    }
  }

  const credential = prepareNew(
    create(CredentialSchema, {
      name: "bench",
      kind: {
        case: "accessKey",
        value: { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: SECRET },
      },
      allowedScopes: [{ bucket: "reports", prefixes: ["2026/"], actions: ["get_object"] }],
    }),
    { now: () => new Date(), newId: () => "bench" },
  );
  const signingCredential = {
    id: credential.id,
    etag: "bench",
    accessKeyId: "AKIAIOSFODNN7EXAMPLE",
    secretAccessKey: SECRET,
  };
  const keys = new SigningKeyCache();
  const signReq = create(SignRequestRequestSchema, request);
  const oursUs = micros(() =>
    sigv4(
      planSignature(validateSignRequest(signReq), credential, new Date()),
      signingCredential,
      keys,
    ),
  );
  const minimal = minimalSigner();
  const minimalUs = micros(() => minimal(URL_TO_SIGN, new Date()));
  rows.push([
    "in-process policy + signing",
    `${oursUs.toFixed(1)} µs`,
    `${minimalUs.toFixed(1)} µs (node:crypto, cached key)`,
    `${(minimalUs / oursUs).toFixed(2)}×`,
    "≥ 0.5×",
  ]);

  console.log("\n| figure | credbroker | baseline, same run | ratio | target |");
  console.log("|---|---|---|---|---|");
  for (const r of rows) console.log(`| ${r.join(" | ")} |`);
  console.log(
    `\n(node ${process.version}, ${os.cpus().length} cores, ${SECONDS} s per load figure)`,
  );
} finally {
  daemon.child.kill("SIGTERM");
  echo.child.kill("SIGTERM");
  await rm(dataDir, { recursive: true, force: true });
}
// Client HTTP/2 sessions would keep the process alive.
process.exit(0);
