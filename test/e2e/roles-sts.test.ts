/**
 * Roles through STS, end to end. STS itself cannot run here, so the fake in
 * test/support/sts-server.ts stands in: a real HTTP server speaking the STS
 * query protocol that verifies the SigV4 signature of every call it gets.
 * The daemon is composed in process with a clock the tests move (renewal),
 * or spawned with an environment (the ambient identity).
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, beforeEach, describe, test } from "node:test";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { pino } from "pino";
import { RoleSource } from "../../gen/credbroker/v1/credential_pb.js";
import { CredentialService } from "../../gen/credbroker/v1/credential_service_pb.js";
import { SigningService } from "../../gen/credbroker/v1/signing_service_pb.js";
import { startDaemon as composeDaemon, type Daemon } from "../../src/daemon/serve.js";
import { credentialClient, transport } from "../support/clients.js";
import { testConfig } from "../support/compose.js";
import { removeDir, startDaemon, tempDir } from "../support/daemon.js";
import { type FakeSts, startFakeSts } from "../support/sts-server.js";

const ACCOUNT = "123456789012";
const SOURCE = {
  accessKeyId: "AKIASOURCE0000000001",
  secretAccessKey: "source/secret/KEY0000000000000000000000",
  arn: `arn:aws:iam::${ACCOUNT}:user/broker`,
  account: ACCOUNT,
};
const ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/reader`;
const EXTERNAL_ID = "ext-4f2a-credbroker";

/** A clock the tests move; the daemon and the fake STS share it. */
class Clock {
  private offsetMs = 0;
  now = (): Date => new Date(Date.now() + this.offsetMs);
  advance(minutes: number): void {
    this.offsetMs += minutes * 60_000;
  }
  reset(): void {
    this.offsetMs = 0;
  }
}

const assumeCalls = (sts: FakeSts) => sts.calls.filter((c) => c.action === "AssumeRole").length;

async function rejection(p: Promise<unknown>): Promise<ConnectError> {
  return p.then(
    () => assert.fail("expected the call to fail"),
    (e: unknown) => ConnectError.from(e),
  );
}

describe("roles through STS (in-process daemon, moving clock)", () => {
  const clock = new Clock();
  let sts: FakeSts;
  let daemon: Daemon;
  let dataDir: string;
  let creds: Client<typeof CredentialService>;
  let signing: Client<typeof SigningService>;

  /** A SignRequest for an STS GetCallerIdentity call, signed by the role. */
  const signCallerIdentity = (credential = "reader") =>
    signing.signRequest({
      credential,
      method: "POST",
      url: `${sts.endpoint}/`,
      headers: [{ name: "content-type", value: "application/x-www-form-urlencoded" }],
      payload: { case: "body", value: Buffer.from("Action=GetCallerIdentity&Version=2011-06-15") },
      service: "sts",
      region: "us-east-1",
    });

  before(async () => {
    sts = await startFakeSts({ now: clock.now });
    sts.addKey(SOURCE);
    sts.addRole({ arn: ROLE_ARN, externalId: EXTERNAL_ID, trusted: [SOURCE.arn] });
    dataDir = await tempDir();
    daemon = await composeDaemon(
      testConfig(dataDir, {
        sts: { endpoint: sts.endpoint, region: "us-east-1", allowAmbient: false },
      }),
      pino({ level: "silent" }),
      { now: clock.now, newId: randomUUID },
    );
    const token = (await readFile(path.join(dataDir, "admin.token"), "utf8")).trim();
    creds = createClient(CredentialService, transport(daemon.url, "connect-h2", token));
    signing = createClient(SigningService, transport(daemon.url, "grpc-h2", token));
    await creds.createCredential({
      credential: {
        name: "broker-key",
        kind: {
          case: "accessKey",
          value: { accessKeyId: SOURCE.accessKeyId, secretAccessKey: SOURCE.secretAccessKey },
        },
      },
    });
  });

  beforeEach(async () => {
    clock.reset();
    sts.setMode({ kind: "ok" });
    // A fresh role each test: no session cached from the one before.
    await creds.deleteCredential({ name: "reader" }).catch(() => undefined);
    await creds.createCredential({
      credential: {
        name: "reader",
        allowedHosts: ["127.0.0.1"],
        kind: {
          case: "role",
          value: {
            roleArn: ROLE_ARN,
            externalId: EXTERNAL_ID,
            sourceCredential: "broker-key",
            durationSeconds: 900,
          },
        },
      },
    });
  });

  after(async () => {
    await daemon?.stop();
    await removeDir(dataDir);
    await sts?.stop();
  });

  test("a role signs with its AssumeRole session, and STS accepts the signed call", async () => {
    const before = assumeCalls(sts);
    const signed = await signCallerIdentity();
    assert.equal(assumeCalls(sts), before + 1);
    const assume = sts.calls.filter((c) => c.action === "AssumeRole").at(-1);
    assert.equal(assume?.params.RoleArn, ROLE_ARN);
    assert.equal(assume?.params.ExternalId, EXTERNAL_ID);
    assert.equal(assume?.params.RoleSessionName, "credbroker-reader");
    assert.equal(assume?.params.DurationSeconds, "900");
    assert.equal(assume?.accessKeyId, SOURCE.accessKeyId);

    const headers = new Map(signed.headers.map((h) => [h.name, h.value]));
    assert.ok(headers.get("x-amz-security-token"), "the session token is sent");
    assert.match(signed.accessKeyId, /^ASIA/);
    // The signature ends no later than the session (900 s) and its own 15 minutes.
    const ends = Number(signed.expiresAt?.seconds) * 1000;
    assert.ok(ends <= clock.now().getTime() + 900_000 + 1000);

    const res = await fetch(signed.url, {
      method: "POST",
      headers: Object.fromEntries(headers),
      body: "Action=GetCallerIdentity&Version=2011-06-15",
    });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    assert.match(
      text,
      /<Arn>arn:aws:sts::123456789012:assumed-role\/reader\/credbroker-reader<\/Arn>/,
    );
    const verified = sts.calls.at(-1);
    assert.equal(verified?.action, "GetCallerIdentity");
    assert.equal(verified?.accessKeyId, signed.accessKeyId);
  });

  test("the session is reused, then renewed 5 minutes before it expires", async () => {
    const start = assumeCalls(sts);
    const first = await signCallerIdentity();
    await signCallerIdentity();
    clock.advance(9); // 6 minutes left: still outside the renewal window
    const third = await signCallerIdentity();
    assert.equal(assumeCalls(sts), start + 1);
    assert.equal(third.accessKeyId, first.accessKeyId);
    clock.advance(2); // 4 minutes left: renew
    const renewed = await signCallerIdentity();
    assert.equal(assumeCalls(sts), start + 2);
    assert.notEqual(renewed.accessKeyId, first.accessKeyId);
  });

  test("100 concurrent SignRequests cause exactly one AssumeRole", async () => {
    const start = assumeCalls(sts);
    sts.setMode({ kind: "slow", ms: 200 });
    const results = await Promise.all(Array.from({ length: 100 }, () => signCallerIdentity()));
    assert.equal(assumeCalls(sts), start + 1);
    assert.equal(new Set(results.map((r) => r.accessKeyId)).size, 1);
  });

  test("updating or disabling the role drops its session at once", async () => {
    const start = assumeCalls(sts);
    const first = await signCallerIdentity();
    await creds.updateCredential({
      name: "reader",
      credential: { description: "changed" },
      updateMask: { paths: ["description"] },
    });
    const afterUpdate = await signCallerIdentity();
    assert.equal(assumeCalls(sts), start + 2);
    assert.notEqual(afterUpdate.accessKeyId, first.accessKeyId);

    await creds.updateCredential({
      name: "reader",
      credential: { enabled: false },
      updateMask: { paths: ["enabled"] },
    });
    const denied = await rejection(signCallerIdentity());
    assert.equal(denied.code, Code.PermissionDenied);
    assert.match(denied.rawMessage, /^AccessDenied: /);
    await creds.updateCredential({
      name: "reader",
      credential: { enabled: true },
      updateMask: { paths: ["enabled"] },
    });
    await signCallerIdentity();
    assert.equal(assumeCalls(sts), start + 3);
  });

  test("STS down: a cached session keeps serving; without one, unavailable with STS's message", async () => {
    const cached = await signCallerIdentity();
    sts.setMode({ kind: "down" });
    assert.equal((await signCallerIdentity()).accessKeyId, cached.accessKeyId);
    clock.advance(11); // in the renewal window: renewal fails, the valid session serves
    assert.equal((await signCallerIdentity()).accessKeyId, cached.accessKeyId);
    clock.advance(5); // expired: nothing valid is left
    const err = await rejection(signCallerIdentity());
    assert.equal(err.code, Code.Unavailable);
    assert.match(err.rawMessage, /^STS AssumeRole: /);
  });

  test("STS AccessDenied is permission_denied carrying STS's message", async () => {
    await creds.updateCredential({
      name: "reader",
      credential: {
        kind: {
          case: "role",
          value: {
            roleArn: ROLE_ARN,
            externalId: "wrong-external-id",
            sourceCredential: "broker-key",
            durationSeconds: 900,
          },
        },
      },
      updateMask: { paths: ["role.external_id"] },
    });
    const err = await rejection(signCallerIdentity());
    assert.equal(err.code, Code.PermissionDenied);
    assert.match(
      err.rawMessage,
      /^STS AssumeRole: AccessDenied: Not authorized to perform sts:AssumeRole/,
    );
  });

  test("live verify: an access key through GetCallerIdentity, a role through AssumeRole; failures are checks", async () => {
    const key = await creds.verifyCredential({
      target: { case: "stored", value: { name: "broker-key" } },
      live: true,
    });
    assert.equal(key.valid, true);
    const keyCheck = key.checks.find((c) => c.check === "live.get_caller_identity");
    assert.equal(keyCheck?.ok, true);
    assert.match(keyCheck?.message ?? "", new RegExp(`account ${ACCOUNT}, ${SOURCE.arn}`));

    const role = await creds.verifyCredential({
      target: { case: "stored", value: { name: "reader" } },
      live: true,
    });
    assert.equal(role.valid, true);
    assert.match(
      role.checks.find((c) => c.check === "live.assume_role")?.message ?? "",
      /assumed-role\/reader/,
    );

    const bad = await creds.verifyCredential({
      target: {
        case: "candidate",
        value: {
          name: "bad",
          kind: {
            case: "accessKey",
            value: {
              accessKeyId: SOURCE.accessKeyId,
              secretAccessKey: "wrong/secret/KEY0000000000000000000000",
            },
          },
        },
      },
      live: true,
    });
    assert.equal(bad.valid, false);
    const failed = bad.checks.find((c) => c.check === "live.get_caller_identity");
    assert.equal(failed?.ok, false);
    assert.match(failed?.message ?? "", /SignatureDoesNotMatch/);
    assert.ok(!JSON.stringify(bad.checks).includes("wrong/secret"), "no secret in the checks");
  });
});

describe("the daemon's own identity as a role's source", () => {
  let sts: FakeSts;
  before(async () => {
    sts = await startFakeSts();
    sts.addKey({
      ...SOURCE,
      accessKeyId: "AKIAAMBIENT000000001",
      arn: `arn:aws:iam::${ACCOUNT}:user/daemon`,
    });
    sts.addRole({ arn: ROLE_ARN, externalId: EXTERNAL_ID });
  });
  after(async () => {
    await sts?.stop();
  });

  // Until the IMDS endpoint exists, the SDK's provider chain finds the identity in the environment.
  const env = () => ({
    AWS_ACCESS_KEY_ID: "AKIAAMBIENT000000001",
    AWS_SECRET_ACCESS_KEY: SOURCE.secretAccessKey,
    AWS_REGION: "us-east-1",
  });
  const ambientRole = {
    credential: {
      name: "ambient-reader",
      allowedHosts: ["127.0.0.1"],
      kind: {
        case: "role" as const,
        value: { roleArn: ROLE_ARN, externalId: EXTERNAL_ID, source: RoleSource.AMBIENT },
      },
    },
  };

  test("an own identity that does not resolve in time: unavailable naming --sts-timeout", async () => {
    // The SDK's chain runs this profile's credential_process, which never answers in time.
    const dir = await tempDir();
    const config = path.join(dir, "aws-config");
    await writeFile(config, "[profile hangs]\ncredential_process = sleep 10\n");
    const daemon = await startDaemon({
      env: {
        AWS_ACCESS_KEY_ID: "",
        AWS_SECRET_ACCESS_KEY: "",
        AWS_CONFIG_FILE: config,
        AWS_SHARED_CREDENTIALS_FILE: path.join(dir, "none"),
        AWS_PROFILE: "hangs",
        AWS_REGION: "us-east-1",
      },
      args: ["--sts-endpoint", sts.endpoint, "--allow-ambient", "--sts-timeout", "1"],
    });
    try {
      await credentialClient(daemon.url, "connect-h1", daemon.token).createCredential(ambientRole);
      const signing = createClient(SigningService, transport(daemon.url, "grpc-h2", daemon.token));
      const started = Date.now();
      const err = await rejection(
        signing.signRequest({
          credential: "ambient-reader",
          method: "GET",
          url: `${sts.endpoint}/?Action=GetCallerIdentity&Version=2011-06-15`,
          service: "sts",
          region: "us-east-1",
        }),
      );
      const took = Date.now() - started;
      assert.equal(err.code, Code.Unavailable, err.message);
      assert.match(
        err.rawMessage,
        /own AWS identity was not resolved within 1 s \(--sts-timeout\)/,
      );
      assert.ok(took >= 900 && took < 5000, `answered after ${took} ms`);
    } finally {
      await daemon.stop();
      await removeDir(daemon.dataDir);
      await removeDir(dir);
    }
  });

  for (const allowed of [true, false]) {
    test(
      allowed
        ? "with --allow-ambient, AssumeRole is signed with the environment's key"
        : "without --allow-ambient, failed_precondition",
      async () => {
        const daemon = await startDaemon({
          env: env(),
          args: ["--sts-endpoint", sts.endpoint, ...(allowed ? ["--allow-ambient"] : [])],
        });
        try {
          await credentialClient(daemon.url, "connect-h1", daemon.token).createCredential(
            ambientRole,
          );
          const signing = createClient(
            SigningService,
            transport(daemon.url, "grpc-h2", daemon.token),
          );
          const sign = signing.signRequest({
            credential: "ambient-reader",
            method: "GET",
            url: `${sts.endpoint}/?Action=GetCallerIdentity&Version=2011-06-15`,
            service: "sts",
            region: "us-east-1",
          });
          if (allowed) {
            const signed = await sign;
            assert.match(signed.accessKeyId, /^ASIA/);
            assert.equal(
              sts.calls.filter((c) => c.action === "AssumeRole").at(-1)?.accessKeyId,
              "AKIAAMBIENT000000001",
            );
          } else {
            const err = await rejection(sign);
            assert.equal(err.code, Code.FailedPrecondition);
            assert.match(err.rawMessage, /--allow-ambient/);
          }
          assert.ok(!daemon.output().includes(SOURCE.secretAccessKey));
        } finally {
          await daemon.stop();
          await removeDir(daemon.dataDir);
        }
      },
    );
  }
});
