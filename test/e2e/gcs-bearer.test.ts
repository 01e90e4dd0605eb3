/**
 * SignRequest header mode with a Google service account, end to end: the
 * daemon makes the JWT-bearer grant at the key file's token_uri and returns
 * `Authorization: Bearer`. Google's token endpoint cannot run here, so a
 * stand-in does (test/support/google-token-server.ts): it verifies each RS256
 * assertion with the account's public key before it issues a token.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { Provider } from "../../gen/credbroker/v1/credential_pb.js";
import { SigningService } from "../../gen/credbroker/v1/signing_service_pb.js";
import { credentialClient, transport } from "../support/clients.js";
import { type RunningDaemon, removeDir, startDaemon } from "../support/daemon.js";
import { filesUnder } from "../support/files.js";
import {
  type GoogleTokenServer,
  startGoogleTokenServer,
  type TestServiceAccount,
} from "../support/google-token-server.js";

const READ_ONLY = "https://www.googleapis.com/auth/devstorage.read_only";
const URL_IN = "https://storage.googleapis.com/cb-bucket/data/x.csv";

describe("SignRequest: a service account's Bearer token, from its token_uri", () => {
  let google: GoogleTokenServer;
  let account: TestServiceAccount;
  let daemon: RunningDaemon;
  let signing: Client<typeof SigningService>;

  before(async () => {
    google = await startGoogleTokenServer();
    account = google.addServiceAccount("signer");
    daemon = await startDaemon();
    signing = createClient(SigningService, transport(daemon.url, "connect-h2", daemon.token));
    const creds = credentialClient(daemon.url, "connect-h2", daemon.token);
    await creds.createCredential({
      credential: {
        namespace: "gcp",
        name: "sa",
        provider: Provider.GCP,
        tokenScopes: [READ_ONLY],
        kind: { case: "serviceAccount", value: { keyJson: account.keyJson } },
      },
    });
  });

  after(async () => {
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
    await google?.stop();
  });

  test("the Bearer is a token the endpoint issued for token_scopes; a second signature reuses it", async () => {
    const first = await signing.signRequest({
      namespace: "gcp",
      credential: "sa",
      method: "GET",
      url: URL_IN,
    });
    assert.equal(google.grants.length, 1);
    const grant = google.grants[0];
    assert.ok(grant);
    assert.equal(grant.iss, account.clientEmail);
    assert.deepEqual(grant.scopes, [READ_ONLY]);
    const auth = first.headers.find((h) => h.name === "authorization")?.value;
    assert.equal(auth, `Bearer ${grant.token}`);
    assert.equal(first.url, URL_IN);
    assert.equal(first.accessKeyId, account.clientEmail);
    const expires = Number(first.expiresAt?.seconds) * 1000;
    assert.ok(Math.abs(expires - (Date.now() + google.expiresIn * 1000)) < 30_000);
    const second = await signing.signRequest({
      namespace: "gcp",
      credential: "sa",
      method: "GET",
      url: URL_IN,
    });
    assert.equal(google.grants.length, 1, "cached: one grant");
    assert.equal(second.headers.find((h) => h.name === "authorization")?.value, auth);
  });

  test("the audit line says a Google session was lent, and no token or key is anywhere", async () => {
    const out = daemon.output();
    const audit = await readFile(path.join(daemon.dataDir, "audit.log"), "utf8");
    const signs = audit
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { rpc?: string; action?: string; decision?: string })
      .filter((l) => l.rpc?.endsWith("SignRequest") && l.decision === "allow");
    assert.ok(signs.length >= 2, "the signatures were audited");
    assert.ok(
      signs.every((l) => l.action === "storage:get_object+google-session"),
      JSON.stringify(signs.map((l) => l.action)),
    );
    const keyLine = account.privateKeyPem.split("\n")[5] ?? "";
    const files = await filesUnder(daemon.dataDir);
    for (const secret of [...google.grants.map((g) => g.token), keyLine]) {
      assert.ok(secret.length > 20);
      assert.ok(!out.includes(secret), "not in the daemon's output");
      for (const f of files) {
        assert.ok(!(await readFile(f)).includes(secret), `not in ${path.basename(f)}`);
      }
    }
  });

  test("the endpoint refusing the grant: failed_precondition naming its status, nothing signed", async () => {
    const creds = credentialClient(daemon.url, "connect-h2", daemon.token);
    // A key the stand-in does not trust: its assertion does not verify.
    const stranger = JSON.parse(account.keyJson) as Record<string, string>;
    stranger.client_email = "stranger@other-project.iam.gserviceaccount.com";
    await creds.createCredential({
      credential: {
        namespace: "gcp",
        name: "stranger",
        provider: Provider.GCP,
        kind: { case: "serviceAccount", value: { keyJson: JSON.stringify(stranger) } },
      },
    });
    const err = await signing
      .signRequest({ namespace: "gcp", credential: "stranger", method: "GET", url: URL_IN })
      .then(
        () => assert.fail("signed"),
        (e: unknown) => ConnectError.from(e),
      );
    assert.equal(err.code, Code.FailedPrecondition);
    assert.match(err.rawMessage, /Google token endpoint answered 4\d\d/);
  });
});
