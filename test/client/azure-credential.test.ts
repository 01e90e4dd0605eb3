/**
 * brokerAzureCredential: `@azure/storage-blob`'s own clients sign every
 * request through the real daemon's SignRequest and talk to Azurite
 * (test/support/azurite.ts), which verifies each Shared Key signature. The
 * application holds no account key; a request outside the credential's
 * scopes is refused by the broker and never reaches Azurite.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { BlobServiceClient, type ContainerClient } from "@azure/storage-blob";
import { Provider } from "../../gen/credbroker/v1/credential_pb.js";
import {
  type BrokerClient,
  BrokerSigningError,
  brokerAzureCredential,
  createBrokerClient,
} from "../../src/client/index.js";
import { type AzuriteServer, startAzurite } from "../support/azurite.js";
import { credentialClient } from "../support/clients.js";
import { type RunningDaemon, removeDir, startDaemon } from "../support/daemon.js";
import { startTogether } from "../support/start-together.js";

const NS = "azc";
const APP = "cb-app";
const OTHER = "cb-private";

describe("brokerAzureCredential with @azure/storage-blob against Azurite", () => {
  let azurite: AzuriteServer;
  let daemon: RunningDaemon;
  let client: BrokerClient;
  const service = (credential: string) =>
    new BlobServiceClient(
      azurite.endpoint,
      brokerAzureCredential({ client, namespace: NS, credential }),
    );
  const container = (credential: string, name = APP): ContainerClient =>
    service(credential).getContainerClient(name);
  const refusedByBroker = (code: string) => (err: unknown) => {
    assert.ok(err instanceof BrokerSigningError, `a broker refusal, not ${String(err)}`);
    assert.equal(err.code, code);
    return true;
  };

  before(async () => {
    [azurite, daemon] = await startTogether([startAzurite(), startDaemon()]);
    client = createBrokerClient({ addr: daemon.url, token: daemon.token });
    const credentials = credentialClient(daemon.url, "connect-h2", daemon.token);
    const base = {
      namespace: NS,
      provider: Provider.AZURE,
      kind: {
        case: "accessKey" as const,
        value: { accessKeyId: azurite.account, secretAccessKey: azurite.accountKey },
      },
      allowedHosts: ["127.0.0.1"],
    };
    await credentials.createCredential({
      credential: { ...base, name: "admin", providerDefault: true },
    });
    await credentials.createCredential({
      credential: {
        ...base,
        name: "app",
        allowedScopes: [
          {
            bucket: APP,
            prefixes: ["in/"],
            actions: ["put_object", "get_object", "list_bucket"],
          },
        ],
      },
    });
    for (const name of [APP, OTHER]) {
      const res = await container("admin", name).create();
      assert.ok(res.requestId, "Azurite accepted the signed Create Container");
    }
    await container("admin", OTHER).getBlockBlobClient("secret.txt").upload("private", 7);
  });
  after(async () => {
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
    await azurite?.stop();
  });

  test("upload, download and list in scope: Azurite accepts every signature", async () => {
    const app = container("app");
    const body = "hello through credbroker";
    const blob = app.getBlockBlobClient("in/hello world.txt");
    await blob.upload(body, Buffer.byteLength(body), {
      blobHTTPHeaders: { blobContentType: "text/plain" },
      metadata: { origin: "azcli" },
    });
    const downloaded = await blob.downloadToBuffer();
    assert.equal(downloaded.toString(), body);
    const props = await blob.getProperties();
    assert.equal(props.contentType, "text/plain");
    assert.deepEqual(props.metadata, { origin: "azcli" });

    // Put Block and Put Block List (query parameters comp and blockid are signed too).
    const big = Buffer.alloc(3000, "abc");
    const blocks = app.getBlockBlobClient("in/blocks.bin");
    await blocks.uploadData(big, { maxSingleShotSize: 1024, blockSize: 1024 });
    assert.ok((await blocks.downloadToBuffer()).equals(big));
    // Get Block List maps to no scope action: the unscoped credential reads it.
    const list = await container("admin")
      .getBlockBlobClient("in/blocks.bin")
      .getBlockList("committed");
    assert.equal(list.committedBlocks?.length, 3, "three blocks were put and committed");

    const names: string[] = [];
    for await (const item of app.listBlobsFlat({ prefix: "in/" })) names.push(item.name);
    assert.deepEqual(names.sort(), ["in/blocks.bin", "in/hello world.txt"]);
  });

  test("out of scope is refused by the broker, and never reaches Azurite", async () => {
    const app = container("app");
    await assert.rejects(
      app.getBlockBlobClient("out/x.txt").upload("x", 1),
      refusedByBroker("PermissionDenied"),
    );
    await assert.rejects(
      app.getBlockBlobClient("in/hello world.txt").delete(),
      refusedByBroker("PermissionDenied"),
      "delete_object is not among the scope's actions",
    );
    await assert.rejects(
      container("app", OTHER).getBlockBlobClient("secret.txt").downloadToBuffer(),
      refusedByBroker("PermissionDenied"),
    );
    await assert.rejects(async () => {
      for await (const _ of container("app", OTHER).listBlobsFlat()) break;
    }, refusedByBroker("PermissionDenied"));

    // The refused upload left nothing behind; the refused delete deleted nothing.
    const admin = container("admin");
    assert.equal(await admin.getBlockBlobClient("out/x.txt").exists(), false);
    assert.equal(await admin.getBlockBlobClient("in/hello world.txt").exists(), true);
  });

  test('credential "" signs with the namespace\'s Azure provider default; an unknown one is not_found', async () => {
    const text = await service("")
      .getContainerClient(OTHER)
      .getBlockBlobClient("secret.txt")
      .downloadToBuffer();
    assert.equal(text.toString(), "private");
    await assert.rejects(
      container("no-such-credential").getBlockBlobClient("in/a.txt").upload("a", 1),
      refusedByBroker("NotFound"),
    );
  });

  test("retry options that rewrite the URL after signing are refused up front", () => {
    assert.throws(
      () =>
        brokerAzureCredential({
          client,
          pipelineOptions: { retryOptions: { tryTimeoutInMs: 5000 } },
        }),
      /tryTimeoutInMs and secondaryHost change the URL after signing/,
    );
  });
});
