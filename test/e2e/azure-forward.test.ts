/**
 * ForwardRequest to Azurite (test/support/azurite.ts): with an Azure account
 * key the broker signs Shared Key under the credential's policy and scopes
 * and sends the request itself; with a SAS token (TOKEN_PLACEMENT_QUERY_STRING)
 * it appends the SAS to the URL's query. Azurite verifies both; what is out of
 * scope is refused by the broker before anything is sent.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  ContainerSASPermissions,
  generateBlobSASQueryParameters,
  SASProtocol,
  StorageSharedKeyCredential,
} from "@azure/storage-blob";
import { Code, createClient } from "@connectrpc/connect";
import { Provider, TokenPlacement } from "../../gen/credbroker/v1/credential_pb.js";
import { SigningService } from "../../gen/credbroker/v1/signing_service_pb.js";
import { type AzuriteServer, startAzurite } from "../support/azurite.js";
import { credentialClient, rejection, transport } from "../support/clients.js";
import { type RunningDaemon, removeDir, startDaemon } from "../support/daemon.js";
import { startTogether } from "../support/start-together.js";

const CONTAINER = "cb-forwarded";

describe("ForwardRequest to Azurite with an account key and with a SAS token", () => {
  let azurite: AzuriteServer;
  let daemon: RunningDaemon;
  let signing: ReturnType<typeof createClient<typeof SigningService>>;
  let readSas: string;

  const forward = (
    credential: string,
    method: string,
    url: string,
    body?: string,
    headers: { name: string; value: string }[] = [],
  ) =>
    signing.forwardRequest({
      namespace: "az",
      credential,
      method,
      url,
      headers,
      body: body === undefined ? undefined : new TextEncoder().encode(body),
    });
  const text = (b: Uint8Array) => Buffer.from(b).toString("utf8");
  const blockBlob = [{ name: "x-ms-blob-type", value: "BlockBlob" }];

  before(async () => {
    [azurite, daemon] = await startTogether([startAzurite(), startDaemon()]);
    const credentials = credentialClient(daemon.url, "connect-h2", daemon.token);
    const kind = {
      case: "accessKey" as const,
      value: { accessKeyId: azurite.account, secretAccessKey: azurite.accountKey },
    };
    const base = { namespace: "az", provider: Provider.AZURE, allowedHosts: ["127.0.0.1"] };
    await credentials.createCredential({ credential: { ...base, name: "admin", kind } });
    await credentials.createCredential({
      credential: {
        ...base,
        name: "scoped",
        kind,
        allowedScopes: [
          {
            bucket: CONTAINER,
            prefixes: ["data/"],
            actions: ["put_object", "get_object", "list_bucket"],
          },
        ],
      },
    });
    const key = new StorageSharedKeyCredential(azurite.account, azurite.accountKey);
    const sas = (permissions: string) =>
      generateBlobSASQueryParameters(
        {
          containerName: CONTAINER,
          permissions: ContainerSASPermissions.parse(permissions),
          expiresOn: new Date(Date.now() + 3600_000),
          protocol: SASProtocol.HttpsAndHttp,
        },
        key,
      ).toString();
    readSas = sas("rl");
    for (const [name, token] of [
      ["sas-rwl", sas("rwl")],
      ["sas-read", readSas],
    ] as const) {
      await credentials.createCredential({
        credential: {
          ...base,
          name,
          kind: { case: "token", value: { token, placement: TokenPlacement.QUERY_STRING } },
        },
      });
    }
    signing = createClient(SigningService, transport(daemon.url, "connect-h2", daemon.token));
    const created = await forward(
      "admin",
      "PUT",
      `${azurite.endpoint}/${CONTAINER}?restype=container`,
    );
    assert.equal(created.status, 201, text(created.body));
  });

  after(async () => {
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
    await azurite?.stop();
  });

  test("account key: upload, download and list are signed by the broker and accepted", async () => {
    const url = `${azurite.endpoint}/${CONTAINER}/data/key.txt`;
    const put = await forward("scoped", "PUT", url, "sent with the key", blockBlob);
    assert.equal(put.status, 201, text(put.body));
    const get = await forward("scoped", "GET", url);
    assert.equal(get.status, 200);
    assert.equal(text(get.body), "sent with the key");
    const list = await forward(
      "scoped",
      "GET",
      `${azurite.endpoint}/${CONTAINER}?restype=container&comp=list&prefix=data/`,
    );
    assert.equal(list.status, 200);
    assert.match(text(list.body), /<Name>data\/key\.txt<\/Name>/);
  });

  test("account key: out of scope is refused by the broker, nothing sent", async () => {
    const err = await rejection(
      forward("scoped", "DELETE", `${azurite.endpoint}/${CONTAINER}/data/key.txt`),
    );
    assert.equal(err.code, Code.PermissionDenied);
    assert.match(err.rawMessage, /ActionNotInScope/);
    const still = await forward("scoped", "GET", `${azurite.endpoint}/${CONTAINER}/data/key.txt`);
    assert.equal(still.status, 200, "the blob was not deleted");
  });

  test("SAS token: appended to the query; Azurite accepts what it grants and refuses the rest", async () => {
    const url = `${azurite.endpoint}/${CONTAINER}/data/sas.txt`;
    const put = await forward("sas-rwl", "PUT", url, "sent with a SAS", blockBlob);
    assert.equal(put.status, 201, text(put.body));
    const get = await forward("sas-read", "GET", url);
    assert.equal(get.status, 200);
    assert.equal(text(get.body), "sent with a SAS");
    const list = await forward(
      "sas-read",
      "GET",
      `${azurite.endpoint}/${CONTAINER}?restype=container&comp=list`,
    );
    assert.equal(list.status, 200);
    assert.match(text(list.body), /<Name>data\/sas\.txt<\/Name>/);
    const denied = await forward("sas-read", "PUT", url, "overwrite", blockBlob);
    assert.equal(denied.status, 403, "a read SAS does not write");
  });

  test("SAS token: a caller query naming a SAS parameter is refused", async () => {
    const err = await rejection(
      forward("sas-read", "GET", `${azurite.endpoint}/${CONTAINER}/data/sas.txt?sp=rwd`),
    );
    assert.equal(err.code, Code.InvalidArgument);
  });

  test("the SAS signature and the account key appear in no output", () => {
    const sig = new URLSearchParams(readSas).get("sig") ?? "";
    assert.ok(sig.length > 20);
    for (const secret of [sig, encodeURIComponent(sig), azurite.accountKey]) {
      assert.ok(!daemon.output().includes(secret));
    }
  });
});
