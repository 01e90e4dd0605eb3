/**
 * The daemon's log is JSON, one object a line, and nothing else: no
 * dependency or process warning (the AWS SDK's Node-version deprecation
 * notice, an ExperimentalWarning, …) may reach stdout or stderr on a
 * supported Node. The STS client is made on a role's first use, so the test
 * goes that far before it reads the output.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createClient } from "@connectrpc/connect";
import { CredentialService } from "../../gen/credbroker/v1/credential_service_pb.js";
import { SigningService } from "../../gen/credbroker/v1/signing_service_pb.js";
import { runCredbroker } from "../support/cli-run.js";
import { transport } from "../support/clients.js";
import { type RunningDaemon, startDaemon } from "../support/daemon.js";
import { type FakeSts, startFakeSts } from "../support/sts-server.js";

const ACCOUNT = "123456789012";
const SOURCE = {
  accessKeyId: "AKIASOURCE0000000001",
  secretAccessKey: "source/secret/KEY0000000000000000000000",
  arn: `arn:aws:iam::${ACCOUNT}:user/broker`,
  account: ACCOUNT,
};
const ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/reader`;

/** pino's level for warn; a line at or above it is a warning. */
const WARN = 40;

function assertOnlyJsonLogLines(output: string): void {
  const lines = output.split("\n").filter((l) => l.trim() !== "");
  assert.ok(lines.length >= 4, `the daemon logged its startup:\n${output}`);
  for (const line of lines) {
    let entry: { level?: unknown; msg?: unknown };
    try {
      entry = JSON.parse(line) as { level?: unknown; msg?: unknown };
    } catch {
      assert.fail(`a log line is not JSON (a dependency or process warning?): ${line}`);
    }
    assert.equal(typeof entry.level, "number", line);
    assert.ok(Number(entry.level) < WARN, `a warning was logged: ${line}`);
    assert.doesNotMatch(line, /Warning/, line);
  }
}

describe(`startup output on Node ${process.version}`, () => {
  let sts: FakeSts;
  let daemon: RunningDaemon;

  before(async () => {
    sts = await startFakeSts();
    sts.addKey(SOURCE);
    sts.addRole({ arn: ROLE_ARN, trusted: [SOURCE.arn] });
    daemon = await startDaemon({
      args: [
        "--sts-endpoint",
        sts.endpoint,
        "--imds-listen",
        "127.0.0.1:0",
        "--imds-credential",
        "reader",
      ],
    });
  });
  after(async () => {
    await daemon?.stop();
    await sts?.stop();
  });

  test("every line the daemon writes is a JSON log entry below warn, through a role's first STS call", async () => {
    const creds = createClient(
      CredentialService,
      transport(daemon.url, "connect-h2", daemon.token),
    );
    const signing = createClient(SigningService, transport(daemon.url, "grpc-h2", daemon.token));
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
        name: "reader",
        allowedHosts: ["127.0.0.1"],
        kind: { case: "role", value: { roleArn: ROLE_ARN, sourceCredential: "broker-key" } },
      },
    });
    const signed = await signing.signRequest({
      credential: "reader",
      method: "GET",
      url: `${sts.endpoint}/`,
      service: "sts",
      region: "us-east-1",
    });
    assert.match(signed.accessKeyId, /^ASIA/, "the role's session came from STS");
    const stopped = await daemon.stop();
    assert.equal(stopped.code, 0);
    assertOnlyJsonLogLines(daemon.output());
  });

  test("CLI commands that need no daemon write nothing to stderr", async () => {
    for (const args of [["--version"], ["completion", "bash"], ["config", "--help"]]) {
      const res = await runCredbroker(args);
      assert.equal(res.code, 0, res.stderr);
      assert.equal(res.stderr, "", `credbroker ${args.join(" ")} wrote to stderr`);
    }
  });
});
