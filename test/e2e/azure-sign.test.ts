/**
 * SignRequest for Azure Blob Storage against Azurite (test/support/azurite.ts),
 * which verifies Shared Key and SAS signatures, SAS permissions and protocol:
 * requests the daemon signs over gRPC are sent with plain fetch and accepted;
 * a tampered one is refused by Azurite; one outside the credential's scopes
 * is refused by credbroker before anything is signed.
 */
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Provider, TokenPlacement } from "../../gen/credbroker/v1/credential_pb.js";
import {
  SigningService,
  SignRequestRequestSchema,
  type SignRequestResponse,
} from "../../gen/credbroker/v1/signing_service_pb.js";
import { type AzuriteServer, startAzurite } from "../support/azurite.js";
import { credentialClient, type GrpcStatusError, grpcJsClient } from "../support/clients.js";
import { type RunningDaemon, removeDir, startDaemon } from "../support/daemon.js";
import { startTogether } from "../support/start-together.js";

const CONTAINER = "cb-signed";
const OTHER = "cb-other";
const ADMIN = "az-admin";
const SCOPED = "az-scoped";
const EXPIRING = "az-expiring";
const DISABLED = "az-disabled";

type SignInit = Omit<MessageInitShape<typeof SignRequestRequestSchema>, "$typeName">;

describe("SignRequest for Azure Blob Storage against Azurite", () => {
  let azurite: AzuriteServer;
  let daemon: RunningDaemon;
  let signing: ReturnType<typeof grpcJsClient<typeof SigningService>>;
  let credentials: ReturnType<typeof credentialClient>;

  before(async () => {
    [azurite, daemon] = await startTogether([startAzurite(), startDaemon()]);
    credentials = credentialClient(daemon.url, "connect-h2", daemon.token);
    const key = {
      case: "accessKey" as const,
      value: { accessKeyId: azurite.account, secretAccessKey: azurite.accountKey },
    };
    const base = { provider: Provider.AZURE, kind: key, allowedHosts: ["127.0.0.1"] };
    await credentials.createCredential({ credential: { ...base, name: ADMIN } });
    await credentials.createCredential({
      credential: {
        ...base,
        name: SCOPED,
        allowedScopes: [
          {
            bucket: CONTAINER,
            prefixes: ["data/"],
            actions: ["put_object", "get_object", "delete_object", "list_bucket"],
          },
        ],
      },
    });
    await credentials.createCredential({
      credential: {
        ...base,
        name: EXPIRING,
        expiresAt: timestampFromDate(new Date(Date.now() + 600_000)),
      },
    });
    await credentials.createCredential({ credential: { ...base, name: DISABLED, enabled: false } });
    signing = grpcJsClient(SigningService, daemon.url, daemon.token);
    for (const container of [CONTAINER, OTHER]) {
      const signed = await sign(ADMIN, {
        method: "PUT",
        url: `${azurite.endpoint}/${container}?restype=container`,
        headers: [{ name: "content-length", value: "0" }],
      });
      const res = await send(signed, { method: "PUT" });
      assert.equal(res.status, 201, res.text);
    }
  });

  after(async () => {
    signing?.close();
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
    await azurite?.stop();
  });

  function sign(credential: string, init: SignInit): Promise<SignRequestResponse> {
    return signing.client.signRequest(
      create(SignRequestRequestSchema, { namespace: "", credential, method: "GET", ...init }),
    );
  }

  async function send(
    signed: SignRequestResponse,
    init: { method?: string; body?: string; headers?: Record<string, string>; url?: string } = {},
  ): Promise<{ status: number; text: string }> {
    const headers = Object.fromEntries(signed.headers.map((h) => [h.name, h.value]));
    const res = await fetch(init.url ?? signed.url, {
      method: init.method ?? "GET",
      headers: { ...headers, ...init.headers },
      // Bytes, not a string: fetch would add a Content-Type the signature does not cover.
      ...(init.body !== undefined ? { body: new TextEncoder().encode(init.body) } : {}),
    });
    return { status: res.status, text: await res.text() };
  }

  const blobUrl = (container: string, blob: string) => `${azurite.endpoint}/${container}/${blob}`;

  async function put(credential: string, url: string, body: string): Promise<SignResponseAndSend> {
    const signed = await sign(credential, {
      method: "PUT",
      url,
      headers: [
        { name: "x-ms-blob-type", value: "BlockBlob" },
        { name: "content-type", value: "text/plain" },
      ],
      payload: { case: "body", value: new TextEncoder().encode(body) },
    });
    return { signed, res: await send(signed, { method: "PUT", body }) };
  }
  type SignResponseAndSend = { signed: SignRequestResponse; res: { status: number; text: string } };

  test("Shared Key: upload, download, properties, list and delete are accepted by Azurite", async () => {
    const url = blobUrl(CONTAINER, "data/hello%20world.txt");
    const body = "hello from credbroker";
    const { signed, res } = await put(SCOPED, url, body);
    assert.equal(res.status, 201, res.text);
    assert.equal(signed.accessKeyId, azurite.account);
    const auth = signed.headers.find((h) => h.name === "authorization")?.value ?? "";
    assert.match(auth, new RegExp(`^SharedKey ${azurite.account}:[A-Za-z0-9+/]{43}=$`));
    assert.ok(signed.headers.some((h) => h.name === "x-ms-date"));
    assert.ok(signed.headers.some((h) => h.name === "x-ms-version"));

    const get = await send(await sign(SCOPED, { method: "GET", url }));
    assert.equal(get.status, 200, get.text);
    assert.equal(get.text, body);
    const head = await send(await sign(SCOPED, { method: "HEAD", url }), { method: "HEAD" });
    assert.equal(head.status, 200);

    const list = await send(
      await sign(SCOPED, {
        method: "GET",
        url: `${azurite.endpoint}/${CONTAINER}?restype=container&comp=list&prefix=data/`,
      }),
    );
    assert.equal(list.status, 200, list.text);
    assert.match(list.text, /<Name>data\/hello world\.txt<\/Name>/);

    const del = await send(await sign(SCOPED, { method: "DELETE", url }), { method: "DELETE" });
    assert.equal(del.status, 202, del.text);
    assert.equal((await send(await sign(SCOPED, { method: "GET", url }))).status, 404);
  });

  test("Put Block and Put Block List map to put_object and are accepted", async () => {
    const url = blobUrl(CONTAINER, "data/blocks.bin");
    const id = Buffer.from("block-000").toString("base64");
    const block = await sign(SCOPED, {
      method: "PUT",
      url: `${url}?comp=block&blockid=${encodeURIComponent(id)}`,
      payload: { case: "body", value: new TextEncoder().encode("part one") },
    });
    assert.equal((await send(block, { method: "PUT", body: "part one" })).status, 201);
    const xml = `<?xml version="1.0" encoding="utf-8"?><BlockList><Latest>${id}</Latest></BlockList>`;
    const commit = await sign(SCOPED, {
      method: "PUT",
      url: `${url}?comp=blocklist`,
      payload: { case: "body", value: new TextEncoder().encode(xml) },
    });
    assert.equal((await send(commit, { method: "PUT", body: xml })).status, 201);
    assert.equal((await send(await sign(SCOPED, { method: "GET", url }))).text, "part one");
  });

  test("a tampered request is refused by Azurite", async () => {
    const url = blobUrl(CONTAINER, "data/tamper.txt");
    assert.equal((await put(SCOPED, url, "original")).res.status, 201);
    const signed = await sign(SCOPED, { method: "GET", url });
    const other = await send(signed, { url: blobUrl(CONTAINER, "data/other.txt") });
    assert.equal(other.status, 403, other.text);
    assert.match(other.text, /AuthorizationFailure|AuthenticationFailed/);
    const late = await send(signed, { headers: { "x-ms-date": new Date(0).toUTCString() } });
    assert.equal(late.status, 403);
    assert.equal((await send(signed)).status, 200, "the untampered request is accepted");
  });

  async function refusal(credential: string, init: SignInit): Promise<GrpcStatusError> {
    const err = await sign(credential, init).then(
      () => undefined,
      (e: GrpcStatusError) => e,
    );
    assert.ok(err, "signing was refused");
    return err;
  }

  test("outside the scopes: refused by the broker before anything is signed", async () => {
    const cases: [SignInit, RegExp][] = [
      [{ method: "GET", url: blobUrl(CONTAINER, "secret/x.txt") }, /ActionNotInScope/],
      [{ method: "PUT", url: blobUrl(OTHER, "data/x.txt") }, /ActionNotInScope/],
      [{ method: "GET", url: blobUrl(CONTAINER, "data-private/x") }, /ActionNotInScope/],
      [
        { method: "GET", url: `${azurite.endpoint}/${CONTAINER}?restype=container&comp=list` },
        /ActionNotInScope/,
      ],
      [
        { method: "PUT", url: `${azurite.endpoint}/${CONTAINER}?restype=container&comp=acl` },
        /OperationNotScoped/,
      ],
      [
        { method: "GET", url: `${azurite.endpoint}?comp=properties&restype=service` },
        /OperationNotScoped/,
      ],
      [{ method: "PUT", url: blobUrl(CONTAINER, "data/x?comp=metadata") }, /OperationNotScoped/],
      [
        {
          method: "PUT",
          url: blobUrl(CONTAINER, "data/copy.txt"),
          headers: [{ name: "x-ms-copy-source", value: blobUrl(OTHER, "data/x.txt") }],
        },
        /ActionNotInScope/,
      ],
      [{ method: "GET", url: "http://127.0.0.2:1/acct/c/data/x" }, /HostNotAllowed/],
    ];
    for (const [init, rule] of cases) {
      const err = await refusal(SCOPED, init);
      assert.equal(err.code, 7, `${init.method} ${init.url}: ${err.details}`);
      assert.match(err.details, rule);
    }
    const account = await refusal(ADMIN, {
      method: "GET",
      url: `${azurite.origin}/otheraccount/${CONTAINER}/x`,
    });
    assert.match(account.details, /AccountMismatch/);
  });

  test("x-ms-date, x-ms-version and Authorization are the broker's: caller values are refused", async () => {
    for (const name of ["x-ms-date", "X-Ms-Version", "authorization", "date"]) {
      const err = await refusal(ADMIN, {
        method: "GET",
        url: blobUrl(CONTAINER, "data/x"),
        headers: [{ name, value: "Mon, 01 Jan 2024 00:00:00 GMT" }],
      });
      assert.equal(err.code, 3, name);
      assert.doesNotMatch(err.details, /2024/, "the value is not quoted");
    }
    const sas = await refusal(ADMIN, { method: "GET", url: `${blobUrl(CONTAINER, "x")}?sig=abc` });
    assert.equal(sas.code, 3);
  });

  test("disabled and expired credentials sign nothing", async () => {
    const disabled = await refusal(DISABLED, { method: "GET", url: blobUrl(CONTAINER, "a") });
    assert.equal(disabled.code, 7);
    assert.match(disabled.details, /AccessDenied/);
    // An expiring key signs, but no SAS outlives it.
    const late = await refusal(EXPIRING, {
      method: "GET",
      url: blobUrl(CONTAINER, "a"),
      presignExpiresSeconds: 3600,
    });
    assert.equal(late.code, 3);
    assert.match(late.details, /outlive the credential/);
    const ok = await sign(EXPIRING, {
      method: "GET",
      url: blobUrl(CONTAINER, "a"),
      presignExpiresSeconds: 60,
    });
    assert.match(ok.url, /[?&]se=/);
  });

  test("SAS: presigned URLs work with plain fetch, carry only the action's permission, and only for that blob", async () => {
    const url = blobUrl(CONTAINER, "data/sas.txt");
    const upload = await sign(SCOPED, {
      method: "PUT",
      url,
      headers: [{ name: "x-ms-blob-type", value: "BlockBlob" }],
      presignExpiresSeconds: 300,
    });
    const q = new URL(upload.url).searchParams;
    assert.equal(q.get("sr"), "b");
    assert.equal(q.get("sp"), "w");
    assert.equal(q.get("spr"), "https,http", "127.0.0.1 is an allowed IP literal");
    assert.ok(upload.expiresAt);
    const putRes = await fetch(upload.url, {
      method: "PUT",
      headers: { "x-ms-blob-type": "BlockBlob" },
      body: "via sas",
    });
    assert.equal(putRes.status, 201, await putRes.text());

    const download = await sign(SCOPED, { method: "GET", url, presignExpiresSeconds: 300 });
    assert.equal(new URL(download.url).searchParams.get("sp"), "r");
    const got = await fetch(download.url);
    assert.equal(got.status, 200);
    assert.equal(await got.text(), "via sas");

    // The read SAS neither writes nor reads another blob: Azurite refuses both.
    const write = await fetch(download.url, {
      method: "PUT",
      headers: { "x-ms-blob-type": "BlockBlob" },
      body: "overwrite",
    });
    assert.equal(write.status, 403);
    const elsewhere = download.url.replace("data/sas.txt", "data/other.txt");
    assert.equal((await fetch(elsewhere)).status, 403);
    const tampered = download.url.replace(/sp=r/, "sp=rwd");
    assert.equal((await fetch(tampered, { method: "DELETE" })).status, 403);

    const list = await sign(SCOPED, {
      method: "GET",
      url: `${azurite.endpoint}/${CONTAINER}?restype=container&comp=list&prefix=data/`,
      presignExpiresSeconds: 300,
    });
    const lq = new URL(list.url).searchParams;
    assert.equal(lq.get("sr"), "c");
    assert.equal(lq.get("sp"), "l");
    const listed = await fetch(list.url);
    const text = await listed.text();
    assert.equal(listed.status, 200, text);
    assert.match(text, /<Name>data\/sas\.txt<\/Name>/);

    const del = await sign(SCOPED, { method: "DELETE", url, presignExpiresSeconds: 300 });
    assert.equal(new URL(del.url).searchParams.get("sp"), "d");
    assert.equal((await fetch(del.url, { method: "DELETE" })).status, 202);
    assert.equal((await fetch(download.url)).status, 404);
  });

  test("SAS for a Blob endpoint host is https only; unmapped requests get no SAS", async () => {
    await credentials.createCredential({
      credential: {
        name: "az-cloud",
        provider: Provider.AZURE,
        kind: {
          case: "accessKey",
          value: { accessKeyId: azurite.account, secretAccessKey: azurite.accountKey },
        },
      },
    });
    const signed = await sign("az-cloud", {
      method: "GET",
      url: `https://${azurite.account}.blob.core.windows.net/c1/blob.txt`,
      presignExpiresSeconds: 60,
    });
    const q = new URL(signed.url).searchParams;
    assert.equal(q.get("spr"), "https");
    assert.equal(q.get("sr"), "b");
    const header = await sign("az-cloud", {
      method: "GET",
      url: `https://${azurite.account}.blob.core.windows.net/c1/blob.txt`,
    });
    assert.match(
      header.headers.find((h) => h.name === "authorization")?.value ?? "",
      /^SharedKey /,
    );
    const elsewhere = await refusal("az-cloud", {
      method: "GET",
      url: "https://someoneelse.blob.core.windows.net/c1/blob.txt",
    });
    assert.match(elsewhere.details, /HostNotAllowed/);
    const unmapped = await refusal(ADMIN, {
      method: "PUT",
      url: `${azurite.endpoint}/${CONTAINER}?restype=container&comp=acl`,
      presignExpiresSeconds: 60,
    });
    assert.equal(unmapped.code, 3);
  });

  test("create checks Azure shapes; VerifyCredential reports a stored SAS's se and sp", async () => {
    const bad = await credentials
      .createCredential({
        credential: {
          name: "az-bad",
          provider: Provider.AZURE,
          kind: {
            case: "accessKey",
            value: { accessKeyId: "Not_An_Account", secretAccessKey: azurite.accountKey },
          },
        },
      })
      .then(
        () => undefined,
        (e: Error) => e,
      );
    assert.match(String(bad?.message), /access_key\.access_key_id/);
    assert.ok(!String(bad?.message).includes("Not_An_Account"), "the value is not quoted");
    const sas =
      (
        await sign(SCOPED, {
          method: "GET",
          url: blobUrl(CONTAINER, "data/v"),
          presignExpiresSeconds: 120,
        })
      ).url.split("?")[1] ?? "";
    const expiredSas = sas.replace(/se=[^&]+/, "se=2020-01-01T00%3A00%3A00Z");
    for (const [name, token] of [
      ["az-sas", sas],
      ["az-sas-old", expiredSas],
    ] as const) {
      await credentials.createCredential({
        credential: {
          name,
          provider: Provider.AZURE,
          allowedHosts: ["127.0.0.1"],
          kind: { case: "token", value: { token, placement: TokenPlacement.QUERY_STRING } },
        },
      });
    }
    const fresh = await credentials.verifyCredential({
      target: { case: "stored", value: { namespace: "", name: "az-sas" } },
    });
    assert.equal(fresh.valid, true);
    assert.match(fresh.checks.find((k) => k.check === "token.sas.sp")?.message ?? "", /grants r/);
    assert.equal(fresh.checks.find((k) => k.check === "token.sas.se")?.ok, true);
    const old = await credentials.verifyCredential({
      target: { case: "stored", value: { namespace: "", name: "az-sas-old" } },
    });
    assert.equal(old.valid, false);
    assert.equal(old.checks.find((k) => k.check === "token.sas.se")?.ok, false);
    const sig = new URLSearchParams(sas).get("sig") ?? "";
    assert.ok(!JSON.stringify(old.checks).includes(sig));
  });

  test("namespace isolation: a credential of another namespace is not found", async () => {
    const err = await signing.client
      .signRequest(
        create(SignRequestRequestSchema, {
          namespace: "other-team",
          credential: ADMIN,
          method: "GET",
          url: blobUrl(CONTAINER, "data/x"),
        }),
      )
      .then(
        () => undefined,
        (e: GrpcStatusError) => e,
      );
    assert.equal(err?.code, 5);
  });

  test("the account key appears in no output, audit line or file under the data dir", async () => {
    const key = azurite.accountKey;
    const raw = Buffer.from(key, "base64");
    assert.ok(daemon.output().includes("SignRequest"), "the audit lines were written");
    assert.ok(!daemon.output().includes(key));
    const files = await readdir(daemon.dataDir, { recursive: true, withFileTypes: true });
    let scanned = 0;
    for (const f of files) {
      if (!f.isFile()) continue;
      const bytes = await readFile(path.join(f.parentPath, f.name));
      assert.ok(!bytes.includes(key), f.name);
      assert.ok(!bytes.includes(raw), f.name);
      scanned++;
    }
    assert.ok(scanned > 0);
    const shown = await credentials.getCredential({ namespace: "", name: ADMIN });
    assert.ok(
      !JSON.stringify(shown, (_k, v) => (typeof v === "bigint" ? String(v) : v)).includes(key),
    );
  });
});
