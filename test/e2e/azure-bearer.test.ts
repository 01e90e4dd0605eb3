/**
 * SignRequest header mode with an Azure service principal, end to end: the
 * daemon makes Entra ID's client-credentials grant at
 * `--azure-authority-host` and returns `Authorization: Bearer`. Entra ID
 * cannot run here (Azurite emulates storage only and issues no tokens), so a
 * real HTTPS stand-in does (test/support/entra-server.ts), with its own CA the
 * daemon trusts through NODE_EXTRA_CA_CERTS.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { Provider } from "../../gen/credbroker/v1/credential_pb.js";
import { SigningService } from "../../gen/credbroker/v1/signing_service_pb.js";
import { credentialClient, transport } from "../support/clients.js";
import { type RunningDaemon, removeDir, runCli, startDaemon, tempDir } from "../support/daemon.js";
import { type EntraServer, startEntraServer, type TestPrincipal } from "../support/entra-server.js";
import { filesUnder } from "../support/files.js";

const STORAGE = "https://storage.azure.com/.default";
const ACCOUNT = "cbtestaccount";
const HOST = `${ACCOUNT}.blob.core.windows.net`;
const URL_IN = `https://${HOST}/c1/data/x.csv`;

/** A response as text (bigints included), to look for the secret in. */
function text(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v));
}

describe("SignRequest: a service principal's Bearer token, from Entra ID", () => {
  let pki: string;
  let entra: EntraServer;
  let sp: TestPrincipal;
  let daemon: RunningDaemon;
  let signing: Client<typeof SigningService>;
  const responses: string[] = [];

  const create = async (name: string, p: TestPrincipal, secret = p.clientSecret) => {
    const creds = credentialClient(daemon.url, "connect-h2", daemon.token);
    const made = await creds.createCredential({
      credential: {
        namespace: "az",
        name,
        provider: Provider.AZURE,
        tokenScopes: p.scopes,
        allowedHosts: [HOST],
        kind: {
          case: "servicePrincipal",
          value: { tenantId: p.tenantId, clientId: p.clientId, clientSecret: secret },
        },
      },
    });
    responses.push(text(made));
  };

  const refusal = async (name: string) =>
    signing.signRequest({ namespace: "az", credential: name, method: "GET", url: URL_IN }).then(
      () => assert.fail("signed"),
      (e: unknown) => ConnectError.from(e),
    );

  before(async () => {
    pki = await tempDir("credbroker-entra-");
    entra = await startEntraServer({ pkiDir: pki });
    sp = entra.addPrincipal([STORAGE]);
    daemon = await startDaemon({
      env: { NODE_EXTRA_CA_CERTS: entra.caFile },
      args: ["--azure-authority-host", entra.authorityHost],
    });
    signing = createClient(SigningService, transport(daemon.url, "connect-h2", daemon.token));
    await create("sp", sp);
  });

  after(async () => {
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
    await entra?.stop();
    if (pki) await removeDir(pki);
  });

  test("the Bearer is a token the stand-in issued for the storage scope; a second signature reuses it", async () => {
    const first = await signing.signRequest({
      namespace: "az",
      credential: "sp",
      method: "GET",
      url: URL_IN,
    });
    responses.push(text(first));
    assert.equal(entra.requests, 1, entra.refusals.join(", "));
    const grant = entra.grants[0];
    assert.ok(grant);
    assert.deepEqual(
      { tenantId: grant.tenantId, clientId: grant.clientId, scope: grant.scope },
      { tenantId: sp.tenantId, clientId: sp.clientId, scope: STORAGE },
    );
    const auth = first.headers.find((h) => h.name === "authorization")?.value;
    assert.equal(auth, `Bearer ${grant.token}`);
    assert.equal(first.url, URL_IN);
    assert.equal(first.accessKeyId, sp.clientId);
    const expires = Number(first.expiresAt?.seconds) * 1000;
    assert.ok(Math.abs(expires - (Date.now() + entra.expiresIn * 1000)) < 30_000);
    const second = await signing.signRequest({
      namespace: "az",
      credential: "sp",
      method: "GET",
      url: URL_IN,
    });
    responses.push(text(second));
    assert.equal(entra.requests, 1, "cached: one token request");
    assert.equal(second.headers.find((h) => h.name === "authorization")?.value, auth);
  });

  test("a wrong client secret: failed_precondition naming the status and invalid_client, no secret", async () => {
    const wrong = `Q~wrong-${"x".repeat(30)}`;
    await create("wrong-secret", sp, wrong);
    const before = entra.requests;
    const err = await refusal("wrong-secret");
    assert.equal(entra.requests, before + 1);
    assert.equal(err.code, Code.FailedPrecondition);
    assert.match(err.rawMessage, /Entra ID token endpoint answered 401 \(invalid_client\)/);
    for (const s of [wrong, sp.clientSecret, sp.clientId, sp.tenantId, "AADSTS"]) {
      assert.ok(!err.rawMessage.includes(s), `the message quotes ${s}`);
    }
    responses.push(err.rawMessage);
  });

  test("a scope the stand-in does not grant: failed_precondition (invalid_scope)", async () => {
    const other = entra.addPrincipal(["https://vault.azure.net/.default"]);
    // token_scopes names storage, which this principal may not have.
    await create("no-storage", { ...other, scopes: [STORAGE] });
    const err = await refusal("no-storage");
    assert.equal(err.code, Code.FailedPrecondition);
    assert.match(err.rawMessage, /answered 400 \(invalid_scope\)/);
  });

  test("the client secret is in no response, not in the daemon's output, nowhere under the data dir", async () => {
    const out = daemon.output();
    const files = await filesUnder(daemon.dataDir);
    assert.ok(files.length > 0);
    for (const secret of [sp.clientSecret, ...entra.grants.map((g) => g.token)]) {
      assert.ok(secret.length > 20);
      assert.ok(!out.includes(secret), "not in the daemon's output");
      for (const f of files) {
        assert.ok(!(await readFile(f)).includes(secret), `not in ${path.basename(f)}`);
      }
    }
    for (const r of responses) assert.ok(!r.includes(sp.clientSecret), "not in a response");
  });
});

describe("serve --azure-authority-host: refused unless https, or http to loopback", {
  concurrency: true,
}, () => {
  for (const bad of [
    "http://login.example.com",
    "https://login.example.com/tenant",
    "https://user:pw@login.example.com",
    "https://login.example.com?x=1",
    "login.microsoftonline.com",
  ]) {
    test(`${bad}: exit 2 naming the flag, the value not quoted`, async () => {
      const run = await runCli(
        ["serve", "--data-dir", "/nonexistent/credbroker", "--azure-authority-host", bad],
        { CREDBROKER_STORE: "" },
      );
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, /--azure-authority-host: an https:\/\/host\[:port\] URL/);
      assert.ok(!run.stderr.includes(bad));
    });
  }
});
