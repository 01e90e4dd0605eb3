/**
 * What signing keeps in memory, through the services over an in-memory
 * transport and the real LevelDB store, with the caches wired as server.ts
 * wires them (every write tells `changed`, which clears the read cache and
 * drops the credential's keys and sessions): derived keys, never a secret;
 * a cache hit reads no secret; rotation, disabling and eviction. Every
 * signature is checked against @smithy/signature-v4 with the secret it
 * should have been made with.
 */
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import {
  ConnectError,
  createClient,
  createRouterTransport,
  type Interceptor,
} from "@connectrpc/connect";
import { Hash } from "@smithy/hash-node";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import { pino } from "pino";
import { CallerRole, CallerSchema } from "../../gen/credbroker/v1/caller_pb.js";
import { Provider } from "../../gen/credbroker/v1/credential_pb.js";
import { CredentialService } from "../../gen/credbroker/v1/credential_service_pb.js";
import {
  SigningService,
  type SignRequestResponse,
} from "../../gen/credbroker/v1/signing_service_pb.js";
import { CALLER } from "../../src/api/caller-context.js";
import { credentialService } from "../../src/api/credential-service.js";
import { errorInterceptor } from "../../src/api/error-mapping.js";
import { signingService } from "../../src/api/signing-service.js";
import { awsProvider } from "../../src/providers/aws/index.js";
import { RoleSessions } from "../../src/providers/aws/role-sessions.js";
import { SessionCache } from "../../src/providers/aws/session-cache.js";
import { SigningKeyCache } from "../../src/providers/aws/signing-keys.js";
import { amzDate } from "../../src/providers/aws/sigv4.js";
import { StsGateway } from "../../src/providers/aws/sts-gateway.js";
import { TaskSessions } from "../../src/providers/aws/task-sessions.js";
import { providerRegistry } from "../../src/providers/index.js";
import type { CredentialStore } from "../../src/store/credential-store.js";
import { ReadCache } from "../../src/store/read-cache.js";
import { SECRET_ACCESS_KEY, SESSION_TOKEN, TestAmbient } from "../core/fixtures.js";
import type { OpenedStore } from "../store/contract.js";
import { openTempLevelStore } from "../store/helpers.js";
import { secretsIn } from "../support/retained.js";
import { type FakeSts, startFakeSts } from "../support/sts-server.js";

const ROTATED = "rT5yU8iO1pA3sD6fG9hJ2kL4zX7cV0bROTATEDkey";
const KEY_ID = "ASIAIOSFODNN7EXAMPLE";
const HOST = "artifacts.s3.amazonaws.com";
const DAY = 24 * 3600_000;

const asAdmin: Interceptor = (next) => (req) => {
  req.contextValues.set(CALLER, create(CallerSchema, { name: "admin", role: CallerRole.ADMIN }));
  return next(req);
};

/** The services over one store, wired as server.ts wires them, counting sealed-record reads. */
function compose(store: CredentialStore, ambient: TestAmbient, sts: FakeSts, maxKeys = 4096) {
  const opened = { count: 0 };
  // Every get and getDefault opens a sealed record.
  const counted = new Proxy(store, {
    get(target, prop) {
      if (prop === "get" || prop === "getDefault") opened.count++;
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const reads = new ReadCache(counted);
  const keys = new SigningKeyCache(maxKeys);
  const sessions = new SessionCache({ now: () => ambient.now() });
  const gateway = new StsGateway({
    endpoint: sts.endpoint,
    region: "us-east-1",
    allowAmbient: false,
  });
  const now = () => ambient.now();
  const roleSessions = new RoleSessions({ credentials: reads, sts: gateway, cache: sessions, now });
  const tasks = new TaskSessions({
    credentials: reads,
    sts: gateway,
    roleSessions,
    cache: sessions,
    now,
  });
  const changed = (id: string) => {
    reads.clear();
    keys.drop(id);
    sessions.drop(id);
  };
  const aws = awsProvider({ signingKeys: keys, roleSessions, ambient, tasks });
  const providers = providerRegistry({
    providers: { [Provider.AWS]: aws },
    signRequests: Provider.AWS,
  });
  const transport = createRouterTransport(
    (router) => {
      router.service(CredentialService, credentialService({ store, ambient, changed }));
      router.service(SigningService, signingService({ store: counted, reads, providers }));
    },
    { router: { interceptors: [errorInterceptor(pino({ level: "silent" })), asAdmin] } },
  );
  return {
    opened,
    reads,
    keys,
    tasks,
    creds: createClient(CredentialService, transport),
    signing: createClient(SigningService, transport),
  };
}

/** The Authorization header @smithy/signature-v4 computes for GET https://HOST/builds/x. */
async function expected(secretAccessKey: string, now: Date, accessKeyId = KEY_ID): Promise<string> {
  const signer = new SignatureV4({
    credentials: { accessKeyId, secretAccessKey, sessionToken: SESSION_TOKEN },
    region: "us-east-1",
    service: "s3",
    sha256: Hash.bind(null, "sha256"),
    uriEscapePath: false,
    applyChecksum: false,
  });
  const signed = await signer.sign(
    new HttpRequest({
      method: "GET",
      protocol: "https:",
      hostname: HOST,
      path: "/builds/x",
      headers: { host: HOST, "x-amz-content-sha256": "UNSIGNED-PAYLOAD" },
    }),
    { signingDate: now },
  );
  return String(signed.headers.authorization);
}

const authorization = (r: SignRequestResponse) =>
  r.headers.find((h) => h.name === "authorization")?.value;

describe("signing keeps derived keys, not secrets", () => {
  let store: OpenedStore;
  let sts: FakeSts;
  let ambient: TestAmbient;
  let s: ReturnType<typeof compose>;

  const createKey = (name: string, secretAccessKey = SECRET_ACCESS_KEY, accessKeyId = KEY_ID) =>
    s.creds.createCredential({
      credential: {
        namespace: "team-a",
        name,
        allowedHosts: ["*.s3.amazonaws.com"],
        allowedInTasks: true,
        kind: {
          case: "accessKey",
          value: { accessKeyId, secretAccessKey, sessionToken: SESSION_TOKEN },
        },
      },
    });
  const sign = (credential = "key") =>
    s.signing.signRequest({
      namespace: "team-a",
      credential,
      method: "GET",
      url: `https://${HOST}/builds/x`,
    });
  const noSecretCached = (secrets = [SECRET_ACCESS_KEY, ROTATED, SESSION_TOKEN]) =>
    assert.deepEqual(secretsIn([...s.reads.values()], secrets), []);

  before(async () => {
    sts = await startFakeSts({ now: () => ambient.now() });
  });
  beforeEach(async () => {
    await store?.cleanup();
    store = await openTempLevelStore();
    ambient = new TestAmbient(new Date()); // the STS client signs with the real clock
    s = compose(store.store, ambient, sts);
  });
  after(async () => {
    await store?.cleanup();
    await sts?.stop();
  });

  test("a key-cache hit reads no secret; the first signature of a day reads it once", async () => {
    await createKey("key");
    const first = await sign();
    assert.equal(authorization(first), await expected(SECRET_ACCESS_KEY, ambient.now()));
    assert.equal(s.opened.count, 2, "the public record, then the secret for the derivation");
    for (let i = 0; i < 10; i++) {
      const again = await sign();
      assert.equal(authorization(again), authorization(first));
      assert.equal(
        again.headers.find((h) => h.name === "x-amz-security-token")?.value,
        SESSION_TOKEN,
        "the session token comes with the cached key",
      );
    }
    assert.equal(s.opened.count, 2, "hits are memory only");
    noSecretCached();
    assert.deepEqual(secretsIn(s.keys, [SECRET_ACCESS_KEY]), [], "the key cache holds no secret");
    assert.equal(secretsIn(s.keys, [SESSION_TOKEN]).length, 1, "but the session token, once");

    ambient.advance(DAY);
    const tomorrow = await sign();
    assert.equal(authorization(tomorrow), await expected(SECRET_ACCESS_KEY, ambient.now()));
    assert.equal(s.opened.count, 3, "a new day's key: one secret read");
    noSecretCached();
  });

  test("rotation: the new secret signs at once, the old key is gone", async () => {
    const created = await createKey("key");
    await sign();
    const old = { id: created.credential?.id ?? "", etag: created.credential?.etag ?? "" };
    const today = amzDate(ambient.now()).short;
    assert.ok(s.keys.find(old, today, "us-east-1", "s3"));
    await s.creds.updateCredential({
      namespace: "team-a",
      name: "key",
      credential: { kind: { case: "accessKey", value: { secretAccessKey: ROTATED } } },
      updateMask: { paths: ["access_key.secret_access_key"] },
    });
    assert.equal(s.keys.find(old, today, "us-east-1", "s3"), undefined);
    assert.equal(s.keys.size, 0);
    const rotated = await sign();
    assert.equal(authorization(rotated), await expected(ROTATED, ambient.now()));
    assert.notEqual(authorization(rotated), await expected(SECRET_ACCESS_KEY, ambient.now()));
    noSecretCached();
  });

  test("disabling drops the credential's keys and stops signing; enabling derives anew", async () => {
    await createKey("key");
    await sign();
    assert.equal(s.keys.size, 1);
    const disable = (enabled: boolean) =>
      s.creds.updateCredential({
        namespace: "team-a",
        name: "key",
        credential: { enabled },
        updateMask: { paths: ["enabled"] },
      });
    await disable(false);
    assert.equal(s.keys.size, 0, "dropped at the write");
    const denied = await sign().then(
      () => assert.fail("a disabled credential signed"),
      (e: unknown) => ConnectError.from(e),
    );
    assert.match(denied.message, /AccessDenied/);
    assert.equal(s.keys.size, 0);
    await disable(true);
    const opened = s.opened.count;
    assert.equal(authorization(await sign()), await expected(SECRET_ACCESS_KEY, ambient.now()));
    assert.equal(s.opened.count, opened + 2, "read again, secret included");
  });

  test("evicted keys are derived again and still sign with the right secret", async () => {
    s = compose(store.store, ambient, sts, 1);
    await createKey("a");
    await createKey("b", ROTATED, "ASIAIOSFODNN7EXAMPLB");
    for (let round = 0; round < 3; round++) {
      const before = s.opened.count;
      assert.equal(
        authorization(await sign("a")),
        await expected(SECRET_ACCESS_KEY, ambient.now()),
      );
      assert.equal(
        authorization(await sign("b")),
        await expected(ROTATED, ambient.now(), "ASIAIOSFODNN7EXAMPLB"),
      );
      assert.equal(s.keys.size, 1);
      // Each signature evicted the other's key: a secret read each (the public records stay cached).
      assert.equal(s.opened.count - before, round === 0 ? 4 : 2);
    }
    noSecretCached();
  });

  test("a record changed behind the cache is decided again before its secret signs", async () => {
    await createKey("key");
    await sign();
    // Written without `changed` (as a racing write looks before its invalidation).
    await store.store.update(
      "team-a",
      "key",
      (c) => {
        c.enabled = false;
        return c;
      },
      "",
    );
    ambient.advance(DAY); // a key-cache miss: the secret is read, and the record is newer
    const denied = await sign().then(
      () => assert.fail("signed with a disabled credential"),
      (e: unknown) => ConnectError.from(e),
    );
    assert.match(denied.message, /AccessDenied/);
  });

  test("the provider default signs from its one read, secret included, kept nowhere", async () => {
    await s.creds.createCredential({
      credential: {
        namespace: "team-a",
        name: "default",
        providerDefault: true,
        allowedHosts: ["*.s3.amazonaws.com"],
        kind: {
          case: "accessKey",
          value: {
            accessKeyId: KEY_ID,
            secretAccessKey: SECRET_ACCESS_KEY,
            sessionToken: SESSION_TOKEN,
          },
        },
      },
    });
    const first = await sign("");
    assert.equal(authorization(first), await expected(SECRET_ACCESS_KEY, ambient.now()));
    assert.equal(s.opened.count, 1);
    await sign("");
    assert.equal(s.opened.count, 2, "one read a signature, none more for the secret");
    assert.equal(s.reads.size, 0);
    assert.deepEqual(secretsIn(s.keys, [SECRET_ACCESS_KEY]), []);
  });

  test("a role's source secret is read for STS calls only, never cached", async () => {
    const source = {
      accessKeyId: "AKIASOURCE0000000001",
      secretAccessKey: "source/secret/KEY0000000000000000000000",
      arn: "arn:aws:iam::123456789012:user/broker",
      account: "123456789012",
    };
    const roleArn = "arn:aws:iam::123456789012:role/reader";
    sts.addKey(source);
    sts.addRole({ arn: roleArn, trusted: [source.arn] });
    await s.creds.createCredential({
      credential: {
        namespace: "team-a",
        name: "broker-key",
        kind: { case: "accessKey", value: source },
        allowedInTasks: true,
      },
    });
    await s.creds.createCredential({
      credential: {
        namespace: "team-a",
        name: "reader",
        allowedHosts: ["127.0.0.1"],
        kind: {
          case: "role",
          value: { roleArn, sourceCredential: "broker-key", durationSeconds: 900 },
        },
      },
    });
    const signIdentity = () =>
      s.signing.signRequest({
        namespace: "team-a",
        credential: "reader",
        method: "POST",
        url: `${sts.endpoint}/`,
        headers: [{ name: "content-type", value: "application/x-www-form-urlencoded" }],
        payload: {
          case: "body",
          value: Buffer.from("Action=GetCallerIdentity&Version=2011-06-15"),
        },
        service: "sts",
        region: "us-east-1",
      });
    const signed = await signIdentity();
    const res = await fetch(signed.url, {
      method: "POST",
      headers: Object.fromEntries(signed.headers.map((h) => [h.name, h.value])),
      body: "Action=GetCallerIdentity&Version=2011-06-15",
    });
    assert.equal(res.status, 200, await res.text());
    const opened = s.opened.count;
    await signIdentity();
    assert.equal(s.opened.count, opened, "a cached session and cached records: no read");

    // Task sessions for an access key (GetSessionToken) read its secret the same way.
    const task = await s.tasks.forCredential("team-a", "broker-key");
    assert.match(task.accessKeyId, /^ASIA/);
    assert.equal(s.reads.size, 2);
    noSecretCached([source.secretAccessKey]);
  });
});
