/**
 * The AWS SDK v3's own S3Client signing through credbroker (brokerSigner),
 * against Swift's s3api: the application holds a placeholder, never a secret.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
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
import { type SwiftServer, startSwift } from "../support/swift.js";

describe("brokerSigner: S3Client through credbroker", () => {
  let swift: SwiftServer;
  let daemon: RunningDaemon;
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
    [swift, daemon] = await Promise.all([startSwift(), startDaemon()]);
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
            actions: ["get_object", "head_object", "put_object", "delete_object", "list_bucket"],
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
    await s3("admin-s3").send(new CreateBucketCommand({ Bucket: "sdk" }));
  });
  after(async () => {
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
    await swift?.stop();
  });

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
});
