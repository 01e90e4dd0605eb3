/**
 * Issue 20 #1, #6, #9 over the real daemon and a real signature-verifying S3
 * (Swift's s3api, test/support/swift.ts): what policy cannot decide on
 * exactly as it is signed is refused with its code before anything is
 * signed, and the allowed neighbours of each refusal are signed and accepted
 * by Swift.
 */
import assert from "node:assert/strict";
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

const BUCKET = "cb-hardening";
const ADMIN = "hard-admin";
/** data/: put_object, get_object, list_bucket; no ACL, lock or tagging actions. */
const PUT_ONLY = "hard-put";
/** data/: put_object and put_object_acl. */
const WITH_ACL = "hard-acl";

type SignInit = Omit<MessageInitShape<typeof SignRequestRequestSchema>, "$typeName">;
const h = (name: string, value: string) => ({
  $typeName: "credbroker.v1.HttpHeader" as const,
  name,
  value,
});

describe("SignRequest hardening against Swift's S3 API", () => {
  let swift: SwiftServer;
  let daemon: RunningDaemon;
  let signing: ReturnType<typeof grpcJsClient<typeof SigningService>>;
  let base: { kind: { case: "accessKey"; value: object }; region: string; allowedHosts: string[] };

  before(async () => {
    [swift, daemon] = await startTogether([startSwift(), startDaemon()]);
    const credentials = credentialClient(daemon.url, "connect-h2", daemon.token);
    const kind = {
      case: "accessKey" as const,
      value: { accessKeyId: swift.accessKeyId, secretAccessKey: swift.secretAccessKey },
    };
    base = { kind, region: swift.region, allowedHosts: ["127.0.0.1"] };
    await credentials.createCredential({ credential: { name: ADMIN, ...base } });
    await credentials.createCredential({
      credential: {
        name: PUT_ONLY,
        ...base,
        allowedScopes: [
          { bucket: BUCKET, prefixes: ["data/"], actions: ["put_object", "get_object"] },
        ],
      },
    });
    signing = grpcJsClient(SigningService, daemon.url, daemon.token);
    const made = await send(
      await sign(ADMIN, { method: "PUT", url: `${swift.endpoint}/${BUCKET}` }),
      {
        method: "PUT",
      },
    );
    assert.equal(made.status, 200, made.text);
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

  async function refusal(credential: string, init: SignInit): Promise<GrpcStatusError> {
    const err = await sign(credential, init).then(
      () => undefined,
      (e: GrpcStatusError) => e,
    );
    assert.ok(err, "refused");
    return err;
  }

  async function send(
    signed: SignRequestResponse,
    init: { method?: string; body?: string } = {},
  ): Promise<{ status: number; text: string }> {
    const res = await fetch(signed.url, {
      method: init.method ?? "GET",
      headers: signed.headers.map((x) => [x.name, x.value] as [string, string]),
      ...(init.body !== undefined ? { body: init.body } : {}),
    });
    return { status: res.status, text: await res.text() };
  }

  const object = (key: string) => `${swift.endpoint}/${BUCKET}/data/${key}`;

  test("#1: a repeated copy source, range or x-amz-* header is invalid_argument; one copy source is signed and copies", async () => {
    const put = await send(await sign(PUT_ONLY, { method: "PUT", url: object("src") }), {
      method: "PUT",
      body: "source body",
    });
    assert.equal(put.status, 200, put.text);

    const repeats: [string, SignInit][] = [
      [
        "two copy sources",
        {
          method: "PUT",
          url: object("dst"),
          headers: [
            h("X-Amz-Copy-Source", "secretbucket/payroll.csv?x="),
            h("x-amz-copy-source", `${BUCKET}/data/src`),
          ],
        },
      ],
      [
        "two ranges",
        { url: object("src"), headers: [h("Range", "bytes=0-1"), h("range", "bytes=2-3")] },
      ],
      [
        "two x-amz-meta values",
        {
          method: "PUT",
          url: object("dst"),
          headers: [h("x-amz-meta-owner", "a"), h("X-AMZ-META-OWNER", "b")],
        },
      ],
    ];
    for (const [what, init] of repeats) {
      const err = await refusal(PUT_ONLY, init);
      assert.equal(err.code, grpc.status.INVALID_ARGUMENT, what);
      assert.match(err.details, /repeats headers\[0\]/, what);
    }

    const copy = await send(
      await sign(PUT_ONLY, {
        method: "PUT",
        url: object("dst"),
        headers: [h("X-Amz-Copy-Source", `${BUCKET}/data/src`)],
      }),
      { method: "PUT" },
    );
    assert.equal(copy.status, 200, copy.text);
    const read = await send(await sign(PUT_ONLY, { url: object("dst") }));
    assert.equal(read.text, "source body");
  });

  test("#6: X-Amz-* signer parameters in the caller's query are invalid_argument, any case, both modes", async () => {
    const params = [
      "X-Amz-Expires=604800",
      "x-amz-expires=604800",
      "X-Amz-Date=20990101T000000Z",
      "x-amz-security-token=t",
      "X-AMZ-CREDENTIAL=AKIA",
      "X-Amz-Signature=0",
      "X-Amz-SignedHeaders=host",
      "X-Amz-Algorithm=AWS4-HMAC-SHA256",
    ];
    for (const param of params) {
      for (const presignExpiresSeconds of [0, 60]) {
        const err = await refusal(ADMIN, {
          url: `${object("src")}?${param}`,
          presignExpiresSeconds,
        });
        assert.equal(
          err.code,
          grpc.status.INVALID_ARGUMENT,
          `${param} presign=${presignExpiresSeconds}`,
        );
        assert.match(err.details, /^url: query parameter 1 is an X-Amz-\* name the signer sets$/);
      }
    }
    // The presigned URL without them holds one X-Amz-Expires, the one asked for, and works.
    const presigned = await sign(ADMIN, { url: object("src"), presignExpiresSeconds: 60 });
    const expires = [...new URL(presigned.url).searchParams].filter(
      ([k]) => k.toLowerCase() === "x-amz-expires",
    );
    assert.deepEqual(expires, [["X-Amz-Expires", "60"]]);
    const res = await fetch(presigned.url);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "source body");
  });

  test("#9: ACL, object-lock and tagging headers need their own scope action; with put_object_acl Swift takes the ACL", async () => {
    await credentialClient(daemon.url, "connect-h2", daemon.token).createCredential({
      credential: {
        name: WITH_ACL,
        ...base,
        allowedScopes: [
          { bucket: BUCKET, prefixes: ["data/"], actions: ["put_object", "put_object_acl"] },
        ],
      },
    });
    const extra: [string, string, string][] = [
      ["x-amz-acl", "public-read", "put_object_acl"],
      ["x-amz-grant-read", "id=someone", "put_object_acl"],
      ["x-amz-object-lock-mode", "COMPLIANCE", "put_object_retention"],
      ["x-amz-object-lock-retain-until-date", "2099-01-01T00:00:00Z", "put_object_retention"],
      ["x-amz-tagging", "a=b", "put_object_tagging"],
    ];
    for (const [name, value, action] of extra) {
      const err = await refusal(PUT_ONLY, {
        method: "PUT",
        url: object("acl"),
        headers: [h(name, value)],
      });
      assert.equal(err.code, grpc.status.PERMISSION_DENIED, name);
      assert.match(
        err.details,
        new RegExp(`^ActionNotInScope: its headers need ${action} too`),
        name,
      );
    }
    // put_object_acl does not stand in for object-lock or tagging.
    const lock = await refusal(WITH_ACL, {
      method: "PUT",
      url: object("acl"),
      headers: [h("x-amz-object-lock-legal-hold", "ON")],
    });
    assert.match(lock.details, /put_object_retention/);

    const body = "with an acl";
    const put = await send(
      await sign(WITH_ACL, {
        method: "PUT",
        url: object("acl"),
        headers: [h("x-amz-acl", "private")],
      }),
      { method: "PUT", body },
    );
    assert.equal(put.status, 200, put.text);
    const read = await send(await sign(PUT_ONLY, { url: object("acl") }));
    assert.equal(read.text, body);
  });

  test("x-amz-bypass-governance-retention is never signed for a scope", async () => {
    const err = await refusal(PUT_ONLY, {
      method: "PUT",
      url: object("locked"),
      headers: [h("x-amz-bypass-governance-retention", "true")],
    });
    assert.equal(err.code, grpc.status.PERMISSION_DENIED);
    assert.match(err.details, /^OperationNotScoped: x-amz-bypass-governance-retention/);
  });
});
