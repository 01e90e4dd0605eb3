/**
 * EntraTokens over the Entra stand-in (plain http on loopback, which the
 * authority host allows): scopes within token_scopes, the cache, one grant
 * in flight, forget.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { clone, create } from "@bufbuild/protobuf";
import {
  type Credential,
  CredentialSchema,
  Provider,
} from "../../../gen/credbroker/v1/credential_pb.js";
import { isDomainError } from "../../../src/core/errors.js";
import { EntraTokens } from "../../../src/providers/azure/entra-tokens.js";
import { type EntraServer, startEntraServer } from "../../support/entra-server.js";

const STORAGE = "https://storage.azure.com/.default";
const VAULT = "https://vault.azure.net/.default";

describe("EntraTokens", () => {
  let entra: EntraServer;
  let tokens: EntraTokens;
  let cred: Credential;
  let now = new Date();

  before(async () => {
    entra = await startEntraServer();
    const sp = entra.addPrincipal([STORAGE, VAULT]);
    cred = create(CredentialSchema, {
      id: "cred-1",
      etag: "e1",
      namespace: "az",
      name: "sp",
      provider: Provider.AZURE,
      enabled: true,
      tokenScopes: [STORAGE, VAULT],
      kind: {
        case: "servicePrincipal",
        value: { tenantId: sp.tenantId, clientId: sp.clientId, clientSecret: sp.clientSecret },
      },
    });
    const reads = {
      get: async () => {
        const c = clone(CredentialSchema, cred);
        if (c.kind.case === "servicePrincipal") c.kind.value.clientSecret = "";
        return c;
      },
      getWithSecrets: async () => cred,
    };
    tokens = new EntraTokens({
      credentials: reads,
      now: () => now,
      authorityHost: entra.authorityHost,
    });
  });

  after(async () => entra?.stop());

  test("one grant for concurrent callers; cached until 5 minutes before expiry; forget drops it", async () => {
    const [a, b] = await Promise.all([
      tokens.accessToken("az", "sp", [STORAGE]),
      tokens.accessToken("az", "sp", [STORAGE]),
    ]);
    assert.equal(entra.requests, 1);
    assert.equal(a.token, b.token);
    assert.equal(a.token, entra.grants[0]?.token);
    assert.equal((await tokens.accessToken("az", "sp", [STORAGE])).token, a.token);
    assert.equal(entra.requests, 1);
    // Another scope is another token.
    const vault = await tokens.accessToken("az", "sp", [VAULT]);
    assert.equal(entra.requests, 2);
    assert.notEqual(vault.token, a.token);
    assert.equal(entra.grants[1]?.scope, VAULT);
    // Within the refresh margin: a new grant.
    now = new Date(now.getTime() + (entra.expiresIn - 299) * 1000);
    const renewed = await tokens.accessToken("az", "sp", [STORAGE]);
    assert.equal(entra.requests, 3);
    assert.notEqual(renewed.token, a.token);
    tokens.forget("cred-1");
    await tokens.accessToken("az", "sp", [STORAGE]);
    assert.equal(entra.requests, 4);
  });

  test("a scope outside token_scopes is refused before any request", async () => {
    const before = entra.requests;
    await assert.rejects(
      tokens.accessToken("az", "sp", ["https://management.azure.com/.default"]),
      (err: unknown) => isDomainError(err, "permission_denied"),
    );
    assert.equal(entra.requests, before);
  });

  test("the bound credential's id is checked", async () => {
    await assert.rejects(tokens.accessToken("az", "sp", [STORAGE], "other-id"), (err: unknown) =>
      isDomainError(err, "permission_denied"),
    );
  });
});
