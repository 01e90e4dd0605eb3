/**
 * ForwardRequest with an access key against a real signature-verifying S3
 * (Swift's s3api, test/support/swift.ts): the broker signs with SigV4
 * under the same policy and scopes as SignRequest, then sends the request
 * itself. Swift accepts what the broker signs; a key outside the scopes is
 * refused by the broker before anything is sent.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Code, createClient } from "@connectrpc/connect";
import { SigningService } from "../../gen/credbroker/v1/signing_service_pb.js";
import { credentialClient, rejection, transport } from "../support/clients.js";
import { type RunningDaemon, removeDir, startDaemon } from "../support/daemon.js";
import { startTogether } from "../support/start-together.js";
import { type SwiftServer, startSwift } from "../support/swift.js";

const BUCKET = "cb-forwarded";

describe("ForwardRequest with an access key, against Swift's S3 API", () => {
  let swift: SwiftServer;
  let daemon: RunningDaemon;
  let signing: ReturnType<typeof createClient<typeof SigningService>>;

  const forward = (
    credential: string,
    method: string,
    url: string,
    body?: string,
    headers: { name: string; value: string }[] = [],
  ) =>
    signing.forwardRequest({
      namespace: "s3",
      credential,
      method,
      url,
      headers,
      body: body === undefined ? undefined : new TextEncoder().encode(body),
      service: "s3",
    });
  const text = (b: Uint8Array) => Buffer.from(b).toString("utf8");

  before(async () => {
    [swift, daemon] = await startTogether([startSwift(), startDaemon()]);
    const credentials = credentialClient(daemon.url, "connect-h2", daemon.token);
    const kind = {
      case: "accessKey" as const,
      value: { accessKeyId: swift.accessKeyId, secretAccessKey: swift.secretAccessKey },
    };
    // 127.0.0.1 listed as an IP literal: plain http to it, and the loopback address, are allowed.
    const hosts = ["127.0.0.1"];
    await credentials.createCredential({
      credential: {
        namespace: "s3",
        name: "admin",
        kind,
        region: swift.region,
        allowedHosts: hosts,
      },
    });
    await credentials.createCredential({
      credential: {
        namespace: "s3",
        name: "scoped",
        kind,
        region: swift.region,
        allowedHosts: hosts,
        allowedScopes: [
          {
            bucket: BUCKET,
            prefixes: ["data/"],
            actions: ["put_object", "get_object", "list_bucket"],
          },
        ],
      },
    });
    signing = createClient(SigningService, transport(daemon.url, "connect-h2", daemon.token));
    const made = await forward("admin", "PUT", `${swift.endpoint}/${BUCKET}`);
    assert.equal(made.status, 200, text(made.body));
  });

  after(async () => {
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
    await swift?.stop();
  });

  test("PUT then GET of an object in scope: Swift verifies the broker's SigV4 and answers", async () => {
    const url = `${swift.endpoint}/${BUCKET}/data/hello world.txt`;
    const put = await forward("scoped", "PUT", url, "forwarded body", [
      { name: "content-type", value: "text/plain" },
    ]);
    assert.equal(put.status, 200, text(put.body));
    const get = await forward("scoped", "GET", url);
    assert.equal(get.status, 200, text(get.body));
    assert.equal(text(get.body), "forwarded body");
    assert.equal(get.headers.find((h) => h.name === "content-type")?.value, "text/plain");
    const list = await forward(
      "scoped",
      "GET",
      `${swift.endpoint}/${BUCKET}?list-type=2&prefix=data/`,
    );
    assert.match(text(list.body), /<Key>data\/hello world\.txt<\/Key>/);
  });

  test("a key outside the scopes is refused by the broker, and nothing reaches Swift", async () => {
    const url = `${swift.endpoint}/${BUCKET}/private/x.txt`;
    const err = await rejection(forward("scoped", "PUT", url, "should not land"));
    assert.equal(err.code, Code.PermissionDenied);
    assert.match(err.rawMessage, /ActionNotInScope/);
    const check = await forward("admin", "GET", url);
    assert.equal(check.status, 404, "the object was never written");
  });

  test("a caller's x-amz-date or Authorization is refused, not signed", async () => {
    const url = `${swift.endpoint}/${BUCKET}/data/hello world.txt`;
    for (const name of ["x-amz-date", "authorization"]) {
      const err = await rejection(forward("scoped", "GET", url, undefined, [{ name, value: "x" }]));
      assert.equal(err.code, Code.InvalidArgument, name);
    }
  });

  test("the secret key is in no answer or log", async () => {
    const out = daemon.output();
    assert.ok(!out.includes(`"${swift.secretAccessKey}"`));
  });
});
