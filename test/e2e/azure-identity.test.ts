/**
 * The Azure managed-identity (IMDS) listener for unmodified Azure SDKs: the
 * real daemon (spawned) with --azure-identity-listen, `@azure/identity`'s
 * ManagedIdentityCredential in a child process
 * (AZURE_POD_IDENTITY_AUTHORITY_HOST, HOME an empty dir), and a stand-in for
 * Entra ID's token endpoint (test/support/entra-server.ts: Entra cannot run
 * locally) over HTTPS with its own CA, which checks the client secret before
 * issuing a token.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import type http from "node:http";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Provider } from "../../gen/credbroker/v1/credential_pb.js";
import { credentialClient } from "../support/clients.js";
import {
  listenerUrl,
  type RunningDaemon,
  removeDir,
  startDaemon,
  tempDir,
} from "../support/daemon.js";
import { type EntraServer, startEntraServer, type TestPrincipal } from "../support/entra-server.js";
import { filesUnder } from "../support/files.js";
import { httpGet } from "../support/http-get.js";

const get = (base: string, p: string, headers: http.OutgoingHttpHeaders = {}) =>
  httpGet(new URL(p, base), headers);

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const STORAGE = "https://storage.azure.com/.default";
const VAULT = "https://vault.azure.net/.default";
const TOKEN_PATH = "/metadata/identity/oauth2/token";

const metadata = { metadata: "true" };
const query = (resource: string) =>
  `${TOKEN_PATH}?api-version=2018-02-01&resource=${encodeURIComponent(resource)}`;

/** Runs an ES module snippet under Node with only what an Azure app on a VM would have. */
async function runAzureApp(
  source: string,
  authorityHost: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const home = await tempDir("credbroker-azure-home-");
  try {
    return await new Promise((resolve) => {
      const child = spawn(process.execPath, ["--input-type=module", "-e", source], {
        cwd: ROOT,
        env: {
          PATH: process.env.PATH ?? "",
          HOME: home,
          AZURE_POD_IDENTITY_AUTHORITY_HOST: authorityHost,
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => {
        stdout += d;
      });
      child.stderr.on("data", (d: Buffer) => {
        stderr += d;
      });
      child.once("exit", (code) => resolve({ code, stdout, stderr }));
    });
  } finally {
    await removeDir(home);
  }
}

describe("Azure managed-identity listener: a service principal's tokens for Azure SDKs", () => {
  let pki: string;
  let entra: EntraServer;
  let sp: TestPrincipal;
  let daemon: RunningDaemon;
  let imds: string;
  const replies: string[] = [];
  let created = false;

  const createInstance = async (allowedInTasks: boolean, enabled = true) => {
    const creds = credentialClient(daemon.url, "connect-h2", daemon.token);
    const credential = {
      namespace: "az",
      name: "instance",
      provider: Provider.AZURE,
      allowedInTasks,
      enabled,
      tokenScopes: [STORAGE],
      kind: {
        case: "servicePrincipal" as const,
        value: { tenantId: sp.tenantId, clientId: sp.clientId, clientSecret: sp.clientSecret },
      },
    };
    if (!created) {
      await creds.createCredential({ credential });
      created = true;
      return;
    }
    await creds.updateCredential({
      namespace: "az",
      name: "instance",
      credential: { allowedInTasks, enabled },
      updateMask: { paths: ["allowed_in_tasks", "enabled"] },
    });
  };

  before(async () => {
    pki = await tempDir("credbroker-entra-");
    entra = await startEntraServer({ pkiDir: pki });
    sp = entra.addPrincipal([STORAGE, VAULT]);
    daemon = await startDaemon({
      env: { NODE_EXTRA_CA_CERTS: entra.caFile },
      args: [
        "--azure-authority-host",
        entra.authorityHost,
        "--azure-identity-listen",
        "127.0.0.1:0",
        "--azure-identity-credential",
        "az/instance",
      ],
    });
    imds = listenerUrl(daemon, "azure managed identity listening");
    await createInstance(true);
  });

  after(async () => {
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
    await entra?.stop();
    if (pki) await removeDir(pki);
  });

  test("@azure/identity's ManagedIdentityCredential gets a token the stand-in issued", async () => {
    const app = await runAzureApp(
      `import { ManagedIdentityCredential } from "@azure/identity";
       const t = await new ManagedIdentityCredential().getToken("${STORAGE}");
       console.log(JSON.stringify({ token: t.token, expires: t.expiresOnTimestamp }));`,
      imds,
    );
    assert.equal(app.code, 0, app.stderr);
    const out = JSON.parse(app.stdout.trim().split("\n").at(-1) ?? "") as {
      token: string;
      expires: number;
    };
    replies.push(app.stdout, app.stderr);
    const grant = entra.grants.find((g) => g.token === out.token);
    assert.ok(grant, "a token the stand-in issued");
    assert.deepEqual(
      { tenantId: grant.tenantId, clientId: grant.clientId, scope: grant.scope },
      { tenantId: sp.tenantId, clientId: sp.clientId, scope: STORAGE },
    );
    assert.ok(Math.abs(out.expires - (Date.now() + entra.expiresIn * 1000)) < 60_000);
  });

  test("the IMDS answer: expires_on and expires_in as strings, resource, Bearer; cached", async () => {
    const before = entra.requests;
    for (const p of [
      query("https://storage.azure.com/"),
      `${TOKEN_PATH}/?api-version=2018-02-01&resource=https://storage.azure.com`,
    ]) {
      const r = await get(imds, p, metadata);
      assert.equal(r.status, 200, r.body);
      replies.push(r.body);
      const body = JSON.parse(r.body) as Record<string, string>;
      assert.equal(body.token_type, "Bearer");
      assert.ok(entra.grants.some((g) => g.token === body.access_token));
      const expiresOn = Number(body.expires_on);
      assert.match(body.expires_on ?? "", /^\d+$/);
      assert.ok(Math.abs(expiresOn - (Date.now() / 1000 + entra.expiresIn)) < 60);
      assert.ok(Number(body.expires_in) > 3000 && Number(body.expires_in) <= entra.expiresIn);
      assert.match(body.resource ?? "", /^https:\/\/storage\.azure\.com\/?$/);
    }
    assert.equal(entra.requests, before, "the token from the first test is reused");
  });

  test("without Metadata: true: 400, and no token", async () => {
    const before = entra.requests;
    for (const headers of [{}, { metadata: "false" }]) {
      const r = await get(imds, query("https://storage.azure.com"), headers);
      assert.equal(r.status, 400, r.body);
      assert.equal(JSON.parse(r.body).error, "invalid_request");
      assert.ok(!r.body.includes("access_token"));
    }
    assert.equal(entra.requests, before);
  });

  test("resource and api-version are required; another path is 404", async () => {
    const missing = [
      `${TOKEN_PATH}?api-version=2018-02-01`,
      `${TOKEN_PATH}?resource=https://storage.azure.com`,
    ];
    for (const p of missing) {
      const r = await get(imds, p, metadata);
      assert.equal(r.status, 400, r.body);
      assert.equal(JSON.parse(r.body).error, "invalid_request");
    }
    const other = await get(imds, "/metadata/instance?api-version=2021-02-01", metadata);
    assert.equal(other.status, 404);
  });

  test("a resource outside token_scopes: 400 invalid_resource, no request to Entra", async () => {
    const before = entra.requests;
    const canary = "https://canary-resource.example.net";
    const r = await get(imds, query(canary), metadata);
    assert.equal(r.status, 400, r.body);
    const body = JSON.parse(r.body) as { error: string; error_description: string };
    assert.equal(body.error, "invalid_resource");
    assert.match(body.error_description, /token_scopes/);
    assert.ok(!r.body.includes("canary"), "the answer does not echo the resource");
    // The principal may have vault tokens at Entra, but the credential does not name them.
    const vault = await get(imds, query("https://vault.azure.net"), metadata);
    assert.equal(vault.status, 400);
    assert.equal(entra.requests, before);
  });

  test("X-Forwarded-For, a foreign Host and browser requests: 403", async () => {
    const refused: http.OutgoingHttpHeaders[] = [
      { ...metadata, "x-forwarded-for": "10.0.0.1" },
      { ...metadata, forwarded: "for=10.0.0.1" },
      { ...metadata, host: "attacker.example" },
      { ...metadata, origin: "https://attacker.example" },
    ];
    for (const headers of refused) {
      const r = await get(imds, query("https://storage.azure.com"), headers);
      assert.equal(r.status, 403, `${JSON.stringify(headers)}: ${r.body}`);
      assert.ok(!r.body.includes("access_token"));
    }
    const imdsName = await get(imds, query("https://storage.azure.com"), {
      ...metadata,
      host: "169.254.169.254",
    });
    assert.equal(imdsName.status, 200, "the IMDS address is an allowed Host");
  });

  test("not allowed_in_tasks, or disabled: 400 identity_not_found, no token", async () => {
    await createInstance(false);
    const notInTasks = await get(imds, query("https://storage.azure.com"), metadata);
    assert.equal(notInTasks.status, 400, notInTasks.body);
    assert.equal(JSON.parse(notInTasks.body).error, "identity_not_found");
    await createInstance(true, false);
    const disabled = await get(imds, query("https://storage.azure.com"), metadata);
    assert.equal(disabled.status, 400, disabled.body);
    assert.ok(!disabled.body.includes("access_token"));
    await createInstance(true, true);
    const back = await get(imds, query("https://storage.azure.com"), metadata);
    assert.equal(back.status, 200, back.body);
  });

  test("audit lines record deliveries, never the token; no secret or token in output or data dir", async () => {
    const files = await filesUnder(daemon.dataDir);
    const audit = files.find((f) => path.basename(f) === "audit.log");
    assert.ok(audit, "an audit log");
    const lines = (await readFile(audit, "utf8")).split("\n").filter((l) => l !== "");
    const mine = lines.filter((l) => l.includes("azure-identity:"));
    assert.ok(mine.some((l) => l.includes('"decision":"allow"')));
    assert.ok(mine.some((l) => l.includes('"decision":"deny"')));
    const out = daemon.output();
    for (const secret of [sp.clientSecret, ...entra.grants.map((g) => g.token)]) {
      assert.ok(!out.includes(secret), "not in the daemon's output");
      for (const f of files) {
        assert.ok(!(await readFile(f)).includes(secret), `not in ${path.basename(f)}`);
      }
    }
    for (const r of replies) assert.ok(!r.includes(sp.clientSecret), "not in an answer");
  });
});
