/**
 * The GCE metadata listener for unmodified Google clients: the real daemon
 * (spawned), google-auth-library and gcp-metadata in child processes
 * (GCE_METADATA_HOST, HOME an empty dir), and a stand-in for Google's token
 * endpoint (test/support/google-token-server.ts) that verifies every RS256
 * assertion with the service account's public key before issuing a token.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import type http from "node:http";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { credentialClient } from "../support/clients.js";
import {
  listenerUrl,
  type RunningDaemon,
  removeDir,
  startDaemon,
  tempDir,
} from "../support/daemon.js";
import {
  type GoogleTokenServer,
  startGoogleTokenServer,
  type TestServiceAccount,
} from "../support/google-token-server.js";
import { httpGet } from "../support/http-get.js";

const get = (base: string, p: string, headers: http.OutgoingHttpHeaders = {}) =>
  httpGet(new URL(p, base), headers);

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const CLOUD = "https://www.googleapis.com/auth/cloud-platform";
const READ_ONLY = "https://www.googleapis.com/auth/devstorage.read_only";
const TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token";

const flavor = { "metadata-flavor": "Google" };

/** Runs an ES module snippet under Node with only what a Google app on GCE would have. */
async function runGoogleApp(
  source: string,
  gceHost: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const home = await tempDir("credbroker-gce-home-");
  try {
    return await new Promise((resolve) => {
      const child = spawn(process.execPath, ["--input-type=module", "-e", source], {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? "", HOME: home, GCE_METADATA_HOST: gceHost },
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

describe("GCE metadata listener: service account tokens for Google clients", () => {
  let google: GoogleTokenServer;
  let daemon: RunningDaemon;
  let gce: string;
  let gceHost: string;
  let account: TestServiceAccount;

  before(async () => {
    google = await startGoogleTokenServer();
    account = google.addServiceAccount("reader");
    daemon = await startDaemon({
      args: [
        "--gce-metadata-listen",
        "127.0.0.1:0",
        "--gce-metadata-credential",
        "gcp/instance",
        "--log-level",
        "trace",
      ],
    });
    gce = listenerUrl(daemon, "gce metadata listening");
    gceHost = new URL(gce).host;
    const creds = credentialClient(daemon.url, "connect-h2", daemon.token);
    await creds.createCredential({
      credential: {
        namespace: "gcp",
        name: "instance",
        provider: 4,
        allowedInTasks: true,
        tokenScopes: [CLOUD, READ_ONLY],
        kind: { case: "serviceAccount", value: { keyJson: account.keyJson } },
      },
    });
  });

  after(async () => {
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
    await google?.stop();
  });

  test("google-auth-library's GoogleAuth().getAccessToken() gets a token the stand-in issued", async () => {
    const before = google.grants.length;
    const app = await runGoogleApp(
      `import { GoogleAuth } from "google-auth-library";
       const auth = new GoogleAuth();
       const token = await auth.getAccessToken();
       const email = (await auth.getCredentials()).client_email;
       console.log(JSON.stringify({ token, email, project: await auth.getProjectId() }));`,
      gceHost,
    );
    assert.equal(app.code, 0, app.stderr);
    const out = JSON.parse(app.stdout) as { token: string; email: string; project: string };
    const issued = google.grants.slice(before).map((g) => g.token);
    assert.ok(issued.includes(out.token) || google.grants.some((g) => g.token === out.token));
    assert.equal(out.email, account.clientEmail);
    assert.equal(out.project, account.projectId);
    const grant = google.grants.find((g) => g.token === out.token);
    assert.equal(grant?.iss, account.clientEmail);
    assert.deepEqual(grant?.scopes, [CLOUD, READ_ONLY].sort(), "no scopes asked: all token_scopes");
  });

  test("gcp-metadata's detection probes find the listener", async () => {
    const app = await runGoogleApp(
      `import * as gcp from "gcp-metadata";
       const available = await gcp.isAvailable();
       const email = await gcp.instance("service-accounts/default/email");
       const project = await gcp.project("project-id");
       console.log(JSON.stringify({ available, email, project }));`,
      gceHost,
    );
    assert.equal(app.code, 0, app.stderr);
    assert.deepEqual(JSON.parse(app.stdout), {
      available: true,
      email: account.clientEmail,
      project: account.projectId,
    });
  });

  test("a token for scopes asked for; one grant serves many deliveries (cached)", async () => {
    const first = await get(gce, `${TOKEN_PATH}?scopes=${encodeURIComponent(READ_ONLY)}`, flavor);
    assert.equal(first.status, 200, first.body);
    assert.equal(first.headers["metadata-flavor"], "Google");
    const grantsAfterFirst = google.grants.length;
    const body = JSON.parse(first.body) as {
      access_token: string;
      expires_in: number;
      token_type: string;
    };
    assert.equal(body.token_type, "Bearer");
    assert.ok(body.expires_in > 3000 && body.expires_in <= 3600);
    assert.deepEqual(google.grants.at(-1)?.scopes, [READ_ONLY]);
    assert.equal(google.grants.at(-1)?.token, body.access_token);
    const again = await Promise.all(
      Array.from({ length: 10 }, () =>
        get(gce, `${TOKEN_PATH}?scopes=${encodeURIComponent(READ_ONLY)}`, flavor),
      ),
    );
    for (const r of again) assert.equal(JSON.parse(r.body).access_token, body.access_token);
    assert.equal(google.grants.length, grantsAfterFirst, "no new grant while the token is fresh");
  });

  test("concurrent first requests for a new scope set make one grant (single flight)", async () => {
    const beforeCount = google.grants.length;
    const scopes = encodeURIComponent(`${CLOUD},${READ_ONLY}`);
    const replies = await Promise.all(
      Array.from({ length: 8 }, () => get(gce, `${TOKEN_PATH}?scopes=${scopes}`, flavor)),
    );
    for (const r of replies) assert.equal(r.status, 200, r.body);
    // Sorted, the same set as "no scopes asked": that one is cached already, or one grant.
    assert.ok(google.grants.length - beforeCount <= 1);
    assert.equal(new Set(replies.map((r) => JSON.parse(r.body).access_token)).size, 1);
  });

  test("a scope outside token_scopes is refused, and no grant is made", async () => {
    const beforeCount = google.grants.length;
    const r = await get(
      gce,
      `${TOKEN_PATH}?scopes=${encodeURIComponent("https://www.googleapis.com/auth/iam")}`,
      flavor,
    );
    assert.equal(r.status, 403);
    assert.match(r.body, /token_scopes/);
    assert.equal(r.headers["metadata-flavor"], "Google");
    assert.equal(google.grants.length, beforeCount);
  });

  test("without Metadata-Flavor: Google: 403, and the answer still carries the header", async () => {
    for (const headers of [{}, { "metadata-flavor": "google-ish" }]) {
      const r = await get(gce, TOKEN_PATH, headers);
      assert.equal(r.status, 403);
      assert.match(r.body, /Metadata-Flavor/);
      assert.equal(r.headers["metadata-flavor"], "Google");
      assert.doesNotMatch(r.body, /ya29/);
    }
  });

  test("X-Forwarded-For, a foreign Host and browser requests are refused", async () => {
    const cases: http.OutgoingHttpHeaders[] = [
      { ...flavor, "x-forwarded-for": "203.0.113.9" },
      { ...flavor, host: "evil.example:80" },
      { ...flavor, origin: "https://evil.example" },
    ];
    for (const headers of cases) {
      const r = await get(gce, TOKEN_PATH, headers);
      assert.equal(r.status, 403, JSON.stringify(headers));
      assert.doesNotMatch(r.body, /ya29/);
    }
    const named = await get(gce, "/computeMetadata/v1/project/project-id", {
      ...flavor,
      host: "metadata.google.internal",
    });
    assert.equal(named.status, 200);
    assert.equal(named.body, account.projectId);
  });

  test("probes, listings, scopes and the unimplemented identity endpoint", async () => {
    const root = await get(gce, "/", flavor);
    assert.equal(root.status, 200);
    assert.equal(root.headers["metadata-flavor"], "Google");
    const instance = await get(gce, "/computeMetadata/v1/instance", flavor);
    assert.equal(instance.status, 200);
    assert.match(instance.body, /service-accounts\//);
    const scopes = await get(
      gce,
      "/computeMetadata/v1/instance/service-accounts/default/scopes",
      flavor,
    );
    assert.deepEqual(scopes.body.trim().split("\n"), [CLOUD, READ_ONLY].sort());
    const identity = await get(
      gce,
      "/computeMetadata/v1/instance/service-accounts/default/identity?audience=https://example.com",
      flavor,
    );
    assert.equal(identity.status, 501);
    assert.match(identity.body, /not implemented/);
    assert.equal((await get(gce, "/computeMetadata/v1/nope", flavor)).status, 404);
  });

  test("a credential not allowed_in_tasks or disabled gives no token; a write drops the cache", async () => {
    const creds = credentialClient(daemon.url, "connect-h2", daemon.token);
    await creds.updateCredential({
      namespace: "gcp",
      name: "instance",
      credential: { allowedInTasks: false },
      updateMask: { paths: ["allowed_in_tasks"] },
    });
    const beforeCount = google.grants.length;
    const denied = await get(gce, TOKEN_PATH, flavor);
    assert.equal(denied.status, 403);
    assert.match(denied.body, /allowed_in_tasks/);
    await creds.updateCredential({
      namespace: "gcp",
      name: "instance",
      credential: { allowedInTasks: true, enabled: false },
      updateMask: { paths: ["allowed_in_tasks", "enabled"] },
    });
    const disabled = await get(gce, TOKEN_PATH, flavor);
    assert.equal(disabled.status, 403);
    assert.match(disabled.body, /disabled/);
    assert.equal(google.grants.length, beforeCount);
    await creds.updateCredential({
      namespace: "gcp",
      name: "instance",
      credential: { enabled: true },
      updateMask: { paths: ["enabled"] },
    });
    const back = await get(gce, TOKEN_PATH, flavor);
    assert.equal(back.status, 200, back.body);
    assert.equal(google.grants.length, beforeCount + 1, "a write forgets the cached tokens");
  });

  test("audit lines record each delivery as lent, never the token; no token or key in logs or data dir", async () => {
    await new Promise((r) => setTimeout(r, 300));
    const audit = await readFile(path.join(daemon.dataDir, "audit.log"), "utf8");
    const lines = audit
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => String(l.rpc).startsWith("gce-metadata:"));
    assert.ok(lines.some((l) => l.decision === "allow" && l.credential === "instance"));
    assert.ok(lines.some((l) => l.decision === "deny"));
    const secrets = [
      ...google.grants.map((g) => g.token),
      account.privateKeyPem.split("\n")[5] ?? "",
      account.keyJson,
    ];
    const files = await readdir(daemon.dataDir, { recursive: true, withFileTypes: true });
    for (const secret of secrets) {
      assert.ok(secret.length > 20);
      assert.ok(!daemon.output().includes(secret), "the daemon log holds no token or key");
      for (const f of files) {
        if (!f.isFile()) continue;
        const text = await readFile(path.join(f.parentPath, f.name));
        assert.ok(!text.includes(secret), `${f.name} holds no token or key`);
      }
    }
  });
});
