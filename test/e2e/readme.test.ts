import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { type RunningDaemon, removeDir, startDaemon } from "../support/daemon.js";
import { REPO_ROOT as ROOT, readmeSection, shBlocks } from "../support/readme.js";

const run = promisify(execFile);
const CLI_SECRET = "cliSECRETvalue0123456789abcdefghijklmnopq";

/** The ```sh blocks under a README heading, joined. */
async function walkthrough(heading: string): Promise<string> {
  return shBlocks(await readmeSection(heading)).join("\n");
}

/**
 * Runs a README walkthrough as a reader would paste it, against a real daemon:
 * only the lines that point at the default address and token are replaced.
 */
async function paste(script: string, daemon: RunningDaemon): Promise<string> {
  const body = script
    .split("\n")
    .filter((l) => !/^(export )?(TOKEN|ADDR|CREDBROKER_ADDR)=/.test(l))
    .join("\n");
  const { stdout, stderr } = await run("bash", ["-euo", "pipefail", "-c", body], {
    cwd: ROOT,
    env: {
      ...process.env,
      TOKEN: daemon.token,
      ADDR: daemon.url,
      CREDBROKER_ADDR: daemon.url,
      CREDBROKER_TOKEN_FILE: `${daemon.dataDir}/admin.token`,
      AWS_SECRET_ACCESS_KEY: CLI_SECRET,
    },
  });
  return stdout + stderr;
}

describe("the README's walkthroughs work as written", () => {
  let daemon: RunningDaemon;
  before(async () => {
    daemon = await startDaemon();
  });
  after(async () => {
    await daemon.stop();
    await removeDir(daemon.dataDir);
  });

  test("buf curl: services, health, create, get — and the secret never comes back", async () => {
    const out = await paste(await walkthrough("Walkthrough with `buf curl`"), daemon);
    assert.match(out, /credbroker\.v1\.CredentialService/);
    assert.match(out, /"status": "SERVING"/);
    assert.match(out, /"name": "s3-reader"/);
    assert.match(out, /"accessKeyId": "AKIAIOSFODNN7EXAMPLE"/);
    assert.ok(!out.includes("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"));
  });

  test("plain curl: list, rotate, verify, and 401 without a token", async () => {
    const out = await paste(await walkthrough("Walkthrough with plain `curl`"), daemon);
    assert.match(out, /"credentials":\[\{[^\]]*"name":"s3-reader"/);
    assert.match(out, /"valid":true/);
    assert.match(out, /"code":"unauthenticated"/);
    assert.ok(!out.includes("NEWsecretEXAMPLEKEY0123456789abcdefghij"));
    // The rotation took: the etag the update returned differs from the one listed.
    const etags = [...out.matchAll(/"etag":"([^"]+)"/g)].map((m) => m[1]);
    assert.equal(etags.length, 2);
    assert.notEqual(etags[0], etags[1]);
  });

  test("the CLI session: create from stdin, list, disable, verify, get as JSON, delete", async () => {
    // Its own daemon: the walkthroughs above already made team-a/s3-reader.
    const fresh = await startDaemon();
    let out: string;
    try {
      out = await paste(await walkthrough("A CLI session"), fresh);
    } finally {
      await fresh.stop();
      await removeDir(fresh.dataDir);
    }
    assert.match(out, /access key id\s+AKIAIOSFODNN7EXAMPLE/);
    assert.match(out, /team-a\s+s3-reader\s+access-key\s+aws\s+active/);
    assert.match(
      out,
      /^https:\/\/reports\.s3\.amazonaws\.com\/2026\/q1\.csv\?X-Amz-Algorithm=AWS4-HMAC-SHA256&.*X-Amz-Expires=300&.*X-Amz-Signature=[0-9a-f]{64}$/m,
    );
    assert.match(out, /enabled\s+false/);
    assert.match(out, /valid: yes/);
    assert.match(out, /"name": "s3-reader"/);
    assert.match(out, /deleted team-a\/s3-reader/);
    assert.ok(!out.includes(CLI_SECRET));
  });
});
