/**
 * Azure credentials on the command line and in the config file, over the real
 * daemon: `cred create/get/update/list` of a storage account key, a SAS token
 * and a service principal, and the declared [[credentials]] of a config file.
 * Secrets go in through stdin or the environment and never come back out.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { type CliResult, runCredbroker } from "../support/cli-run.js";
import { type RunningDaemon, removeDir, startDaemon, tempDir } from "../support/daemon.js";

/** A storage account key as Azure issues it: 64 random bytes, base64. */
const ACCOUNT_KEY = randomBytes(64).toString("base64");
const ROTATED_KEY = randomBytes(64).toString("base64");
const SAS =
  "sv=2022-11-02&sr=c&sp=rl&se=2099-01-01T00%3A00%3A00Z&sig=azcliSASsig0000000000000000000000000000000%3D";
const CLIENT_SECRET = "azcli~ClientSecret.0123456789abcdefGHIJ";
const ROTATED_SECRET = "azcli~RotatedSecret.9876543210zyxwvuTSRQ";
const TENANT = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const CLIENT = "11111111-2222-4333-8444-555555555555";
const STORAGE_SCOPE = "https://storage.azure.com/.default";
const SECRETS = [ACCOUNT_KEY, ROTATED_KEY, SAS, CLIENT_SECRET, ROTATED_SECRET];

interface CredentialJson {
  name: string;
  provider?: string;
  accessKey?: { accessKeyId?: string; secretAccessKey?: string };
  token?: { token?: string; placement?: string };
  servicePrincipal?: { tenantId?: string; clientId?: string; clientSecret?: string };
  tokenScopes?: string[];
  etag?: string;
}

function assertNoSecret(r: CliResult): void {
  for (const s of SECRETS) {
    assert.ok(!r.stdout.includes(s), "no secret on stdout");
    assert.ok(!r.stderr.includes(s), "no secret on stderr");
  }
}

describe("Azure credentials in the CLI", () => {
  let daemon: RunningDaemon;
  let dir: string;
  const cli = async (args: string[], stdin?: string): Promise<CliResult> => {
    const r = await runCredbroker(args, {
      env: {
        CREDBROKER_ADDR: daemon.url,
        CREDBROKER_TOKEN_FILE: path.join(daemon.dataDir, "admin.token"),
      },
      ...(stdin === undefined ? {} : { stdin }),
    });
    assertNoSecret(r);
    return r;
  };
  const get = async (name: string): Promise<CredentialJson> => {
    const r = await cli(["cred", "get", name, "-n", "team-az", "-o", "json"]);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { credential: CredentialJson }).credential;
  };

  before(async () => {
    dir = await tempDir("credbroker-azcli-");
    daemon = await startDaemon();
  });
  after(async () => {
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
    await removeDir(dir);
  });

  test("create --account-name with the key on stdin: an Azure access key, the key never shown", async () => {
    const r = await cli(
      [
        "cred",
        "create",
        "az-key",
        "-n",
        "team-az",
        "--account-name",
        "azclistore1",
        "--secret-stdin",
      ],
      `${ACCOUNT_KEY}\n`,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^access key id +azclistore1$/m);
    assert.match(r.stdout, /^provider +azure$/m, "--account-name implies --provider azure");
    const c = await get("az-key");
    assert.equal(c.provider, "PROVIDER_AZURE");
    assert.deepEqual(c.accessKey, { accessKeyId: "azclistore1" });

    // --access-key-id with --provider azure is the same thing.
    const same = await cli(
      [
        "cred",
        "create",
        "az-key2",
        "-n",
        "team-az",
        "--provider",
        "azure",
        "--access-key-id",
        "azclistore2",
        "--secret-stdin",
      ],
      ACCOUNT_KEY,
    );
    assert.equal(same.code, 0, same.stderr);
    assert.deepEqual((await get("az-key2")).accessKey, { accessKeyId: "azclistore2" });
  });

  test("create --kind token --token-placement query-string: a SAS; get and list show the placement, not the SAS", async () => {
    const r = await cli(
      [
        "cred",
        "create",
        "az-sas",
        "-n",
        "team-az",
        "--provider",
        "azure",
        "--kind",
        "token",
        "--token-placement",
        "query-string",
        "--allowed-host",
        "azclistore1.blob.core.windows.net",
        "--secret-stdin",
      ],
      SAS,
    );
    assert.equal(r.code, 0, r.stderr);
    const c = await get("az-sas");
    assert.equal(c.provider, "PROVIDER_AZURE");
    assert.deepEqual(c.token, { placement: "TOKEN_PLACEMENT_QUERY_STRING" });
    const table = await cli(["cred", "get", "az-sas", "-n", "team-az"]);
    assert.match(table.stdout, /^placement +query string \(\?…, e\.g\. an Azure SAS\)$/m);
    const list = await cli(["cred", "list", "-n", "team-az"]);
    assert.match(list.stdout, /az-sas +token +azure .*query string/);
  });

  test("create --kind service-principal: tenant, client, scopes shown; the client secret never", async () => {
    const r = await cli([
      "cred",
      "create",
      "az-sp",
      "-n",
      "team-az",
      "--kind",
      "service-principal",
      "--tenant-id",
      TENANT,
      "--client-id",
      CLIENT,
      "--token-scope",
      STORAGE_SCOPE,
      "--token-scope",
      "https://vault.azure.net/.default",
      "--secret-env",
      "AZCLI_CLIENT_SECRET",
    ]);
    // The secret comes from the environment: run it with the variable set.
    assert.equal(r.code, 2, "without the variable it is a usage error");
    assert.match(r.stderr, /--secret-env: no such environment variable/);
    const created = await runCredbroker(
      [
        "cred",
        "create",
        "az-sp",
        "-n",
        "team-az",
        "--kind",
        "service-principal",
        "--tenant-id",
        TENANT,
        "--client-id",
        CLIENT,
        "--token-scope",
        STORAGE_SCOPE,
        "--token-scope",
        "https://vault.azure.net/.default",
        "--secret-env",
        "AZCLI_CLIENT_SECRET",
      ],
      {
        env: {
          CREDBROKER_ADDR: daemon.url,
          CREDBROKER_TOKEN_FILE: path.join(daemon.dataDir, "admin.token"),
          AZCLI_CLIENT_SECRET: CLIENT_SECRET,
        },
      },
    );
    assertNoSecret(created);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /^kind +service-principal$/m);
    assert.match(created.stdout, new RegExp(`^tenant id +${TENANT}$`, "m"));
    assert.match(created.stdout, new RegExp(`^client id +${CLIENT}$`, "m"));
    assert.match(
      created.stdout,
      /^token scopes +https:\/\/storage\.azure\.com\/\.default https:\/\/vault\.azure\.net\/\.default$/m,
    );
    assert.match(created.stdout, /^provider +azure$/m, "a service principal implies azure");
    const c = await get("az-sp");
    assert.deepEqual(c.servicePrincipal, { tenantId: TENANT, clientId: CLIENT });
    assert.deepEqual(c.tokenScopes, [STORAGE_SCOPE, "https://vault.azure.net/.default"]);

    const list = await cli(["cred", "list", "-n", "team-az", "--provider", "azure"]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, new RegExp(`az-sp +service-principal +azure +active +${CLIENT}`));
    const names = [...list.stdout.matchAll(/^team-az +(az-\S+)/gm)].map((m) => m[1]);
    assert.deepEqual(names.sort(), ["az-key", "az-key2", "az-sas", "az-sp"]);
    const aws = await cli(["cred", "list", "-n", "team-az", "--provider", "aws"]);
    assert.doesNotMatch(aws.stdout, /az-/, "none of them is AWS");
  });

  test("update: a rotated client secret or key changes only the secret; ids and scopes change alone", async () => {
    const before = await get("az-sp");
    const rotated = await cli(
      ["cred", "update", "az-sp", "-n", "team-az", "--secret-stdin", "-o", "json"],
      ROTATED_SECRET,
    );
    assert.equal(rotated.code, 0, rotated.stderr);
    const after = await get("az-sp");
    assert.notEqual(after.etag, before.etag, "the credential changed");
    assert.deepEqual(after.servicePrincipal, before.servicePrincipal, "tenant and client kept");
    assert.deepEqual(after.tokenScopes, before.tokenScopes);

    const client = "99999999-8888-4777-8666-555555555555";
    const moved = await cli(["cred", "update", "az-sp", "-n", "team-az", "--client-id", client]);
    assert.equal(moved.code, 0, moved.stderr);
    assert.deepEqual((await get("az-sp")).servicePrincipal, { tenantId: TENANT, clientId: client });

    const scoped = await cli([
      "cred",
      "update",
      "az-sp",
      "-n",
      "team-az",
      "--token-scope",
      STORAGE_SCOPE,
    ]);
    assert.equal(scoped.code, 0, scoped.stderr);
    assert.deepEqual((await get("az-sp")).tokenScopes, [STORAGE_SCOPE]);
    const cleared = await cli([
      "cred",
      "update",
      "az-sp",
      "-n",
      "team-az",
      "--clear",
      "token-scopes",
    ]);
    assert.equal(cleared.code, 0, cleared.stderr);
    assert.equal((await get("az-sp")).tokenScopes, undefined);

    const key = await cli(
      ["cred", "update", "az-key", "-n", "team-az", "--secret-stdin"],
      ROTATED_KEY,
    );
    assert.equal(key.code, 0, key.stderr);
    assert.deepEqual((await get("az-key")).accessKey, { accessKeyId: "azclistore1" });
    const renamed = await cli([
      "cred",
      "update",
      "az-key",
      "-n",
      "team-az",
      "--account-name",
      "azclistore9",
    ]);
    assert.equal(renamed.code, 0, renamed.stderr);
    assert.deepEqual((await get("az-key")).accessKey, { accessKeyId: "azclistore9" });
  });

  test("bad input names the field and echoes no value; nothing is stored", async () => {
    const marker = "azcliMARKERvalue";
    const wrongProvider = await cli(
      [
        "cred",
        "create",
        "az-bad1",
        "-n",
        "team-az",
        "--provider",
        "aws",
        "--kind",
        "service-principal",
        "--tenant-id",
        TENANT,
        "--client-id",
        CLIENT,
        "--secret-stdin",
      ],
      CLIENT_SECRET,
    );
    assert.equal(wrongProvider.code, 5, wrongProvider.stderr);
    assert.match(wrongProvider.stderr, /kind: PROVIDER_AWS takes access_key, role, token/);

    const badScope = await cli(
      [
        "cred",
        "create",
        "az-bad2",
        "-n",
        "team-az",
        "--account-name",
        "azclistore3",
        "--token-scope",
        `${marker} with spaces`,
        "--secret-stdin",
      ],
      ACCOUNT_KEY,
    );
    assert.equal(badScope.code, 5, badScope.stderr);
    assert.match(badScope.stderr, /token_scopes: /);
    assert.ok(!badScope.stderr.includes(marker));

    const both = await cli(
      [
        "cred",
        "create",
        "az-bad3",
        "-n",
        "team-az",
        "--provider",
        "azure",
        "--access-key-id",
        "azclistore4",
        "--account-name",
        "azclistore5",
        "--secret-stdin",
      ],
      ACCOUNT_KEY,
    );
    assert.equal(both.code, 2);
    assert.match(both.stderr, /--access-key-id or --account-name, not both/);

    const kind = await cli(["cred", "create", "az-bad4", "--kind", marker, "--secret-stdin"], "x");
    assert.equal(kind.code, 2);
    assert.match(kind.stderr, /--kind: one of access-key, role, token, service-principal/);
    assert.ok(!kind.stderr.includes(marker));

    const provider = await cli(
      ["cred", "create", "az-bad5", "--provider", marker, "--account-name", "x", "--secret-stdin"],
      ACCOUNT_KEY,
    );
    assert.equal(provider.code, 2);
    assert.match(provider.stderr, /--provider: aws, azure, gcp or generic/);
    assert.ok(!provider.stderr.includes(marker));

    const noSecret = await cli([
      "cred",
      "create",
      "az-bad6",
      "--kind",
      "service-principal",
      "--tenant-id",
      TENANT,
      "--client-id",
      CLIENT,
    ]);
    assert.equal(noSecret.code, 2);
    assert.match(noSecret.stderr, /the secret is required/);

    const mixed = await cli(
      ["cred", "create", "az-bad7", "--tenant-id", TENANT, "--account-name", "x", "--secret-stdin"],
      CLIENT_SECRET,
    );
    assert.equal(mixed.code, 2);
    assert.match(mixed.stderr, /more than one kind/);

    const list = await cli(["cred", "list", "-n", "team-az", "-o", "json"]);
    const names = (JSON.parse(list.stdout) as { credentials: CredentialJson[] }).credentials.map(
      (c) => c.name,
    );
    assert.ok(!names.some((n) => n.startsWith("az-bad")), "nothing was stored");
  });

  test("the daemon's Azure rules through the CLI: each field named, no value echoed", async () => {
    const create = (name: string, flags: string[], secret: string) =>
      cli(["cred", "create", name, "-n", "team-az", "--secret-stdin", ...flags], secret);
    const upper = await create("az-rule1", ["--account-name", "AzCliMarkerUpper"], ACCOUNT_KEY);
    assert.equal(upper.code, 5, upper.stderr);
    assert.match(upper.stderr, /access_key\.access_key_id: an Azure storage account name/);
    assert.ok(!upper.stderr.includes("AzCliMarkerUpper"));

    const shortKey = "azcliShortKeyMarker0000=";
    const short = await create("az-rule2", ["--account-name", "azclistore6"], shortKey);
    assert.equal(short.code, 5, short.stderr);
    assert.match(
      short.stderr,
      /access_key\.secret_access_key: an Azure account key, base64 of 64 bytes/,
    );
    assert.ok(!short.stderr.includes(shortKey));

    const unsigned = "sv=2022-11-02&sr=c&sp=rl&se=2099-01-01T00%3A00%3A00Z&azcli=marker";
    const sas = await create(
      "az-rule3",
      ["--provider", "azure", "--kind", "token", "--token-placement", "query-string"],
      unsigned,
    );
    assert.equal(sas.code, 5, sas.stderr);
    assert.match(sas.stderr, /token\.token: with TOKEN_PLACEMENT_QUERY_STRING, a SAS query string/);
    assert.ok(!sas.stderr.includes("azcli=marker"));

    const client = await create(
      "az-rule4",
      ["--tenant-id", TENANT, "--client-id", "azcliClientMarker"],
      CLIENT_SECRET,
    );
    assert.equal(client.code, 5, client.stderr);
    assert.match(client.stderr, /service_principal\.client_id: a GUID/);
    assert.ok(!client.stderr.includes("azcliClientMarker"));

    const list = await cli(["cred", "list", "-n", "team-az", "-o", "json"]);
    const names = (JSON.parse(list.stdout) as { credentials: CredentialJson[] }).credentials.map(
      (c) => c.name,
    );
    assert.ok(!names.some((n) => n.startsWith("az-rule")), "nothing was stored");
  });

  describe("config file", () => {
    const check = async (toml: string): Promise<CliResult> => {
      const file = path.join(dir, `c${Math.random().toString(36).slice(2)}.toml`);
      await writeFile(file, toml);
      const r = await runCredbroker(["config", "check", file], {
        env: { AZCLI_DECLARED_SECRET: CLIENT_SECRET },
      });
      assertNoSecret(r);
      return r;
    };

    test("a declared service principal (client_secret_env, token_scopes) and an Azure key are served as declared", async () => {
      const keyFile = path.join(dir, "account.key");
      await writeFile(keyFile, `${ACCOUNT_KEY}\n`);
      const toml = `[[credentials]]
name = "declared-sp"
namespace = "team-az"
tenant_id = "${TENANT}"
client_id = "${CLIENT}"
client_secret_env = "AZCLI_DECLARED_SECRET"
token_scopes = ["${STORAGE_SCOPE}"]

[[credentials]]
name = "declared-key"
namespace = "team-az"
provider = "azure"
access_key_id = "azclistore7"
secret_access_key_file = "${keyFile}"
`;
      const ok = await check(toml);
      assert.equal(ok.code, 0, ok.stderr);
      const file = path.join(dir, "served.toml");
      await writeFile(file, toml);
      const served = await startDaemon({
        args: ["--config", file],
        env: { AZCLI_DECLARED_SECRET: CLIENT_SECRET },
      });
      try {
        const r = await runCredbroker(
          ["cred", "list", "-n", "team-az", "-o", "json", "--addr", served.url],
          { env: { CREDBROKER_TOKEN: served.token } },
        );
        assertNoSecret(r);
        assert.equal(r.code, 0, r.stderr);
        const byName = new Map(
          (JSON.parse(r.stdout) as { credentials: CredentialJson[] }).credentials.map((c) => [
            c.name,
            c,
          ]),
        );
        const sp = byName.get("declared-sp");
        assert.equal(sp?.provider, "PROVIDER_AZURE", "a service principal is Azure's");
        assert.deepEqual(sp?.servicePrincipal, { tenantId: TENANT, clientId: CLIENT });
        assert.deepEqual(sp?.tokenScopes, [STORAGE_SCOPE]);
        const key = byName.get("declared-key");
        assert.equal(key?.provider, "PROVIDER_AZURE");
        assert.deepEqual(key?.accessKey, { accessKeyId: "azclistore7" });
        assert.ok(!served.output().includes(CLIENT_SECRET), "the log holds no secret");
        assert.ok(!served.output().includes(ACCOUNT_KEY), "the log holds no secret");
      } finally {
        await served.stop();
        await removeDir(served.dataDir);
      }
    });

    test("a missing client secret, a service principal's field elsewhere, a bad provider: each named, no value echoed", async () => {
      const missing = await check(
        `[[credentials]]\nname = "sp"\ntenant_id = "${TENANT}"\nclient_id = "${CLIENT}"\n`,
      );
      assert.equal(missing.code, 2);
      assert.match(missing.stderr, /credentials\[0\]\.client_secret: required with tenant_id/);

      const elsewhere = await check(
        `[[credentials]]\nname = "k"\nprovider = "azure"\naccess_key_id = "azclistore8"\nsecret_access_key = "${ACCOUNT_KEY}"\nclient_id = "${CLIENT}"\n`,
      );
      assert.equal(elsewhere.code, 2);
      assert.match(elsewhere.stderr, /credentials\[0\]\.client_id: only with tenant_id/);

      const provider = await check(
        `[[credentials]]\nname = "k"\nprovider = "azcliMARKERvalue"\naccess_key_id = "azclistore8"\nsecret_access_key = "${ACCOUNT_KEY}"\n`,
      );
      assert.equal(provider.code, 2);
      assert.match(provider.stderr, /credentials\[0\]\.provider: one of aws, azure, gcp, generic/);
      assert.ok(!provider.stderr.includes("azcliMARKERvalue"));

      const two = await check(
        `[[credentials]]\nname = "k"\ntenant_id = "${TENANT}"\naccess_key_id = "azclistore8"\nclient_secret = "${CLIENT_SECRET}"\n`,
      );
      assert.equal(two.code, 2);
      assert.match(two.stderr, /exactly one of access_key_id, role_arn, token .*tenant_id/);
    });
  });
});
