import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  CredentialSchema,
  Provider,
  TokenPlacement,
} from "../../../gen/credbroker/v1/credential_pb.js";
import { Severity } from "../../../gen/credbroker/v1/credential_service_pb.js";
import { fieldChecks } from "../../../src/core/field-checks.js";
import { verifyStructure } from "../../../src/core/verify.js";

const KEY = randomBytes(64).toString("base64");
const NOW = new Date("2026-06-01T00:00:00Z");

function azure(
  kind: Parameters<typeof create<typeof CredentialSchema>>[1] extends infer I
    ? I extends { kind?: infer K }
      ? K
      : never
    : never,
) {
  return create(CredentialSchema, { name: "c", provider: Provider.AZURE, kind, enabled: true });
}

const failed = (c: ReturnType<typeof azure>) =>
  fieldChecks(c)
    .filter((k) => !k.ok && k.severity === Severity.ERROR)
    .map((k) => k.check);

describe("Azure kind rules", () => {
  test("account key: account name 3-24 lower-case letters and digits, base64 of 64 bytes, no session token", () => {
    const key = (accessKeyId: string, secretAccessKey: string, sessionToken?: string) =>
      azure({ case: "accessKey", value: { accessKeyId, secretAccessKey, sessionToken } });
    assert.deepEqual(failed(key("myaccount01", KEY)), []);
    for (const bad of ["ab", "MyAccount", "my-account", "a".repeat(25)]) {
      assert.ok(failed(key(bad, KEY)).includes("access_key.access_key_id.azure_account"), bad);
    }
    const short = randomBytes(32).toString("base64");
    assert.ok(failed(key("acct", short)).includes("access_key.secret_access_key.azure_key"));
    assert.ok(
      failed(key("acct", `${KEY.slice(0, -2)}!=`)).includes(
        "access_key.secret_access_key.azure_key",
      ),
    );
    assert.ok(failed(key("acct", KEY, "tok")).includes("access_key.session_token.azure"));
    // The AWS shape warning is not given for Azure.
    assert.ok(!fieldChecks(key("acct", KEY)).some((k) => k.check.endsWith("aws_shape")));
  });

  test("SAS token: parses as a SAS query string", () => {
    const sas = (token: string) =>
      azure({ case: "token", value: { token, placement: TokenPlacement.QUERY_STRING } });
    assert.deepEqual(failed(sas("sv=2024-11-04&se=2030-01-01T00%3A00%3A00Z&sp=r&sig=abc%3D")), []);
    for (const bad of [
      "?sv=1&se=2030-01-01&sp=r&sig=x",
      "sv=1&sp=r&sig=x",
      "se=notadate&sv=1&sp=r&sig=x",
      "sv=1&sv=2&se=2030-01-01&sp=r&sig=x",
    ]) {
      assert.ok(failed(sas(bad)).includes("token.token.sas"), bad);
    }
  });

  test("service principal: tenant GUID or domain, client GUID, secret present", () => {
    const sp = (tenantId: string, clientId: string, clientSecret: string) =>
      azure({ case: "servicePrincipal", value: { tenantId, clientId, clientSecret } });
    const guid = "0f8fad5b-d9cb-469f-a165-70867728950e";
    assert.deepEqual(failed(sp(guid, guid, "s3cret")), []);
    assert.deepEqual(failed(sp("contoso.onmicrosoft.com", guid, "s3cret")), []);
    assert.ok(failed(sp("not a tenant", guid, "x")).includes("service_principal.tenant_id.format"));
    assert.ok(failed(sp(guid, "client", "x")).includes("service_principal.client_id.format"));
    assert.ok(failed(sp(guid, guid, "")).includes("service_principal.client_secret.present"));
  });
});

describe("VerifyCredential of a SAS token", () => {
  const sas = (se: string, sp = "rl") =>
    azure({
      case: "token",
      value: {
        token: `sv=2024-11-04&se=${encodeURIComponent(se)}&sp=${sp}&sr=c&sig=c2lnbmF0dXJl`,
        placement: TokenPlacement.QUERY_STRING,
      },
    });

  test("reports se and sp as checks; valid while unexpired", () => {
    const v = verifyStructure(sas("2026-07-01T00:00:00Z"), { now: NOW });
    const se = v.checks.find((k) => k.check === "token.sas.se");
    const sp = v.checks.find((k) => k.check === "token.sas.sp");
    assert.ok(se?.ok);
    assert.match(se?.message ?? "", /2026-07-01T00:00:00\.000Z/);
    assert.ok(sp?.ok);
    assert.match(sp?.message ?? "", /grants rl/);
    assert.ok(
      !JSON.stringify(v.checks.map((k) => k.message)).includes("c2lnbmF0dXJl"),
      "sig never shown",
    );
    assert.equal(v.valid, true);
  });

  test("an expired SAS is an error", () => {
    const v = verifyStructure(sas("2026-05-01T00:00:00Z"), { now: NOW });
    const se = v.checks.find((k) => k.check === "token.sas.se");
    assert.equal(se?.ok, false);
    assert.equal(se?.severity, Severity.ERROR);
    assert.equal(v.valid, false);
  });

  test("the credential's own expires_at still counts", () => {
    const c = sas("2026-07-01T00:00:00Z");
    c.expiresAt = timestampFromDate(new Date("2026-05-01T00:00:00Z"));
    assert.equal(verifyStructure(c, { now: NOW }).valid, false);
  });
});
