/**
 * The fake STS (test/support/sts-server.ts) driven by the real
 * @aws-sdk/client-sts: identities, AssumeRole with trust and external ids,
 * issued sessions that verify on later calls, signature failures, the
 * misbehaviour modes, and raw requests signed by @smithy/signature-v4 (GET
 * with a query string, tampered bodies, unknown actions).
 */
import assert from "node:assert/strict";
import { after, afterEach, before, beforeEach, describe, test } from "node:test";
import {
  AssumeRoleCommand,
  type AssumeRoleCommandInput,
  type Credentials,
  GetCallerIdentityCommand,
  GetFederationTokenCommand,
  GetSessionTokenCommand,
  STSClient,
  type STSClientConfig,
} from "@aws-sdk/client-sts";
import { Hash } from "@smithy/hash-node";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import { type FakeSts, startFakeSts } from "../support/sts-server.js";

const ACCOUNT = "123456789012";
const ALICE = {
  accessKeyId: "AKIAALICEEXAMPLE0001",
  secretAccessKey: "alice/secret+key/EXAMPLEKEYalice0000001",
  arn: `arn:aws:iam::${ACCOUNT}:user/alice`,
  account: ACCOUNT,
};
const MALLORY = {
  accessKeyId: "AKIAMALLORYEXAMPLE01",
  secretAccessKey: "mallory-secret-EXAMPLEKEYmallory00000001",
  arn: `arn:aws:iam::${ACCOUNT}:user/mallory`,
  account: ACCOUNT,
};
const ROLE = `arn:aws:iam::${ACCOUNT}:role/deploy/Deployer`;
const OPEN_ROLE = `arn:aws:iam::${ACCOUNT}:role/Reader`;
const EXTERNAL_ID = "ext-7f3a";

interface StaticCreds {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

function fromSts(c: Credentials | undefined): StaticCreds {
  assert.ok(c?.AccessKeyId && c.SecretAccessKey && c.SessionToken);
  return {
    accessKeyId: c.AccessKeyId,
    secretAccessKey: c.SecretAccessKey,
    sessionToken: c.SessionToken,
  };
}

/** Asserts that `promise` rejects with an SDK error named `name`; returns the error. */
async function rejectsWith(promise: Promise<unknown>, name: string): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof Error, `expected an Error, got ${String(err)}`);
    assert.equal(err.name, name, err.message);
    return err;
  }
  assert.fail(`expected ${name}, but the call succeeded`);
}

function httpStatus(err: Error): number | undefined {
  const meta: unknown = Reflect.get(err, "$metadata");
  if (typeof meta !== "object" || meta === null) return undefined;
  const status: unknown = Reflect.get(meta, "httpStatusCode");
  return typeof status === "number" ? status : undefined;
}

describe("fake STS, through @aws-sdk/client-sts", () => {
  let sts: FakeSts;
  /** The server's clock: whole seconds, near real time (the SDK signs with real time). */
  let clockMs = 0;
  const clients: STSClient[] = [];

  function client(credentials: StaticCreds, extra: Partial<STSClientConfig> = {}): STSClient {
    const c = new STSClient({
      endpoint: sts.endpoint,
      region: "us-east-1",
      credentials,
      ...extra,
    });
    clients.push(c);
    return c;
  }

  async function assume(
    credentials: StaticCreds,
    input: Partial<AssumeRoleCommandInput> = {},
  ): Promise<StaticCreds> {
    const out = await client(credentials, { maxAttempts: 1 }).send(
      new AssumeRoleCommand({
        RoleArn: ROLE,
        RoleSessionName: "build-42",
        ExternalId: EXTERNAL_ID,
        ...input,
      }),
    );
    return fromSts(out.Credentials);
  }

  before(async () => {
    sts = await startFakeSts({ now: () => new Date(clockMs) });
  });
  beforeEach(() => {
    clockMs = Math.floor(Date.now() / 1000) * 1000;
    sts.setMode({ kind: "ok" });
    sts.addKey(ALICE);
    sts.addKey(MALLORY);
    sts.addRole({ arn: ROLE, externalId: EXTERNAL_ID, trusted: [ALICE.arn] });
    sts.addRole({ arn: OPEN_ROLE });
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.destroy();
  });
  after(async () => {
    await sts.stop();
  });

  test("listens on 127.0.0.1", () => {
    assert.match(sts.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
  });

  test("GetCallerIdentity returns the key's ARN and account, and records the call", async () => {
    const before = sts.calls.length;
    const out = await client(ALICE).send(new GetCallerIdentityCommand({}));
    assert.equal(out.Arn, ALICE.arn);
    assert.equal(out.Account, ACCOUNT);
    assert.match(out.UserId ?? "", /^AIDA[A-Z2-7]{17}$/);
    const call = sts.calls.at(-1);
    assert.equal(sts.calls.length, before + 1);
    assert.equal(call?.action, "GetCallerIdentity");
    assert.equal(call?.accessKeyId, ALICE.accessKeyId);
    assert.equal(call?.sessionToken, undefined);
    assert.equal(call?.region, "us-east-1");
    assert.equal(call?.params.Version, "2011-06-15");
    assert.equal(call?.at.getTime(), clockMs);
  });

  test("AssumeRole with the right external id: Expiration from the clock, and the session verifies", async () => {
    const out = await client(ALICE).send(
      new AssumeRoleCommand({
        RoleArn: ROLE,
        RoleSessionName: "build-42",
        ExternalId: EXTERNAL_ID,
        DurationSeconds: 1800,
      }),
    );
    assert.equal(out.Credentials?.Expiration?.getTime(), clockMs + 1800 * 1000);
    assert.match(out.Credentials?.AccessKeyId ?? "", /^ASIA[A-Z2-7]{16}$/);
    const assumedArn = `arn:aws:sts::${ACCOUNT}:assumed-role/Deployer/build-42`;
    assert.equal(out.AssumedRoleUser?.Arn, assumedArn);
    assert.match(out.AssumedRoleUser?.AssumedRoleId ?? "", /^AROA[A-Z2-7]{17}:build-42$/);
    const call = sts.calls.at(-1);
    assert.equal(call?.action, "AssumeRole");
    assert.deepEqual(
      {
        RoleArn: call?.params.RoleArn,
        RoleSessionName: call?.params.RoleSessionName,
        ExternalId: call?.params.ExternalId,
        DurationSeconds: call?.params.DurationSeconds,
      },
      {
        RoleArn: ROLE,
        RoleSessionName: "build-42",
        ExternalId: EXTERNAL_ID,
        DurationSeconds: "1800",
      },
    );

    const session = fromSts(out.Credentials);
    const me = await client(session).send(new GetCallerIdentityCommand({}));
    assert.equal(me.Arn, assumedArn);
    assert.equal(me.Account, ACCOUNT);
    assert.equal(me.UserId, out.AssumedRoleUser?.AssumedRoleId);
    assert.equal(sts.calls.at(-1)?.sessionToken, session.sessionToken);
    assert.equal(sts.calls.at(-1)?.accessKeyId, session.accessKeyId);
  });

  test("AssumeRole without DurationSeconds lasts 3600 s", async () => {
    const out = await client(ALICE).send(
      new AssumeRoleCommand({ RoleArn: OPEN_ROLE, RoleSessionName: "s1" }),
    );
    assert.equal(out.Credentials?.Expiration?.getTime(), clockMs + 3600 * 1000);
  });

  test("wrong or missing external id: AccessDenied (403)", async () => {
    const wrong = await rejectsWith(assume(ALICE, { ExternalId: "nope" }), "AccessDenied");
    assert.match(wrong.message, /Not authorized to perform sts:AssumeRole/);
    assert.equal(httpStatus(wrong), 403);
    await rejectsWith(assume(ALICE, { ExternalId: undefined }), "AccessDenied");
    // Refused by policy, not by authentication: the calls are recorded.
    assert.equal(sts.calls.at(-1)?.action, "AssumeRole");
  });

  test("untrusted caller, or a role that does not exist: AccessDenied", async () => {
    await rejectsWith(assume(MALLORY), "AccessDenied");
    await rejectsWith(
      assume(ALICE, { RoleArn: `arn:aws:iam::${ACCOUNT}:role/Nobody` }),
      "AccessDenied",
    );
  });

  test("role chaining: a trust list naming the role ARN trusts its sessions", async () => {
    const chained = `arn:aws:iam::${ACCOUNT}:role/Chained`;
    sts.addRole({ arn: chained, trusted: [OPEN_ROLE] });
    const reader = fromSts(
      (
        await client(ALICE).send(
          new AssumeRoleCommand({ RoleArn: OPEN_ROLE, RoleSessionName: "first" }),
        )
      ).Credentials,
    );
    const out = await client(reader).send(
      new AssumeRoleCommand({ RoleArn: chained, RoleSessionName: "second" }),
    );
    assert.equal(out.AssumedRoleUser?.Arn, `arn:aws:sts::${ACCOUNT}:assumed-role/Chained/second`);
    await rejectsWith(assume(reader), "AccessDenied");
  });

  test("validation: DurationSeconds range, RoleSessionName pattern, malformed Policy", async () => {
    for (const DurationSeconds of [899, 43201]) {
      const err = await rejectsWith(assume(ALICE, { DurationSeconds }), "ValidationError");
      assert.equal(httpStatus(err), 400);
    }
    await assume(ALICE, { DurationSeconds: 900 });
    await assume(ALICE, { DurationSeconds: 43200 });
    await rejectsWith(assume(ALICE, { RoleSessionName: "x" }), "ValidationError");
    await rejectsWith(assume(ALICE, { RoleSessionName: "has space" }), "ValidationError");
    await rejectsWith(assume(ALICE, { RoleSessionName: "a".repeat(65) }), "ValidationError");
    // The SDK maps STS's code MalformedPolicyDocument to its modelled exception.
    await rejectsWith(assume(ALICE, { Policy: "{not json" }), "MalformedPolicyDocumentException");
  });

  test("a wrong secret: SignatureDoesNotMatch, in rejected and not in calls", async () => {
    const calls = sts.calls.length;
    const rejected = sts.rejected.length;
    const err = await rejectsWith(
      client({ ...ALICE, secretAccessKey: "wrong" }).send(new GetCallerIdentityCommand({})),
      "SignatureDoesNotMatch",
    );
    assert.equal(httpStatus(err), 403);
    assert.equal(sts.calls.length, calls);
    // The SDK does not retry it (no clock skew to correct).
    assert.equal(sts.rejected.length, rejected + 1);
    assert.equal(sts.rejected.at(-1)?.code, "SignatureDoesNotMatch");
  });

  test("unknown key or wrong session token: InvalidClientTokenId", async () => {
    await rejectsWith(
      client({ ...ALICE, accessKeyId: "AKIANOBODYEXAMPLE001" }).send(
        new GetCallerIdentityCommand({}),
      ),
      "InvalidClientTokenId",
    );
    const session = await assume(ALICE);
    await rejectsWith(
      client({ ...session, sessionToken: `${session.sessionToken}x` }).send(
        new GetCallerIdentityCommand({}),
      ),
      "InvalidClientTokenId",
    );
    const { sessionToken: _dropped, ...noToken } = session;
    await rejectsWith(
      client(noToken).send(new GetCallerIdentityCommand({})),
      "InvalidClientTokenId",
    );
    // A long-term key sent with a session token is refused too.
    await rejectsWith(
      client({ ...ALICE, sessionToken: "bogus" }).send(new GetCallerIdentityCommand({})),
      "InvalidClientTokenId",
    );
    assert.equal(sts.rejected.at(-1)?.code, "InvalidClientTokenId");
  });

  test("an issued session expires by the server's clock: ExpiredToken", async () => {
    // Issue 3 min behind real time, then move past the 15-min expiry: 12 min ahead,
    // still inside the 15-min signing window. Each call uses a fresh client, since a
    // client adopts the server's clock from the Date header of every response.
    clockMs -= 3 * 60 * 1000;
    const session = await assume(ALICE, { DurationSeconds: 900 });
    await client(session, { maxAttempts: 1 }).send(new GetCallerIdentityCommand({}));
    clockMs += 901 * 1000;
    await rejectsWith(
      client(session, { maxAttempts: 1 }).send(new GetCallerIdentityCommand({})),
      "ExpiredToken",
    );
    assert.equal(sts.rejected.at(-1)?.code, "ExpiredToken");
  });

  test("clock skew: RequestExpired, and the SDK corrects its clock from Date and retries", async () => {
    clockMs += 60 * 60 * 1000;
    const rejected = sts.rejected.length;
    await rejectsWith(
      client(ALICE, { maxAttempts: 1 }).send(new GetCallerIdentityCommand({})),
      "RequestExpired",
    );
    assert.equal(sts.rejected.at(-1)?.code, "RequestExpired");
    // With retries on, the first attempt fails, the SDK reads the skew from the
    // response's Date header, and the retry (signed with corrected time) passes.
    const out = await client(ALICE).send(new GetCallerIdentityCommand({}));
    assert.equal(out.Arn, ALICE.arn);
    assert.equal(sts.rejected.length, rejected + 2);
  });

  test('mode "error": Throttling surfaces as the SDK error name, and the SDK retries it', async () => {
    sts.setMode({ kind: "error", code: "Throttling", message: "Rate exceeded" });
    const err = await rejectsWith(
      client(ALICE, { maxAttempts: 1 }).send(new GetCallerIdentityCommand({})),
      "Throttling",
    );
    assert.equal(httpStatus(err), 400);
    assert.equal(err.message, "Rate exceeded");

    const calls = sts.calls.length;
    await rejectsWith(
      client(ALICE, { maxAttempts: 2 }).send(new GetCallerIdentityCommand({})),
      "Throttling",
    );
    assert.equal(sts.calls.length, calls + 2, "Throttling is retried");

    sts.setMode({ kind: "error", code: "AccessDenied", message: "nope" });
    const denied = await rejectsWith(
      client(ALICE, { maxAttempts: 1 }).send(new GetCallerIdentityCommand({})),
      "AccessDenied",
    );
    assert.equal(httpStatus(denied), 403);
    sts.setMode({ kind: "error", code: "InternalFailure", message: "boom", status: 503 });
    const down = await rejectsWith(
      client(ALICE, { maxAttempts: 1 }).send(new GetCallerIdentityCommand({})),
      "InternalFailure",
    );
    assert.equal(httpStatus(down), 503);

    sts.setMode({ kind: "ok" });
    await client(ALICE).send(new GetCallerIdentityCommand({}));
  });

  test('mode "down": the connection is closed and the SDK call fails; "ok" recovers', async () => {
    const warm = client(ALICE, { maxAttempts: 1 });
    await warm.send(new GetCallerIdentityCommand({})); // a kept-alive socket to reuse
    sts.setMode({ kind: "down" });
    const calls = sts.calls.length;
    const reset = (err: unknown) => {
      assert.ok(err instanceof Error);
      assert.equal(Reflect.get(err, "code"), "ECONNRESET", err.message);
      return true;
    };
    await assert.rejects(warm.send(new GetCallerIdentityCommand({})), reset);
    await assert.rejects(
      client(ALICE, { maxAttempts: 1 }).send(new GetCallerIdentityCommand({})),
      reset,
    );
    assert.equal(sts.calls.length, calls);
    assert.equal(sts.rejected.at(-1)?.code, "down");
    sts.setMode({ kind: "ok" });
    const out = await warm.send(new GetCallerIdentityCommand({}));
    assert.equal(out.Arn, ALICE.arn);
  });

  test('mode "slow": responses are delayed; a short request timeout fails', async () => {
    sts.setMode({ kind: "slow", ms: 400 });
    const start = performance.now();
    const out = await client(ALICE).send(new GetCallerIdentityCommand({}));
    assert.equal(out.Arn, ALICE.arn);
    assert.ok(performance.now() - start >= 380, "delayed");
    await assert.rejects(
      client(ALICE, {
        maxAttempts: 1,
        requestHandler: { requestTimeout: 100, throwOnRequestTimeout: true },
      }).send(new GetCallerIdentityCommand({})),
    );
  });

  test("GetSessionToken: a session for the same user; not callable with session credentials", async () => {
    const out = await client(ALICE).send(new GetSessionTokenCommand({ DurationSeconds: 7200 }));
    assert.equal(out.Credentials?.Expiration?.getTime(), clockMs + 7200 * 1000);
    const session = fromSts(out.Credentials);
    const me = await client(session).send(new GetCallerIdentityCommand({}));
    assert.equal(me.Arn, ALICE.arn);
    await rejectsWith(client(session).send(new GetSessionTokenCommand({})), "AccessDenied");
    await rejectsWith(
      client(ALICE).send(new GetSessionTokenCommand({ DurationSeconds: 129601 })),
      "ValidationError",
    );
  });

  test("GetFederationToken: a federated user, the Policy recorded as sent", async () => {
    const policy = JSON.stringify({
      Version: "2012-10-17",
      Statement: [{ Effect: "Allow", Action: "s3:GetObject", Resource: "arn:aws:s3:::b/a+b c&d" }],
    });
    const out = await client(ALICE).send(
      new GetFederationTokenCommand({ Name: "bob", Policy: policy, DurationSeconds: 1200 }),
    );
    const arn = `arn:aws:sts::${ACCOUNT}:federated-user/bob`;
    assert.equal(out.FederatedUser?.Arn, arn);
    assert.equal(out.FederatedUser?.FederatedUserId, `${ACCOUNT}:bob`);
    assert.equal(out.Credentials?.Expiration?.getTime(), clockMs + 1200 * 1000);
    const call = sts.calls.at(-1);
    assert.equal(call?.action, "GetFederationToken");
    assert.equal(call?.params.Name, "bob");
    assert.equal(call?.params.Policy, policy);
    assert.deepEqual(JSON.parse(call?.params.Policy ?? ""), JSON.parse(policy));

    const me = await client(fromSts(out.Credentials)).send(new GetCallerIdentityCommand({}));
    assert.equal(me.Arn, arn);
    await rejectsWith(
      client(ALICE).send(new GetFederationTokenCommand({ Name: "b" })),
      "ValidationError",
    );
  });
});

describe("fake STS, raw requests signed by @smithy/signature-v4", () => {
  let sts: FakeSts;

  before(async () => {
    sts = await startFakeSts({ region: "eu-west-1" });
    sts.addKey(ALICE);
  });
  after(async () => {
    await sts.stop();
  });

  async function signed(
    init: { method: "GET" | "POST"; query?: Record<string, string>; body?: string },
    region = "eu-west-1",
  ): Promise<{ url: string; method: string; headers: Record<string, string>; body?: string }> {
    const url = new URL(sts.endpoint);
    const headers: Record<string, string> = { host: url.host };
    if (init.body !== undefined) {
      headers["content-type"] = "application/x-www-form-urlencoded; charset=utf-8";
    }
    const request = new HttpRequest({
      method: init.method,
      protocol: "http:",
      hostname: url.hostname,
      port: Number(url.port),
      path: "/",
      query: init.query ?? {},
      headers,
      ...(init.body !== undefined ? { body: init.body } : {}),
    });
    const signer = new SignatureV4({
      credentials: { accessKeyId: ALICE.accessKeyId, secretAccessKey: ALICE.secretAccessKey },
      region,
      service: "sts",
      sha256: Hash.bind(null, "sha256"),
      uriEscapePath: true,
    });
    const out = await signer.sign(request);
    const qs = Object.entries(init.query ?? {})
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
      .join("&");
    const sent: Record<string, string> = {};
    for (const [k, v] of Object.entries(out.headers)) if (k !== "host") sent[k] = v;
    return {
      url: `${sts.endpoint}/${qs ? `?${qs}` : ""}`,
      method: init.method,
      headers: sent,
      ...(init.body !== undefined ? { body: init.body } : {}),
    };
  }

  async function send(r: Awaited<ReturnType<typeof signed>>): Promise<[number, string, string]> {
    const res = await fetch(r.url, {
      method: r.method,
      headers: r.headers,
      ...(r.body !== undefined ? { body: r.body } : {}),
    });
    return [res.status, res.headers.get("content-type") ?? "", await res.text()];
  }

  test("GET with the parameters in the query string", async () => {
    const [status, type, body] = await send(
      await signed({
        method: "GET",
        query: { Action: "GetCallerIdentity", Version: "2011-06-15", Note: "a b+c/d*~" },
      }),
    );
    assert.equal(status, 200, body);
    assert.equal(type, "text/xml");
    assert.match(
      body,
      /<GetCallerIdentityResponse xmlns="https:\/\/sts\.amazonaws\.com\/doc\/2011-06-15\/">/,
    );
    assert.match(body, new RegExp(`<Arn>${ALICE.arn}</Arn>`));
    assert.equal(sts.calls.at(-1)?.params.Note, "a b+c/d*~");
    assert.equal(sts.calls.at(-1)?.region, "eu-west-1");
  });

  test("POST form body; an unknown action is InvalidAction (400) in STS's XML", async () => {
    const [status, type, body] = await send(
      await signed({ method: "POST", body: "Action=DescribeEverything&Version=2011-06-15" }),
    );
    assert.equal(status, 400);
    assert.equal(type, "text/xml");
    assert.match(
      body,
      /^<ErrorResponse xmlns="https:\/\/sts\.amazonaws\.com\/doc\/2011-06-15\/">\s*<Error>\s*<Type>Sender<\/Type>\s*<Code>InvalidAction<\/Code>\s*<Message>[^<]+<\/Message>\s*<\/Error>\s*<RequestId>[0-9a-f-]{36}<\/RequestId>\s*<\/ErrorResponse>\s*$/,
    );
  });

  test("a body changed after signing, or the wrong region, is refused", async () => {
    const r = await signed({ method: "POST", body: "Action=GetCallerIdentity&Version=2011-06-15" });
    const [s1, , b1] = await send({ ...r, body: "Action=GetCallerIdentity&Version=2011-06-16" });
    assert.equal(s1, 400, b1);
    assert.match(b1, /<Code>XAmzContentSHA256Mismatch<\/Code>/);
    const { "x-amz-content-sha256": _hash, ...noHashHeaders } = r.headers;
    const tampered = { ...r, headers: noHashHeaders, body: `${r.body ?? ""}&x=1` };
    const [s2, , b2] = await send(tampered);
    assert.equal(s2, 403, b2);
    assert.match(b2, /<Code>SignatureDoesNotMatch<\/Code>/);

    const [s3, , b3] = await send(
      await signed(
        { method: "POST", body: "Action=GetCallerIdentity&Version=2011-06-15" },
        "us-east-1",
      ),
    );
    assert.equal(s3, 403);
    assert.match(b3, /<Code>SignatureDoesNotMatch<\/Code>/);
    assert.match(b3, /scoped to a valid region/);
  });

  test("no Authorization header: MissingAuthenticationToken (403)", async () => {
    const res = await fetch(`${sts.endpoint}/?Action=GetCallerIdentity&Version=2011-06-15`);
    assert.equal(res.status, 403);
    assert.match(await res.text(), /<Code>MissingAuthenticationToken<\/Code>/);
    assert.equal(sts.rejected.at(-1)?.code, "MissingAuthenticationToken");
  });

  test("stop() closes the server and its kept-alive sockets", async () => {
    const other = await startFakeSts();
    other.addKey(ALICE);
    const c = new STSClient({
      endpoint: other.endpoint,
      region: "us-east-1",
      credentials: ALICE,
      maxAttempts: 1,
    });
    try {
      await c.send(new GetCallerIdentityCommand({}));
      // Resolves although the client holds a kept-alive socket, which stop() destroys.
      await other.stop();
      await other.stop(); // idempotent
      await assert.rejects(c.send(new GetCallerIdentityCommand({})), (err: unknown) => {
        assert.ok(err instanceof Error);
        // ECONNRESET when the agent reuses the socket before it has seen it close.
        assert.match(`${Reflect.get(err, "code")} ${err.message}`, /ECONNREFUSED|ECONNRESET/);
        return true;
      });
    } finally {
      c.destroy();
    }
  });
});
