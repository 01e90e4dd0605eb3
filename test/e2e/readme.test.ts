import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { type RunningDaemon, removeDir, startDaemon, tempDir } from "../support/daemon.js";
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
async function paste(
  script: string,
  daemon: RunningDaemon,
  env: Record<string, string> = {},
): Promise<string> {
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
      ...env,
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

  test("the Azure and Google Cloud credentials are created as written, no secret echoed", async () => {
    const dir = await tempDir("credbroker-readme-clouds-");
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    const keyFile = path.join(dir, "sa-key.json");
    await writeFile(
      keyFile,
      JSON.stringify({
        type: "service_account",
        project_id: "readme-project",
        private_key_id: "0123456789abcdef0123456789abcdef01234567",
        private_key: pem,
        client_email: "gcs-app@readme-project.iam.gserviceaccount.com",
        client_id: "123456789012345678901",
        token_uri: "https://oauth2.googleapis.com/token",
      }),
    );
    const secrets = {
      AZURE_STORAGE_KEY: randomBytes(64).toString("base64"),
      AZURE_CLIENT_SECRET: "readme~ClientSecret.0123456789abcdefGHIJ",
      AZURE_TENANT_ID: "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
      AZURE_CLIENT_ID: "11111111-2222-4333-8444-555555555555",
      SAS: "sv=2022-11-02&sr=c&sp=rl&se=2099-01-01T00%3A00%3A00Z&sig=readmeSASsig00000000000000000000000000000%3D",
      GCS_HMAC_ACCESS_ID: `GOOG1E${"R".repeat(55)}`,
      GCS_HMAC_SECRET: "readmeHMACsecret0123456789abcdefghijklmn",
    };
    const fresh = await startDaemon();
    try {
      const azure = shBlocks(await readmeSection("Azure Blob Storage"))[0] ?? "";
      const google = (shBlocks(await readmeSection("Google Cloud Storage"))[0] ?? "").replaceAll(
        "./sa-key.json",
        keyFile,
      );
      const out = await paste(`${azure}\n${google}`, fresh, secrets);
      const list = await paste("npx credbroker cred list -n team-a -o json", fresh);
      const names = (
        JSON.parse(list) as { credentials: { name: string; provider?: string }[] }
      ).credentials.map((c) => `${c.name}:${c.provider}`);
      assert.deepEqual(names.sort(), [
        "app-sp:PROVIDER_AZURE",
        "gcs-app:PROVIDER_GCP",
        "gcs-hmac:PROVIDER_GCP",
        "reports-blob:PROVIDER_AZURE",
        "reports-sas:PROVIDER_AZURE",
      ]);
      for (const secret of [
        secrets.AZURE_STORAGE_KEY,
        secrets.AZURE_CLIENT_SECRET,
        secrets.SAS,
        secrets.GCS_HMAC_SECRET,
        pem.split("\n")[3] ?? "",
      ]) {
        assert.ok(!out.includes(secret) && !list.includes(secret), "no secret echoed");
      }
    } finally {
      await fresh.stop();
      await removeDir(fresh.dataDir);
      await removeDir(dir);
    }
  });
});
