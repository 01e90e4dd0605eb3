/**
 * SignRequest for Google Cloud credentials on a real daemon process, over
 * Connect: service account presigned URLs (GOOG4-RSA-SHA256, the conformance
 * cases' dummy key) verified with the key's public key, HMAC keys
 * (GOOG4-HMAC-SHA256, header and presign) checked by a second implementation
 * (test/support/goog4-check.ts, on the AWS SDK's signer), and the policy
 * suite: hosts, scopes, disabled, expired, namespaces, kind checks, and no
 * secret in any answer, log line or file of the data dir. No local server
 * verifies GCS signatures, so the public key and the second implementation
 * are the oracle.
 */
import assert from "node:assert/strict";
import { createHash, createPublicKey } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Client, Code, createClient } from "@connectrpc/connect";
import { Provider } from "../../gen/credbroker/v1/credential_pb.js";
import type { CredentialService } from "../../gen/credbroker/v1/credential_service_pb.js";
import {
  SigningService,
  type SignRequestRequestSchema,
  type SignRequestResponse,
} from "../../gen/credbroker/v1/signing_service_pb.js";
import { credentialClient, rejection, transport } from "../support/clients.js";
import { type RunningDaemon, removeDir, startDaemon } from "../support/daemon.js";
import { hmacVerifies, rsaVerifies, type SentRequest } from "../support/goog4-check.js";

const DIR = fileURLToPath(new URL("../../../test/fixtures/gcs-v4-conformance/", import.meta.url));
const KEY_JSON = readFileSync(path.join(DIR, "test_service_account.not-a-test.json"), "utf8");
const PRIVATE_KEY = JSON.parse(KEY_JSON).private_key as string;
const PUBLIC_KEY = createPublicKey(PRIVATE_KEY);
const EMAIL = "test-iam-credentials@dummy-project-id.iam.gserviceaccount.com";
/** A line from the middle of the PEM body: what a leak of the key would contain. */
const KEY_LINE = PRIVATE_KEY.split("\n")[5] ?? "";
const ACCESS_ID = `GOOG1E${"A7".repeat(27)}Q`;
const SECRET = "bGoa+V7g/yqDXvKRqq+JTFn4uQZbPiQJo4pf9RzJ";

type SignInit = Omit<MessageInitShape<typeof SignRequestRequestSchema>, "$typeName">;

describe("SignRequest with Google Cloud credentials", () => {
  let daemon: RunningDaemon;
  let credentials: Client<typeof CredentialService>;
  let signing: Client<typeof SigningService>;

  const serviceAccount = { case: "serviceAccount" as const, value: { keyJson: KEY_JSON } };
  const hmacKey = {
    case: "accessKey" as const,
    value: { accessKeyId: ACCESS_ID, secretAccessKey: SECRET },
  };

  before(async () => {
    daemon = await startDaemon();
    credentials = credentialClient(daemon.url, "connect-h2", daemon.token);
    signing = createClient(SigningService, transport(daemon.url, "connect-h2", daemon.token));
    const scope = {
      bucket: "cb-bucket",
      prefixes: ["data/"],
      actions: ["get_object", "list_bucket"],
    };
    const make = (name: string, kind: typeof serviceAccount | typeof hmacKey, extra = {}) =>
      credentials.createCredential({
        credential: { namespace: "gcp", name, provider: Provider.GCP, kind, ...extra },
      });
    await make("sa", serviceAccount);
    await make("hmac", hmacKey);
    await make("sa-scoped", serviceAccount, { allowedScopes: [scope] });
    await make("hmac-scoped", hmacKey, { allowedScopes: [scope] });
    await make("hmac-hosts", hmacKey, { allowedHosts: ["gcs.example.test"] });
    await make("sa-off", serviceAccount, { enabled: false });
    await make("sa-soon", serviceAccount, {
      expiresAt: timestampFromDate(new Date(Date.now() + 3_600_000)),
    });
  });

  after(async () => {
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
  });

  function sign(credential: string, req: SignInit): Promise<SignRequestResponse> {
    return signing.signRequest({ namespace: "gcp", credential, ...req });
  }

  function sent(method: string, res: SignRequestResponse): SentRequest {
    return { method, url: res.url, headers: res.headers.map((h) => [h.name, h.value]) };
  }

  test("a service account presigns a V4 URL that verifies with its public key", async () => {
    const url = "https://storage.googleapis.com/cb-bucket/data/report%20one.csv?generation=7";
    const res = await sign("sa", { method: "GET", url, presignExpiresSeconds: 900 });
    const u = new URL(res.url);
    assert.equal(u.searchParams.get("X-Goog-Algorithm"), "GOOG4-RSA-SHA256");
    assert.match(
      u.searchParams.get("X-Goog-Credential") ?? "",
      /^[^/]+\/\d{8}\/auto\/storage\/goog4_request$/,
    );
    assert.equal(u.searchParams.get("X-Goog-Expires"), "900");
    assert.equal(u.searchParams.get("generation"), "7");
    assert.equal(res.accessKeyId, EMAIL);
    assert.ok(await rsaVerifies(sent("GET", res), PUBLIC_KEY));
    // The oracle can fail: another method does not verify.
    assert.equal(await rsaVerifies(sent("PUT", res), PUBLIC_KEY), false);
    const left = Number(res.expiresAt?.seconds) * 1000 - Date.now();
    assert.ok(left > 880_000 && left <= 900_000, String(left));
  });

  test("virtual-hosted and bucket-bound presigned URLs verify", async () => {
    for (const url of [
      "https://cb-bucket.storage.googleapis.com/data/x.txt",
      "https://storage.googleapis.com/cb-bucket",
    ]) {
      const res = await sign("sa", {
        method: "PUT",
        url,
        headers: [{ name: "Content-Type", value: "text/plain" }],
        presignExpiresSeconds: 60,
      });
      assert.equal(res.url.split("?")[0], url);
      assert.deepEqual(
        res.headers.map((h) => [h.name, h.value]),
        [["Content-Type", "text/plain"]],
      );
      assert.ok(await rsaVerifies(sent("PUT", res), PUBLIC_KEY), url);
    }
  });

  test("X-Goog-Expires: at most 604800 and never past expires_at", async () => {
    const url = "https://storage.googleapis.com/b/o";
    const tooLong = await rejection(
      sign("sa", { method: "GET", url, presignExpiresSeconds: 604801 }),
    );
    assert.equal(tooLong.code, Code.InvalidArgument);
    const res = await sign("sa", { method: "GET", url, presignExpiresSeconds: 604800 });
    assert.equal(new URL(res.url).searchParams.get("X-Goog-Expires"), "604800");
    const past = await rejection(
      sign("sa-soon", { method: "GET", url, presignExpiresSeconds: 7200 }),
    );
    assert.equal(past.code, Code.InvalidArgument);
    assert.match(past.rawMessage, /outlive the credential/);
    await sign("sa-soon", { method: "GET", url, presignExpiresSeconds: 600 });
  });

  test("a service account in header mode asks its token_uri for a Bearer token: unreachable here, unavailable and nothing signed", async () => {
    // The conformance key's token_uri is Google's own, which these machines cannot
    // reach (only the npm registry and Debian are); test/e2e/gce-metadata.test.ts
    // runs the grant against a stand-in token endpoint.
    const err = await rejection(
      sign("sa", { method: "GET", url: "https://storage.googleapis.com/b/o" }),
    );
    assert.equal(err.code, Code.Unavailable, err.rawMessage);
  });

  test("an HMAC key signs headers (GOOG4-HMAC-SHA256) that the second implementation accepts", async () => {
    const body = Buffer.from("hello, storage");
    const res = await sign("hmac", {
      method: "PUT",
      url: "https://storage.googleapis.com/cb-bucket/data/a%2Bb.txt",
      headers: [
        { name: "Content-Type", value: "text/plain" },
        { name: "x-goog-meta-note", value: "  two   spaces " },
      ],
      payload: { case: "body", value: body },
    });
    const headers = new Map(res.headers.map((h) => [h.name.toLowerCase(), h.value]));
    assert.match(headers.get("authorization") ?? "", /^GOOG4-HMAC-SHA256 Credential=GOOG1E/);
    assert.match(headers.get("x-goog-date") ?? "", /^\d{8}T\d{6}Z$/);
    assert.equal(
      headers.get("x-goog-content-sha256"),
      createHash("sha256").update(body).digest("hex"),
    );
    assert.equal(res.accessKeyId, ACCESS_ID);
    assert.ok(await hmacVerifies(sent("PUT", res), ACCESS_ID, SECRET));
    assert.equal(await hmacVerifies(sent("PUT", res), ACCESS_ID, `${SECRET}x`), false);
  });

  test("an HMAC key presigns (query parameters, a location) and the second implementation accepts", async () => {
    const res = await sign("hmac", {
      method: "GET",
      url: "https://storage.googleapis.com/cb-bucket?prefix=data%2F&delimiter=%2F",
      region: "us-central1",
      presignExpiresSeconds: 300,
    });
    const u = new URL(res.url);
    assert.equal(u.searchParams.get("X-Goog-Algorithm"), "GOOG4-HMAC-SHA256");
    assert.match(
      u.searchParams.get("X-Goog-Credential") ?? "",
      /\/us-central1\/storage\/goog4_request$/,
    );
    assert.equal(u.searchParams.get("prefix"), "data/");
    assert.ok(await hmacVerifies(sent("GET", res), ACCESS_ID, SECRET));
  });

  test("hosts: without allowed_hosts only *.googleapis.com; with them only those", async () => {
    const other = await rejection(
      sign("hmac", {
        method: "GET",
        url: "https://gcs.example.test/b/o",
        presignExpiresSeconds: 60,
      }),
    );
    assert.equal(other.code, Code.PermissionDenied);
    assert.match(other.rawMessage, /^HostNotAllowed/);
    await sign("hmac-hosts", {
      method: "GET",
      url: "https://gcs.example.test/b/o",
      presignExpiresSeconds: 60,
    });
    const google = await rejection(
      sign("hmac-hosts", {
        method: "GET",
        url: "https://storage.googleapis.com/b/o",
        presignExpiresSeconds: 60,
      }),
    );
    assert.equal(google.code, Code.PermissionDenied);
  });

  test("scopes: bucket, prefix and action, the bucket from the host on *.storage.googleapis.com", async () => {
    const ok = [
      "https://storage.googleapis.com/cb-bucket/data/x",
      "https://cb-bucket.storage.googleapis.com/data/x",
      "https://storage.googleapis.com/cb-bucket?prefix=data/sub",
    ];
    for (const url of ok) {
      await sign("sa-scoped", { method: "GET", url, presignExpiresSeconds: 60 });
      await sign("hmac-scoped", { method: "GET", url });
    }
    const denied: [string, string, RegExp][] = [
      ["GET", "https://storage.googleapis.com/cb-bucket/private/x", /^ActionNotInScope/],
      ["PUT", "https://storage.googleapis.com/cb-bucket/data/x", /^ActionNotInScope/],
      ["GET", "https://storage.googleapis.com/other/data/x", /^ActionNotInScope/],
      // Path-style reading on a virtual host would see bucket cb-bucket here: the host's bucket is "other".
      ["GET", "https://other.storage.googleapis.com/cb-bucket/data/x", /^ActionNotInScope/],
      ["GET", "https://storage.googleapis.com/cb-bucket?prefix=dat", /^ActionNotInScope/],
      ["GET", "https://storage.googleapis.com/cb-bucket/data/x?acl", /^OperationNotScoped/],
      [
        "GET",
        "https://storage.googleapis.com/storage/v1/b/cb-bucket/o/data%2Fx",
        /^OperationNotScoped/,
      ],
      ["GET", "https://xyz.googleapis.com/cb-bucket/data/x", /^OperationNotScoped/],
    ];
    for (const [method, url, rule] of denied) {
      const err = await rejection(sign("sa-scoped", { method, url, presignExpiresSeconds: 60 }));
      assert.equal(err.code, Code.PermissionDenied, url);
      assert.match(err.rawMessage, rule, url);
      assert.ok(!err.rawMessage.includes("cb-bucket"), "no request value quoted");
    }
    // A bearer token is good for any request, so a scoped service account hands none out.
    const bearer = await rejection(
      sign("sa-scoped", { method: "GET", url: "https://storage.googleapis.com/cb-bucket/data/x" }),
    );
    assert.equal(bearer.code, Code.PermissionDenied);
    assert.match(bearer.rawMessage, /^BearerNotScoped/);
  });

  test("scopes under a *.storage.googleapis.com wildcard: created, and the bucket still read from the host", async () => {
    // Before the fix, create refused every wildcard outside AWS when scopes were set.
    await credentials.createCredential({
      credential: {
        namespace: "gcp",
        name: "hmac-wild",
        provider: Provider.GCP,
        kind: hmacKey,
        allowedHosts: ["*.storage.googleapis.com"],
        allowedScopes: [{ bucket: "cb-bucket", prefixes: ["data/"], actions: ["get_object"] }],
      },
    });
    const ok = await sign("hmac-wild", {
      method: "GET",
      url: "https://cb-bucket.storage.googleapis.com/data/x",
    });
    assert.ok(ok.headers.some((h) => h.name.toLowerCase() === "authorization"));
    const other = await rejection(
      sign("hmac-wild", {
        method: "GET",
        url: "https://other.storage.googleapis.com/cb-bucket/data/x",
      }),
    );
    assert.equal(other.code, Code.PermissionDenied);
    assert.match(other.rawMessage, /^ActionNotInScope/);
    // storage.googleapis.com itself is not under the wildcard.
    const apex = await rejection(
      sign("hmac-wild", { method: "GET", url: "https://storage.googleapis.com/cb-bucket/data/x" }),
    );
    assert.equal(apex.code, Code.PermissionDenied);
    assert.match(apex.rawMessage, /^HostNotAllowed/);
    // Another cloud's wildcard is still refused with scopes, naming the rule.
    const aws = await rejection(
      credentials.createCredential({
        credential: {
          namespace: "gcp",
          name: "hmac-aws-wild",
          provider: Provider.GCP,
          kind: hmacKey,
          allowedHosts: ["*.amazonaws.com"],
          allowedScopes: [{ bucket: "cb-bucket", actions: ["get_object"] }],
        },
      }),
    );
    assert.equal(aws.code, Code.InvalidArgument);
    assert.match(aws.rawMessage, /allowed_hosts.*\*\.googleapis\.com/);
  });

  test("disabled and expired credentials sign nothing", async () => {
    const off = await rejection(
      sign("sa-off", {
        method: "GET",
        url: "https://storage.googleapis.com/b/o",
        presignExpiresSeconds: 60,
      }),
    );
    assert.equal(off.code, Code.PermissionDenied);
    assert.match(off.rawMessage, /^AccessDenied/);
    await credentials.createCredential({
      credential: {
        namespace: "gcp",
        name: "sa-old",
        provider: Provider.GCP,
        kind: serviceAccount,
        expiresAt: timestampFromDate(new Date(Date.now() + 1500)),
      },
    });
    await new Promise((r) => setTimeout(r, 1600));
    const old = await rejection(
      sign("sa-old", {
        method: "GET",
        url: "https://storage.googleapis.com/b/o",
        presignExpiresSeconds: 1,
      }),
    );
    assert.equal(old.code, Code.PermissionDenied);
    assert.match(old.rawMessage, /^ExpiredCredentials/);
  });

  test("namespaces: a credential is signed with only in its own", async () => {
    const err = await rejection(
      signing.signRequest({
        namespace: "other",
        credential: "sa",
        method: "GET",
        url: "https://storage.googleapis.com/b/o",
        presignExpiresSeconds: 60,
      }),
    );
    assert.equal(err.code, Code.NotFound);
  });

  test("reads show the key file's public fields, never the key", async () => {
    const got = await credentials.getCredential({ namespace: "gcp", name: "sa" });
    assert.equal(got.credential?.kind.case, "serviceAccount");
    if (got.credential?.kind.case !== "serviceAccount") return;
    const v = got.credential.kind.value;
    assert.deepEqual(
      [v.keyJson, v.clientEmail, v.projectId, v.privateKeyId],
      ["", EMAIL, "dummy-project-id", "ffffffffffffffffffffffffffffffffffffffff"],
    );
  });

  test("kind checks: a key file that is not one, an HMAC id not Google-shaped", async () => {
    const bad = (keyJson: string) =>
      rejection(
        credentials.createCredential({
          credential: {
            namespace: "gcp",
            name: "bad",
            provider: Provider.GCP,
            kind: { case: "serviceAccount", value: { keyJson } },
          },
        }),
      );
    const key = JSON.parse(KEY_JSON) as Record<string, string>;
    const cases: [string, RegExp][] = [
      ["{not json", /not valid JSON/],
      [JSON.stringify({ ...key, type: "user" }), /type/],
      [
        JSON.stringify({
          ...key,
          private_key: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        }),
        /private_key/,
      ],
      [JSON.stringify({ ...key, client_email: "nobody" }), /client_email/],
      [JSON.stringify({ ...key, token_uri: "http://oauth2.example.test/token" }), /token_uri/],
    ];
    for (const [json, message] of cases) {
      const err = await bad(json);
      assert.equal(err.code, Code.InvalidArgument);
      assert.match(err.rawMessage, message);
      assert.ok(!err.rawMessage.includes(KEY_LINE));
    }
    const local = await credentials.createCredential({
      credential: {
        namespace: "gcp",
        name: "sa-local",
        provider: Provider.GCP,
        kind: {
          case: "serviceAccount",
          value: { keyJson: JSON.stringify({ ...key, token_uri: "http://127.0.0.1:9/token" }) },
        },
      },
    });
    assert.equal(local.credential?.name, "sa-local");
    const id = await rejection(
      credentials.createCredential({
        credential: {
          namespace: "gcp",
          name: "bad-id",
          provider: Provider.GCP,
          kind: {
            case: "accessKey",
            value: { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: SECRET },
          },
        },
      }),
    );
    assert.equal(id.code, Code.InvalidArgument);
    assert.match(id.rawMessage, /HMAC access id/);
  });

  test("no secret in the daemon's output or anywhere in its data dir (audit log included)", async () => {
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        const p = path.join(dir, name);
        if (statSync(p).isDirectory()) walk(p);
        else files.push(p);
      }
    };
    walk(daemon.dataDir);
    assert.ok(files.some((f) => f.endsWith("audit.log")));
    const audit = readFileSync(path.join(daemon.dataDir, "audit.log"), "utf8");
    assert.match(audit, /storage\.googleapis\.com/);
    for (const secret of [KEY_LINE, SECRET]) {
      assert.ok(!daemon.output().includes(secret));
      for (const f of files) assert.ok(!readFileSync(f).includes(secret), f);
    }
  });
});
