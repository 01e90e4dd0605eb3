/**
 * Google's Cloud Storage V4 signing conformance cases
 * (test/fixtures/gcs-v4-conformance, Apache-2.0, from googleapis/conformance-tests
 * storage/v1): all 29 signingV4Tests. Each case becomes the SignRequest a
 * client would send (its URL, headers and expiry). The canonical request and
 * string to sign are compared byte for byte from the provider's own
 * functions (the ones prepareSign and sign call, with the case's clock);
 * then the same request goes through SigningService.SignRequest over gRPC
 * on a real daemon composed with that clock, whose URL must equal the
 * expected one. Every signature is verified again, independently, with the
 * key's public key (node:crypto verify). No local server verifies GCS
 * signatures, so these vectors and the public key are the oracle.
 *
 * One case is inconsistent in itself: "Universe domain with virtual hosted
 * style" lists /test-bucket/test-object as its canonical path, but its
 * string to sign (and so its signature and URL) hashes the canonical
 * request with /test-object, the URL's path. The URL and string to sign
 * are matched byte for byte like every other case; the canonical request is
 * matched with that one path, and the test shows the listed one does not
 * hash to the listed string to sign.
 */
import assert from "node:assert/strict";
import { createHash, createPublicKey, randomUUID, verify } from "node:crypto";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { pino } from "pino";
import { CredentialSchema, Provider } from "../../gen/credbroker/v1/credential_pb.js";
import { CredentialService } from "../../gen/credbroker/v1/credential_service_pb.js";
import {
  SigningService,
  type SignRequestRequest,
  SignRequestRequestSchema,
} from "../../gen/credbroker/v1/signing_service_pb.js";
import { type Daemon, startDaemon } from "../../src/daemon/serve.js";
import { goog4 } from "../../src/providers/gcp/goog4.js";
import { validateGcsSign } from "../../src/providers/gcp/sign-request.js";
import { goog4Plan, serviceAccountSigner } from "../../src/providers/gcp/signer.js";
import { grpcJsClient, transport } from "../support/clients.js";
import { testConfig } from "../support/compose.js";
import { removeDir, tempDir } from "../support/daemon.js";

const DIR = fileURLToPath(new URL("../../../test/fixtures/gcs-v4-conformance/", import.meta.url));
const KEY_JSON = readFileSync(path.join(DIR, "test_service_account.not-a-test.json"), "utf8");
const PUBLIC_KEY = createPublicKey(JSON.parse(KEY_JSON).private_key as string);

interface V4Case {
  description: string;
  bucket: string;
  object?: string;
  method: string;
  expiration: number;
  timestamp: string;
  headers?: Record<string, string>;
  queryParameters?: Record<string, string>;
  scheme?: string;
  urlStyle?: "PATH_STYLE" | "VIRTUAL_HOSTED_STYLE" | "BUCKET_BOUND_HOSTNAME";
  bucketBoundHostname?: string;
  hostname?: string;
  clientEndpoint?: string;
  emulatorHostname?: string;
  universeDomain?: string;
  expectedUrl: string;
  expectedCanonicalRequest: string;
  expectedStringToSign: string;
}

const cases = (
  JSON.parse(readFileSync(path.join(DIR, "v4_signatures.json"), "utf8")) as {
    signingV4Tests: V4Case[];
  }
).signingV4Tests;

/** RFC 3986, as a client encodes a path segment or query part. */
function enc(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

const withoutScheme = (s: string) => s.replace(/^https?:\/\//, "");

/** The URL a client would ask to sign, as the case's fields (tests.proto) define it. */
function urlOf(c: V4Case): string {
  const domain = c.universeDomain ?? "googleapis.com";
  const object = c.object === undefined ? "" : c.object.split("/").map(enc).join("/");
  let host: string;
  let pathText: string;
  if (c.urlStyle === "BUCKET_BOUND_HOSTNAME") {
    host = c.bucketBoundHostname ?? "";
    pathText = `/${object}`;
  } else if (c.urlStyle === "VIRTUAL_HOSTED_STYLE") {
    host = `${c.bucket}.storage.${domain}`;
    pathText = `/${object}`;
  } else {
    // Precedence as the cases name it: hostname, then the client's endpoint, then the emulator.
    host = withoutScheme(
      c.hostname ?? c.clientEndpoint ?? c.emulatorHostname ?? `storage.${domain}`,
    );
    pathText = `/${c.bucket}${c.object === undefined ? "" : `/${object}`}`;
  }
  const scheme =
    c.scheme ?? (c.emulatorHostname?.startsWith("http://") && !c.hostname ? "http" : "https");
  const query = Object.entries(c.queryParameters ?? {})
    .map(([k, v]) => `${enc(k)}=${enc(v)}`)
    .join("&");
  return `${scheme}://${host}${pathText}${query ? `?${query}` : ""}`;
}

function requestOf(c: V4Case, credential: string): SignRequestRequest {
  return create(SignRequestRequestSchema, {
    namespace: "gcs",
    credential,
    method: c.method,
    url: urlOf(c),
    headers: Object.entries(c.headers ?? {}).map(([name, value]) => ({ name, value })),
    presignExpiresSeconds: c.expiration,
  });
}

const ALLOWED_HOSTS = [
  "*.googleapis.com",
  "mydomain.tld",
  "localhost",
  "storage.domain.com",
  "*.domain.com",
];

function credential() {
  return create(CredentialSchema, {
    namespace: "gcs",
    name: "conformance",
    provider: Provider.GCP,
    allowedHosts: ALLOWED_HOSTS,
    kind: { case: "serviceAccount", value: { keyJson: KEY_JSON } },
  });
}

function signatureOf(url: string): string {
  return new URL(url).searchParams.get("X-Goog-Signature") ?? "";
}

function verifies(stringToSign: string, signatureHex: string): boolean {
  return verify(
    "RSA-SHA256",
    Buffer.from(stringToSign),
    PUBLIC_KEY,
    Buffer.from(signatureHex, "hex"),
  );
}

const INCONSISTENT = "Universe domain with virtual hosted style";

/** The canonical request whose hash the case's string to sign holds. */
function canonicalRequestSigned(c: V4Case): string {
  if (c.description !== INCONSISTENT) return c.expectedCanonicalRequest;
  return c.expectedCanonicalRequest.replace("\n/test-bucket/test-object\n", "\n/test-object\n");
}

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

describe("GCS V4 conformance: the provider's canonical request, string to sign and URL", () => {
  test("all 29 signingV4Tests are here", () => {
    assert.equal(cases.length, 29);
  });
  for (const c of cases) {
    test(c.description, () => {
      const valid = validateGcsSign(requestOf(c, "conformance"));
      const plan = goog4Plan(valid, credential(), new Date(c.timestamp));
      const result = goog4(plan, serviceAccountSigner(KEY_JSON));
      assert.equal(result.canonicalRequest, canonicalRequestSigned(c));
      assert.equal(result.stringToSign, c.expectedStringToSign);
      assert.equal(result.url, c.expectedUrl);
      assert.ok(verifies(c.expectedStringToSign, signatureOf(result.url)), "RSA verification");
    });
  }
  test("every case's string to sign hashes its canonical request, but for the one inconsistent case", () => {
    for (const c of cases) {
      const hashed = c.expectedStringToSign.endsWith(sha256(c.expectedCanonicalRequest));
      assert.equal(hashed, c.description !== INCONSISTENT, c.description);
      assert.ok(c.expectedStringToSign.endsWith(sha256(canonicalRequestSigned(c))), c.description);
    }
  });
  test("the verification fails for a string to sign that differs by one byte", () => {
    const c = cases[0] as V4Case;
    assert.equal(verifies(`${c.expectedStringToSign}0`, signatureOf(c.expectedUrl)), false);
  });
});

describe("GCS V4 conformance through SignRequest over gRPC", () => {
  let daemon: Daemon;
  let dataDir: string;
  let signing: ReturnType<typeof grpcJsClient<typeof SigningService>>;
  let clock = new Date(cases[0]?.timestamp ?? "");

  before(async () => {
    dataDir = await tempDir();
    daemon = await startDaemon(testConfig(dataDir), pino({ level: "silent" }), {
      now: () => clock,
      newId: randomUUID,
    });
    const token = (await readFile(path.join(dataDir, "admin.token"), "utf8")).trim();
    const credentials = createClient(CredentialService, transport(daemon.url, "connect-h2", token));
    const made = await credentials.createCredential({ credential: credential() });
    assert.equal(made.credential?.kind.case, "serviceAccount");
    if (made.credential?.kind.case === "serviceAccount") {
      assert.equal(made.credential.kind.value.keyJson, "");
      assert.equal(
        made.credential.kind.value.clientEmail,
        "test-iam-credentials@dummy-project-id.iam.gserviceaccount.com",
      );
      assert.equal(made.credential.kind.value.projectId, "dummy-project-id");
    }
    signing = grpcJsClient(SigningService, daemon.url, token);
  });

  after(async () => {
    signing?.close();
    await daemon?.stop();
    await removeDir(dataDir);
  });

  for (const c of cases) {
    test(c.description, async () => {
      clock = new Date(c.timestamp);
      const res = await signing.client.signRequest(requestOf(c, "conformance"));
      assert.equal(res.url, c.expectedUrl);
      assert.equal(
        res.accessKeyId,
        "test-iam-credentials@dummy-project-id.iam.gserviceaccount.com",
      );
      assert.ok(verifies(c.expectedStringToSign, signatureOf(res.url)), "RSA verification");
      const expires = Number(res.expiresAt?.seconds) * 1000;
      assert.equal(expires, clock.getTime() + c.expiration * 1000);
    });
  }
});
