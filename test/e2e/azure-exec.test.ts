/**
 * `credbroker exec` with an Azure service principal: the real daemon (spawned)
 * serves the App Service managed-identity protocol for the binding on its
 * container listener, and the child's `@azure/identity`
 * ManagedIdentityCredential (HOME an empty dir) finds it through
 * IDENTITY_ENDPOINT and IDENTITY_HEADER. The token it gets is one the Entra
 * stand-in (test/support/entra-server.ts, a real HTTPS server with its own
 * CA: Entra ID cannot run locally) issued after checking the client secret.
 * The secret never reaches the child, the CLI, the daemon's log or the data dir.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { Provider } from "../../gen/credbroker/v1/credential_pb.js";
import { BindingProtocol, SigningService } from "../../gen/credbroker/v1/signing_service_pb.js";
import { credentialClient, transport } from "../support/clients.js";
import { CLI, type RunningDaemon, removeDir, startDaemon, tempDir } from "../support/daemon.js";
import { type EntraServer, startEntraServer, type TestPrincipal } from "../support/entra-server.js";
import { filesUnder } from "../support/files.js";
import { httpGet } from "../support/http-get.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const STORAGE = "https://storage.azure.com/.default";

const withQuery = (endpoint: string, resource: string) =>
  `${endpoint}?api-version=2019-08-01&resource=${encodeURIComponent(resource)}`;

describe("credbroker exec with an Azure service principal: App Service managed identity", () => {
  let pki: string;
  let entra: EntraServer;
  let sp: TestPrincipal;
  let daemon: RunningDaemon;
  let signing: ReturnType<typeof createClient<typeof SigningService>>;

  before(async () => {
    pki = await tempDir("credbroker-entra-");
    entra = await startEntraServer({ pkiDir: pki });
    sp = entra.addPrincipal([STORAGE]);
    daemon = await startDaemon({
      env: { NODE_EXTRA_CA_CERTS: entra.caFile },
      args: ["--container-listen", "127.0.0.1:0", "--azure-authority-host", entra.authorityHost],
    });
    const creds = credentialClient(daemon.url, "connect-h2", daemon.token);
    for (const name of ["lent", "probe"]) {
      await creds.createCredential({
        credential: {
          namespace: "az",
          name,
          provider: Provider.AZURE,
          allowedInTasks: true,
          tokenScopes: [STORAGE],
          kind: {
            case: "servicePrincipal",
            value: { tenantId: sp.tenantId, clientId: sp.clientId, clientSecret: sp.clientSecret },
          },
        },
      });
    }
    signing = createClient(SigningService, transport(daemon.url, "connect-h2", daemon.token));
  });

  after(async () => {
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
    await entra?.stop();
    if (pki) await removeDir(pki);
  });

  test("the child's ManagedIdentityCredential gets a token the stand-in issued; the secret is nowhere; the binding ends with the child", async () => {
    const home = await tempDir("credbroker-azure-exec-home-");
    const script = `
      import { ManagedIdentityCredential } from "@azure/identity";
      const t = await new ManagedIdentityCredential().getToken(${JSON.stringify(STORAGE)});
      console.log(JSON.stringify({
        token: t.token,
        expires: t.expiresOnTimestamp,
        endpoint: process.env.IDENTITY_ENDPOINT,
        header: process.env.IDENTITY_HEADER,
        leaked: ["AZURE_CLIENT_SECRET", "AZURE_STORAGE_KEY", "CREDBROKER_TOKEN"].filter((k) => process.env[k]),
      }));`;
    let run: { code: number | null; stdout: string; stderr: string };
    try {
      run = await new Promise((resolve) => {
        const child = spawn(
          process.execPath,
          [
            CLI,
            "exec",
            "-c",
            "az/lent",
            "--",
            process.execPath,
            "--input-type=module",
            "-e",
            script,
          ],
          {
            cwd: ROOT,
            env: {
              PATH: process.env.PATH ?? "",
              HOME: home,
              CREDBROKER_ADDR: daemon.url,
              CREDBROKER_TOKEN: daemon.token,
              AZURE_CLIENT_SECRET: "should-be-scrubbed",
              AZURE_STORAGE_KEY: "should-be-scrubbed",
            },
            stdio: ["ignore", "pipe", "pipe"],
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
        child.once("exit", (code) => resolve({ code, stdout, stderr }));
      });
    } finally {
      await removeDir(home);
    }
    assert.equal(run.code, 0, run.stderr);
    const out = JSON.parse(run.stdout.trim().split("\n").at(-1) ?? "{}") as {
      token: string;
      expires: number;
      endpoint: string;
      header: string;
      leaked: string[];
    };
    assert.deepEqual(out.leaked, []);
    assert.match(out.endpoint, /^http:\/\/127\.0\.0\.1:\d+\/v1\/azure-identity\/[0-9a-f]{24}$/);
    const grant = entra.grants.find((g) => g.token === out.token);
    assert.ok(grant, "the child's token is one the stand-in issued");
    assert.equal(grant.clientId, sp.clientId);
    assert.equal(grant.scope, STORAGE);
    assert.ok(Math.abs(out.expires - (Date.now() + entra.expiresIn * 1000)) < 60_000);

    // The binding ended with the child: its endpoint refuses the same header.
    const after = await httpGet(withQuery(out.endpoint, "https://storage.azure.com"), {
      "x-identity-header": out.header,
    });
    assert.equal(after.status, 401, after.body);
    assert.equal((await signing.listContainerBindings({})).bindings.length, 0);

    for (const secret of [sp.clientSecret, ...entra.grants.map((g) => g.token)]) {
      assert.ok(!daemon.output().includes(secret), "daemon output");
      for (const file of await filesUnder(daemon.dataDir)) {
        assert.ok(!(await readFile(file, "latin1")).includes(secret), file);
      }
    }
    assert.ok(!run.stdout.includes(sp.clientSecret) && !run.stderr.includes(sp.clientSecret));
    const auditLog = (await filesUnder(daemon.dataDir)).find((f) => f.endsWith("audit.log"));
    assert.ok(auditLog, "an audit log");
    const lines = (await readFile(auditLog, "utf8")).split("\n");
    const lent = lines.filter((l) => l.includes('"rpc":"container:GET /v1/azure-identity"'));
    assert.ok(
      lent.some((l) => l.includes('"decision":"allow"') && l.includes('"credential":"lent"')),
    );
  });

  test("the route: the identity header is required, the resource within token_scopes, App Service's error shape", async () => {
    const b = await signing.createContainerBinding({
      namespace: "az",
      credential: "probe",
      ttlSeconds: 600,
    });
    try {
      assert.equal(b.protocol, BindingProtocol.AZURE_APP_SERVICE);
      const storage = withQuery(b.fullUri, "https://storage.azure.com");
      const header = { "x-identity-header": b.authorizationToken };
      for (const headers of [
        {},
        { "x-identity-header": "wrong" },
        { authorization: b.authorizationToken },
      ]) {
        const r = await httpGet(storage, headers);
        assert.equal(r.status, 401, r.body);
        assert.equal(JSON.parse(r.body).statusCode, 401);
        assert.doesNotMatch(r.body, /access_token/);
      }
      const ok = await httpGet(storage, header);
      assert.equal(ok.status, 200, ok.body);
      const body = JSON.parse(ok.body) as Record<string, string>;
      assert.ok(entra.grants.some((g) => g.token === body.access_token));
      assert.match(body.expires_on ?? "", /^\d+$/);
      assert.equal(body.token_type, "Bearer");

      const before = entra.requests;
      const other = await httpGet(withQuery(b.fullUri, "https://canary.example.net"), header);
      assert.equal(other.status, 400, other.body);
      assert.match(JSON.parse(other.body).message, /token_scopes/);
      assert.doesNotMatch(other.body, /canary/);
      const noResource = await httpGet(`${b.fullUri}?api-version=2019-08-01`, header);
      assert.equal(noResource.status, 400);
      assert.equal(entra.requests, before, "no token request for a refused resource");

      // The ECS route does not serve an Azure binding, nor the Azure route an ECS path.
      const ecs = await httpGet(b.fullUri.replace("/v1/azure-identity/", "/v1/credentials/"), {
        authorization: b.authorizationToken,
      });
      assert.equal(ecs.status, 403);

      // Disabled: the live binding lends nothing.
      const creds = credentialClient(daemon.url, "connect-h2", daemon.token);
      await creds.updateCredential({
        namespace: "az",
        name: "probe",
        credential: { enabled: false },
        updateMask: { paths: ["enabled"] },
      });
      const disabled = await httpGet(storage, header);
      assert.ok(disabled.status === 400 || disabled.status === 403, disabled.body);
      assert.doesNotMatch(disabled.body, /access_token/);
    } finally {
      await signing.deleteContainerBinding({ bindingId: b.bindingId });
    }
  });
});
