/**
 * The AWS SDK's S3Client signing through credbroker (brokerSigner, one
 * SignRequest per call) against the same client signing locally with static
 * credentials, in the same run: small GetObjects from Swift's s3api (the
 * tests' real S3), 16 in flight. A second pair against a bare node:http
 * endpoint answering a canned GetObject shows the signer's cost when storage
 * is not the bottleneck (no target; Swift is what an app waits on).
 *
 *   npm run bench -- sdk
 */
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import {
  CreateBucketCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { createBrokerClient } from "../src/client/broker-client.js";
import { BROKER_CREDENTIALS, brokerSigner } from "../src/client/broker-signer.js";
import { startSwift } from "../test/support/swift.js";
import { startDaemonChild } from "./child.js";
import { type Load, load } from "./load.js";
import type { Bench, Row } from "./table.js";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const IN_FLIGHT = 16;
const BODY = Buffer.alloc(1024, "x");

/** A canned S3 GetObject answer, signature not checked: the cheapest possible S3. */
async function startBareS3(): Promise<{ endpoint: string; close(): void }> {
  const server = createServer((req, res) => {
    req.resume();
    res.writeHead(200, {
      "content-type": "application/octet-stream",
      "content-length": BODY.length,
      etag: '"bench"',
    });
    res.end(BODY);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { endpoint: `http://127.0.0.1:${port}`, close: () => server.close() };
}

export const sdk: Bench = {
  name: "sdk",
  async run(): Promise<Row[]> {
    const swift = await startSwift();
    const bare = await startBareS3();
    const dataDir = await mkdtemp(path.join(os.tmpdir(), "credbroker-bench-sdk-"));
    const daemon = await startDaemonChild(dataDir);
    try {
      const token = daemon.token;
      const broker = createBrokerClient({ addr: daemon.url, token });
      await broker.credentials.createCredential({
        credential: {
          name: "bench",
          region: swift.region,
          allowedHosts: ["127.0.0.1"],
          kind: {
            case: "accessKey",
            value: { accessKeyId: swift.accessKeyId, secretAccessKey: swift.secretAccessKey },
          },
        },
      });
      const clientFor = (endpoint: string, through: "broker" | "static") => {
        const common: S3ClientConfig = {
          region: swift.region,
          endpoint,
          forcePathStyle: true,
          requestChecksumCalculation: "WHEN_REQUIRED",
          responseChecksumValidation: "WHEN_REQUIRED",
          maxAttempts: 1,
        };
        return through === "broker"
          ? new S3Client({
              ...common,
              credentials: BROKER_CREDENTIALS,
              signer: brokerSigner({ client: broker, credential: "bench" }),
            })
          : new S3Client({
              ...common,
              credentials: {
                accessKeyId: swift.accessKeyId,
                secretAccessKey: swift.secretAccessKey,
              },
            });
      };
      const setup = clientFor(swift.endpoint, "static");
      await setup.send(new CreateBucketCommand({ Bucket: "bench" }));
      await setup.send(new PutObjectCommand({ Bucket: "bench", Key: "small.bin", Body: BODY }));

      const getObject = (client: S3Client) => async () => {
        const res = await client.send(new GetObjectCommand({ Bucket: "bench", Key: "small.bin" }));
        const bytes = await res.Body?.transformToByteArray();
        if (bytes?.length !== BODY.length) throw new Error(`short read: ${bytes?.length}`);
      };
      const pair = async (endpoint: string) => {
        const local = clientFor(endpoint, "static");
        const brokered = clientFor(endpoint, "broker");
        const base: Load = await load(getObject(local), IN_FLIGHT, SECONDS);
        const ours: Load = await load(getObject(brokered), IN_FLIGHT, SECONDS);
        return { base, ours };
      };
      const fmt = (l: Load) => `${Math.round(l.perSecond)}/s, p99 ${l.p99.toFixed(1)} ms`;
      const rows: Row[] = [];
      for (const [label, endpoint, target] of [
        ["Swift s3api", swift.endpoint, "≥ 0.7×"],
        ["a bare node:http S3 (canned answer)", bare.endpoint, undefined],
      ] as const) {
        const { base, ours } = await pair(endpoint);
        const ratio = ours.perSecond / base.perSecond;
        rows.push({
          figure: `S3Client GetObject 1 KiB from ${label}, ${IN_FLIGHT} in flight`,
          credbroker: `${fmt(ours)} (brokerSigner)`,
          baseline: `${fmt(base)} (static credentials)`,
          ratio,
          target: target ?? "recorded",
          met: target === undefined ? undefined : ratio >= 0.7,
        });
      }
      return rows;
    } finally {
      daemon.child.kill("SIGTERM");
      bare.close();
      await swift.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  },
};
