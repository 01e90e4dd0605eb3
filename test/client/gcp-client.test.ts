/**
 * The TypeScript client for Google Cloud over the real daemon: brokerGcsSignedUrl
 * (V4 signed URLs, checked here by an independent verification: the canonical
 * request rebuilt from the URL, the RSA signature verified with the service
 * account's public key, the HMAC signature recomputed with node:crypto) and
 * brokerGoogleAuth under an unmodified @google-cloud/storage. Google has no
 * local servers: the token endpoint is the stand-in of
 * test/support/google-token-server.ts (it verifies each RS256 assertion), and
 * Cloud Storage is a small real HTTP server here that accepts only a token the
 * stand-in issued.
 */
import assert from "node:assert/strict";
import { createHash, createHmac, createPublicKey, verify } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { Storage, type StorageOptions } from "@google-cloud/storage";
import {
  type BrokerGoogleAuth,
  BrokerSigningError,
  brokerGcsSignedUrl,
  brokerGoogleAuth,
  createBrokerClient,
} from "../../src/client/index.js";
import { credentialClient } from "../support/clients.js";
import { type RunningDaemon, removeDir, startDaemon } from "../support/daemon.js";
import {
  type GoogleTokenServer,
  startGoogleTokenServer,
  type TestServiceAccount,
} from "../support/google-token-server.js";

const HMAC_ID = `GOOG1E${"CLIENTTEST".repeat(5)}ABCDE`;
const HMAC_SECRET = "bGlrZS1hLWdvb2dsZS1obWFjLXNlY3JldC0xMjM0";
/** Google's hosts, and the stand-in's. */
const HOSTS = ["storage.googleapis.com", "*.storage.googleapis.com", "127.0.0.1"];
const OBJECT_TEXT = "an object the stand-in serves";

/** RFC 3986 encoding, as V4 signing wants names and values. */
const enc = (s: string) =>
  encodeURIComponent(s).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );

/** The V4 canonical request and string to sign of a signed URL, rebuilt from the URL alone. */
function stringToSign(
  signed: URL,
  method: string,
  algorithm: string,
): { text: string; signature: string } {
  const q = new URLSearchParams(signed.search);
  const signature = q.get("X-Goog-Signature") ?? "";
  q.delete("X-Goog-Signature");
  const query = [...q]
    .map(([k, v]) => `${enc(k)}=${enc(v)}`)
    .sort()
    .join("&");
  const signedHeaders = q.get("X-Goog-SignedHeaders") ?? "";
  assert.equal(signedHeaders, "host");
  const canonical = [
    method,
    signed.pathname,
    query,
    `host:${signed.host}`,
    "",
    "host",
    "UNSIGNED-PAYLOAD",
  ].join("\n");
  const [, date, ...rest] = (q.get("X-Goog-Credential") ?? "").split("/");
  const scope = [date, ...rest].join("/");
  const text = [
    algorithm,
    q.get("X-Goog-Date"),
    scope,
    createHash("sha256").update(canonical).digest("hex"),
  ].join("\n");
  return { text, signature };
}

/**
 * @google-cloud/storage 7 types its authClient with the google-auth-library 9
 * it bundles; brokerGoogleAuth is a 10.x AuthClient, which it drives at run time.
 */
const storageAuth = (auth: BrokerGoogleAuth) => auth as unknown as StorageOptions["authClient"];

interface Seen {
  method: string;
  url: string;
  authorization: string;
}

/** A Cloud Storage stand-in: JSON API download and uploads. */
async function startStorageStandIn(google: GoogleTokenServer) {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const authorization = req.headers.authorization ?? "";
      seen.push({ method: req.method ?? "", url: req.url ?? "", authorization });
      const issued = google.grants.some((g) => authorization === `Bearer ${g.token}`);
      if (!issued) {
        res.writeHead(401, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { code: 401, message: "not a token Google issued" } }));
        return;
      }
      const url = new URL(req.url ?? "/", "http://x");
      const json = (status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}) => {
        res.writeHead(status, { "content-type": "application/json", ...headers });
        res.end(JSON.stringify(body));
      };
      if (req.method === "GET" && url.searchParams.get("alt") === "media") {
        res.writeHead(200, { "content-type": "text/plain" }).end(OBJECT_TEXT);
      } else if (req.method === "POST" || req.method === "PUT") {
        json(200, { bucket: "b", name: "uploaded", size: String(Buffer.concat(chunks).length) });
      } else {
        json(404, { error: { code: 404, message: "no route" } });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    seen,
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

describe("brokerGcsSignedUrl and brokerGoogleAuth through the daemon", () => {
  let daemon: RunningDaemon;
  let google: GoogleTokenServer;
  let account: TestServiceAccount;
  let gcs: Awaited<ReturnType<typeof startStorageStandIn>>;
  let client: ReturnType<typeof createBrokerClient>;

  before(async () => {
    google = await startGoogleTokenServer();
    account = google.addServiceAccount("app");
    gcs = await startStorageStandIn(google);
    daemon = await startDaemon();
    client = createBrokerClient({ addr: daemon.url, token: daemon.token });
    const creds = credentialClient(daemon.url, "connect-h2", daemon.token);
    await creds.createCredential({
      credential: {
        namespace: "gcp",
        name: "sa",
        provider: 4,
        allowedHosts: HOSTS,
        tokenScopes: ["https://www.googleapis.com/auth/devstorage.read_write"],
        kind: { case: "serviceAccount", value: { keyJson: account.keyJson } },
      },
    });
    await creds.createCredential({
      credential: {
        namespace: "gcp",
        name: "off",
        provider: 4,
        allowedHosts: HOSTS,
        enabled: false,
        kind: { case: "serviceAccount", value: { keyJson: account.keyJson } },
      },
    });
    await creds.createCredential({
      credential: {
        namespace: "gcp",
        name: "hmac",
        provider: 4,
        kind: { case: "accessKey", value: { accessKeyId: HMAC_ID, secretAccessKey: HMAC_SECRET } },
      },
    });
  });

  after(async () => {
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
    await gcs?.stop();
    await google?.stop();
  });

  test("a service account's signed URL, path style and virtual-hosted: RSA verifies with the public key", async () => {
    const publicKey = createPublicKey(account.privateKeyPem);
    for (const style of ["path", "virtual-hosted"] as const) {
      const url = new URL(
        await brokerGcsSignedUrl(
          { client, namespace: "gcp", credential: "sa" },
          { bucket: "reports", object: "2026/q4 summary.pdf", expiresIn: 600, style },
        ),
      );
      assert.equal(url.searchParams.get("X-Goog-Algorithm"), "GOOG4-RSA-SHA256");
      assert.equal(url.searchParams.get("X-Goog-Expires"), "600");
      assert.match(
        url.searchParams.get("X-Goog-Credential") ?? "",
        new RegExp(
          `^${account.clientEmail.replace(/\./g, "\\.")}/\\d{8}/auto/storage/goog4_request$`,
        ),
      );
      if (style === "path") {
        assert.equal(url.host, "storage.googleapis.com");
        assert.equal(url.pathname, "/reports/2026/q4%20summary.pdf");
      } else {
        assert.equal(url.host, "reports.storage.googleapis.com");
        assert.equal(url.pathname, "/2026/q4%20summary.pdf");
      }
      const { text, signature } = stringToSign(url, "GET", "GOOG4-RSA-SHA256");
      assert.ok(
        verify("sha256", Buffer.from(text), publicKey, Buffer.from(signature, "hex")),
        style,
      );
      assert.ok(!url.toString().includes(account.privateKeyId));
    }
  });

  test("an HMAC key's signed URL: GOOG4-HMAC-SHA256, the signature recomputed here", async () => {
    const url = new URL(
      await brokerGcsSignedUrl(
        { client, namespace: "gcp", credential: "hmac" },
        { bucket: "uploads", object: "in/a.txt", method: "PUT", expiresIn: 300 },
      ),
    );
    assert.equal(url.searchParams.get("X-Goog-Algorithm"), "GOOG4-HMAC-SHA256");
    const credential = url.searchParams.get("X-Goog-Credential") ?? "";
    assert.ok(credential.startsWith(`${HMAC_ID}/`));
    const { text, signature } = stringToSign(url, "PUT", "GOOG4-HMAC-SHA256");
    const [, date, region, service, terminator] = credential.split("/") as string[];
    let key: Buffer = Buffer.from(`GOOG4${HMAC_SECRET}`);
    for (const part of [date, region, service, terminator])
      key = createHmac("sha256", key)
        .update(part ?? "")
        .digest();
    assert.equal(signature, createHmac("sha256", key).update(text).digest("hex"));
    assert.ok(!url.toString().includes(HMAC_SECRET));
  });

  test("@google-cloud/storage with brokerGoogleAuth: download, multipart upload; request()", async () => {
    const storage = new Storage({
      apiEndpoint: gcs.endpoint,
      projectId: account.projectId,
      authClient: storageAuth(brokerGoogleAuth({ client, namespace: "gcp", credential: "sa" })),
      retryOptions: { autoRetry: false },
      // Else storage sends no credentials to a custom endpoint.
      useAuthWithCustomEndpoint: true,
    });
    const file = storage.bucket("b").file("report.txt");
    const [bytes] = await file.download({ validation: false });
    assert.equal(bytes.toString(), OBJECT_TEXT);
    await file.save("small body", { resumable: false, validation: false });
    // storage 7.22 drops useAuthWithCustomEndpoint on resumable uploads (they would go
    // unauthenticated to a custom endpoint): request(), which they use, is driven directly.
    const auth = brokerGoogleAuth({ client, namespace: "gcp", credential: "sa" });
    const res = await auth.request<{ name: string }>({
      url: `${gcs.endpoint}/upload/storage/v1/b/b/o?uploadType=media&name=big.bin`,
      method: "POST",
      data: Buffer.alloc(1024, 7),
    });
    assert.equal(res.status, 200);
    assert.equal(res.data.name, "uploaded");
    assert.equal(res.headers.get("content-type"), "application/json");
    const methods = gcs.seen.map(
      (s) =>
        `${s.method} ${new URL(s.url, "http://x").searchParams.get("uploadType") ?? s.url.split("?")[0]}`,
    );
    assert.ok(
      methods.some((m) => m.startsWith("GET ")),
      methods.join("; "),
    );
    assert.ok(methods.includes("POST multipart"), methods.join("; "));
    assert.ok(methods.includes("POST media"), methods.join("; "));
    // Every request carried a token the stand-in issued for this key's scopes, and no other.
    const granted = new Set(google.grants.map((g) => `Bearer ${g.token}`));
    for (const s of gcs.seen)
      assert.ok(granted.has(s.authorization), `${s.method} ${s.url} unauthorized`);
    assert.ok(google.grants.every((g) => g.iss === account.clientEmail));
    assert.deepEqual(google.grants[0]?.scopes, [
      "https://www.googleapis.com/auth/devstorage.read_write",
    ]);
  });

  test("a disabled credential: the broker refuses and nothing reaches Cloud Storage", async () => {
    const before = gcs.seen.length;
    const storage = new Storage({
      apiEndpoint: gcs.endpoint,
      projectId: account.projectId,
      authClient: storageAuth(brokerGoogleAuth({ client, namespace: "gcp", credential: "off" })),
      retryOptions: { autoRetry: false },
      // Else storage sends no credentials to a custom endpoint.
      useAuthWithCustomEndpoint: true,
    });
    await assert.rejects(
      storage.bucket("b").file("report.txt").download({ validation: false }),
      (err: unknown) => {
        assert.ok(err instanceof BrokerSigningError, String(err));
        assert.equal(err.code, "PermissionDenied");
        assert.match(err.reason, /gcp\/off is disabled/);
        return true;
      },
    );
    await assert.rejects(
      brokerGcsSignedUrl(
        { client, namespace: "gcp", credential: "off" },
        { bucket: "b", object: "o" },
      ),
      BrokerSigningError,
    );
    assert.equal(gcs.seen.length, before);
  });
});
