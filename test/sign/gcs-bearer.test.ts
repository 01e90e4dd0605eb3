/**
 * Header mode with a service account: the provider asks its accessToken
 * source (built by the identity side: the JWT-bearer grant) for a token with
 * the credential's token_scopes (or cloud-platform) and signs with
 * `Authorization: Bearer`; without a source, failed_precondition. The source
 * here is a function standing in for that grant: what is tested is what the
 * provider does with it.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type Credential,
  CredentialSchema,
  Provider,
} from "../../gen/credbroker/v1/credential_pb.js";
import { SignRequestRequestSchema } from "../../gen/credbroker/v1/signing_service_pb.js";
import { DomainError } from "../../src/core/errors.js";
import { gcpProvider } from "../../src/providers/gcp/index.js";
import type { AccessToken } from "../../src/providers/provider.js";

const DIR = fileURLToPath(new URL("../../../test/fixtures/gcs-v4-conformance/", import.meta.url));
const KEY_JSON = readFileSync(path.join(DIR, "test_service_account.not-a-test.json"), "utf8");
const NOW = new Date("2026-01-02T03:04:05Z");

function account(
  patch: Omit<MessageInitShape<typeof CredentialSchema>, "$typeName"> = {},
): Credential {
  return create(CredentialSchema, {
    namespace: "ns",
    name: "sa",
    id: "id-1",
    etag: "e1",
    provider: Provider.GCP,
    enabled: true,
    kind: {
      case: "serviceAccount",
      value: { keyJson: "", clientEmail: "sa@p.iam.gserviceaccount.com" },
    },
    ...patch,
  });
}

const request = create(SignRequestRequestSchema, {
  namespace: "ns",
  credential: "sa",
  method: "GET",
  url: "https://storage.googleapis.com/storage/v1/b/bkt/o?prefix=x",
  headers: [{ name: "Accept", value: "application/json" }],
});

const ctx = {
  withSecrets: async () => {
    throw new Error("a bearer needs no secret here");
  },
  again: async () => {
    throw new Error("not called");
  },
  forwarded: false,
};

test("header mode: Bearer from the token source, for token_scopes, until the token or the credential expires", async () => {
  const asked: unknown[] = [];
  const tokenExpiry = new Date(NOW.getTime() + 3_600_000);
  const provider = gcpProvider({
    ambient: { now: () => NOW },
    accessToken: async (namespace, name, scopes, expectedId): Promise<AccessToken> => {
      asked.push([namespace, name, [...scopes], expectedId]);
      return { token: "ya29.test-token", expiresAt: tokenExpiry, scopes };
    },
  });
  const signed = await provider.prepareSign(request).sign(account(), ctx);
  assert.deepEqual(signed.headers, [
    ["Accept", "application/json"],
    ["authorization", "Bearer ya29.test-token"],
  ]);
  assert.equal(signed.url, request.url);
  assert.equal(signed.keyId, "sa@p.iam.gserviceaccount.com");
  assert.equal(signed.expiresAt.getTime(), tokenExpiry.getTime());
  assert.deepEqual(asked, [
    ["ns", "sa", ["https://www.googleapis.com/auth/cloud-platform"], "id-1"],
  ]);

  const soon = new Date(NOW.getTime() + 60_000);
  const scoped = account({
    tokenScopes: ["https://www.googleapis.com/auth/devstorage.read_only"],
    expiresAt: timestampFromDate(soon),
  });
  const capped = await provider.prepareSign(request).sign(scoped, ctx);
  assert.equal(capped.expiresAt.getTime(), soon.getTime());
  assert.deepEqual(asked[1], [
    "ns",
    "sa",
    ["https://www.googleapis.com/auth/devstorage.read_only"],
    "id-1",
  ]);
});

test("header mode without a token source: failed_precondition; presign needs none", async () => {
  const provider = gcpProvider({ ambient: { now: () => NOW } });
  await assert.rejects(
    provider.prepareSign(request).sign(account(), ctx),
    (e: unknown) => e instanceof DomainError && e.code === "failed_precondition",
  );
  const presign = create(SignRequestRequestSchema, { ...request, presignExpiresSeconds: 60 });
  const withKey = account();
  const full = account({ kind: { case: "serviceAccount", value: { keyJson: KEY_JSON } } });
  const signed = await provider.prepareSign(presign).sign(withKey, {
    withSecrets: async () => full,
    again: async () => {
      throw new Error("not called");
    },
    forwarded: false,
  });
  assert.match(signed.url, /X-Goog-Algorithm=GOOG4-RSA-SHA256/);
});

test("a scoped service account: no Bearer handed back; forwarded, scopes bound the one request", async () => {
  const provider = gcpProvider({
    ambient: { now: () => NOW },
    accessToken: async (_ns, _n, scopes) => ({
      token: "ya29.scoped",
      expiresAt: new Date(NOW.getTime() + 3_600_000),
      scopes,
    }),
  });
  const scoped = account({
    allowedScopes: [{ bucket: "bkt", prefixes: ["pub/"], actions: ["get_object"] }],
  });
  const xml = (url: string) => create(SignRequestRequestSchema, { ...request, url, headers: [] });
  const inScope = xml("https://storage.googleapis.com/bkt/pub/a.csv");
  await assert.rejects(
    provider.prepareSign(inScope).sign(scoped, ctx),
    (e: unknown) => e instanceof DomainError && /^BearerNotScoped/.test(e.message),
  );
  const forwarded = { ...ctx, forwarded: true };
  const sent = await provider.prepareSign(inScope).sign(scoped, forwarded);
  assert.deepEqual(sent.headers, [["authorization", "Bearer ya29.scoped"]]);
  await assert.rejects(
    provider
      .prepareSign(xml("https://storage.googleapis.com/bkt/private/a.csv"))
      .sign(scoped, forwarded),
    (e: unknown) => e instanceof DomainError && /^ActionNotInScope/.test(e.message),
  );
});
