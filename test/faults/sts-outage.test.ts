/**
 * STS down or slow (issue 11): the real daemon, spawned with --sts-endpoint
 * on the fake STS (test/support/sts-server.ts) and a 2 s --sts-timeout, and
 * real clients: SignRequest over gRPC for a role, IMDSv2 over HTTP for a
 * role lent to tasks, container credentials for a binding. Cached sessions
 * serve until they expire; requests without one share one STS call and fail
 * `unavailable` within the bound; the first request after STS is back gets a
 * fresh session.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { after, before, beforeEach, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import type { CredentialService } from "../../gen/credbroker/v1/credential_service_pb.js";
import { SigningService } from "../../gen/credbroker/v1/signing_service_pb.js";
import { type Session, SessionCache } from "../../src/providers/aws/session-cache.js";
import { credentialClient, transport } from "../support/clients.js";
import { listenerUrl, type RunningDaemon, removeDir, startDaemon } from "../support/daemon.js";
import { type FakeSts, startFakeSts } from "../support/sts-server.js";

const ACCOUNT = "123456789012";
const SOURCE = {
  accessKeyId: "AKIAOUTAGE0000000001",
  secretAccessKey: "outage/secret/KEY0000000000000000000000",
  arn: `arn:aws:iam::${ACCOUNT}:user/broker`,
  account: ACCOUNT,
};
/** A temporary source key, stored with a wrong secret: STS's answer quotes what was signed, its token included. */
const TEMP_SOURCE = {
  accessKeyId: "ASIAOUTAGE0000000002",
  secretAccessKey: "outage/temp/KEY000000000000000000000000",
  sessionToken: "FwoGZXIvYXdzEOUTAGEtoken0000000000000000000000000000",
  arn: `arn:aws:iam::${ACCOUNT}:user/temp`,
  account: ACCOUNT,
};
const ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/outage`;
const HOST = "reports.s3.us-east-1.amazonaws.com";
const SCOPES = [{ bucket: "reports", prefixes: ["2026/"], actions: ["get_object"] }];
/** --sts-timeout: above the SDK's throttling backoff (up to 1 s), so an STS error is seen as itself. */
const TIMEOUT_S = 2;
/** What a request waiting on a timed-out STS call may take beyond the timeout. */
const SLACK_MS = 1_000;

async function failure(p: Promise<unknown>): Promise<ConnectError> {
  return p.then(
    () => assert.fail("expected the call to fail"),
    (e: unknown) => ConnectError.from(e),
  );
}

describe("STS outages (real daemon, fake STS)", () => {
  let sts: FakeSts;
  let daemon: RunningDaemon;
  let creds: Client<typeof CredentialService>;
  let signing: Client<typeof SigningService>;
  let imds: string;
  let imdsToken: string;
  /** Secrets the daemon handed out (IMDS sessions): none may reach its output. */
  const lent: string[] = [];
  let roles = 0;

  /** A new role credential: nothing cached for it yet (`tasks`: lent to containers too). */
  async function freshRole(source = "broker-key", tasks = false): Promise<string> {
    const name = `role-${++roles}`;
    await creds.createCredential({
      credential: {
        name,
        allowedHosts: [HOST],
        ...(tasks ? { allowedInTasks: true, allowedScopes: SCOPES } : {}),
        kind: {
          case: "role",
          value: { roleArn: ROLE_ARN, sourceCredential: source, durationSeconds: 900 },
        },
      },
    });
    return name;
  }

  const sign = (credential: string) =>
    signing.signRequest({
      credential,
      method: "GET",
      url: `https://${HOST}/2026/q1.csv`,
      service: "s3",
      region: "us-east-1",
    });

  /** The IMDS credential's session dropped (a write changes its etag). */
  async function forgetInstanceSession(): Promise<void> {
    await creds.updateCredential({
      name: "instance",
      credential: { description: `write ${Date.now()}` },
      updateMask: { paths: ["description"] },
    });
  }

  /** GET a binding's credentials the way an SDK's container provider does. */
  const containerCredentials = (uri: string, token: string) =>
    lentCredentials(fetch(uri, { headers: { authorization: token } }));

  /** GET the instance's role credentials the way an SDK does (IMDSv2). */
  const imdsCredentials = () =>
    lentCredentials(
      fetch(`${imds}/latest/meta-data/iam/security-credentials/instance`, {
        headers: { "x-aws-ec2-metadata-token": imdsToken },
      }),
    );

  /** The status, and for a 200 the credentials' key id and expiry; the secrets go to `lent`. */
  async function lentCredentials(
    answer: Promise<Response>,
  ): Promise<{ status: number; accessKeyId?: string; expiration?: number }> {
    const res = await answer;
    const text = await res.text();
    if (res.status !== 200) return { status: res.status };
    const body = JSON.parse(text) as {
      AccessKeyId: string;
      SecretAccessKey: string;
      Token: string;
      Expiration: string;
    };
    lent.push(body.SecretAccessKey, body.Token);
    return { status: 200, accessKeyId: body.AccessKeyId, expiration: Date.parse(body.Expiration) };
  }

  before(async () => {
    sts = await startFakeSts();
    sts.addKey(SOURCE);
    sts.addKey(TEMP_SOURCE);
    sts.addRole({ arn: ROLE_ARN, trusted: [SOURCE.arn, TEMP_SOURCE.arn] });
    daemon = await startDaemon({
      args: [
        "--sts-endpoint",
        sts.endpoint,
        "--sts-timeout",
        String(TIMEOUT_S),
        "--imds-listen",
        "127.0.0.1:0",
        "--imds-credential",
        "instance",
        "--container-listen",
        "127.0.0.1:0",
      ],
    });
    imds = listenerUrl(daemon, "imds listening");
    creds = credentialClient(daemon.url, "connect-h2", daemon.token);
    signing = createClient(SigningService, transport(daemon.url, "grpc-h2", daemon.token));
    await creds.createCredential({
      credential: {
        name: "broker-key",
        kind: {
          case: "accessKey",
          value: { accessKeyId: SOURCE.accessKeyId, secretAccessKey: SOURCE.secretAccessKey },
        },
      },
    });
    await creds.createCredential({
      credential: {
        name: "temp-key",
        kind: {
          case: "accessKey",
          value: {
            accessKeyId: TEMP_SOURCE.accessKeyId,
            secretAccessKey: "outage/wrong/KEY00000000000000000000000",
            sessionToken: TEMP_SOURCE.sessionToken,
          },
        },
      },
    });
    await creds.createCredential({
      credential: {
        name: "instance",
        allowedInTasks: true,
        allowedScopes: SCOPES,
        kind: {
          case: "role",
          value: { roleArn: ROLE_ARN, sourceCredential: "broker-key", durationSeconds: 900 },
        },
      },
    });
    const res = await fetch(`${imds}/latest/api/token`, {
      method: "PUT",
      headers: { "x-aws-ec2-metadata-token-ttl-seconds": "600" },
    });
    imdsToken = await res.text();
  });

  beforeEach(async () => {
    sts.sessionSeconds = undefined;
    await sts.setMode({ kind: "ok" });
  });

  after(async () => {
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
    await sts?.stop();
  });

  test("50 concurrent SignRequests, 50 IMDS and 50 container fetches without a session: one AssumeRole each", async () => {
    const role = await freshRole();
    const taskRole = await freshRole("broker-key", true);
    const binding = await signing.createContainerBinding({ credential: taskRole });
    await forgetInstanceSession();
    await sts.setMode({ kind: "slow", ms: 300 });
    const start = sts.count("AssumeRole");
    const [signed, lentOut, containerOut] = await Promise.all([
      Promise.all(Array.from({ length: 50 }, () => sign(role))),
      Promise.all(Array.from({ length: 50 }, () => imdsCredentials())),
      Promise.all(
        Array.from({ length: 50 }, () =>
          containerCredentials(binding.fullUri, binding.authorizationToken),
        ),
      ),
    ]);
    assert.equal(
      sts.count("AssumeRole"),
      start + 3,
      "one for the role, one for the instance's task session, one for the container's",
    );
    assert.equal(new Set(signed.map((s) => s.accessKeyId)).size, 1);
    for (const out of [lentOut, containerOut]) {
      assert.deepEqual(new Set(out.map((r) => r.status)), new Set([200]));
      assert.equal(new Set(out.map((r) => r.accessKeyId)).size, 1);
    }
    const keys = new Set([
      signed[0]?.accessKeyId,
      lentOut[0]?.accessKeyId,
      containerOut[0]?.accessKeyId,
    ]);
    assert.equal(keys.size, 3, "three sessions");
    // Task sessions carry the scopes as their policy; the role's own does not.
    const assumed = sts.calls.filter((c) => c.action === "AssumeRole").slice(-3);
    assert.equal(assumed.filter((c) => c.params.Policy !== undefined).length, 2);
  });

  test("STS slower than --sts-timeout: every waiter fails unavailable within the bound, then STS back: served", async () => {
    const role = await freshRole();
    await forgetInstanceSession();
    await sts.setMode({ kind: "slow", ms: 3 * TIMEOUT_S * 1000 });
    const start = sts.count("AssumeRole");
    const t0 = performance.now();
    const [errors, lentOut] = await Promise.all([
      Promise.all(Array.from({ length: 20 }, () => failure(sign(role)))),
      Promise.all(Array.from({ length: 20 }, () => imdsCredentials())),
    ]);
    const elapsed = performance.now() - t0;
    assert.ok(elapsed < TIMEOUT_S * 1000 + SLACK_MS, `answered in ${Math.round(elapsed)} ms`);
    assert.ok(elapsed >= TIMEOUT_S * 1000 - 50, "not before the timeout");
    for (const err of errors) {
      assert.equal(err.code, Code.Unavailable);
      assert.equal(
        err.rawMessage,
        `STS AssumeRole: no answer within ${TIMEOUT_S} s (--sts-timeout); STS is down or slow`,
      );
    }
    assert.deepEqual(new Set(lentOut.map((r) => r.status)), new Set([503]));
    assert.equal(sts.count("AssumeRole"), start + 2, "one call each, shared by every waiter");

    // Nothing stuck: still slow, the next request makes a new call and fails in time too.
    const t1 = performance.now();
    assert.equal((await failure(sign(role))).code, Code.Unavailable);
    assert.ok(performance.now() - t1 < TIMEOUT_S * 1000 + SLACK_MS);
    assert.equal(sts.count("AssumeRole"), start + 3);

    // Nothing poisoned: the first request after STS recovers gets a session.
    await sts.setMode({ kind: "ok" });
    assert.match((await sign(role)).accessKeyId, /^ASIA/);
    assert.equal((await imdsCredentials()).status, 200);
    assert.equal(sts.count("AssumeRole"), start + 5);
  });

  test("STS refusing connections: cached sessions serve until they expire, never after; back up: a fresh one", async () => {
    sts.sessionSeconds = 6;
    const role = await freshRole();
    await forgetInstanceSession();
    const cached = await sign(role);
    const task = await imdsCredentials();
    const expires = Number(cached.expiresAt?.seconds) * 1000;
    assert.ok(expires <= Date.now() + 6_000, "the signature ends with the 6 s session");

    await sts.setMode({ kind: "refused" });
    await assert.rejects(fetch(sts.endpoint), "STS refuses connections");
    const start = sts.count();
    const assumed = sts.count("AssumeRole");
    assert.equal((await sign(role)).accessKeyId, cached.accessKeyId);
    assert.equal((await imdsCredentials()).accessKeyId, task.accessKeyId);

    // In the renewal window (the last third of its life): the renewal fails, the session serves.
    await sleep(Math.max(0, expires - 1_000 - Date.now()));
    const late = await Promise.all(Array.from({ length: 10 }, () => sign(role)));
    assert.deepEqual(new Set(late.map((s) => s.accessKeyId)), new Set([cached.accessKeyId]));
    assert.equal((await imdsCredentials()).accessKeyId, task.accessKeyId);
    // The log line comes through another pipe than the answers: wait for it a little.
    for (let i = 0; i < 50 && !daemon.output().includes("STS renewal failed"); i++) await sleep(20);
    assert.match(daemon.output(), /STS renewal failed; the cached session still serves/);

    // Expired: never served; STS unreachable is unavailable, quickly.
    await sleep(Math.max(0, Math.max(expires, task.expiration ?? 0) + 200 - Date.now()));
    const t0 = performance.now();
    const errors = await Promise.all(Array.from({ length: 10 }, () => failure(sign(role))));
    assert.ok(performance.now() - t0 < TIMEOUT_S * 1000 + SLACK_MS);
    for (const err of errors) {
      assert.equal(err.code, Code.Unavailable);
      assert.match(err.rawMessage, /^STS AssumeRole: /);
    }
    assert.equal((await imdsCredentials()).status, 503);
    assert.equal(sts.count(), start, "no request reached STS while it refused");

    // Back (a little slow): the waiters share one AssumeRole for the expired session.
    await sts.setMode({ kind: "slow", ms: 200 });
    const renewed = await Promise.all(Array.from({ length: 20 }, () => sign(role)));
    assert.equal(sts.count("AssumeRole"), assumed + 1);
    assert.equal(new Set(renewed.map((s) => s.accessKeyId)).size, 1);
    assert.notEqual(renewed[0]?.accessKeyId, cached.accessKeyId);
    const again = await imdsCredentials();
    assert.equal(again.status, 200);
    assert.notEqual(again.accessKeyId, task.accessKeyId);
  });

  const answers = [
    { code: "Throttling", message: "Rate exceeded", expect: Code.Unavailable, imds: 503 },
    {
      code: "ServiceUnavailable",
      message: "Service is unavailable",
      expect: Code.Unavailable,
      imds: 503,
    },
    { code: "InternalFailure", message: "boom", expect: Code.Unavailable, imds: 503 },
    { code: "AccessDenied", message: "Not authorized", expect: Code.PermissionDenied, imds: 404 },
    {
      code: "InvalidClientTokenId",
      message: "The security token included in the request is invalid.",
      expect: Code.FailedPrecondition,
      imds: 404,
    },
  ];
  for (const a of answers) {
    test(`STS answering ${a.code}: ${Code[a.expect]} with STS's message; then served`, async () => {
      const role = await freshRole();
      await forgetInstanceSession();
      await sts.setMode({ kind: "error", code: a.code, message: a.message });
      const err = await failure(sign(role));
      assert.equal(err.code, a.expect);
      assert.equal(err.rawMessage, `STS AssumeRole: ${a.code}: ${a.message}`);
      assert.equal((await imdsCredentials()).status, a.imds);
      await sts.setMode({ kind: "ok" });
      assert.match((await sign(role)).accessKeyId, /^ASIA/);
      assert.equal((await imdsCredentials()).status, 200);
    });
  }

  test("STS refusing the source's signature: failed_precondition, STS's first line, no token quoted", async () => {
    const err = await failure(sign(await freshRole("temp-key")));
    assert.equal(err.code, Code.FailedPrecondition);
    assert.equal(
      err.rawMessage,
      "STS AssumeRole: SignatureDoesNotMatch: The request signature we calculated does not match " +
        "the signature you provided. Check your AWS Secret Access Key and signing method. " +
        "Consult the service documentation for details.",
    );
    // What the fake sent back names the token (the canonical request), as the daemon saw it.
    assert.ok(sts.rejected.at(-1)?.reason.includes(TEMP_SOURCE.sessionToken));
  });

  test("no secret in the daemon's output or audit log: the sources' keys, nor any session's", async () => {
    const output = daemon.output();
    const audit = await readFile(path.join(daemon.dataDir, "audit.log"), "utf8");
    assert.ok(output.includes("STS AssumeRole"), "the failures were logged");
    assert.ok(audit.includes("SignatureDoesNotMatch"), "and audited");
    assert.ok(lent.length > 0);
    for (const secret of [SOURCE.secretAccessKey, TEMP_SOURCE.sessionToken, ...lent]) {
      assert.ok(!output.includes(secret), "a secret reached the daemon's output");
      assert.ok(!audit.includes(secret), "a secret reached the audit log");
    }
  });
});

describe("the session cache when STS fails (injected clock)", () => {
  let nowMs = 0;
  const session = (id: string, lifeMs: number): Session => ({
    accessKeyId: id,
    secretAccessKey: "s",
    sessionToken: "t",
    expiration: new Date(nowMs + lifeMs),
  });
  const down = () => Promise.reject(new Error("STS down"));
  /** A fetch that answers when told. */
  function pending() {
    let settle: (s: Session | Error) => void = () => undefined;
    let calls = 0;
    const fetch = () => {
      calls++;
      return new Promise<Session>((resolve, reject) => {
        settle = (s) => (s instanceof Error ? reject(s) : resolve(s));
      });
    };
    return { fetch, settle: (s: Session | Error) => settle(s), calls: () => calls };
  }

  test("waiters share one call; a failure reaches all of them and is not kept", async () => {
    nowMs = 0;
    const cache = new SessionCache({ now: () => new Date(nowMs) });
    const sts = pending();
    const waiting = Array.from({ length: 10 }, () =>
      cache.get("c", "v1", sts.fetch).catch((e: Error) => e),
    );
    sts.settle(new Error("STS down"));
    for (const r of await Promise.all(waiting)) assert.equal((r as Error).message, "STS down");
    assert.equal(sts.calls(), 1);
    const next = cache.get("c", "v1", sts.fetch);
    sts.settle(session("A", 900_000));
    assert.equal((await next).accessKeyId, "A");
    assert.equal(sts.calls(), 2);
  });

  test("a valid session serves through failed renewals, retried at most every renewRetryMs; never once expired", async () => {
    nowMs = 0;
    const stale: unknown[] = [];
    const cache = new SessionCache({
      now: () => new Date(nowMs),
      renewRetryMs: 10_000,
      onStaleServe: (_, err) => stale.push(err),
    });
    await cache.get("c", "v1", async () => session("A", 900_000));
    nowMs = 601_000; // in the last third (5 minutes) of its life
    let calls = 0;
    const failing = () => {
      calls++;
      return down();
    };
    assert.equal((await cache.get("c", "v1", failing)).accessKeyId, "A");
    assert.equal((await cache.get("c", "v1", failing)).accessKeyId, "A");
    assert.deepEqual([calls, stale.length], [1, 1], "no new call before renewRetryMs");
    nowMs += 10_000;
    assert.equal((await cache.get("c", "v1", failing)).accessKeyId, "A");
    assert.equal(calls, 2);
    nowMs = 900_000; // expired
    await assert.rejects(cache.get("c", "v1", failing), /STS down/);
    assert.equal(calls, 3);
  });

  test("in the renewal window only the request that starts the renewal waits for it", async () => {
    nowMs = 0;
    const cache = new SessionCache({ now: () => new Date(nowMs) });
    await cache.get("c", "v1", async () => session("A", 900_000));
    nowMs = 601_000;
    const sts = pending();
    const starter = cache.get("c", "v1", sts.fetch);
    assert.equal((await cache.get("c", "v1", sts.fetch)).accessKeyId, "A");
    sts.settle(session("B", 900_000));
    assert.equal((await starter).accessKeyId, "B");
    assert.equal(sts.calls(), 1);
  });
});
