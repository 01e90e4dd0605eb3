/**
 * IMDS and container credentials for unmodified AWS SDK clients: the real
 * daemon (spawned), real SDK credential providers, and the fake STS server
 * (test/support/sts-server.ts) issuing, and verifying, every session.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  fromContainerMetadata,
  fromHttp,
  fromInstanceMetadata,
} from "@aws-sdk/credential-providers";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { SigningService } from "../../gen/credbroker/v1/signing_service_pb.js";
import { sessionPolicy } from "../../src/providers/aws/session-policy.js";
import { credentialClient, transport } from "../support/clients.js";
import { CLI, listenerUrl, type RunningDaemon, removeDir, startDaemon } from "../support/daemon.js";
import { withEnv } from "../support/env.js";
import { callerArn } from "../support/sts-backends.js";
import { type FakeSts, startFakeSts } from "../support/sts-server.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const ACCOUNT = "123456789012";
const KEY = {
  accessKeyId: "AKIATASKS00000000001",
  secretAccessKey: "tasks/secret/KEY000000000000000000000000",
  arn: `arn:aws:iam::${ACCOUNT}:user/tasks`,
  account: ACCOUNT,
};
const ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/task-role`;
const SCOPES = [{ bucket: "reports", prefixes: ["2026/"], actions: ["get_object", "list_bucket"] }];

describe("task credentials: IMDS and container endpoints", () => {
  let sts: FakeSts;
  let daemon: RunningDaemon;
  let imds: string;
  let container: string;

  before(async () => {
    sts = await startFakeSts();
    sts.addKey(KEY);
    sts.addRole({ arn: ROLE_ARN });
    daemon = await startDaemon({
      args: [
        "--sts-endpoint",
        sts.endpoint,
        "--imds-listen",
        "127.0.0.1:0",
        "--imds-credential",
        "tasks/instance",
        "--container-listen",
        "127.0.0.1:0",
      ],
    });
    imds = listenerUrl(daemon, "imds listening");
    container = listenerUrl(daemon, "container credentials listening");
    const creds = credentialClient(daemon.url, "connect-h2", daemon.token);
    const key = {
      case: "accessKey" as const,
      value: { accessKeyId: KEY.accessKeyId, secretAccessKey: KEY.secretAccessKey },
    };
    await creds.createCredential({ credential: { namespace: "tasks", name: "source", kind: key } });
    // The instance's credential: an access key with scopes, lent through GetFederationToken.
    await creds.createCredential({
      credential: {
        namespace: "tasks",
        name: "instance",
        kind: key,
        allowedInTasks: true,
        allowedScopes: SCOPES,
      },
    });
    await creds.createCredential({
      credential: {
        namespace: "tasks",
        name: "deployer",
        allowedInTasks: true,
        allowedScopes: SCOPES,
        kind: { case: "role", value: { roleArn: ROLE_ARN, sourceCredential: "source" } },
      },
    });
    await creds.createCredential({
      credential: { namespace: "tasks", name: "plain", kind: key, allowedInTasks: true },
    });
    await creds.createCredential({
      credential: { namespace: "tasks", name: "not-for-tasks", kind: key },
    });
  });

  after(async () => {
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
    await sts?.stop();
  });

  test("fromInstanceMetadata gets a federated session carrying the scopes as its policy; STS accepts it", async () => {
    const credentials = await withEnv({ AWS_EC2_METADATA_SERVICE_ENDPOINT: `${imds}/` }, () =>
      fromInstanceMetadata({ maxRetries: 0, timeout: 2000 })(),
    );
    assert.match(credentials.accessKeyId, /^ASIA/);
    assert.ok(credentials.sessionToken);
    assert.notEqual(credentials.secretAccessKey, KEY.secretAccessKey, "never the stored secret");
    const federation = sts.calls.filter((c) => c.action === "GetFederationToken").at(-1);
    assert.equal(federation?.params.Policy, sessionPolicy(SCOPES as never));
    assert.deepEqual(JSON.parse(federation?.params.Policy ?? "{}").Statement[0].Resource, [
      "arn:aws:s3:::reports/2026/*",
    ]);
    assert.match(await callerArn(sts.endpoint, credentials), /:federated-user\//);
  });

  test("the default provider chain finds IMDS through AWS_EC2_METADATA_SERVICE_ENDPOINT", async () => {
    const { fromNodeProviderChain } = await import("@aws-sdk/credential-providers");
    const credentials = await withEnv(
      {
        AWS_EC2_METADATA_SERVICE_ENDPOINT: `${imds}/`,
        AWS_ACCESS_KEY_ID: undefined,
        AWS_SECRET_ACCESS_KEY: undefined,
        AWS_SESSION_TOKEN: undefined,
        AWS_PROFILE: undefined,
        AWS_CONFIG_FILE: "/nonexistent/config",
        AWS_SHARED_CREDENTIALS_FILE: "/nonexistent/credentials",
        AWS_CONTAINER_CREDENTIALS_FULL_URI: undefined,
        AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: undefined,
        AWS_WEB_IDENTITY_TOKEN_FILE: undefined,
      },
      () => fromNodeProviderChain()(),
    );
    assert.match(credentials.accessKeyId, /^ASIA/);
  });

  test("container credentials: a binding's URL and token give a role session (with the scope policy)", async () => {
    const signing = createClient(SigningService, transport(daemon.url, "connect-h2", daemon.token));
    const binding = await signing.createContainerBinding({
      namespace: "tasks",
      credential: "deployer",
      ttlSeconds: 300,
    });
    assert.equal(binding.fullUri, `${container}/v1/credentials/${binding.bindingId}`);
    for (const provider of [
      () => fromContainerMetadata({ maxRetries: 0, timeout: 2000 })(),
      () => fromHttp({})(),
    ]) {
      const credentials = await withEnv(
        {
          AWS_CONTAINER_CREDENTIALS_FULL_URI: binding.fullUri,
          AWS_CONTAINER_AUTHORIZATION_TOKEN: binding.authorizationToken,
          AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: undefined,
        },
        provider,
      );
      assert.match(await callerArn(sts.endpoint, credentials), /:assumed-role\/task-role\//);
    }
    const assume = sts.calls.filter((c) => c.action === "AssumeRole").at(-1);
    assert.equal(assume?.params.Policy, sessionPolicy(SCOPES as never));

    const wrong = await fetch(binding.fullUri, { headers: { authorization: "wrong" } });
    assert.equal(wrong.status, 403);
    assert.deepEqual(Object.keys((await wrong.json()) as object).sort(), ["Code", "Message"]);

    await signing.deleteContainerBinding({ bindingId: binding.bindingId });
    const gone = await fetch(binding.fullUri, {
      headers: { authorization: binding.authorizationToken },
    });
    assert.equal(gone.status, 403);
  });

  test("an access key without scopes is lent through GetSessionToken", async () => {
    const signing = createClient(SigningService, transport(daemon.url, "grpc-h2", daemon.token));
    const binding = await signing.createContainerBinding({
      namespace: "tasks",
      credential: "plain",
    });
    const before = sts.calls.filter((c) => c.action === "GetSessionToken").length;
    const res = await fetch(binding.fullUri, {
      headers: { authorization: binding.authorizationToken },
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as Record<string, string>;
    assert.match(body.Expiration ?? "", /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.equal(sts.calls.filter((c) => c.action === "GetSessionToken").length, before + 1);
  });

  test("only allowed_in_tasks credentials; bindings need a container listener", async () => {
    const signing = createClient(SigningService, transport(daemon.url, "connect-h1", daemon.token));
    const err = await signing
      .createContainerBinding({ namespace: "tasks", credential: "not-for-tasks" })
      .then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
    assert.equal(err?.code, Code.PermissionDenied);
    assert.match(err?.rawMessage ?? "", /allowed_in_tasks/);
    const bad = await signing
      .createContainerBinding({ namespace: "tasks", credential: "plain", ttlSeconds: 5 })
      .then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
    assert.equal(bad?.code, Code.InvalidArgument);
  });

  test("credbroker exec: the child's default chain resolves through the container endpoint; the binding ends with it", async () => {
    const script = `
      const { fromNodeProviderChain } = await import("@aws-sdk/credential-providers");
      const c = await fromNodeProviderChain()();
      console.log(JSON.stringify({
        keyId: c.accessKeyId,
        uri: process.env.AWS_CONTAINER_CREDENTIALS_FULL_URI,
        token: process.env.AWS_CONTAINER_AUTHORIZATION_TOKEN,
        leaked: ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "CREDBROKER_TOKEN", "CREDBROKER_TOKEN_FILE"].filter((k) => process.env[k]),
      }));`;
    const { code, stdout, stderr } = await new Promise<{
      code: number | null;
      stdout: string;
      stderr: string;
    }>((resolve) => {
      const child = spawn(
        process.execPath,
        [
          CLI,
          "exec",
          "--credential",
          "tasks/deployer",
          "--",
          process.execPath,
          "--input-type=module",
          "-e",
          script,
        ],
        {
          cwd: ROOT,
          env: {
            ...process.env,
            CREDBROKER_ADDR: daemon.url,
            CREDBROKER_TOKEN: daemon.token,
            AWS_ACCESS_KEY_ID: "AKIASHOULDNOTLEAK000",
            AWS_SECRET_ACCESS_KEY: "should/not/leak",
            AWS_CONFIG_FILE: "/nonexistent/config",
            AWS_SHARED_CREDENTIALS_FILE: "/nonexistent/credentials",
          },
        },
      );
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => {
        stdout += d.toString();
      });
      child.stderr.on("data", (d: Buffer) => {
        stderr += d.toString();
      });
      child.once("exit", (c) => resolve({ code: c, stdout, stderr }));
    });
    assert.equal(code, 0, stderr);
    const out = JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as {
      keyId: string;
      uri: string;
      token: string;
      leaked: string[];
    };
    assert.match(out.keyId, /^ASIA/);
    assert.deepEqual(out.leaked, []);
    assert.ok(out.uri.startsWith(`${container}/v1/credentials/`));
    const after = await fetch(out.uri, { headers: { authorization: out.token } });
    assert.equal(after.status, 403, "the binding is gone once the command exited");
  });

  test("exec passes the command's exit code through", async () => {
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(
        process.execPath,
        [CLI, "exec", "-c", "tasks/plain", "--", process.execPath, "-e", "process.exit(7)"],
        { env: { ...process.env, CREDBROKER_ADDR: daemon.url, CREDBROKER_TOKEN: daemon.token } },
      );
      child.once("exit", resolve);
    });
    assert.equal(code, 7);
  });

  test("disabling the credential stops new IMDS answers at once", async () => {
    const creds = credentialClient(daemon.url, "connect-h2", daemon.token);
    const tokenRes = await fetch(`${imds}/latest/api/token`, {
      method: "PUT",
      headers: { "x-aws-ec2-metadata-token-ttl-seconds": "60" },
    });
    const token = await tokenRes.text();
    const path = `${imds}/latest/meta-data/iam/security-credentials/instance`;
    assert.equal(
      (await fetch(path, { headers: { "x-aws-ec2-metadata-token": token } })).status,
      200,
    );
    await creds.updateCredential({
      namespace: "tasks",
      name: "instance",
      credential: { enabled: false },
      updateMask: { paths: ["enabled"] },
    });
    assert.equal(
      (await fetch(path, { headers: { "x-aws-ec2-metadata-token": token } })).status,
      404,
    );
    await creds.updateCredential({
      namespace: "tasks",
      name: "instance",
      credential: { enabled: true },
      updateMask: { paths: ["enabled"] },
    });
    assert.ok(!daemon.output().includes(KEY.secretAccessKey), "no stored secret in the log");
  });
});
