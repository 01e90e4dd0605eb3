/**
 * The Azure signer against @azure/storage-blob's own signing (a differential
 * test): the SDK's service SAS (generateBlobSASQueryParameters) and the
 * Shared Key Authorization header its StorageSharedKeyCredential puts on a
 * request (captured by an httpClient that sends nothing) for
 * *.blob.core.windows.net URLs, which Azurite cannot serve.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import {
  BlobClient,
  type BlobClientOptions,
  BlobSASPermissions,
  ContainerSASPermissions,
  generateBlobSASQueryParameters,
  SASProtocol,
  StorageSharedKeyCredential,
} from "@azure/storage-blob";
import { parseRawUrl } from "../../../src/core/raw-url.js";
import {
  BLOB_VERSION,
  hmacBase64,
  serviceSasQuery,
  sharedKeyStringToSign,
} from "../../../src/providers/azure/shared-key.js";

const ACCOUNT = "cbtestaccount";
const KEY = randomBytes(64).toString("base64");
const sdkKey = new StorageSharedKeyCredential(ACCOUNT, KEY);

describe("service SAS: the same signature as @azure/storage-blob", () => {
  const expiry = new Date("2030-01-02T03:04:05Z");
  for (const [blob, permissions, protocol] of [
    ["dir/a b+c.txt", "r", "https"],
    ["x", "w", "https,http"],
    ["", "l", "https"],
  ] as const) {
    test(`${blob === "" ? "container" : "blob"} SAS sp=${permissions} spr=${protocol}`, () => {
      const ours = new URLSearchParams(
        serviceSasQuery(
          { account: ACCOUNT, container: "cont", blob, permissions, expiry, protocol },
          KEY,
        ),
      );
      const sdk = generateBlobSASQueryParameters(
        {
          containerName: "cont",
          ...(blob === "" ? {} : { blobName: blob }),
          permissions:
            blob === ""
              ? ContainerSASPermissions.parse(permissions)
              : BlobSASPermissions.parse(permissions),
          expiresOn: expiry,
          protocol: protocol === "https" ? SASProtocol.Https : SASProtocol.HttpsAndHttp,
          version: BLOB_VERSION,
        },
        sdkKey,
      );
      const theirs = new URLSearchParams(sdk.toString());
      for (const name of ["sv", "spr", "se", "sr", "sp", "sig"]) {
        assert.equal(ours.get(name), theirs.get(name), name);
      }
    });
  }
});

describe("Shared Key: the same Authorization as StorageSharedKeyCredential", () => {
  async function sdkRequest(
    url: string,
    run: (c: BlobClient) => Promise<unknown>,
  ): Promise<Captured> {
    let captured: Captured | undefined;
    const httpClient = {
      async sendRequest(request: Captured) {
        captured = request;
        return { status: 200, headers: request.headers, request };
      },
    } as unknown as BlobClientOptions["httpClient"];
    await run(new BlobClient(url, sdkKey, { httpClient, retryOptions: { maxTries: 1 } })).catch(
      () => undefined,
    );
    assert.ok(captured, "the SDK made a request");
    return captured;
  }

  /** The SDK's (legacy) request shape, as much as the test reads. */
  interface Captured {
    method: string;
    url: string;
    headers: {
      headersArray(): { name: string; value: string }[];
      get(n: string): string | undefined;
    };
  }

  const cases: [string, string, (c: BlobClient) => Promise<unknown>][] = [
    ["GET", `https://${ACCOUNT}.blob.core.windows.net/cont/dir/a%20b.txt`, (c) => c.download()],
    ["HEAD", `https://${ACCOUNT}.blob.core.windows.net/cont/x.bin`, (c) => c.getProperties()],
    [
      "PUT",
      `https://${ACCOUNT}.blob.core.windows.net/cont/up.txt`,
      (c) =>
        c.getBlockBlobClient().upload("hello", 5, {
          blobHTTPHeaders: { blobContentType: "text/plain" },
          metadata: { Owner: "me", b: "2" },
        }),
    ],
    ["DELETE", `https://${ACCOUNT}.blob.core.windows.net/cont/gone`, (c) => c.delete()],
    [
      "PUT",
      `https://${ACCOUNT}.blob.core.windows.net/cont/blk`,
      (c) => c.getBlockBlobClient().stageBlock(Buffer.from("b1").toString("base64"), "ab", 2),
    ],
  ];
  for (const [method, url, run] of cases) {
    test(`${method} ${new URL(url).pathname}`, async () => {
      const req = await sdkRequest(url, run);
      assert.equal(req.method, method);
      const headers = new Map<string, string>();
      for (const { name, value } of req.headers.headersArray()) {
        if (name.toLowerCase() !== "authorization") headers.set(name.toLowerCase(), value);
      }
      const stringToSign = sharedKeyStringToSign(
        req.method,
        parseRawUrl(req.url),
        ACCOUNT,
        headers,
      );
      assert.equal(
        `SharedKey ${ACCOUNT}:${hmacBase64(KEY, stringToSign)}`,
        req.headers.get("authorization"),
      );
    });
  }
});
