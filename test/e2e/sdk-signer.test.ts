/**
 * The AWS SDK v3's own S3Client signing through credbroker (brokerSigner),
 * against Swift's s3api: the application holds a placeholder, never a secret.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { createBrokerClient } from "../../src/client/broker-client.js";
import {
  BROKER_CREDENTIALS,
  BrokerSigningError,
  brokerSigner,
  PLACEHOLDER_ACCESS_KEY_ID,
} from "../../src/client/broker-signer.js";
import { getSignedUrl } from "../../src/client/get-signed-url.js";
import { credentialClient } from "../support/clients.js";
import { type RunningDaemon, removeDir, startDaemon } from "../support/daemon.js";
import { startTogether } from "../support/start-together.js";
import { type FakeSts, startFakeSts } from "../support/sts-server.js";
import { type SwiftServer, startSwift } from "../support/swift.js";

/** test/apps/s3-app.mjs: an application importing the published `credbroker/client`. */
const S3_APP = fileURLToPath(new URL("../../../test/apps/s3-app.mjs", import.meta.url));

interface AppRun {
  code: number | null;
  output: string;
}

function runApp(env: Record<string, string>): Promise<AppRun> {
  return new Promise((resolve, reject) => {
    // Only what the app needs: no AWS_* variable reaches it.
    const child = execFile(
      process.execPath,
      [S3_APP],
      {
        cwd: path.dirname(S3_APP),
        env: { PATH: process.env.PATH ?? "", ...env },
        encoding: "utf8",
        timeout: 60_000,
        maxBuffer: 64 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== "number") reject(err);
        else resolve({ code: child.exitCode, output: stdout + stderr });
      },
    );
  });
}

describe("brokerSigner: S3Client through credbroker", () => {
  let swift: SwiftServer;
  let daemon: RunningDaemon;
  let sts: FakeSts;
  const STS_KEY = {
    accessKeyId: "AKIASTSCALLER0000001",
    secretAccessKey: "sts/caller+secret/SHOULD-NEVER-LEAVE-THE-BROKER",
    arn: "arn:aws:iam::123456789012:user/sdk-app",
    account: "123456789012",
  };
  const s3 = (credential: string) =>
    new S3Client({
      region: "us-east-1",
      endpoint: swift.endpoint,
      forcePathStyle: true,
      // Swift 2.30 refuses aws-chunked uploads: checksums only when an operation needs one.
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      credentials: BROKER_CREDENTIALS,
      signer: brokerSigner({
        client: createBrokerClient({ addr: daemon.url, token: daemon.token }),
        credential,
      }),
      maxAttempts: 1,
    });

  before(async () => {
    [swift, daemon, sts] = await startTogether([startSwift(), startDaemon(), startFakeSts()]);
    sts.addKey(STS_KEY);
    const creds = credentialClient(daemon.url, "connect-h2", daemon.token);
    const kind = {
      case: "accessKey" as const,
      value: { accessKeyId: swift.accessKeyId, secretAccessKey: swift.secretAccessKey },
    };
    const base = { kind, region: swift.region, allowedHosts: ["127.0.0.1"] };
    await creds.createCredential({ credential: { name: "admin-s3", ...base } });
    await creds.createCredential({
      credential: {
        name: "app",
        ...base,
        allowedScopes: [
          {
            bucket: "sdk",
            prefixes: [],
            actions: [
              "get_object",
              "head_object",
              "put_object",
              "delete_object",
              "list_bucket",
              "create_multipart_upload",
              "upload_part",
              "complete_multipart_upload",
            ],
          },
        ],
      },
    });
    await creds.createCredential({
      credential: {
        name: "read-only",
        ...base,
        allowedScopes: [{ bucket: "sdk", prefixes: [], actions: ["get_object", "list_bucket"] }],
      },
    });
    await creds.createCredential({
      credential: {
        name: "sts-caller",
        kind: { case: "accessKey", value: STS_KEY },
        allowedHosts: ["127.0.0.1"],
      },
    });
    await s3("admin-s3").send(new CreateBucketCommand({ Bucket: "sdk" }));
  });
  after(async () => {
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
    await Promise.all([swift?.stop(), sts?.stop()]);
  });

  for (const transport of ["grpc", "connect"] as const) {
    test(`an app importing credbroker/client (${transport}): put, get, list, a 12 MiB multipart upload, delete; no secret in anything it printed`, async () => {
      const run = await runApp({
        BROKER_ADDR: daemon.url,
        BROKER_TOKEN_FILE: path.join(daemon.dataDir, "admin.token"),
        BROKER_TRANSPORT: transport,
        CREDENTIAL: "app",
        S3_ENDPOINT: swift.endpoint,
        BUCKET: "sdk",
      });
      assert.equal(run.code, 0, run.output);
      const line = run.output.split("\n").find((l) => l.startsWith('{"result"'));
      assert.ok(line, run.output);
      const { result } = JSON.parse(line);
      assert.equal(result.small, true);
      assert.equal(result.parts, 3);
      assert.equal(result.bigSha256, result.wantSha256);
      assert.deepEqual(result.listed, [
        { key: "app/big.bin", size: 12 * 1024 * 1024 },
        { key: "app/small.txt", size: 32 },
      ]);
      assert.equal(result.afterDelete, 0);
      assert.equal(result.accessKeyId, PLACEHOLDER_ACCESS_KEY_ID);
      // The SDK logged every command (logger: console): the placeholder, never the secret.
      assert.match(run.output, /CompleteMultipartUploadCommand/);
      assert.ok(!run.output.includes(swift.secretAccessKey), "secret in the app's output");
    });
  }

  test("PutObject, GetObject, ListObjectsV2 and DeleteObject succeed; the client holds only the placeholder", async () => {
    const client = s3("app");
    const body = Buffer.from("hello through the broker");
    await client.send(
      new PutObjectCommand({ Bucket: "sdk", Key: "dir/hello world.txt", Body: body }),
    );
    const got = await client.send(
      new GetObjectCommand({ Bucket: "sdk", Key: "dir/hello world.txt" }),
    );
    assert.equal(await got.Body?.transformToString(), body.toString());
    const listed = await client.send(new ListObjectsV2Command({ Bucket: "sdk", Prefix: "dir/" }));
    assert.deepEqual(
      listed.Contents?.map((o) => o.Key),
      ["dir/hello world.txt"],
    );
    await client.send(new DeleteObjectCommand({ Bucket: "sdk", Key: "dir/hello world.txt" }));
    const identity = await client.config.credentials();
    assert.equal(identity.accessKeyId, PLACEHOLDER_ACCESS_KEY_ID);
    assert.notEqual(identity.secretAccessKey, swift.secretAccessKey);
  });

  test("a scope without put_object: PutObject fails with the broker's reason", async () => {
    const err = await s3("read-only")
      .send(new PutObjectCommand({ Bucket: "sdk", Key: "x", Body: Buffer.from("x") }))
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    assert.ok(err instanceof BrokerSigningError, String(err));
    assert.equal(err.code, "PermissionDenied");
    assert.match(err.reason, /ActionNotInScope: put_object/);
  });

  test("getSignedUrl presigns through the broker; plain fetch gets the object", async () => {
    const client = s3("app");
    await client.send(
      new PutObjectCommand({
        Bucket: "sdk",
        Key: "shared/report.csv",
        Body: Buffer.from("a,b\n1,2\n"),
      }),
    );
    const url = await getSignedUrl(
      client,
      new GetObjectCommand({ Bucket: "sdk", Key: "shared/report.csv" }),
      {
        expiresIn: 60,
      },
    );
    assert.match(url, /X-Amz-Signature=[0-9a-f]{64}/);
    assert.match(url, /X-Amz-Credential=test%3Atester/);
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "a,b\n1,2\n");
  });

  test("a non-S3 service: STS GetCallerIdentity signed through the broker, verified by the STS server", async () => {
    const before = sts.calls.length;
    const client = new STSClient({
      region: "us-east-1",
      endpoint: sts.endpoint,
      credentials: BROKER_CREDENTIALS,
      signer: brokerSigner({
        client: createBrokerClient({ addr: daemon.url, token: daemon.token, transport: "grpc" }),
        credential: "sts-caller",
        // The SDK names no signing service or region for STS on a custom endpoint.
        service: "sts",
        region: "us-east-1",
      }),
      maxAttempts: 1,
    });
    const who = await client.send(new GetCallerIdentityCommand({}));
    assert.equal(who.Arn, STS_KEY.arn);
    assert.equal(who.Account, STS_KEY.account);
    const call = sts.calls.slice(before).find((c) => c.action === "GetCallerIdentity");
    assert.equal(call?.accessKeyId, STS_KEY.accessKeyId);
    assert.equal(call?.region, "us-east-1");
  });
});
