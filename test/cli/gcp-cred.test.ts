/**
 * Google Cloud credentials through the CLI over the real daemon: a service
 * account from its JSON key file (--key-file or --secret-stdin), an HMAC key
 * (--kind access-key --provider gcp), --token-scope; get/list show the key's
 * public fields, never the private key (searched in every output and in every
 * file of the data dir); a bad key file fails naming the field, echoing nothing.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { type CliResult, runCredbroker } from "../support/cli-run.js";
import { type RunningDaemon, removeDir, startDaemon } from "../support/daemon.js";

/** A fresh service account key, shaped as Google issues them. */
function serviceAccountKey(email: string): { json: string; pemBody: string; keyId: string } {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  const keyId = randomBytes(20).toString("hex");
  const json = JSON.stringify({
    type: "service_account",
    project_id: "cli-project-7",
    private_key_id: keyId,
    private_key: pem,
    client_email: email,
    client_id: "104857600000000000001",
    token_uri: "https://oauth2.googleapis.com/token",
  });
  // A line of the key's base64 body: what a leak of the key would contain.
  return { json, pemBody: pem.split("\n")[5] ?? "", keyId };
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(p)));
    else if (entry.isFile()) out.push(p);
  }
  return out;
}

describe("cred create/get/update/list for Google Cloud", () => {
  let daemon: RunningDaemon;
  let env: Record<string, string>;
  let tmp: string;
  const outputs: string[] = [];
  const cli = async (args: string[], stdin?: string): Promise<CliResult> => {
    const r = await runCredbroker(args, { env, ...(stdin === undefined ? {} : { stdin }) });
    outputs.push(r.stdout, r.stderr);
    return r;
  };
  const ok = async (args: string[], stdin?: string): Promise<CliResult> => {
    const r = await cli(args, stdin);
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    return r;
  };
  const first = serviceAccountKey("reader@cli-project-7.iam.gserviceaccount.com");
  const second = serviceAccountKey("writer@cli-project-7.iam.gserviceaccount.com");
  const HMAC_ID = `GOOG1E${"A".repeat(55)}`;
  const HMAC_SECRET = "hmacSECRETvalue0123456789abcdefghijklmn";

  before(async () => {
    daemon = await startDaemon();
    env = {
      CREDBROKER_ADDR: new URL(daemon.url).host,
      CREDBROKER_TOKEN_FILE: path.join(daemon.dataDir, "admin.token"),
    };
    tmp = await mkdtemp(path.join(os.tmpdir(), "gcp-cred-"));
  });
  after(async () => {
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
    if (tmp) await removeDir(tmp);
  });

  test("a service account from --key-file: provider gcp inferred, public fields shown", async () => {
    const file = path.join(tmp, "reader.json");
    await writeFile(file, first.json, { mode: 0o600 });
    const created = await ok([
      "cred",
      "create",
      "reader",
      "-n",
      "gcp",
      "--key-file",
      file,
      "--token-scope",
      "https://www.googleapis.com/auth/devstorage.read_only",
      "--token-scope",
      "https://www.googleapis.com/auth/cloud-platform.read-only",
    ]);
    assert.match(created.stdout, /kind\s+service-account/);
    assert.match(created.stdout, /provider\s+gcp/);
    const shown = (await ok(["cred", "get", "reader", "-n", "gcp"])).stdout;
    assert.match(shown, /client email\s+reader@cli-project-7\.iam\.gserviceaccount\.com/);
    assert.match(shown, new RegExp(`private key id\\s+${first.keyId}`));
    assert.match(shown, /project id\s+cli-project-7/);
    assert.match(
      shown,
      /token scopes\s+https:\/\/www\.googleapis\.com\/auth\/devstorage\.read_only https:\/\/www\.googleapis\.com\/auth\/cloud-platform\.read-only/,
    );
    const json = JSON.parse(
      (await ok(["cred", "get", "reader", "-n", "gcp", "-o", "json"])).stdout,
    );
    assert.equal(json.credential.provider, "PROVIDER_GCP");
    assert.equal(
      json.credential.serviceAccount.clientEmail,
      "reader@cli-project-7.iam.gserviceaccount.com",
    );
    assert.equal(json.credential.serviceAccount.keyJson, undefined);
    assert.deepEqual(json.credential.tokenScopes, [
      "https://www.googleapis.com/auth/devstorage.read_only",
      "https://www.googleapis.com/auth/cloud-platform.read-only",
    ]);
  });

  test("the whole JSON key on stdin; update replaces the key and the scopes", async () => {
    await ok(
      ["cred", "create", "rotating", "-n", "gcp", "--kind", "service-account", "--secret-stdin"],
      first.json,
    );
    await ok(
      [
        "cred",
        "update",
        "rotating",
        "-n",
        "gcp",
        "--secret-stdin",
        "--token-scope",
        "https://www.googleapis.com/auth/devstorage.read_write",
      ],
      second.json,
    );
    const shown = (await ok(["cred", "get", "rotating", "-n", "gcp"])).stdout;
    assert.match(shown, /client email\s+writer@cli-project-7\.iam\.gserviceaccount\.com/);
    assert.match(shown, new RegExp(`private key id\\s+${second.keyId}`));
    assert.match(
      shown,
      /token scopes\s+https:\/\/www\.googleapis\.com\/auth\/devstorage\.read_write\n/,
    );
    await ok(["cred", "update", "rotating", "-n", "gcp", "--clear", "token-scopes"]);
    assert.match((await ok(["cred", "get", "rotating", "-n", "gcp"])).stdout, /token scopes\s+-\n/);
  });

  test("an HMAC key: --kind access-key --provider gcp", async () => {
    await ok(
      [
        "cred",
        "create",
        "hmac",
        "-n",
        "gcp",
        "--provider",
        "gcp",
        "--access-key-id",
        HMAC_ID,
        "--secret-stdin",
      ],
      HMAC_SECRET,
    );
    const listed = (await ok(["cred", "list", "-n", "gcp", "--provider", "gcp"])).stdout;
    const line = (name: string) => listed.split("\n").find((l) => l.split(/\s+/)[1] === name) ?? "";
    assert.match(line("hmac"), new RegExp(`access-key\\s+gcp\\s+active\\s+${HMAC_ID}`));
    assert.match(
      line("reader"),
      /service-account\s+gcp\s+active\s+reader@cli-project-7\.iam\.gserviceaccount\.com/,
    );
    const awsOnly = (await ok(["cred", "list", "-n", "gcp", "--provider", "aws"])).stdout;
    assert.doesNotMatch(awsOnly, /hmac|reader/);
  });

  test("a bad key file fails naming the field, echoes nothing, creates nothing", async () => {
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 1024 });
    const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    const leak = pem.split("\n")[3] ?? "";
    const cases: [string, string, RegExp][] = [
      ["not-json", `{"private_key": "${leak}`, /--key-file: not JSON/],
      ["wrong-type", JSON.stringify({ type: "authorized_user", private_key: pem }), /field "type"/],
      [
        "no-email",
        JSON.stringify({ type: "service_account", private_key: pem, private_key_id: "k1" }),
        /field "client_email"/,
      ],
      [
        "not-pem",
        JSON.stringify({
          type: "service_account",
          private_key: leak,
          private_key_id: "k1",
          client_email: "a@b.c",
        }),
        /field "private_key" is not a PEM private key/,
      ],
    ];
    for (const [name, text, message] of cases) {
      const file = path.join(tmp, `${name}.json`);
      await writeFile(file, text);
      const r = await cli(["cred", "create", name, "-n", "gcp", "--key-file", file]);
      assert.equal(r.code, 2, `${name}: ${r.stderr}`);
      assert.match(r.stderr, message, name);
      assert.ok(!r.stderr.includes(leak) && !r.stdout.includes(leak), `${name} echoed the key`);
      const gone = await cli(["cred", "get", name, "-n", "gcp"]);
      assert.equal(gone.code, 4, `${name} was created`);
    }
    const big = path.join(tmp, "big.json");
    await writeFile(big, " ".repeat(70 * 1024));
    const r = await cli(["cred", "create", "big", "-n", "gcp", "--key-file", big]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--key-file: larger than/);
    const both = await cli(
      ["cred", "create", "both", "-n", "gcp", "--key-file", big, "--secret-stdin"],
      "x",
    );
    assert.equal(both.code, 2);
    assert.match(both.stderr, /--key-file or --secret-\*, not both/);
  });

  test("config [[credentials]]: a service account from key_json_file / key_json_env", async () => {
    const keyFile = path.join(tmp, "declared.json");
    await writeFile(keyFile, first.json, { mode: 0o600 });
    const good = path.join(tmp, "good.toml");
    await writeFile(
      good,
      [
        "[[credentials]]",
        'name = "declared-sa"',
        'namespace = "gcp"',
        `key_json_file = ${JSON.stringify(keyFile)}`,
        'token_scopes = ["https://www.googleapis.com/auth/devstorage.read_only"]',
        "[[credentials]]",
        'name = "declared-env"',
        'key_json_env = "GCP_TEST_KEY"',
        "",
      ].join("\n"),
    );
    const ok = await runCredbroker(["config", "check", good], {
      env: { GCP_TEST_KEY: second.json },
    });
    outputs.push(ok.stdout, ok.stderr);
    assert.equal(ok.code, 0, ok.stderr);
    const missing = await runCredbroker(["config", "check", good], { env: {} });
    outputs.push(missing.stdout, missing.stderr);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /key_json_env: GCP_TEST_KEY is not set/);
  });
    outputs.push(bad.stdout, bad.stderr);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /private_key/);
    assert.ok(!bad.stderr.includes("AAAAAAAAAAAAAAAA"), "the key's text was echoed");
  });

  test("the private key and the HMAC secret appear in no output and in no file of the data dir", async () => {
    assert.ok(first.pemBody.length >= 60 && second.pemBody.length >= 60);
    for (const text of outputs) {
      for (const secret of [first.pemBody, second.pemBody, HMAC_SECRET]) {
        assert.ok(!text.includes(secret), "a secret was printed");
      }
    }
    for (const file of await filesUnder(daemon.dataDir)) {
      if ((await stat(file)).size > 64 * 1024 * 1024) continue;
      const bytes = await readFile(file);
      for (const secret of [
        first.pemBody,
        second.pemBody,
        HMAC_SECRET,
        "-----BEGIN PRIVATE KEY-----",
      ]) {
        assert.equal(
          bytes.indexOf(secret),
          -1,
          `${path.basename(file)} holds a secret in plaintext`,
        );
      }
    }
  });
});
