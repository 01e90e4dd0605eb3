import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { inspect } from "node:util";
import {
  create,
  type DescMethodUnary,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import {
  type AccessKey,
  type Credential,
  type CredentialSchema,
  Provider,
  type Role,
  type RoleSchema,
} from "../../gen/credbroker/v1/credential_pb.js";
import {
  type Check,
  CreateCredentialRequestSchema,
  CredentialService,
  DeleteCredentialRequestSchema,
  GetCredentialRequestSchema,
  ListCredentialsRequestSchema,
  Severity,
  UpdateCredentialRequestSchema,
  VerifyCredentialRequestSchema,
  type VerifyCredentialResponse,
} from "../../gen/credbroker/v1/credential_service_pb.js";
import {
  Health,
  HealthCheckRequestSchema,
  type HealthCheckResponse,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../../gen/grpc/health/v1/health_pb.js";
import {
  type ServerReflectionRequest,
  ServerReflectionRequestSchema,
  type ServerReflectionResponse,
  ServerReflectionResponseSchema,
  ServerReflection as ServerReflectionV1,
} from "../../gen/grpc/reflection/v1/reflection_pb.js";
import {
  credentialClient,
  grpcJsClient,
  PROTOCOLS,
  type Protocol,
  transport,
} from "../support/clients.js";
import { type RunningDaemon, removeDir, startDaemon } from "../support/daemon.js";

// ---------------------------------------------------------------------------
// One API, six clients: every case below runs through each of them.
// ---------------------------------------------------------------------------

type Svc = typeof CredentialService;

/**
 * CredentialService's unary methods taking init shapes, whatever the client
 * underneath (ImportCredentials, client streaming, has its own tests).
 */
type Api = {
  [M in keyof Svc["method"] as Svc["method"][M] extends DescMethodUnary
    ? M
    : never]: Svc["method"][M] extends DescMethodUnary<infer I, infer O>
    ? (req: MessageInitShape<I>) => Promise<MessageShape<O>>
    : never;
};

/** The error outcomes the cases expect, by their gRPC name. */
type Outcome =
  | "InvalidArgument"
  | "NotFound"
  | "AlreadyExists"
  | "FailedPrecondition"
  | "Aborted"
  | "Unimplemented"
  | "Unauthenticated";

const CONNECT_CODES: Record<Outcome, number> = {
  InvalidArgument: Code.InvalidArgument,
  NotFound: Code.NotFound,
  AlreadyExists: Code.AlreadyExists,
  FailedPrecondition: Code.FailedPrecondition,
  Aborted: Code.Aborted,
  Unimplemented: Code.Unimplemented,
  Unauthenticated: Code.Unauthenticated,
};

const GRPC_CODES: Record<Outcome, number> = {
  InvalidArgument: grpc.status.INVALID_ARGUMENT,
  NotFound: grpc.status.NOT_FOUND,
  AlreadyExists: grpc.status.ALREADY_EXISTS,
  FailedPrecondition: grpc.status.FAILED_PRECONDITION,
  Aborted: grpc.status.ABORTED,
  Unimplemented: grpc.status.UNIMPLEMENTED,
  Unauthenticated: grpc.status.UNAUTHENTICATED,
};

interface Failure {
  code: number;
  message: string;
}

interface Target {
  readonly name: string;
  /** Calls with the admin token. */
  readonly api: Api;
  /** Calls without any authorization header. */
  readonly anonymous: Api;
  /** Calls with a well-formed but wrong bearer token. */
  readonly wrongToken: Api;
  /** grpc.health.v1.Health/Check, without a token. */
  healthCheck(service: string): Promise<HealthCheckResponse>;
  /** The services gRPC reflection (v1) lists, without a token; only where bidi streaming works. */
  listServices?: () => Promise<string[]>;
  /** The code and raw message of a failed call, asserting it is this client's error type. */
  failure(err: unknown): Failure;
  readonly codes: Record<Outcome, number>;
  close(): void;
}

const WRONG_TOKEN = "cbt_this-is-not-the-admin-token";

function connectFailure(err: unknown): Failure {
  assert.ok(err instanceof ConnectError, `expected a ConnectError, got ${inspect(err)}`);
  return { code: err.code, message: err.rawMessage };
}

function grpcJsFailure(err: unknown): Failure {
  assert.ok(
    err instanceof Error &&
      "code" in err &&
      typeof err.code === "number" &&
      "details" in err &&
      typeof err.details === "string",
    `expected a grpc-js ServiceError, got ${inspect(err)}`,
  );
  // grpc-js shows the message as it reads it: the daemon encodes it the spec's way.
  return { code: err.code, message: err.details };
}

async function* once<T>(value: T): AsyncIterable<T> {
  yield value;
}

const LIST_SERVICES: MessageInitShape<typeof ServerReflectionRequestSchema> = {
  messageRequest: { case: "listServices", value: "" },
};

function serviceNames(res: ServerReflectionResponse): string[] {
  assert.equal(res.messageResponse.case, "listServicesResponse", inspect(res));
  return res.messageResponse.case === "listServicesResponse"
    ? res.messageResponse.value.service.map((s) => s.name)
    : [];
}

function connectTarget(url: string, protocol: Protocol, token: string): Target {
  const target: Target = {
    name: protocol,
    api: credentialClient(url, protocol, token),
    anonymous: credentialClient(url, protocol),
    wrongToken: credentialClient(url, protocol, WRONG_TOKEN),
    healthCheck: (service) => createClient(Health, transport(url, protocol)).check({ service }),
    failure: connectFailure,
    codes: CONNECT_CODES,
    close() {},
  };
  // Bidi streaming (reflection) needs HTTP/2 and a protocol other than gRPC-Web.
  if (protocol === "connect-h2" || protocol === "grpc-h2") {
    target.listServices = async () => {
      const client = createClient(ServerReflectionV1, transport(url, protocol));
      const names: string[] = [];
      for await (const res of client.serverReflectionInfo(once(LIST_SERVICES))) {
        names.push(...serviceNames(res));
      }
      return names;
    };
  }
  return target;
}

function grpcJsApi(url: string, token?: string): { api: Api; close(): void } {
  const { client, close } = grpcJsClient(CredentialService, url, token);
  const api: Api = {
    createCredential: (r) => client.createCredential(create(CreateCredentialRequestSchema, r)),
    getCredential: (r) => client.getCredential(create(GetCredentialRequestSchema, r)),
    listCredentials: (r) => client.listCredentials(create(ListCredentialsRequestSchema, r)),
    updateCredential: (r) => client.updateCredential(create(UpdateCredentialRequestSchema, r)),
    deleteCredential: (r) => client.deleteCredential(create(DeleteCredentialRequestSchema, r)),
    verifyCredential: (r) => client.verifyCredential(create(VerifyCredentialRequestSchema, r)),
  };
  return { api, close };
}

/** grpc.reflection.v1 ListServices through grpc-js's own bidi call. */
function grpcJsListServices(url: string): Promise<string[]> {
  const client = new grpc.Client(new URL(url).host, grpc.credentials.createInsecure());
  return new Promise<string[]>((resolve, reject) => {
    const call = client.makeBidiStreamRequest(
      `/${ServerReflectionV1.typeName}/ServerReflectionInfo`,
      (m: ServerReflectionRequest) => Buffer.from(toBinary(ServerReflectionRequestSchema, m)),
      (b: Buffer) => fromBinary(ServerReflectionResponseSchema, b),
    );
    const names: string[] = [];
    call.on("data", (res: ServerReflectionResponse) => names.push(...serviceNames(res)));
    call.on("error", reject);
    call.on("end", () => resolve(names));
    call.write(create(ServerReflectionRequestSchema, LIST_SERVICES));
    call.end();
  }).finally(() => client.close());
}

function grpcJsTarget(url: string, token: string): Target {
  const withToken = grpcJsApi(url, token);
  const anonymous = grpcJsApi(url);
  const wrong = grpcJsApi(url, WRONG_TOKEN);
  const health = grpcJsClient(Health, url);
  return {
    name: "grpc-js",
    api: withToken.api,
    anonymous: anonymous.api,
    wrongToken: wrong.api,
    healthCheck: (service) => health.client.check(create(HealthCheckRequestSchema, { service })),
    listServices: () => grpcJsListServices(url),
    failure: grpcJsFailure,
    codes: GRPC_CODES,
    close() {
      withToken.close();
      anonymous.close();
      wrong.close();
      health.close();
    },
  };
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

type CredentialInit = MessageInitShape<typeof CredentialSchema>;
type RoleInit = MessageInitShape<typeof RoleSchema>;

const AKID = "AKIAIOSFODNN7EXAMPLE";
const SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLEsessiontoken";
const TOKEN_SECRET = "ghp_exampleBearerTokenSecret0123456789";
const ROLE_ARN = "arn:aws:iam::123456789012:role/s3-reader";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const SECRETS = [SECRET, SESSION_TOKEN, TOKEN_SECRET];

function accessKey(namespace: string, name: string, extra: CredentialInit = {}): CredentialInit {
  return {
    namespace,
    name,
    kind: { case: "accessKey", value: { accessKeyId: AKID, secretAccessKey: SECRET } },
    ...extra,
  };
}

function role(
  namespace: string,
  name: string,
  source: string,
  fields: RoleInit = {},
): CredentialInit {
  return {
    namespace,
    name,
    kind: { case: "role", value: { roleArn: ROLE_ARN, sourceCredential: source, ...fields } },
  };
}

function token(namespace: string, name: string, extra: CredentialInit = {}): CredentialInit {
  return {
    namespace,
    name,
    provider: Provider.GENERIC,
    kind: { case: "token", value: { token: TOKEN_SECRET } },
    ...extra,
  };
}

function must<T>(value: T | undefined, what = "value"): T {
  assert.ok(value !== undefined, `${what} is missing`);
  return value;
}

/** Awaits a call that must fail with `outcome`; asserts each fragment is in its message. */
async function fails(
  t: Target,
  call: Promise<unknown>,
  outcome: Outcome,
  ...fragments: string[]
): Promise<string> {
  const err: unknown = await call.then(
    (res) => assert.fail(`expected ${outcome}, got a response: ${inspect(res, { depth: 5 })}`),
    (e: unknown) => e,
  );
  const f = t.failure(err);
  assert.equal(
    f.code,
    t.codes[outcome],
    `expected ${outcome} (${t.codes[outcome]}), got code ${f.code}: ${f.message}`,
  );
  for (const fragment of fragments) {
    assert.ok(
      f.message.includes(fragment),
      `message ${JSON.stringify(f.message)} should include ${JSON.stringify(fragment)}`,
    );
  }
  for (const secret of SECRETS) assert.ok(!f.message.includes(secret), "message quotes a secret");
  return f.message;
}

function accessKeyOf(c: Credential): AccessKey {
  assert.equal(c.kind.case, "accessKey");
  if (c.kind.case !== "accessKey") throw new Error("unreachable");
  return c.kind.value;
}

function roleOf(c: Credential): Role {
  assert.equal(c.kind.case, "role");
  if (c.kind.case !== "role") throw new Error("unreachable");
  return c.kind.value;
}

/** Asserts `c` carries no secret value at all. */
function assertRedacted(c: Credential): void {
  switch (c.kind.case) {
    case "accessKey":
      assert.equal(c.kind.value.secretAccessKey, "");
      assert.equal(c.kind.value.sessionToken, undefined);
      break;
    case "token":
      assert.equal(c.kind.value.token, "");
      break;
    default:
      break;
  }
}

function checkNamed(res: VerifyCredentialResponse, name: string): Check {
  const found = res.checks.find((c) => c.check === name);
  assert.ok(
    found !== undefined,
    `no check ${name} in ${res.checks.map((c) => c.check).join(", ")}`,
  );
  return found;
}

async function createAll(api: Api, credentials: CredentialInit[]): Promise<void> {
  for (let i = 0; i < credentials.length; i += 20) {
    await Promise.all(
      credentials.slice(i, i + 20).map((credential) => api.createCredential({ credential })),
    );
  }
}

// ---------------------------------------------------------------------------
// The cases, registered once per client.
// ---------------------------------------------------------------------------

function defineCases(target: () => Target, ns: string): void {
  const api = () => target().api;
  const create = async (credential: CredentialInit): Promise<Credential> =>
    must((await api().createCredential({ credential })).credential, "credential");
  const get = async (name: string, namespace = ns): Promise<Credential> =>
    must((await api().getCredential({ namespace, name })).credential, "credential");
  const verifyStored = (name: string, namespace = ns) =>
    api().verifyCredential({ target: { case: "stored", value: { namespace, name } } });

  describe("CreateCredential", () => {
    test("an access_key comes back complete and without its secrets", async () => {
      const before = Date.now();
      const c = await create(
        accessKey(ns, "ak-basic", {
          kind: {
            case: "accessKey",
            value: { accessKeyId: AKID, secretAccessKey: SECRET, sessionToken: SESSION_TOKEN },
          },
          region: "us-east-1",
          description: "the basic key",
          metadata: { team: "storage" },
          allowedHosts: ["S3.Example.COM", "*.S3.amazonaws.com"],
          allowedScopes: [{ bucket: "logs", prefixes: ["2024/"], actions: ["get_object"] }],
        }),
      );
      const afterMs = Date.now();
      assert.match(c.id, UUID);
      assert.equal(typeof c.etag, "string");
      assert.notEqual(c.etag, "");
      assert.equal(c.namespace, ns);
      assert.equal(c.name, "ak-basic");
      assert.equal(c.provider, Provider.AWS);
      assert.equal(c.enabled, true);
      assert.equal(c.providerDefault, false);
      assert.equal(c.region, "us-east-1");
      assert.equal(c.description, "the basic key");
      assert.deepEqual(c.metadata, { team: "storage" });
      assert.deepEqual(c.allowedHosts, ["s3.example.com", "*.s3.amazonaws.com"]);
      assert.equal(c.allowedScopes.length, 1);
      assert.equal(c.allowedScopes[0]?.bucket, "logs");
      assert.deepEqual(c.allowedScopes[0]?.prefixes, ["2024/"]);
      assert.deepEqual(c.allowedScopes[0]?.actions, ["get_object"]);
      assert.equal(accessKeyOf(c).accessKeyId, AKID);
      assertRedacted(c);
      const createdAt = timestampDate(must(c.createdAt, "createdAt")).getTime();
      assert.ok(
        createdAt >= before - 1000 && createdAt <= afterMs + 1000,
        `createdAt ${createdAt}`,
      );
      assert.deepEqual(c.updatedAt, c.createdAt);
      assert.equal(c.expiresAt, undefined);
    });

    test("ids and etags differ between credentials", async () => {
      const a = await create(accessKey(ns, "ak-twin-1"));
      const b = await create(accessKey(ns, "ak-twin-2"));
      assert.notEqual(a.id, b.id);
      assert.notEqual(a.etag, b.etag);
    });

    test("output-only fields in the request are replaced", async () => {
      const c = await create(
        accessKey(ns, "ak-output-only", {
          id: "11111111-1111-4111-8111-111111111111",
          etag: "client-chosen",
          createdAt: timestampFromDate(new Date("2001-01-01T00:00:00Z")),
        }),
      );
      assert.notEqual(c.id, "11111111-1111-4111-8111-111111111111");
      assert.match(c.id, UUID);
      assert.notEqual(c.etag, "client-chosen");
      assert.ok(timestampDate(must(c.createdAt)).getFullYear() >= 2024);
    });

    test("a future expires_at is kept", async () => {
      const expiresAt = timestampFromDate(new Date(Date.now() + 86_400_000));
      const c = await create(accessKey(ns, "ak-expiring", { expiresAt }));
      assert.deepEqual(c.expiresAt, expiresAt);
    });

    test("a role without external_id gets a generated UUID and 3600 seconds", async () => {
      await create(accessKey(ns, "role-src"));
      const r = await create(role(ns, "role-generated", "role-src"));
      const rv = roleOf(r);
      assert.match(rv.externalId, UUID);
      assert.equal(rv.durationSeconds, 3600);
      assert.equal(rv.roleArn, ROLE_ARN);
      assert.equal(rv.sourceCredential, "role-src");
      assert.equal(rv.sessionName, undefined);
      assert.equal(r.provider, Provider.AWS);
      assert.deepEqual(await get("role-generated"), r);
    });

    test("a role keeps the external_id, duration and session name it was given", async () => {
      const r = await create(
        role(ns, "role-explicit", "role-src", {
          externalId: "ext-id-42",
          durationSeconds: 900,
          sessionName: "credbroker-test",
        }),
      );
      const rv = roleOf(r);
      assert.equal(rv.externalId, "ext-id-42");
      assert.equal(rv.durationSeconds, 900);
      assert.equal(rv.sessionName, "credbroker-test");
    });

    test("a role whose source_credential is missing is FailedPrecondition", async () => {
      await fails(
        target(),
        api().createCredential({ credential: role(ns, "role-orphan", "no-such-key") }),
        "FailedPrecondition",
        "role.source_credential",
        `${ns}/no-such-key`,
        "does not exist",
      );
      await fails(
        target(),
        api().getCredential({ namespace: ns, name: "role-orphan" }),
        "NotFound",
      );
    });

    test("a role whose source is a token credential is FailedPrecondition", async () => {
      await create(token(ns, "role-src-token"));
      await fails(
        target(),
        api().createCredential({ credential: role(ns, "role-on-token", "role-src-token") }),
        "FailedPrecondition",
        `${ns}/role-src-token`,
        "is not an access_key",
      );
      await fails(
        target(),
        api().getCredential({ namespace: ns, name: "role-on-token" }),
        "NotFound",
      );
    });

    test("a role's source must be in the same namespace", async () => {
      await create(accessKey(`${ns}.other`, "elsewhere"));
      await fails(
        target(),
        api().createCredential({ credential: role(ns, "role-cross-ns", "elsewhere") }),
        "FailedPrecondition",
        `${ns}/elsewhere`,
      );
    });

    test("a token is stored and its token is never read back", async () => {
      const c = await create(token(ns, "tok-basic"));
      assert.equal(c.provider, Provider.GENERIC);
      assert.equal(c.kind.case, "token");
      assert.equal(c.kind.case === "token" && c.kind.value.token, "");
      const read = await get("tok-basic");
      assert.equal(read.kind.case, "token");
      assert.equal(read.kind.case === "token" && read.kind.value.token, "");
      assert.deepEqual(read, c);
    });

    test('a non-AWS-shaped access_key_id like "test:tester" is accepted', async () => {
      const c = await create(
        accessKey(ns, "ak-minio", {
          kind: { case: "accessKey", value: { accessKeyId: "test:tester", secretAccessKey: "t" } },
        }),
      );
      assert.equal(accessKeyOf(c).accessKeyId, "test:tester");
      assertRedacted(c);
    });

    test("the longest name (64) and access_key_id (128) are accepted", async () => {
      const name = "n".repeat(64);
      const accessKeyId = "K".repeat(128);
      const c = await create(
        accessKey(ns, name, {
          kind: { case: "accessKey", value: { accessKeyId, secretAccessKey: SECRET } },
        }),
      );
      assert.equal(c.name, name);
      assert.equal(accessKeyOf(c).accessKeyId, accessKeyId);
    });

    const invalid: { label: string; credential: CredentialInit | undefined; field: string[] }[] = [
      { label: 'name "a/b"', credential: accessKey(ns, "a/b"), field: ["name:"] },
      { label: "an empty name", credential: accessKey(ns, ""), field: ["name:"] },
      { label: "a 65-character name", credential: accessKey(ns, "x".repeat(65)), field: ["name:"] },
      {
        label: 'namespace "bad/ns"',
        credential: accessKey("bad/ns", "fine-name"),
        field: ["namespace:"],
      },
      {
        label: "a 65-character namespace",
        credential: accessKey("n".repeat(65), "fine-name"),
        field: ["namespace:"],
      },
      { label: "no kind", credential: { namespace: ns, name: "no-kind" }, field: ["kind:"] },
      {
        label: "an access_key_id with a space",
        credential: accessKey(ns, "ak-space", {
          kind: {
            case: "accessKey",
            value: { accessKeyId: "AKIA EXAMPLE", secretAccessKey: SECRET },
          },
        }),
        field: ["access_key.access_key_id"],
      },
      {
        label: "a 129-character access_key_id",
        credential: accessKey(ns, "ak-long-id", {
          kind: {
            case: "accessKey",
            value: { accessKeyId: "K".repeat(129), secretAccessKey: SECRET },
          },
        }),
        field: ["access_key.access_key_id"],
      },
      {
        label: "a missing secret_access_key",
        credential: accessKey(ns, "ak-no-secret", {
          kind: { case: "accessKey", value: { accessKeyId: AKID } },
        }),
        field: ["access_key.secret_access_key"],
      },
      {
        label: "a secret_access_key with a space",
        credential: accessKey(ns, "ak-bad-secret", {
          kind: { case: "accessKey", value: { accessKeyId: AKID, secretAccessKey: "two words" } },
        }),
        field: ["access_key.secret_access_key"],
      },
      {
        label: "a bad role_arn",
        credential: role(ns, "role-bad-arn", "role-src", { roleArn: "arn:aws:iam::123:role/x" }),
        field: ["role.role_arn"],
      },
      {
        label: "duration_seconds 899",
        credential: role(ns, "role-short", "role-src", { durationSeconds: 899 }),
        field: ["role.duration_seconds", "900"],
      },
      {
        label: "duration_seconds 43201",
        credential: role(ns, "role-long", "role-src", { durationSeconds: 43201 }),
        field: ["role.duration_seconds"],
      },
      {
        label: "an unknown scope action",
        credential: accessKey(ns, "ak-bad-scope", {
          allowedScopes: [{ bucket: "logs", actions: ["get_object", "steal_object"] }],
        }),
        field: ["allowed_scopes.actions", "allowed_scopes[0]"],
      },
      {
        label: "a scope without actions",
        credential: accessKey(ns, "ak-no-actions", { allowedScopes: [{ bucket: "logs" }] }),
        field: ["allowed_scopes.actions"],
      },
      {
        label: 'allowed_host "http://x.com"',
        credential: accessKey(ns, "ak-bad-host", { allowedHosts: ["http://x.com"] }),
        field: ["allowed_hosts", "allowed_hosts[0]"],
      },
      {
        label: "expires_at in the past",
        credential: accessKey(ns, "ak-expired", {
          expiresAt: timestampFromDate(new Date(Date.now() - 3_600_000)),
        }),
        field: ["expires_at", "in the past"],
      },
      {
        label: "a session_token with a space",
        credential: accessKey(ns, "ak-bad-session", {
          kind: {
            case: "accessKey",
            value: { accessKeyId: AKID, secretAccessKey: SECRET, sessionToken: "two words" },
          },
        }),
        field: ["access_key.session_token"],
      },
      {
        label: "an empty token",
        credential: token(ns, "tok-empty", { kind: { case: "token", value: { token: "" } } }),
        field: ["token.token"],
      },
      {
        label: "a one-character external_id",
        credential: role(ns, "role-short-ext", "role-src", { externalId: "a" }),
        field: ["role.external_id"],
      },
      {
        label: "a one-character session_name",
        credential: role(ns, "role-short-session", "role-src", { sessionName: "x" }),
        field: ["role.session_name"],
      },
      {
        label: 'region "Not A Region"',
        credential: accessKey(ns, "ak-bad-region", { region: "Not A Region" }),
        field: ["region:"],
      },
      {
        label: "a 1025-character description",
        credential: accessKey(ns, "ak-long-description", { description: "d".repeat(1025) }),
        field: ["description:"],
      },
      {
        label: "65 metadata entries",
        credential: accessKey(ns, "ak-big-metadata", {
          metadata: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, "v"])),
        }),
        field: ["metadata:"],
      },
      {
        label: "a 257-character principal_name",
        credential: accessKey(ns, "ak-long-principal", { principalName: "p".repeat(257) }),
        field: ["principal_name:"],
      },
      {
        label: "a scope without a bucket",
        credential: accessKey(ns, "ak-no-bucket", {
          allowedScopes: [{ bucket: "", actions: ["get_object"] }],
        }),
        field: ["allowed_scopes.bucket"],
      },
      {
        // The contract's Provider enum has PROVIDER_AWS and PROVIDER_GENERIC only,
        // and ListCredentials already refuses any other value.
        label: "provider 9 (not a Provider value)",
        credential: accessKey(ns, "ak-provider-9", { provider: 9 as Provider }),
        field: ["provider"],
      },
      { label: "a missing credential", credential: undefined, field: ["credential:", "required"] },
    ];
    for (const c of invalid) {
      test(`InvalidArgument for ${c.label}`, async () => {
        await fails(
          target(),
          api().createCredential(c.credential === undefined ? {} : { credential: c.credential }),
          "InvalidArgument",
          ...c.field,
        );
      });
    }

    test("InvalidArgument names every bad field at once", async () => {
      await fails(
        target(),
        api().createCredential({
          credential: accessKey(ns, "ak-two-faults", {
            region: "Not A Region",
            allowedHosts: ["http://x.com"],
          }),
        }),
        "InvalidArgument",
        "region:",
        "allowed_hosts",
      );
    });

    test("none of the rejected credentials was stored", async () => {
      const listed = await api().listCredentials({ namespace: ns, pageSize: 1000 });
      const names = listed.credentials.map((c) => c.name);
      for (const name of ["ak-space", "ak-no-secret", "role-bad-arn", "ak-expired", "no-kind"]) {
        assert.ok(!names.includes(name), `${name} was stored`);
      }
    });

    test("concurrent creates of one name: exactly one wins, the rest are AlreadyExists", async () => {
      const results = await Promise.allSettled(
        Array.from({ length: 5 }, (_, i) =>
          api().createCredential({
            credential: accessKey(ns, "ak-race", { description: `racer ${i}` }),
          }),
        ),
      );
      const won = results.filter((r) => r.status === "fulfilled");
      assert.equal(won.length, 1);
      for (const r of results) {
        if (r.status === "rejected")
          await fails(target(), Promise.reject(r.reason), "AlreadyExists");
      }
      const stored = await get("ak-race");
      assert.equal(stored.id, won[0]?.status === "fulfilled" ? won[0].value.credential?.id : "");
    });

    test("AlreadyExists for a duplicate name, and the original is unchanged", async () => {
      const first = await create(accessKey(ns, "ak-dup", { description: "first" }));
      await fails(
        target(),
        api().createCredential({
          credential: token(ns, "ak-dup", { description: "second" }),
        }),
        "AlreadyExists",
        `${ns}/ak-dup`,
      );
      assert.deepEqual(await get("ak-dup"), first);
    });

    test("the same name in another namespace is a different credential", async () => {
      const here = await get("ak-dup");
      const there = await create(accessKey(`${ns}.other`, "ak-dup"));
      assert.notEqual(there.id, here.id);
      assert.equal(there.namespace, `${ns}.other`);
    });
  });

  describe("GetCredential", () => {
    test("returns exactly what create returned, without secrets", async () => {
      const created = await create(
        accessKey(ns, "get-me", {
          kind: {
            case: "accessKey",
            value: { accessKeyId: AKID, secretAccessKey: SECRET, sessionToken: SESSION_TOKEN },
          },
          principalName: "arn:aws:iam::123456789012:user/alice",
          allowedInTasks: true,
          metadata: { a: "1", b: "2" },
        }),
      );
      const read = await get("get-me");
      assert.deepEqual(read, created);
      assertRedacted(read);
    });

    test("NotFound for a missing name, naming it", async () => {
      await fails(
        target(),
        api().getCredential({ namespace: ns, name: "missing" }),
        "NotFound",
        `${ns}/missing`,
      );
    });

    test("InvalidArgument for a bad name or namespace", async () => {
      await fails(
        target(),
        api().getCredential({ namespace: ns, name: "a/b" }),
        "InvalidArgument",
        "name:",
      );
      await fails(
        target(),
        api().getCredential({ namespace: ns, name: "" }),
        "InvalidArgument",
        "name:",
      );
      await fails(
        target(),
        api().getCredential({ namespace: "bad/ns", name: "x" }),
        "InvalidArgument",
        "namespace:",
      );
    });
  });

  describe("ListCredentials", () => {
    const listNs = `${ns}.list`;
    const awsNames = ["item-1", "item-3", "item-4", "item-6"];
    const genericNames = ["item-2", "item-5", "item-7"];
    const list = (req: MessageInitShape<typeof ListCredentialsRequestSchema>) =>
      api().listCredentials(req);

    before(async () => {
      // Created out of name order, so order comes from the server.
      for (const name of ["item-5", "item-1", "item-7", "item-3", "item-2", "item-6", "item-4"]) {
        await create(awsNames.includes(name) ? accessKey(listNs, name) : token(listNs, name));
      }
    });

    test("page_size 3 pages 7 credentials as 3, 3, 1 in name order", async () => {
      const p1 = await list({ namespace: listNs, pageSize: 3 });
      assert.deepEqual(
        p1.credentials.map((c) => c.name),
        ["item-1", "item-2", "item-3"],
      );
      assert.notEqual(p1.nextPageToken, "");
      const p2 = await list({ namespace: listNs, pageSize: 3, pageToken: p1.nextPageToken });
      assert.deepEqual(
        p2.credentials.map((c) => c.name),
        ["item-4", "item-5", "item-6"],
      );
      assert.notEqual(p2.nextPageToken, "");
      assert.notEqual(p2.nextPageToken, p1.nextPageToken);
      const p3 = await list({ namespace: listNs, pageSize: 3, pageToken: p2.nextPageToken });
      assert.deepEqual(
        p3.credentials.map((c) => c.name),
        ["item-7"],
      );
      assert.equal(p3.nextPageToken, "");
      for (const c of [...p1.credentials, ...p2.credentials, ...p3.credentials]) {
        assert.equal(c.namespace, listNs);
        assertRedacted(c);
      }
    });

    test("a listed credential equals the one Get returns", async () => {
      const page = await list({ namespace: listNs, pageSize: 1 });
      assert.equal(page.credentials.length, 1);
      assert.deepEqual(page.credentials[0], await get("item-1", listNs));
    });

    test("page_size 7 returns everything with no next page", async () => {
      const page = await list({ namespace: listNs, pageSize: 7 });
      assert.equal(page.credentials.length, 7);
      assert.equal(page.nextPageToken, "");
    });

    test("the provider filter lists only that provider", async () => {
      const generic = await list({ namespace: listNs, provider: Provider.GENERIC });
      assert.deepEqual(
        generic.credentials.map((c) => c.name),
        genericNames,
      );
      assert.ok(generic.credentials.every((c) => c.provider === Provider.GENERIC));
      assert.equal(generic.nextPageToken, "");
      const aws = await list({ namespace: listNs, provider: Provider.AWS });
      assert.deepEqual(
        aws.credentials.map((c) => c.name),
        awsNames,
      );
      assert.ok(aws.credentials.every((c) => c.provider === Provider.AWS));
    });

    test("the provider filter pages too", async () => {
      const p1 = await list({ namespace: listNs, provider: Provider.AWS, pageSize: 3 });
      assert.deepEqual(
        p1.credentials.map((c) => c.name),
        awsNames.slice(0, 3),
      );
      const p2 = await list({
        namespace: listNs,
        provider: Provider.AWS,
        pageSize: 3,
        pageToken: p1.nextPageToken,
      });
      assert.deepEqual(
        p2.credentials.map((c) => c.name),
        awsNames.slice(3),
      );
      assert.equal(p2.nextPageToken, "");
    });

    test("a cursor neither repeats nor skips when credentials change between pages", async () => {
      const curNs = `${ns}.cursor`;
      for (const name of ["c-1", "c-2", "c-3", "c-4", "c-5"]) await create(token(curNs, name));
      const p1 = await list({ namespace: curNs, pageSize: 2 });
      assert.deepEqual(
        p1.credentials.map((c) => c.name),
        ["c-1", "c-2"],
      );
      // The page's last credential (the cursor) and an earlier one go away,
      // one appears before the cursor and one after it.
      await api().deleteCredential({ namespace: curNs, name: "c-2" });
      await api().deleteCredential({ namespace: curNs, name: "c-1" });
      await create(token(curNs, "c-0"));
      await create(token(curNs, "c-2a"));
      const p2 = await list({ namespace: curNs, pageSize: 2, pageToken: p1.nextPageToken });
      assert.deepEqual(
        p2.credentials.map((c) => c.name),
        ["c-2a", "c-3"],
      );
      const p3 = await list({ namespace: curNs, pageSize: 2, pageToken: p2.nextPageToken });
      assert.deepEqual(
        p3.credentials.map((c) => c.name),
        ["c-4", "c-5"],
      );
      assert.equal(p3.nextPageToken, "");
    });

    test("a provider change moves the credential between filtered listings", async () => {
      const movNs = `${ns}.move`;
      await create(accessKey(movNs, "mover"));
      await api().updateCredential({
        namespace: movNs,
        name: "mover",
        credential: { provider: Provider.GENERIC },
        updateMask: { paths: ["provider"] },
      });
      const aws = await list({ namespace: movNs, provider: Provider.AWS });
      assert.deepEqual(aws.credentials, []);
      const generic = await list({ namespace: movNs, provider: Provider.GENERIC });
      assert.deepEqual(
        generic.credentials.map((c) => c.name),
        ["mover"],
      );
    });

    test("an empty namespace lists nothing", async () => {
      const page = await list({ namespace: `${ns}.empty` });
      assert.deepEqual(page.credentials, []);
      assert.equal(page.nextPageToken, "");
    });

    test("the default page size is 100, and 5000 is clamped rather than refused", async () => {
      const bulkNs = `${ns}.bulk`;
      await createAll(
        api(),
        Array.from({ length: 101 }, (_, i) => token(bulkNs, `bulk-${String(i).padStart(3, "0")}`)),
      );
      const first = await list({ namespace: bulkNs });
      assert.equal(first.credentials.length, 100);
      assert.equal(first.credentials[0]?.name, "bulk-000");
      assert.equal(first.credentials[99]?.name, "bulk-099");
      assert.notEqual(first.nextPageToken, "");
      const rest = await list({ namespace: bulkNs, pageToken: first.nextPageToken });
      assert.deepEqual(
        rest.credentials.map((c) => c.name),
        ["bulk-100"],
      );
      assert.equal(rest.nextPageToken, "");
      const all = await list({ namespace: bulkNs, pageSize: 5000 });
      assert.equal(all.credentials.length, 101);
      assert.equal(all.nextPageToken, "");
    });

    test("InvalidArgument for a page_token from another namespace", async () => {
      const p1 = await list({ namespace: listNs, pageSize: 3 });
      await fails(
        target(),
        list({ namespace: `${ns}.bulk`, pageSize: 3, pageToken: p1.nextPageToken }),
        "InvalidArgument",
        "page_token",
      );
    });

    test("InvalidArgument for a page_token from another provider filter", async () => {
      const p1 = await list({ namespace: listNs, pageSize: 2, provider: Provider.GENERIC });
      assert.notEqual(p1.nextPageToken, "");
      await fails(
        target(),
        list({
          namespace: listNs,
          pageSize: 2,
          provider: Provider.AWS,
          pageToken: p1.nextPageToken,
        }),
        "InvalidArgument",
        "page_token",
      );
    });

    test("InvalidArgument for a garbage page_token", async () => {
      await fails(
        target(),
        list({ namespace: listNs, pageToken: "garbage" }),
        "InvalidArgument",
        "page_token",
      );
      await fails(
        target(),
        list({ namespace: listNs, pageToken: Buffer.from("[1,2]").toString("base64url") }),
        "InvalidArgument",
        "page_token",
      );
    });

    test("InvalidArgument for a negative page_size", async () => {
      await fails(
        target(),
        list({ namespace: listNs, pageSize: -1 }),
        "InvalidArgument",
        "page_size",
      );
    });

    test("InvalidArgument for a bad namespace or an unknown provider", async () => {
      await fails(target(), list({ namespace: "bad/ns" }), "InvalidArgument", "namespace:");
      await fails(
        target(),
        list({ namespace: listNs, provider: 9 as Provider }),
        "InvalidArgument",
        "provider",
      );
    });
  });

  describe("UpdateCredential", () => {
    const update = (
      name: string,
      credential: CredentialInit | undefined,
      paths: string[] | undefined,
      namespace = ns,
    ) =>
      api().updateCredential({
        namespace,
        name,
        ...(credential === undefined ? {} : { credential }),
        ...(paths === undefined ? {} : { updateMask: { paths } }),
      });
    const updated = async (
      name: string,
      credential: CredentialInit,
      paths: string[],
      namespace = ns,
    ): Promise<Credential> =>
      must((await update(name, credential, paths, namespace)).credential, "credential");

    test("InvalidArgument for an empty or absent mask, and nothing changes", async () => {
      const c = await create(accessKey(ns, "upd-mask"));
      await fails(
        target(),
        update("upd-mask", { description: "x" }, []),
        "InvalidArgument",
        "update_mask",
      );
      await fails(
        target(),
        update("upd-mask", { description: "x" }, undefined),
        "InvalidArgument",
        "update_mask",
      );
      assert.deepEqual(await get("upd-mask"), c);
    });

    test("InvalidArgument for an unknown path", async () => {
      await fails(
        target(),
        update("upd-mask", { description: "x" }, ["colour"]),
        "InvalidArgument",
        "update_mask",
        "unknown field path",
      );
      await fails(
        target(),
        update("upd-mask", { description: "x" }, ["access_key.nonsense"]),
        "InvalidArgument",
        "unknown field path",
      );
    });

    test("InvalidArgument for output-only and immutable paths", async () => {
      for (const path of ["id", "namespace", "etag", "created_at", "updated_at"]) {
        await fails(
          target(),
          update("upd-mask", { id: "x", namespace: "y" }, [path]),
          "InvalidArgument",
          `update_mask: ${path}`,
        );
      }
    });

    test("InvalidArgument for a kind path the credential does not have", async () => {
      await fails(
        target(),
        update("upd-mask", { kind: { case: "token", value: { token: TOKEN_SECRET } } }, [
          "token.token",
        ]),
        "InvalidArgument",
        "token",
      );
    });

    test("InvalidArgument for a missing credential, or a value that fails validation", async () => {
      await fails(
        target(),
        update("upd-mask", undefined, ["description"]),
        "InvalidArgument",
        "credential:",
      );
      await fails(
        target(),
        update("upd-mask", { region: "Not A Region" }, ["region"]),
        "InvalidArgument",
        "region:",
      );
      await fails(
        target(),
        update("upd-mask", { name: "a/b" }, ["name"]),
        "InvalidArgument",
        "name:",
      );
      await fails(
        target(),
        update("upd-mask", { expiresAt: timestampFromDate(new Date(Date.now() - 60_000)) }, [
          "expires_at",
        ]),
        "InvalidArgument",
        "expires_at",
      );
    });

    test("NotFound for a missing name", async () => {
      await fails(
        target(),
        update("missing", { description: "x" }, ["description"]),
        "NotFound",
        `${ns}/missing`,
      );
    });

    test("only the named fields change; updated_at moves, created_at stays", async () => {
      const c = await create(
        accessKey(ns, "upd-fields", { description: "old", region: "us-east-1" }),
      );
      const u = await updated(
        "upd-fields",
        { description: "new", region: "eu-west-1", metadata: { ignored: "yes" } },
        ["description"],
      );
      assert.equal(u.description, "new");
      assert.equal(u.region, "us-east-1");
      assert.deepEqual(u.metadata, {});
      assert.equal(u.id, c.id);
      assert.notEqual(u.etag, c.etag);
      assert.deepEqual(u.createdAt, c.createdAt);
      assert.ok(
        timestampDate(must(u.updatedAt)).getTime() >= timestampDate(must(c.updatedAt)).getTime(),
      );
      assertRedacted(u);
      assert.deepEqual(await get("upd-fields"), u);
    });

    test("a rename keeps the id, changes the etag, and frees the old name", async () => {
      const c = await create(accessKey(ns, "ren-a"));
      const r = await updated("ren-a", { name: "ren-b" }, ["name"]);
      assert.equal(r.name, "ren-b");
      assert.equal(r.id, c.id);
      assert.notEqual(r.etag, c.etag);
      await fails(target(), api().getCredential({ namespace: ns, name: "ren-a" }), "NotFound");
      assert.deepEqual(await get("ren-b"), r);
      const names = (
        await api().listCredentials({ namespace: ns, pageSize: 1000 })
      ).credentials.map((x) => x.name);
      assert.ok(names.includes("ren-b"));
      assert.ok(!names.includes("ren-a"));
      // The old name can be used again.
      const again = await create(accessKey(ns, "ren-a"));
      assert.notEqual(again.id, c.id);
    });

    test("AlreadyExists when renaming onto an existing name; neither changes", async () => {
      const a = await get("ren-a");
      const b = await get("ren-b");
      await fails(
        target(),
        update("ren-a", { name: "ren-b" }, ["name"]),
        "AlreadyExists",
        `${ns}/ren-b`,
      );
      assert.deepEqual(await get("ren-a"), a);
      assert.deepEqual(await get("ren-b"), b);
    });

    test("enabled can be turned off and on", async () => {
      await create(accessKey(ns, "upd-enabled"));
      const off = await updated("upd-enabled", { enabled: false }, ["enabled"]);
      assert.equal(off.enabled, false);
      assert.equal((await get("upd-enabled")).enabled, false);
      const v = await verifyStored("upd-enabled");
      assert.equal(v.valid, true);
      const enabled = checkNamed(v, "enabled");
      assert.equal(enabled.ok, false);
      assert.equal(enabled.severity, Severity.WARNING);
      const on = await updated("upd-enabled", { enabled: true }, ["enabled"]);
      assert.equal(on.enabled, true);
    });

    test("a read-modify-write of description keeps the secret", async () => {
      await create(accessKey(ns, "upd-rmw"));
      const read = await get("upd-rmw");
      assertRedacted(read);
      read.description = "edited";
      const u = await updated("upd-rmw", read, ["description"]);
      assert.equal(u.description, "edited");
      assert.equal(accessKeyOf(u).accessKeyId, AKID);
      assert.notEqual(u.etag, read.etag);
      const v = await verifyStored("upd-rmw");
      assert.equal(checkNamed(v, "access_key.secret_access_key.format").ok, true);
      assert.equal(v.valid, true);
    });

    test("replacing the whole access_key with the redacted read is refused; the secret survives", async () => {
      const read = await get("upd-rmw");
      await fails(
        target(),
        update("upd-rmw", read, ["access_key"]),
        "InvalidArgument",
        "access_key.secret_access_key",
      );
      assert.deepEqual(await get("upd-rmw"), read);
      assert.equal(
        checkNamed(await verifyStored("upd-rmw"), "access_key.secret_access_key.format").ok,
        true,
      );
    });

    test("the secret rotates only through its own path", async () => {
      const before = await get("upd-rmw");
      const rotated = await updated(
        "upd-rmw",
        { kind: { case: "accessKey", value: { secretAccessKey: "rotated-secret-value" } } },
        ["access_key.secret_access_key"],
      );
      assert.notEqual(rotated.etag, before.etag);
      assert.equal(accessKeyOf(rotated).accessKeyId, AKID);
      assertRedacted(rotated);
      assert.equal(
        checkNamed(await verifyStored("upd-rmw"), "access_key.secret_access_key.format").ok,
        true,
      );
      // The path really writes the secret: an empty one is refused.
      await fails(
        target(),
        update("upd-rmw", { kind: { case: "accessKey", value: { secretAccessKey: "" } } }, [
          "access_key.secret_access_key",
        ]),
        "InvalidArgument",
        "access_key.secret_access_key",
      );
    });

    test("Aborted for a stale etag, and nothing changes", async () => {
      const c = await create(accessKey(ns, "upd-etag", { description: "v1" }));
      const v2 = await updated("upd-etag", { description: "v2", etag: c.etag }, ["description"]);
      await fails(
        target(),
        update("upd-etag", { description: "v3", etag: c.etag }, ["description"]),
        "Aborted",
        "etag",
      );
      assert.deepEqual(await get("upd-etag"), v2);
      const v3 = await updated("upd-etag", { description: "v3", etag: v2.etag }, ["description"]);
      assert.equal(v3.description, "v3");
    });

    test("of two updates with the same etag, exactly one wins and the other is Aborted", async () => {
      const c = await create(accessKey(ns, "upd-race"));
      const results = await Promise.allSettled(
        ["left", "right"].map((description) =>
          api().updateCredential({
            namespace: ns,
            name: "upd-race",
            credential: { description, etag: c.etag },
            updateMask: { paths: ["description"] },
          }),
        ),
      );
      const won = results.filter((r) => r.status === "fulfilled");
      assert.equal(won.length, 1);
      const lost = results.find((r) => r.status === "rejected");
      assert.ok(lost?.status === "rejected");
      await fails(target(), Promise.reject(lost.reason), "Aborted");
      const stored = await get("upd-race");
      assert.equal(
        stored.etag,
        won[0]?.status === "fulfilled" ? won[0].value.credential?.etag : undefined,
      );
    });

    test("provider_default on B clears it on A, and only for the same provider", async () => {
      const defNs = `${ns}.def`;
      const a = await create(accessKey(defNs, "a", { providerDefault: true }));
      const g = await create(token(defNs, "g", { providerDefault: true }));
      const b = await create(accessKey(defNs, "b"));
      assert.equal(a.providerDefault, true);
      assert.equal(b.providerDefault, false);
      const b2 = await updated("b", { providerDefault: true }, ["provider_default"], defNs);
      assert.equal(b2.providerDefault, true);
      const a2 = await get("a", defNs);
      assert.equal(a2.providerDefault, false);
      assert.notEqual(a2.etag, a.etag);
      assert.deepEqual(await get("g", defNs), g);
      // Creating a new default clears B in turn.
      const c = await create(accessKey(defNs, "c", { providerDefault: true }));
      assert.equal(c.providerDefault, true);
      assert.equal((await get("b", defNs)).providerDefault, false);
      assert.equal((await get("a", defNs)).providerDefault, false);
    });
  });

  describe("references", () => {
    test("a role's source cannot be renamed, deleted or changed kind; the message names the role", async () => {
      const src = await create(accessKey(ns, "ref-src"));
      await create(role(ns, "ref-role", "ref-src"));
      await fails(
        target(),
        api().updateCredential({
          namespace: ns,
          name: "ref-src",
          credential: { name: "ref-src-2" },
          updateMask: { paths: ["name"] },
        }),
        "FailedPrecondition",
        `role ${ns}/ref-role`,
      );
      await fails(
        target(),
        api().deleteCredential({ namespace: ns, name: "ref-src" }),
        "FailedPrecondition",
        `role ${ns}/ref-role`,
      );
      await fails(
        target(),
        api().updateCredential({
          namespace: ns,
          name: "ref-src",
          credential: { kind: { case: "token", value: { token: TOKEN_SECRET } } },
          updateMask: { paths: ["token"] },
        }),
        "FailedPrecondition",
        `role ${ns}/ref-role`,
      );
      assert.deepEqual(await get("ref-src"), src);
      // Other updates of the source are fine.
      const u = must(
        (
          await api().updateCredential({
            namespace: ns,
            name: "ref-src",
            credential: { description: "still a source" },
            updateMask: { paths: ["description"] },
          })
        ).credential,
      );
      assert.equal(u.description, "still a source");
    });

    test("a role cannot be pointed at a missing source by update", async () => {
      await fails(
        target(),
        api().updateCredential({
          namespace: ns,
          name: "ref-role",
          credential: { kind: { case: "role", value: { sourceCredential: "nope" } } },
          updateMask: { paths: ["role.source_credential"] },
        }),
        "FailedPrecondition",
        `${ns}/nope`,
      );
    });

    test("once the role is gone, the source can be deleted", async () => {
      await api().deleteCredential({ namespace: ns, name: "ref-role" });
      await api().deleteCredential({ namespace: ns, name: "ref-src" });
      await fails(target(), api().getCredential({ namespace: ns, name: "ref-src" }), "NotFound");
    });

    test("after a role is renamed, its source is still protected under the new name", async () => {
      await create(accessKey(ns, "ref2-src"));
      await create(role(ns, "ref2-role", "ref2-src"));
      await api().updateCredential({
        namespace: ns,
        name: "ref2-role",
        credential: { name: "ref2-role-renamed" },
        updateMask: { paths: ["name"] },
      });
      await fails(
        target(),
        api().deleteCredential({ namespace: ns, name: "ref2-src" }),
        "FailedPrecondition",
        `role ${ns}/ref2-role-renamed`,
      );
      // The old name's reference went with the rename: deleting the role frees the source.
      await api().deleteCredential({ namespace: ns, name: "ref2-role-renamed" });
      await api().deleteCredential({ namespace: ns, name: "ref2-src" });
      await fails(target(), api().getCredential({ namespace: ns, name: "ref2-src" }), "NotFound");
    });

    test("a source shared by two roles stays protected until both are gone", async () => {
      await create(accessKey(ns, "ref3-src"));
      await create(role(ns, "ref3-role-a", "ref3-src"));
      await create(role(ns, "ref3-role-b", "ref3-src"));
      await api().deleteCredential({ namespace: ns, name: "ref3-role-a" });
      await fails(
        target(),
        api().deleteCredential({ namespace: ns, name: "ref3-src" }),
        "FailedPrecondition",
        `role ${ns}/ref3-role-b`,
      );
      await api().deleteCredential({ namespace: ns, name: "ref3-role-b" });
      await api().deleteCredential({ namespace: ns, name: "ref3-src" });
    });

    test("re-pointing a role, or turning it into an access key, releases its old source", async () => {
      await create(accessKey(ns, "ref4-s1"));
      await create(accessKey(ns, "ref4-s2"));
      await create(role(ns, "ref4-role", "ref4-s1"));
      const moved = must(
        (
          await api().updateCredential({
            namespace: ns,
            name: "ref4-role",
            credential: { kind: { case: "role", value: { sourceCredential: "ref4-s2" } } },
            updateMask: { paths: ["role.source_credential"] },
          })
        ).credential,
      );
      assert.equal(roleOf(moved).sourceCredential, "ref4-s2");
      await api().deleteCredential({ namespace: ns, name: "ref4-s1" });
      await fails(
        target(),
        api().deleteCredential({ namespace: ns, name: "ref4-s2" }),
        "FailedPrecondition",
        `role ${ns}/ref4-role`,
      );
      const changed = must(
        (
          await api().updateCredential({
            namespace: ns,
            name: "ref4-role",
            credential: accessKey(ns, "ref4-role"),
            updateMask: { paths: ["access_key"] },
          })
        ).credential,
      );
      assert.equal(accessKeyOf(changed).accessKeyId, AKID);
      await api().deleteCredential({ namespace: ns, name: "ref4-s2" });
    });
  });

  describe("DeleteCredential", () => {
    test("Aborted for a stale etag, and the credential stays", async () => {
      const c = await create(accessKey(ns, "del-etag"));
      const u = must(
        (
          await api().updateCredential({
            namespace: ns,
            name: "del-etag",
            credential: { description: "moved on" },
            updateMask: { paths: ["description"] },
          })
        ).credential,
      );
      await fails(
        target(),
        api().deleteCredential({ namespace: ns, name: "del-etag", etag: c.etag }),
        "Aborted",
        "etag",
      );
      assert.deepEqual(await get("del-etag"), u);
      const res = await api().deleteCredential({ namespace: ns, name: "del-etag", etag: u.etag });
      assert.equal(res.$typeName, "credbroker.v1.DeleteCredentialResponse");
      await fails(target(), api().getCredential({ namespace: ns, name: "del-etag" }), "NotFound");
    });

    test("delete without an etag, then Get is NotFound and so is a second delete", async () => {
      await create(token(ns, "del-plain"));
      await api().deleteCredential({ namespace: ns, name: "del-plain" });
      await fails(
        target(),
        api().getCredential({ namespace: ns, name: "del-plain" }),
        "NotFound",
        `${ns}/del-plain`,
      );
      await fails(
        target(),
        api().deleteCredential({ namespace: ns, name: "del-plain" }),
        "NotFound",
        `${ns}/del-plain`,
      );
      const names = (
        await api().listCredentials({ namespace: ns, pageSize: 1000 })
      ).credentials.map((x) => x.name);
      assert.ok(!names.includes("del-plain"));
    });

    test("NotFound for a missing name; InvalidArgument for a bad one", async () => {
      await fails(target(), api().deleteCredential({ namespace: ns, name: "missing" }), "NotFound");
      await fails(
        target(),
        api().deleteCredential({ namespace: ns, name: "a/b" }),
        "InvalidArgument",
        "name:",
      );
    });
  });

  describe("VerifyCredential", () => {
    test("a stored, well-formed access key is valid and every check passes", async () => {
      await create(accessKey(ns, "ver-ok"));
      const v = await verifyStored("ver-ok");
      assert.equal(v.valid, true);
      assert.ok(v.checks.length > 0);
      for (const name of [
        "name.format",
        "access_key.access_key_id.format",
        "access_key.access_key_id.aws_shape",
        "access_key.secret_access_key.format",
        "enabled",
      ]) {
        assert.equal(checkNamed(v, name).ok, true, name);
      }
      for (const c of v.checks) {
        assert.equal(c.ok, true, `${c.check}: ${c.message}`);
        assert.notEqual(c.severity, Severity.UNSPECIFIED);
        for (const secret of SECRETS) assert.ok(!c.message.includes(secret));
      }
    });

    test('a "test:tester" key is valid with a failed aws_shape warning', async () => {
      const v = await verifyStored("ak-minio");
      assert.equal(v.valid, true);
      const shape = checkNamed(v, "access_key.access_key_id.aws_shape");
      assert.equal(shape.ok, false);
      assert.equal(shape.severity, Severity.WARNING);
      assert.equal(checkNamed(v, "access_key.access_key_id.format").ok, true);
    });

    test("a candidate with a bad role_arn is invalid, and is not stored", async () => {
      const v = await api().verifyCredential({
        target: {
          case: "candidate",
          value: role(ns, "ver-candidate", "role-src", { roleArn: "arn:aws:iam::12:role/x" }),
        },
      });
      assert.equal(v.valid, false);
      const arn = checkNamed(v, "role.role_arn.format");
      assert.equal(arn.ok, false);
      assert.equal(arn.severity, Severity.ERROR);
      assert.ok(arn.message.includes("role.role_arn"));
      assert.equal(checkNamed(v, "role.source_credential.usable").ok, true);
      await fails(
        target(),
        api().getCredential({ namespace: ns, name: "ver-candidate" }),
        "NotFound",
      );
    });

    test("a candidate role with a missing source is invalid", async () => {
      const v = await api().verifyCredential({
        target: { case: "candidate", value: role(ns, "ver-orphan", "no-such-key") },
      });
      assert.equal(v.valid, false);
      const usable = checkNamed(v, "role.source_credential.usable");
      assert.equal(usable.ok, false);
      assert.equal(usable.severity, Severity.ERROR);
      assert.ok(usable.message.includes(`${ns}/no-such-key`));
    });

    test("an ASIA key without a session token is valid with a warning", async () => {
      const v = await api().verifyCredential({
        target: {
          case: "candidate",
          value: accessKey(ns, "ver-asia", {
            kind: {
              case: "accessKey",
              value: { accessKeyId: "ASIAIOSFODNN7EXAMPLE", secretAccessKey: SECRET },
            },
          }),
        },
      });
      assert.equal(v.valid, true);
      const present = checkNamed(v, "access_key.session_token.present");
      assert.equal(present.ok, false);
      assert.equal(present.severity, Severity.WARNING);
    });

    test("an expired candidate is invalid", async () => {
      const v = await api().verifyCredential({
        target: {
          case: "candidate",
          value: accessKey(ns, "ver-expired", {
            expiresAt: timestampFromDate(new Date(Date.now() - 60_000)),
          }),
        },
      });
      assert.equal(v.valid, false);
      const future = checkNamed(v, "expires_at.future");
      assert.equal(future.ok, false);
      assert.equal(future.severity, Severity.ERROR);
    });

    test("a stored role whose source exists has a usable source", async () => {
      const v = await verifyStored("role-generated");
      assert.equal(v.valid, true);
      const usable = checkNamed(v, "role.source_credential.usable");
      assert.equal(usable.ok, true);
      assert.equal(checkNamed(v, "role.external_id.format").ok, true);
      assert.equal(checkNamed(v, "role.duration_seconds.range").ok, true);
    });

    test("live = true with STS unreachable is a failed check, not an RPC error", async () => {
      const res = await api().verifyCredential({
        target: { case: "stored", value: { namespace: ns, name: "ver-ok" } },
        live: true,
      });
      assert.equal(res.valid, false);
      const live = res.checks.find((c) => c.check === "live.get_caller_identity");
      assert.ok(live, "a live check is reported");
      assert.equal(live.ok, false);
      assert.match(live.message, /^STS GetCallerIdentity: /);
    });

    test("InvalidArgument without a target, or with a bad stored name", async () => {
      await fails(target(), api().verifyCredential({}), "InvalidArgument", "target");
      await fails(
        target(),
        api().verifyCredential({
          target: { case: "stored", value: { namespace: ns, name: "a/b" } },
        }),
        "InvalidArgument",
        "stored.name",
      );
    });

    test("NotFound for a missing stored credential", async () => {
      await fails(target(), verifyStored("missing"), "NotFound", `${ns}/missing`);
    });
  });

  describe("authentication", () => {
    const calls: [string, (a: Api) => Promise<unknown>][] = [
      ["CreateCredential", (a) => a.createCredential({ credential: accessKey(ns, "auth-new") })],
      ["GetCredential", (a) => a.getCredential({ namespace: ns, name: "ak-basic" })],
      ["ListCredentials", (a) => a.listCredentials({ namespace: ns })],
      [
        "UpdateCredential",
        (a) =>
          a.updateCredential({
            namespace: ns,
            name: "ak-basic",
            credential: { description: "hijacked" },
            updateMask: { paths: ["description"] },
          }),
      ],
      ["DeleteCredential", (a) => a.deleteCredential({ namespace: ns, name: "ak-basic" })],
      [
        "VerifyCredential",
        (a) =>
          a.verifyCredential({
            target: { case: "stored", value: { namespace: ns, name: "ak-basic" } },
          }),
      ],
    ];

    test("every RPC without a token is Unauthenticated", async () => {
      for (const [method, call] of calls) {
        await fails(target(), call(target().anonymous), "Unauthenticated", "authorization").catch(
          (err: unknown) => assert.fail(`${method}: ${String(err)}`),
        );
      }
    });

    test("every RPC with a wrong token is Unauthenticated", async () => {
      for (const [method, call] of calls) {
        await fails(target(), call(target().wrongToken), "Unauthenticated", "token").catch(
          (err: unknown) => assert.fail(`${method}: ${String(err)}`),
        );
      }
    });

    test("unauthenticated calls changed nothing", async () => {
      await fails(target(), api().getCredential({ namespace: ns, name: "auth-new" }), "NotFound");
      const c = await get("ak-basic");
      assert.equal(c.description, "the basic key");
    });

    test("health Check needs no token", async () => {
      const all = await target().healthCheck("");
      assert.equal(all.status, ServingStatus.SERVING);
      const svc = await target().healthCheck(CredentialService.typeName);
      assert.equal(svc.status, ServingStatus.SERVING);
      await fails(target(), target().healthCheck("no.such.Service"), "NotFound");
    });
  });
}

// ---------------------------------------------------------------------------
// The suite: one daemon, every client.
// ---------------------------------------------------------------------------

const EXPECTED_SERVICES = [
  "credbroker.v1.CallerService",
  "credbroker.v1.CredentialService",
  "credbroker.v1.KeyService",
  "credbroker.v1.ServerService",
  "credbroker.v1.SigningService",
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
];

describe("CredentialService end to end", () => {
  let daemon: RunningDaemon | undefined;
  const targets = new Map<string, Target>();
  const running = (): RunningDaemon => must(daemon, "daemon");

  before(async () => {
    // Nothing listens on port 1: live verification fails fast and clearly.
    // This suite counts error codes, not the failed-authentication throttle (limits.test.ts does).
    daemon = await startDaemon({
      args: ["--sts-endpoint", "http://127.0.0.1:1", "--auth-failure-delay", "0"],
    });
    assert.match(daemon.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  });

  after(async () => {
    for (const t of targets.values()) t.close();
    if (daemon === undefined) return;
    const exit = await daemon.stop("SIGTERM");
    const output = daemon.output();
    await removeDir(daemon.dataDir);
    assert.deepEqual(exit, { code: 0, signal: null }, output);
    for (const secret of SECRETS) {
      assert.ok(!output.includes(secret), "the daemon logged a secret");
    }
    assert.ok(!output.includes(daemon.token), "the daemon logged its admin token");
  });

  const clients: { name: string; make: (d: RunningDaemon) => Target }[] = [
    ...PROTOCOLS.map((protocol) => ({
      name: protocol,
      make: (d: RunningDaemon) => connectTarget(d.url, protocol, d.token),
    })),
    { name: "grpc-js", make: (d: RunningDaemon) => grpcJsTarget(d.url, d.token) },
  ];

  for (const { name, make } of clients) {
    describe(name, () => {
      const target = (): Target => {
        let t = targets.get(name);
        if (t === undefined) {
          t = make(running());
          targets.set(name, t);
        }
        return t;
      };
      defineCases(target, `proto-${name}`);

      if (name === "connect-h2" || name === "grpc-h2" || name === "grpc-js") {
        test("reflection lists every service, without a token", async () => {
          const list = must(target().listServices, "listServices");
          assert.deepEqual((await list()).sort(), EXPECTED_SERVICES);
        });
      }
    });
  }
});
