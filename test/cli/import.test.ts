import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { Hash } from "@smithy/hash-node";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import { credentialClient } from "../support/clients.js";
import { type RunningDaemon, removeDir, runCli, startDaemon } from "../support/daemon.js";

const SECRETS = [
  "envSECRET/0000000000000000000000000000",
  "base/SECRET/KEY00000000000000000000000",
  "url/secret+with%chars",
];

describe("credbroker cred import", () => {
  let daemon: RunningDaemon;
  let awsDir: string;
  let env: Record<string, string>;
  const outputs: string[] = [];
  const cli = async (args: string[], extra: Record<string, string> = {}) => {
    const res = await runCli(["cred", "import", ...args], { ...env, ...extra });
    outputs.push(res.stdout, res.stderr);
    return res;
  };

  before(async () => {
    daemon = await startDaemon();
    awsDir = await mkdtemp(path.join(os.tmpdir(), "credbroker-aws-"));
    await writeFile(
      path.join(awsDir, "credentials"),
      `[base]\naws_access_key_id = AKIABASE000000000001\naws_secret_access_key = ${SECRETS[1]}\n`,
    );
    await writeFile(
      path.join(awsDir, "config"),
      "[profile deploy]\nrole_arn = arn:aws:iam::123456789012:role/deployer\nsource_profile = base\nexternal_id = ext-123\nduration_seconds = 1800\nregion = eu-west-1\n\n[profile broken]\nregion = us-east-1\n",
    );
    env = {
      CREDBROKER_ADDR: daemon.url,
      CREDBROKER_TOKEN_FILE: `${daemon.dataDir}/admin.token`,
      AWS_SHARED_CREDENTIALS_FILE: path.join(awsDir, "credentials"),
      AWS_CONFIG_FILE: path.join(awsDir, "config"),
      AWS_ACCESS_KEY_ID: "",
      AWS_SECRET_ACCESS_KEY: "",
      AWS_PROFILE: "",
    };
  });
  after(async () => {
    for (const out of [...outputs, daemon.output()]) {
      for (const secret of SECRETS) assert.ok(!out.includes(secret), "a secret was printed");
    }
    await daemon.stop();
    await removeDir(daemon.dataDir);
    await rm(awsDir, { recursive: true, force: true });
  });

  const get = (name: string) =>
    credentialClient(daemon.url, "connect-h1", daemon.token).getCredential({ name });

  test("env: key, secret, session token and region", async () => {
    const res = await cli(["from-env", "--from", "env"], {
      AWS_ACCESS_KEY_ID: "AKIAENV0000000000001",
      AWS_SECRET_ACCESS_KEY: SECRETS[0] ?? "",
      AWS_SESSION_TOKEN: "session-token-value",
      AWS_DEFAULT_REGION: "ap-south-1",
    });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /imported from-env \(access-key\) from env/);
    const c = (await get("from-env")).credential;
    assert.equal(c?.kind.case === "accessKey" && c.kind.value.accessKeyId, "AKIAENV0000000000001");
    assert.equal(c?.region, "ap-south-1");
  });

  test("a chain whose first source is empty: the next complete one wins, and the output says which", async () => {
    const res = await cli(["chained", "--from", "env", "--from", "aws-profile:base"]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /from aws-profile:base/);
  });

  test("a role profile becomes a role, its source profile imported alongside", async () => {
    const res = await cli(["deployer", "--from", "aws-profile:deploy"]);
    assert.equal(res.code, 0, res.stderr);
    const role = (await get("deployer")).credential;
    assert.ok(role?.kind.case === "role");
    assert.deepEqual(
      [
        role.kind.value.roleArn,
        role.kind.value.externalId,
        role.kind.value.durationSeconds,
        role.kind.value.sourceCredential,
        role.region,
      ],
      ["arn:aws:iam::123456789012:role/deployer", "ext-123", 1800, "deployer-source", "eu-west-1"],
    );
    const source = (await get("deployer-source")).credential;
    assert.equal(
      source?.kind.case === "accessKey" && source.kind.value.accessKeyId,
      "AKIABASE000000000001",
    );
  });

  test("url-env: the key and the percent-decoded secret sign correctly; the host is allowed", async () => {
    const url = `https://AKIAURL0000000000001:${encodeURIComponent(SECRETS[2] ?? "")}@minio.example.com:9000`;
    const res = await cli(["minio", "--from", "url-env:S3_URL"], { S3_URL: url });
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual((await get("minio")).credential?.allowedHosts, ["minio.example.com"]);
    // The stored secret is the decoded one: a signature made with it matches smithy's.
    const signed = await runCli(
      [
        "sign",
        "-c",
        "minio",
        "--service",
        "s3",
        "--region",
        "us-east-1",
        "https://minio.example.com:9000/b/k",
      ],
      env,
    );
    const headers = Object.fromEntries(
      signed.stdout
        .trim()
        .split("\n")
        .map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 2)]),
    );
    const expected = await new SignatureV4({
      credentials: { accessKeyId: "AKIAURL0000000000001", secretAccessKey: SECRETS[2] ?? "" },
      region: "us-east-1",
      service: "s3",
      sha256: Hash.bind(null, "sha256"),
      uriEscapePath: false,
      applyChecksum: false,
    }).sign(
      new HttpRequest({
        method: "GET",
        protocol: "https:",
        hostname: "minio.example.com",
        port: 9000,
        path: "/b/k",
        headers: { host: "minio.example.com:9000", "x-amz-content-sha256": "UNSIGNED-PAYLOAD" },
      }),
      {
        signingDate: new Date(
          Date.parse(
            headers["x-amz-date"]?.replace(
              /(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z/,
              "$1-$2-$3T$4:$5:$6Z",
            ) ?? "",
          ),
        ),
      },
    );
    assert.equal(headers.authorization, expected.headers.authorization);
  });

  test("url-stdin, and --update rotates an existing credential (without it: already exists, exit 7)", async () => {
    const first = await runCli(["cred", "import", "rotating", "--from", "url-env:U"], {
      ...env,
      U: "https://AKIAROT0000000000001:one@s3.example.net",
    });
    assert.equal(first.code, 0, first.stderr);
    const again = await cli(["rotating", "--from", "url-env:U"], {
      U: "https://AKIAROT0000000000002:two@s3.example.net",
    });
    assert.equal(again.code, 7);
    const before = (await get("rotating")).credential?.etag;
    const rotated = await cli(["rotating", "--update", "--from", "url-env:U"], {
      U: "https://AKIAROT0000000000002:two@s3.example.net",
    });
    assert.equal(rotated.code, 0, rotated.stderr);
    const after = (await get("rotating")).credential;
    assert.notEqual(after?.etag, before);
    assert.equal(
      after?.kind.case === "accessKey" && after.kind.value.accessKeyId,
      "AKIAROT0000000000002",
    );
  });

  test("missing or partial sources: exit 5 naming what is missing", async () => {
    const none = await cli(["x", "--from", "env"]);
    assert.equal(none.code, 5);
    assert.match(none.stderr, /env: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY not set/);
    const partial = await cli(["x", "--from", "aws-profile:broken"]);
    assert.equal(partial.code, 5);
    assert.match(
      partial.stderr,
      /aws-profile:broken: aws_access_key_id and aws_secret_access_key missing/,
    );
    const badUrl = await cli(["x", "--from", "url-env:NOPE"]);
    assert.equal(badUrl.code, 5);
    assert.match(badUrl.stderr, /url-env:NOPE: empty/);
    const usage = await cli(["x", "--from", "ftp"]);
    assert.equal(usage.code, 2);
  });
});
