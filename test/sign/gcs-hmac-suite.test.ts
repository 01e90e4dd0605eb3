/**
 * GOOG4-HMAC-SHA256 on the requests of the AWS SigV4 suite
 * (test/fixtures/sigv4-testsuite: same shape, Google's names): each request,
 * sent to storage.googleapis.com, is signed by the GCP provider with an HMAC
 * key (the clock injected, header mode and presign) and the signature is
 * checked by the second implementation (test/support/goog4-check.ts, on
 * smithy's canonicalization and key chain), which must also refuse it under
 * another secret.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { CredentialSchema, Provider } from "../../gen/credbroker/v1/credential_pb.js";
import { SignRequestRequestSchema } from "../../gen/credbroker/v1/signing_service_pb.js";
import { gcpProvider } from "../../src/providers/gcp/index.js";
import { hmacVerifies } from "../support/goog4-check.js";

const SUITE = fileURLToPath(new URL("../../../test/fixtures/sigv4-testsuite/v4/", import.meta.url));
const ACCESS_ID = "GOOGTS7C7FUP3AIRVJTE2BCD";
const SECRET = "bGoa+V7g/yqDXvKRqq+JTFn4uQZbPiQJo4pf9RzJ";
const NOW = new Date("2015-08-30T12:36:00Z");

interface SuiteRequest {
  name: string;
  method: string;
  path: string;
  headers: [string, string][];
  body: string;
}

function parseRequest(name: string): SuiteRequest {
  const lines = readFileSync(path.join(SUITE, name, "request.txt"), "utf8").split("\n");
  const first = lines.shift() ?? "";
  const method = first.slice(0, first.indexOf(" "));
  const target = first.slice(first.indexOf(" ") + 1, first.lastIndexOf(" HTTP/"));
  const headers: [string, string][] = [];
  while (lines.length > 0) {
    const line = lines.shift() ?? "";
    if (line === "") break;
    const last = headers.at(-1);
    if (/^[ \t]/.test(line) && last !== undefined) {
      last[1] = `${last[1]} ${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(":");
    headers.push([line.slice(0, colon), line.slice(colon + 1)]);
  }
  return { name, method, path: target, headers, body: lines.join("\n") };
}

const requests = readdirSync(SUITE)
  .sort()
  .map(parseRequest)
  // Session tokens are AWS's; HMAC keys have none.
  .filter((r) => !r.headers.some(([n]) => n.toLowerCase() === "x-amz-security-token"));

const provider = gcpProvider({ ambient: { now: () => NOW } });
const hmac = create(CredentialSchema, {
  namespace: "ns",
  name: "hmac",
  id: "id",
  etag: "e",
  enabled: true,
  provider: Provider.GCP,
  kind: { case: "accessKey", value: { accessKeyId: ACCESS_ID, secretAccessKey: SECRET } },
});
const ctx = {
  withSecrets: async () => hmac,
  again: async () => {
    throw new Error("not called");
  },
  forwarded: false,
};

test("the SigV4 suite's requests are here", () => {
  assert.ok(requests.length >= 30, String(requests.length));
});

for (const r of requests) {
  for (const presign of [false, true]) {
    test(`${r.name}: ${presign ? "presign" : "header mode"}`, async () => {
      const req = create(SignRequestRequestSchema, {
        namespace: "ns",
        credential: "hmac",
        method: r.method,
        url: `https://storage.googleapis.com${r.path}`,
        headers: r.headers
          .filter(([n]) => n.toLowerCase() !== "host")
          .map(([name, value]) => ({ name, value })),
        ...(r.body === ""
          ? {}
          : { payload: { case: "body" as const, value: Buffer.from(r.body) } }),
        presignExpiresSeconds: presign ? 300 : 0,
      });
      const signed = await provider.prepareSign(req).sign(hmac, ctx);
      const sent = { method: r.method, url: signed.url, headers: signed.headers };
      assert.ok(await hmacVerifies(sent, ACCESS_ID, SECRET), signed.url);
      assert.equal(await hmacVerifies(sent, ACCESS_ID, `${SECRET}0`), false);
    });
  }
}
