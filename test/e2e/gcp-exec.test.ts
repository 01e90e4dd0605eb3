/**
 * `credbroker exec` with a Google service account: the real daemon (spawned)
 * opens a GCE metadata listener for the binding alone, the child's
 * google-auth-library (HOME an empty dir, no GOOGLE_APPLICATION_CREDENTIALS)
 * finds it through GCE_METADATA_HOST, and the token it gets is one the
 * stand-in Google token endpoint (test/support/google-token-server.ts)
 * issued. The key never reaches the child, the CLI, the daemon's log or the
 * data dir; the listener closes when the binding ends.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import type http from "node:http";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { BindingProtocol, SigningService } from "../../gen/credbroker/v1/signing_service_pb.js";
import { credentialClient, transport } from "../support/clients.js";
import { CLI, type RunningDaemon, removeDir, startDaemon, tempDir } from "../support/daemon.js";
import { filesUnder } from "../support/files.js";
import {
  type GoogleTokenServer,
  startGoogleTokenServer,
  type TestServiceAccount,
} from "../support/google-token-server.js";
import { httpGet } from "../support/http-get.js";

const get = (hostPort: string, p: string, headers: http.OutgoingHttpHeaders = {}) =>
  httpGet(new URL(p, `http://${hostPort}`), headers);

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const CLOUD = "https://www.googleapis.com/auth/cloud-platform";
const TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token";
const flavor = { "metadata-flavor": "Google" };

/** Connection refused, or a GCE-style 404: the binding is no longer served. */
async function assertGone(hostPort: string): Promise<void> {
  const r = await get(hostPort, TOKEN_PATH, flavor).then(
    (reply) => reply,
    (err: NodeJS.ErrnoException) => err,
  );
  if (r instanceof Error) assert.equal(r.code, "ECONNREFUSED");
  else assert.equal(r.status, 404, r.body);
}

describe("credbroker exec with a Google service account: a GCE metadata listener per binding", () => {
  let google: GoogleTokenServer;
  let daemon: RunningDaemon;
  let account: TestServiceAccount;
  let signing: ReturnType<typeof createClient<typeof SigningService>>;

  before(async () => {
    google = await startGoogleTokenServer();
    account = google.addServiceAccount("exec-reader");
    daemon = await startDaemon({
      args: ["--container-listen", "127.0.0.1:0", "--log-level", "trace"],
    });
    const creds = credentialClient(daemon.url, "connect-h2", daemon.token);
    for (const name of ["lent", "probe"]) {
      await creds.createCredential({
        credential: {
          namespace: "gcp",
          name,
          provider: 4,
          allowedInTasks: true,
          tokenScopes: [CLOUD],
          kind: { case: "serviceAccount", value: { keyJson: account.keyJson } },
        },
      });
    }
    signing = createClient(SigningService, transport(daemon.url, "connect-h2", daemon.token));
  });

  after(async () => {
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
    await google?.stop();
  });

  test("the child's GoogleAuth().getAccessToken() gets a token the stand-in issued; the key is nowhere; the listener closes with the child", async () => {
    const home = await tempDir("credbroker-gcp-exec-home-");
    const script = `
      import { GoogleAuth } from "google-auth-library";
      const token = await new GoogleAuth({ scopes: [${JSON.stringify(CLOUD)}] }).getAccessToken();
      console.log(JSON.stringify({
        token,
        host: process.env.GCE_METADATA_HOST,
        leaked: ["GOOGLE_APPLICATION_CREDENTIALS", "CREDBROKER_TOKEN", "CREDBROKER_TOKEN_FILE"].filter((k) => process.env[k]),
      }));`;
    const grantsBefore = google.grants.length;
    let run: { code: number | null; stdout: string; stderr: string };
    try {
      run = await new Promise((resolve) => {
        const child = spawn(
          process.execPath,
          [
            CLI,
            "exec",
            "-c",
            "gcp/lent",
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
              GOOGLE_APPLICATION_CREDENTIALS: "/nonexistent/should-be-scrubbed.json",
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
      host: string;
      leaked: string[];
    };
    assert.deepEqual(out.leaked, []);
    assert.match(out.host, /^127\.0\.0\.1:\d+$/);
    const grant = google.grants.slice(grantsBefore).find((g) => g.token === out.token);
    assert.ok(grant, "the child's token is one the stand-in issued");
    assert.equal(grant.iss, account.clientEmail);
    assert.deepEqual(grant.scopes, [CLOUD]);

    // The binding ended with the child: its port is closed.
    await assertGone(out.host);
    assert.equal((await signing.listContainerBindings({})).bindings.length, 0);

    // The private key: not in the child's or the CLI's output, the daemon's log, or the data dir.
    const needles = [account.privateKeyPem, account.privateKeyPem.split("\n")[1] ?? ""];
    for (const needle of needles) {
      assert.ok(needle.length > 20);
      assert.ok(!run.stdout.includes(needle), "child/CLI stdout");
      assert.ok(!run.stderr.includes(needle), "child/CLI stderr");
      assert.ok(!daemon.output().includes(needle), "daemon output");
      for (const file of await filesUnder(daemon.dataDir)) {
        assert.ok(!(await readFile(file, "latin1")).includes(needle), file);
      }
    }
    assert.match(daemon.output(), /gce metadata binding listening/);
  });

  test("the binding's listener: 403 without Metadata-Flavor: Google, tokens with it, 501 for identity; refused once deleted", async () => {
    const b = await signing.createContainerBinding({
      namespace: "gcp",
      credential: "probe",
      ttlSeconds: 600,
    });
    assert.equal(b.protocol, BindingProtocol.GCE_METADATA);
    assert.equal(b.authorizationToken, "");
    const host = b.fullUri;
    assert.match(host, /^127\.0\.0\.1:\d+$/);

    const bare = await get(host, TOKEN_PATH);
    assert.equal(bare.status, 403);
    assert.equal(bare.headers["metadata-flavor"], "Google");
    assert.doesNotMatch(bare.body, /access_token/);

    const ok = await get(host, TOKEN_PATH, flavor);
    assert.equal(ok.status, 200, ok.body);
    assert.equal(ok.headers["metadata-flavor"], "Google");
    const token = (JSON.parse(ok.body) as { access_token: string }).access_token;
    assert.ok(google.grants.some((g) => g.token === token));

    const email = await get(
      host,
      "/computeMetadata/v1/instance/service-accounts/default/email",
      flavor,
    );
    assert.equal(email.body, account.clientEmail);
    const identity = await get(
      host,
      "/computeMetadata/v1/instance/service-accounts/default/identity?audience=x",
      flavor,
    );
    assert.equal(identity.status, 501);

    const listed = await signing.listContainerBindings({});
    assert.equal(listed.bindings.find((x) => x.bindingId === b.bindingId)?.fullUri, host);

    await signing.deleteContainerBinding({ bindingId: b.bindingId });
    await assertGone(host);
  });

  test("a disabled credential gets no token from a live binding", async () => {
    const creds = credentialClient(daemon.url, "connect-h2", daemon.token);
    const b = await signing.createContainerBinding({
      namespace: "gcp",
      credential: "probe",
      ttlSeconds: 600,
    });
    try {
      assert.equal((await get(b.fullUri, TOKEN_PATH, flavor)).status, 200);
      await creds.updateCredential({
        namespace: "gcp",
        name: "probe",
        credential: { enabled: false },
        updateMask: { paths: ["enabled"] },
      });
      const refused = await get(b.fullUri, TOKEN_PATH, flavor);
      assert.ok(refused.status === 403 || refused.status === 404, refused.body);
      assert.equal(refused.headers["metadata-flavor"], "Google");
      assert.doesNotMatch(refused.body, /access_token/);
    } finally {
      await signing.deleteContainerBinding({ bindingId: b.bindingId });
    }
    await assertGone(b.fullUri);
  });
});
