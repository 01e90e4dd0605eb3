/**
 * credbroker's STS-facing paths against moto, a third-party AWS emulator that
 * recomputes every SigV4 signature (botocore) and checks IAM and trust
 * policies, and against our own stand-in with the same assertions
 * (test/support/sts-backends.ts). The real daemon is spawned with
 * `--sts-endpoint` at the STS; IAM users, keys and roles are made in it first.
 * Each positive test asserts the STS accepted a signed call (a session or an
 * identity came back); the negatives show it refuses a wrong secret, so the
 * positives mean something.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { fromInstanceMetadata } from "@aws-sdk/credential-providers";
import { type Client, Code, createClient } from "@connectrpc/connect";
import type { CredentialService } from "../../gen/credbroker/v1/credential_service_pb.js";
import { SigningService } from "../../gen/credbroker/v1/signing_service_pb.js";
import { runCredbroker } from "../support/cli-run.js";
import { credentialClient, rejection, transport } from "../support/clients.js";
import { listenerUrl, type RunningDaemon, removeDir, startDaemon } from "../support/daemon.js";
import { withEnv } from "../support/env.js";
import type { MotoKey } from "../support/moto.js";
import { callerArn, STS_BACKENDS, type StsBackend } from "../support/sts-backends.js";

const NS = "sts";
const EXTERNAL_ID = "ext-7c1e-credbroker";
const WRONG_SECRET = "wrong/secret/KEY0000000000000000000000";
const GET_CALLER_IDENTITY = "Action=GetCallerIdentity&Version=2011-06-15";
const SCOPES = [{ bucket: "reports", prefixes: ["2026/"], actions: ["get_object"] }];

for (const kind of STS_BACKENDS) {
  describe(`STS-facing paths against ${kind.name}`, () => {
    let sts: StsBackend;
    let broker: MotoKey;
    let readerArn: string;
    let daemon: RunningDaemon;
    let imds: string;
    let creds: Client<typeof CredentialService>;
    let signing: Client<typeof SigningService>;

    /** credbroker signs a GetCallerIdentity with `credential`; the answer of sending it. */
    async function sendSignedCallerIdentity(credential: string) {
      const signed = await signing.signRequest({
        namespace: NS,
        credential,
        method: "POST",
        url: `${sts.endpoint}/`,
        headers: [{ name: "content-type", value: "application/x-www-form-urlencoded" }],
        payload: { case: "body", value: Buffer.from(GET_CALLER_IDENTITY) },
        service: "sts",
        region: "us-east-1",
      });
      const res = await fetch(signed.url, {
        method: "POST",
        headers: Object.fromEntries(signed.headers.map((h) => [h.name, h.value])),
        body: GET_CALLER_IDENTITY,
      });
      return { signed, status: res.status, body: await res.text() };
    }

    const accessKey = (secretAccessKey: string) => ({
      case: "accessKey" as const,
      value: { accessKeyId: broker.accessKeyId, secretAccessKey },
    });
    const role = (roleArn: string, sourceCredential: string, externalId = "") => ({
      case: "role" as const,
      value: { roleArn, externalId, sourceCredential, durationSeconds: 900 },
    });

    before(async () => {
      sts = await kind.start();
      broker = await sts.createUser("broker");
      readerArn = await sts.createRole("reader", {
        trusted: [broker.arn],
        externalId: EXTERNAL_ID,
      });
      const taskRoleArn = await sts.createRole("task-role", { trusted: [broker.arn] });
      daemon = await startDaemon({
        args: [
          "--sts-endpoint",
          sts.endpoint,
          "--imds-listen",
          "127.0.0.1:0",
          "--imds-credential",
          `${NS}/instance`,
          "--container-listen",
          "127.0.0.1:0",
        ],
      });
      imds = listenerUrl(daemon, "imds listening");
      creds = credentialClient(daemon.url, "connect-h2", daemon.token);
      signing = createClient(SigningService, transport(daemon.url, "grpc-h2", daemon.token));
      const hosts = ["127.0.0.1"];
      for (const credential of [
        { name: "broker-key", allowedHosts: hosts, kind: accessKey(broker.secretAccessKey) },
        { name: "wrong-key", allowedHosts: hosts, kind: accessKey(WRONG_SECRET) },
        { name: "reader", allowedHosts: hosts, kind: role(readerArn, "broker-key", EXTERNAL_ID) },
        {
          name: "reader-wrong-source",
          allowedHosts: hosts,
          kind: role(readerArn, "wrong-key", EXTERNAL_ID),
        },
        {
          name: "reader-wrong-external-id",
          allowedHosts: hosts,
          kind: role(readerArn, "broker-key", "not-it"),
        },
        { name: "instance", allowedInTasks: true, kind: role(taskRoleArn, "broker-key") },
        { name: "deployer", allowedInTasks: true, kind: role(taskRoleArn, "broker-key") },
        {
          name: "scoped",
          allowedInTasks: true,
          allowedScopes: SCOPES,
          kind: accessKey(broker.secretAccessKey),
        },
      ]) {
        await creds.createCredential({ credential: { namespace: NS, ...credential } });
      }
    });

    after(async () => {
      await daemon?.stop();
      if (daemon) await removeDir(daemon.dataDir);
      await sts?.stop();
    });

    test("SignRequest with a stored access key: the STS accepts credbroker's signature", async () => {
      const { status, body } = await sendSignedCallerIdentity("broker-key");
      assert.equal(status, 200, body);
      assert.match(body, new RegExp(`<Arn>${broker.arn}</Arn>`));
    });

    test("SignRequest with a role: the daemon's AssumeRole is accepted, and so is the session's signature", async () => {
      const { signed, status, body } = await sendSignedCallerIdentity("reader");
      assert.match(signed.accessKeyId, /^ASIA/);
      assert.ok(
        signed.headers.some((h) => h.name === "x-amz-security-token" && h.value !== ""),
        "the session token is signed and sent",
      );
      assert.equal(status, 200, body);
      assert.match(
        body,
        new RegExp(`<Arn>arn:aws:sts::${sts.account}:assumed-role/reader/credbroker-reader</Arn>`),
      );
    });

    test("a wrong secret is refused: SignRequest's signature gets 403, the role's AssumeRole failed_precondition", async () => {
      const { status, body } = await sendSignedCallerIdentity("wrong-key");
      assert.equal(status, 403, body);
      assert.match(body, /<Code>SignatureDoesNotMatch<\/Code>/);

      const err = await rejection(sendSignedCallerIdentity("reader-wrong-source"));
      assert.equal(err.code, Code.FailedPrecondition, err.message);
      assert.match(err.rawMessage, /^STS AssumeRole: SignatureDoesNotMatch: /);
      assert.ok(!err.rawMessage.includes(WRONG_SECRET), "no secret in the message");
    });

    test("a trust policy that refuses the external id: permission_denied carrying STS's AccessDenied", async () => {
      const err = await rejection(sendSignedCallerIdentity("reader-wrong-external-id"));
      assert.equal(err.code, Code.PermissionDenied, err.message);
      assert.match(err.rawMessage, /^STS AssumeRole: AccessDenied: /);
    });

    test("live verify: GetCallerIdentity for an access key, AssumeRole for a role; a wrong secret fails the check", async () => {
      const verify = (name: string) =>
        creds.verifyCredential({
          target: { case: "stored", value: { namespace: NS, name } },
          live: true,
        });
      const key = await verify("broker-key");
      const keyCheck = key.checks.find((c) => c.check === "live.get_caller_identity");
      assert.equal(keyCheck?.ok, true, keyCheck?.message);
      assert.equal(keyCheck?.message, `account ${sts.account}, ${broker.arn}`);
      assert.equal(key.valid, true);

      const reader = await verify("reader");
      const roleCheck = reader.checks.find((c) => c.check === "live.assume_role");
      assert.equal(roleCheck?.ok, true, roleCheck?.message);
      assert.match(roleCheck?.message ?? "", /^assumed arn:aws:sts::\d{12}:assumed-role\/reader\//);

      for (const [name, check, action] of [
        ["wrong-key", "live.get_caller_identity", "GetCallerIdentity"],
        ["reader-wrong-source", "live.assume_role", "AssumeRole"],
      ] as const) {
        const bad = await verify(name);
        assert.equal(bad.valid, false, name);
        const failed = bad.checks.find((c) => c.check === check);
        assert.equal(failed?.ok, false, name);
        assert.match(failed?.message ?? "", new RegExp(`^STS ${action}: SignatureDoesNotMatch: `));
      }
    });

    test("IMDS: fromInstanceMetadata gets the role's session, which the STS accepts", async () => {
      const credentials = await withEnv({ AWS_EC2_METADATA_SERVICE_ENDPOINT: `${imds}/` }, () =>
        fromInstanceMetadata({ maxRetries: 0, timeout: 5000 })(),
      );
      assert.match(credentials.accessKeyId, /^ASIA/);
      assert.ok(credentials.sessionToken);
      assert.notEqual(
        credentials.secretAccessKey,
        broker.secretAccessKey,
        "never the stored secret",
      );
      assert.match(await callerArn(sts.endpoint, credentials), /:assumed-role\/task-role\//);
    });

    test("container credentials: a scoped access key's GetFederationToken (with the session policy) is accepted", async () => {
      const binding = await signing.createContainerBinding({ namespace: NS, credential: "scoped" });
      const res = await fetch(binding.fullUri, {
        headers: { authorization: binding.authorizationToken },
      });
      const body = (await res.json()) as Record<string, string>;
      assert.equal(res.status, 200, JSON.stringify(body));
      assert.ok(body.AccessKeyId && body.Token, "a session came back");
      assert.notEqual(body.AccessKeyId, broker.accessKeyId, "never the stored key");
      assert.notEqual(body.SecretAccessKey, broker.secretAccessKey, "never the stored secret");
      await signing.deleteContainerBinding({ bindingId: binding.bindingId });
    });

    test("credbroker exec: the child's SDK resolves the role's session through --container-listen; the STS accepts it", async () => {
      // The child imports the SDK by absolute URL: it runs from whatever directory the test does.
      const script = `
        const { STSClient, GetCallerIdentityCommand } = await import(${JSON.stringify(import.meta.resolve("@aws-sdk/client-sts"))});
        const client = new STSClient({ region: "us-east-1", endpoint: process.env.TEST_STS_ENDPOINT, maxAttempts: 1 });
        const me = await client.send(new GetCallerIdentityCommand({}));
        console.log(JSON.stringify({ arn: me.Arn, keyId: process.env.AWS_ACCESS_KEY_ID ?? "" }));`;
      const run = await runCredbroker(
        [
          "exec",
          "--credential",
          `${NS}/deployer`,
          "--",
          process.execPath,
          "--input-type=module",
          "-e",
          script,
        ],
        {
          env: {
            CREDBROKER_ADDR: daemon.url,
            CREDBROKER_TOKEN: daemon.token,
            TEST_STS_ENDPOINT: sts.endpoint,
            AWS_ACCESS_KEY_ID: undefined,
            AWS_SECRET_ACCESS_KEY: undefined,
            AWS_SESSION_TOKEN: undefined,
            AWS_PROFILE: undefined,
            AWS_CONFIG_FILE: "/nonexistent/config",
            AWS_SHARED_CREDENTIALS_FILE: "/nonexistent/credentials",
          },
        },
      );
      assert.equal(run.code, 0, run.stderr);
      const out = JSON.parse(run.stdout.trim().split("\n").at(-1) ?? "{}") as {
        arn?: string;
        keyId?: string;
      };
      assert.match(out.arn ?? "", /:assumed-role\/task-role\//);
      assert.equal(out.keyId, "", "no access key in the child's environment");
    });
  });
}
