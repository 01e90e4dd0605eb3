import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import {
  type Credential,
  CredentialSchema,
  Provider,
} from "../../../gen/credbroker/v1/credential_pb.js";
import { SignRequestRequestSchema } from "../../../gen/credbroker/v1/signing_service_pb.js";
import { DomainError } from "../../../src/core/errors.js";
import { parseRawUrl } from "../../../src/core/raw-url.js";
import { RequestHeaders } from "../../../src/core/request-headers.js";
import { blobTarget, mapBlobRequest } from "../../../src/providers/azure/blob-request.js";
import { azureProvider } from "../../../src/providers/azure/index.js";
import type { AccessToken, SignContext } from "../../../src/providers/provider.js";

const NOW = new Date("2026-06-01T00:00:00Z");
const GUID = "0f8fad5b-d9cb-469f-a165-70867728950e";

function principal(
  fields: Omit<MessageInitShape<typeof CredentialSchema>, "$typeName"> = {},
): Credential {
  return create(CredentialSchema, {
    id: "id-1",
    etag: "e1",
    name: "sp",
    provider: Provider.AZURE,
    enabled: true,
    kind: { case: "servicePrincipal", value: { tenantId: GUID, clientId: GUID, clientSecret: "" } },
    allowedHosts: ["acct.blob.core.windows.net"],
    ...fields,
  });
}

const noSecrets: SignContext = {
  withSecrets: () => Promise.reject(new Error("a service principal's secret is not read to sign")),
  again: () => Promise.reject(new Error("no newer version")),
  forwarded: false,
};

const req = (method: string, url: string, presign = 0) =>
  create(SignRequestRequestSchema, { method, url, presignExpiresSeconds: presign });

describe("Azure service principal: Authorization: Bearer from accessToken", () => {
  test("the token for the credential's first token_scope, the audit target marks a lent session", async () => {
    const asked: { ns: string; name: string; scopes: readonly string[]; id: string | undefined }[] =
      [];
    const token = randomBytes(24).toString("hex");
    const accessToken = async (
      ns: string,
      name: string,
      scopes: readonly string[],
      id?: string,
    ) => {
      asked.push({ ns, name, scopes, id });
      return { token, expiresAt: new Date(NOW.getTime() + 3600_000), scopes } satisfies AccessToken;
    };
    const provider = azureProvider({ ambient: { now: () => NOW }, accessToken });
    const prepared = provider.prepareSign(req("GET", "https://acct.blob.core.windows.net/c/b.txt"));
    const signed = await prepared.sign(
      principal({ tokenScopes: ["https://acct.blob.core.windows.net/.default", "other"] }),
      noSecrets,
    );
    assert.deepEqual(asked, [
      { ns: "", name: "sp", scopes: ["https://acct.blob.core.windows.net/.default"], id: "id-1" },
    ]);
    const auth = signed.headers.find(([n]) => n === "authorization");
    assert.deepEqual(auth, ["authorization", `Bearer ${token}`]);
    assert.ok(signed.headers.some(([n]) => n === "x-ms-version"));
    assert.equal(signed.keyId, GUID);
    assert.match(prepared.target.action, /^blob:get_object\+entra-session$/);
    assert.ok(!JSON.stringify(prepared.target).includes(token));
  });

  test("no token_scopes: the storage resource", async () => {
    let scopes: readonly string[] = [];
    const provider = azureProvider({
      ambient: { now: () => NOW },
      accessToken: async (_ns, _n, s) => {
        scopes = s;
        return { token: "t", expiresAt: new Date(NOW.getTime() + 60_000), scopes: s };
      },
    });
    await provider
      .prepareSign(req("GET", "https://acct.blob.core.windows.net/c/b"))
      .sign(principal(), noSecrets);
    assert.deepEqual(scopes, ["https://storage.azure.com/.default"]);
  });

  test("without accessToken: failed_precondition; presign: invalid_argument; scopes still apply", async () => {
    const none = azureProvider({ ambient: { now: () => NOW } });
    await assert.rejects(
      none
        .prepareSign(req("GET", "https://acct.blob.core.windows.net/c/b"))
        .sign(principal(), noSecrets),
      (e: unknown) => e instanceof DomainError && e.code === "failed_precondition",
    );
    const some = azureProvider({
      ambient: { now: () => NOW },
      accessToken: async () => ({ token: "t", expiresAt: NOW, scopes: [] }),
    });
    await assert.rejects(
      some
        .prepareSign(req("GET", "https://acct.blob.core.windows.net/c/b", 60))
        .sign(principal(), noSecrets),
      (e: unknown) => e instanceof DomainError && e.code === "invalid_argument",
    );
    const scoped = principal({
      allowedScopes: [{ bucket: "c", prefixes: ["pub/"], actions: ["get_object"] }],
    });
    // Handed back to the caller, a token would be good for any request: a scoped one lends none.
    await assert.rejects(
      some
        .prepareSign(req("GET", "https://acct.blob.core.windows.net/c/pub/x"))
        .sign(scoped, noSecrets),
      (e: unknown) =>
        e instanceof DomainError &&
        e.code === "permission_denied" &&
        /^BearerNotScoped/.test(e.message),
    );
    // Forwarded, the token never leaves the broker: scopes bound the one request.
    const forwarded = { ...noSecrets, forwarded: true };
    const inScope = await some
      .prepareSign(req("GET", "https://acct.blob.core.windows.net/c/pub/x"))
      .sign(scoped, forwarded);
    assert.ok(inScope.headers.some(([n, v]) => n === "authorization" && v === "Bearer t"));
    await assert.rejects(
      some
        .prepareSign(req("GET", "https://acct.blob.core.windows.net/c/secret"))
        .sign(scoped, forwarded),
      (e: unknown) => e instanceof DomainError && /^ActionNotInScope/.test(e.message),
    );
  });
});

describe("Blob request → action", () => {
  const map = (method: string, url: string, headers: [string, string][] = []) => {
    const u = parseRawUrl(url);
    const q = u.query === "" ? [] : u.query.split("&").map((p) => p.split("=") as [string, string]);
    return mapBlobRequest(method, blobTarget(u), q, new RequestHeaders(headers));
  };
  const action = (m: ReturnType<typeof map>) => (m.ok ? m.action : "unmapped");
  const H = "https://acct.blob.core.windows.net";
  const P = "http://127.0.0.1:10000/acct";

  test("path-style and host-style name the same account, container and blob", () => {
    assert.deepEqual(blobTarget(parseRawUrl(`${H}/c/a/b%20c.txt`)), {
      account: "acct",
      container: "c",
      blob: "a/b c.txt",
    });
    assert.deepEqual(blobTarget(parseRawUrl(`${P}/c/a/b%20c.txt`)), {
      account: "acct",
      container: "c",
      blob: "a/b c.txt",
    });
  });

  test("the documented table", () => {
    const table: [string, string, string][] = [
      ["GET", `${H}/c/b`, "get_object"],
      ["HEAD", `${P}/c/b`, "get_object"],
      ["PUT", `${H}/c/b`, "put_object"],
      ["PUT", `${H}/c/b?comp=block&blockid=AA`, "put_object"],
      ["PUT", `${H}/c/b?comp=blocklist`, "put_object"],
      ["DELETE", `${H}/c/b`, "delete_object"],
      ["GET", `${H}/c?restype=container&comp=list`, "list_bucket"],
      ["PUT", `${H}/c?restype=container`, "unmapped"],
      ["PUT", `${H}/c?restype=container&comp=acl`, "unmapped"],
      ["GET", `${H}/?comp=list`, "unmapped"],
      ["PUT", `${H}/c/b?comp=metadata`, "unmapped"],
      ["PUT", `${H}/c/b?comp=lease`, "unmapped"],
      ["GET", `${H}/c/b?comp=tags`, "unmapped"],
      ["POST", `${H}/c/b`, "unmapped"],
    ];
    for (const [method, url, want] of table)
      assert.equal(action(map(method, url)), want, `${method} ${url}`);
  });

  test("list_bucket carries the prefix; a copy carries its source", () => {
    const list = map("GET", `${H}/c?restype=container&comp=list&prefix=data/`);
    assert.ok(list.ok && list.listPrefix === "data/");
    const copy = map("PUT", `${H}/c/b`, [["x-ms-copy-source", `${H}/src/k.txt`]]);
    assert.ok(copy.ok && copy.copySource?.container === "src" && copy.copySource.blob === "k.txt");
    assert.equal(action(map("PUT", `${H}/c/b`, [["x-ms-copy-source", "not a url"]])), "unmapped");
  });
});
