import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { CredentialSchema, Provider } from "../../gen/credbroker/v1/credential_pb.js";
import { Severity } from "../../gen/credbroker/v1/credential_service_pb.js";
import { fieldChecks } from "../../src/core/field-checks.js";

const RULE = "allowed_hosts.wildcard_with_scopes";
const AZURE_KEY = randomBytes(64).toString("base64");

/** A scoped access key of `provider` allowed on `hosts`. */
function scoped(provider: Provider, hosts: string[]) {
  const accessKey =
    provider === Provider.AZURE
      ? { accessKeyId: "acct01", secretAccessKey: AZURE_KEY }
      : provider === Provider.GCP
        ? { accessKeyId: `GOOG1E${"A".repeat(55)}`, secretAccessKey: "s".repeat(40) }
        : { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "s".repeat(40) };
  return create(CredentialSchema, {
    name: "c",
    provider,
    enabled: true,
    kind: { case: "accessKey", value: accessKey },
    allowedHosts: hosts,
    allowedScopes: [{ bucket: "b", actions: ["get_object"] }],
  });
}

function wildcardRule(provider: Provider, hosts: string[]) {
  const check = fieldChecks(scoped(provider, hosts)).find((k) => k.check === RULE);
  assert.ok(check, `${RULE} present`);
  return check;
}

describe("with allowed_scopes, a *. wildcard only where the provider knows where the bucket is", () => {
  test("each cloud's own domains pass", () => {
    for (const [provider, hosts] of [
      [Provider.AWS, ["*.amazonaws.com", "*.s3.eu-west-1.amazonaws.com", "*.amazonaws.com.cn"]],
      [Provider.GCP, ["*.storage.googleapis.com", "*.googleapis.com"]],
      [Provider.AZURE, ["*.blob.core.windows.net"]],
    ] as const) {
      assert.equal(wildcardRule(provider, [...hosts]).ok, true, Provider[provider]);
    }
  });

  test("another cloud's domain, or a look-alike, is refused and named in the message", () => {
    for (const [provider, host, named] of [
      [Provider.GCP, "*.amazonaws.com", "*.googleapis.com"],
      [Provider.GCP, "*.evilgoogleapis.com", "*.googleapis.com"],
      [Provider.AZURE, "*.storage.googleapis.com", "*.blob.core.windows.net"],
      [Provider.AZURE, "*.example.com", "*.blob.core.windows.net"],
      [Provider.AWS, "*.blob.core.windows.net", "*.amazonaws.com"],
    ] as const) {
      const check = wildcardRule(provider, [host]);
      assert.equal(check.ok, false, `${Provider[provider]} ${host}`);
      assert.equal(check.severity, Severity.ERROR);
      assert.match(check.message, new RegExp(named.replace(/[.*]/g, "\\$&")));
      assert.match(check.message, /allowed_hosts\[0\]/);
    }
  });

  test("without scopes any wildcard is allowed (hosts alone are enforced exactly)", () => {
    const c = scoped(Provider.AZURE, ["*.example.com"]);
    c.allowedScopes = [];
    assert.equal(
      fieldChecks(c).find((k) => k.check === RULE)?.ok ?? true,
      true,
      "no wildcard failure without scopes",
    );
  });
});
