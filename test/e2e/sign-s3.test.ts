/**
 * SignRequest against a real signature-verifying S3 (Swift's s3api, see
 * test/support/swift.ts): requests signed by the daemon over gRPC are sent
 * with plain fetch and accepted; tampered ones are refused by Swift; requests
 * outside the credential's scopes are refused by credbroker before signing.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, test } from "node:test";
import type { MessageInitShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  SigningService,
  type SignRequestRequestSchema,
  type SignRequestResponse,
} from "../../gen/credbroker/v1/signing_service_pb.js";
import { credentialClient, type GrpcStatusError, grpcJsClient } from "../support/clients.js";
import { type RunningDaemon, removeDir, startDaemon } from "../support/daemon.js";
import { startTogether } from "../support/start-together.js";
import { type SwiftServer, startSwift } from "../support/swift.js";

const BUCKET = "cb-signed";
const OTHER = "cb-other";
const SCOPED = "swift-scoped";
const ADMIN = "swift-admin";

type SignInit = Omit<MessageInitShape<typeof SignRequestRequestSchema>, "$typeName">;

describe("SignRequest against Swift's S3 API", () => {
  let swift: SwiftServer;
  let daemon: RunningDaemon;
  let signing: ReturnType<typeof grpcJsClient<typeof SigningService>>;

  before(async () => {
    [swift, daemon] = await startTogether([startSwift(), startDaemon()]);
    const credentials = credentialClient(daemon.url, "connect-h2", daemon.token);
    const key = {
      case: "accessKey" as const,
      value: { accessKeyId: swift.accessKeyId, secretAccessKey: swift.secretAccessKey },
    };
    await credentials.createCredential({
      credential: { name: ADMIN, kind: key, region: swift.region, allowedHosts: ["127.0.0.1"] },
    });
    await credentials.createCredential({
      credential: {
        name: SCOPED,
        kind: key,
        region: swift.region,
        allowedHosts: ["127.0.0.1"],
        allowedScopes: [
          {
            bucket: BUCKET,
            prefixes: ["data/"],
            actions: ["put_object", "get_object", "head_object", "delete_object", "list_bucket"],
          },
        ],
      },
    });
    signing = grpcJsClient(SigningService, daemon.url, daemon.token);
    for (const bucket of [BUCKET, OTHER]) {
      const signed = await sign(ADMIN, { method: "PUT", url: `${swift.endpoint}/${bucket}` });
      const res = await send(signed, { method: "PUT" });
      assert.equal(res.status, 200, res.text);
    }
  });

  after(async () => {
    signing?.close();
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
    await swift?.stop();
  });

  function sign(credential: string, init: SignInit): Promise<SignRequestResponse> {
    return signing.client.signRequest({
      $typeName: "credbroker.v1.SignRequestRequest",
      provider: 0,
      namespace: "",
      credential,
      method: "GET",
      url: "",
      headers: [],
      payload: { case: undefined },
      region: "",
      service: "s3",
      presignExpiresSeconds: 0,
      ...init,
    } as never);
  }

  async function send(
    signed: SignRequestResponse,
    init: { method?: string; body?: string; headers?: Record<string, string>; url?: string } = {},
  ): Promise<{ status: number; text: string }> {
    const headers = Object.fromEntries(signed.headers.map((h) => [h.name, h.value]));
    const res = await fetch(init.url ?? signed.url, {
      method: init.method ?? "GET",
      headers: { ...headers, ...init.headers },
      ...(init.body !== undefined ? { body: init.body } : {}),
    });
    return { status: res.status, text: await res.text() };
  }

  const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

  test("PUT with a signed payload hash, GET, HEAD, list and DELETE all succeed", async () => {
    const url = `${swift.endpoint}/${BUCKET}/data/hello world+1.txt`;
    const body = "hello from credbroker";
    const put = await sign(SCOPED, {
      method: "PUT",
      url,
      payload: { case: "payloadSha256", value: sha256(body) },
    });
    assert.equal(put.accessKeyId, swift.accessKeyId);
    assert.equal((await send(put, { method: "PUT", body })).status, 200);

    const get = await send(await sign(SCOPED, { method: "GET", url }));
    assert.equal(get.status, 200, get.text);
    assert.equal(get.text, body);

    assert.equal(
      (await send(await sign(SCOPED, { method: "HEAD", url }), { method: "HEAD" })).status,
      200,
    );

    const list = await send(
      await sign(SCOPED, {
        method: "GET",
        url: `${swift.endpoint}/${BUCKET}?list-type=2&prefix=data/`,
      }),
    );
    assert.equal(list.status, 200, list.text);
    assert.match(list.text, /<Key>data\/hello world\+1\.txt<\/Key>/);

    const del = await send(await sign(SCOPED, { method: "DELETE", url }), { method: "DELETE" });
    assert.equal(del.status, 204, del.text);
    assert.equal((await send(await sign(SCOPED, { method: "GET", url }))).status, 404);
  });

  test("a presigned GET works with plain fetch, and only until it expires", async () => {
    const url = `${swift.endpoint}/${BUCKET}/data/presigned.txt`;
    const body = "presigned body";
    await send(
      await sign(SCOPED, {
        method: "PUT",
        url,
        payload: { case: "payloadSha256", value: sha256(body) },
      }),
      { method: "PUT", body },
    );
    const presigned = await sign(SCOPED, { method: "GET", url, presignExpiresSeconds: 60 });
    assert.match(presigned.url, /X-Amz-Signature=[0-9a-f]{64}/);
    assert.equal(presigned.headers.length, 0);
    const res = await fetch(presigned.url);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), body);
    const expiresAt = Number(presigned.expiresAt?.seconds ?? 0n) * 1000;
    assert.ok(Math.abs(expiresAt - (Date.now() + 60_000)) < 5_000, "expires_at is now + 60 s");

    const tampered = presigned.url.replace("presigned.txt", "presigned.tx");
    assert.equal((await fetch(tampered)).status, 403);
  });

  test("Swift refuses what was changed after signing: a header, the path, the body", async () => {
    const url = `${swift.endpoint}/${BUCKET}/data/tamper.txt`;
    const body = "the signed body";
    const put = await sign(SCOPED, {
      method: "PUT",
      url,
      headers: [
        { $typeName: "credbroker.v1.HttpHeader", name: "x-amz-meta-owner", value: "alice" },
      ],
      payload: { case: "payloadSha256", value: sha256(body) },
    });
    const header = await send(put, {
      method: "PUT",
      body,
      headers: { "x-amz-meta-owner": "mallory" },
    });
    assert.equal(header.status, 403, header.text);
    const path = await send(put, { method: "PUT", body, url: `${url}x` });
    assert.equal(path.status, 403, path.text);
    const otherBody = await send(put, { method: "PUT", body: "another body!!!" });
    assert.equal(otherBody.status, 400, otherBody.text);
    assert.match(otherBody.text, /BadDigest|XAmzContentSHA256Mismatch/);
    // Untampered, the same signature works.
    assert.equal((await send(put, { method: "PUT", body })).status, 200);
  });

  test("requests outside the scopes are refused by credbroker before anything is signed", async () => {
    const cases: [string, SignInit, RegExp][] = [
      [
        "a key outside the prefix",
        { url: `${swift.endpoint}/${BUCKET}/secret/x` },
        /ActionNotInScope/,
      ],
      ["another bucket", { url: `${swift.endpoint}/${OTHER}/data/x` }, /ActionNotInScope/],
      ["ListBuckets", { url: `${swift.endpoint}/` }, /OperationNotScoped/],
      ["a bucket ACL", { url: `${swift.endpoint}/${BUCKET}?acl` }, /OperationNotScoped/],
      [
        "a listing outside the prefix",
        { url: `${swift.endpoint}/${BUCKET}?prefix=secret/` },
        /ActionNotInScope/,
      ],
      [
        "a copy from outside the scope",
        {
          method: "PUT",
          url: `${swift.endpoint}/${BUCKET}/data/copy`,
          headers: [
            {
              $typeName: "credbroker.v1.HttpHeader",
              name: "x-amz-copy-source",
              value: `/${OTHER}/x`,
            },
          ],
        },
        /copy source/,
      ],
      [
        "a host not allowed",
        { url: `http://localhost:${new URL(swift.endpoint).port}/${BUCKET}/data/x` },
        /HostNotAllowed/,
      ],
    ];
    for (const [what, init, reason] of cases) {
      const err = await sign(SCOPED, init).then(
        () => undefined,
        (e: GrpcStatusError) => e,
      );
      assert.ok(err, `${what}: refused`);
      assert.equal(err.code, grpc.status.PERMISSION_DENIED, what);
      assert.match(err.details, reason, what);
    }
  });

  test("a disabled credential signs nothing; enabled again, it signs", async () => {
    const credentials = credentialClient(daemon.url, "grpc-h2", daemon.token);
    const url = `${swift.endpoint}/${BUCKET}/data/x`;
    await credentials.updateCredential({
      name: SCOPED,
      credential: { enabled: false },
      updateMask: { paths: ["enabled"] },
    });
    const err = await sign(SCOPED, { url }).then(
      () => undefined,
      (e: GrpcStatusError) => e,
    );
    assert.equal(err?.code, grpc.status.PERMISSION_DENIED);
    assert.match(err?.details ?? "", /^AccessDenied: /);
    await credentials.updateCredential({
      name: SCOPED,
      credential: { enabled: true },
      updateMask: { paths: ["enabled"] },
    });
    assert.ok((await sign(SCOPED, { url })).headers.some((h) => h.name === "authorization"));
  });

  test("no secret in any response or in the daemon's log", async () => {
    const res = await sign(ADMIN, {
      url: `${swift.endpoint}/${BUCKET}/data/x`,
      presignExpiresSeconds: 30,
    });
    assert.ok(
      !JSON.stringify(res, (_, v) => (typeof v === "bigint" ? String(v) : v)).includes(
        swift.secretAccessKey,
      ),
    );
    assert.ok(!daemon.output().includes(`"${swift.secretAccessKey}"`));
    const got = await credentialClient(daemon.url, "connect-h1", daemon.token).getCredential({
      name: ADMIN,
    });
    assert.equal(
      got.credential?.kind.case === "accessKey" && got.credential.kind.value.secretAccessKey,
      "",
    );
  });
});
