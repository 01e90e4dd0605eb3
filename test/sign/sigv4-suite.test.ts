/**
 * The AWS SigV4 test suite (test/fixtures/sigv4-testsuite, Apache-2.0), run
 * end to end: each case's credential is stored in a real daemon composed with
 * the suite's fixed clock, and each request is signed through
 * SigningService.SignRequest over gRPC (grpc-js), in header mode and in query
 * (presign) mode, and compared with the suite's expected signature.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { pino } from "pino";
import { Provider } from "../../gen/credbroker/v1/credential_pb.js";
import { CredentialService } from "../../gen/credbroker/v1/credential_service_pb.js";
import {
  SigningService,
  type SignRequestResponse,
} from "../../gen/credbroker/v1/signing_service_pb.js";
import { type Daemon, startDaemon } from "../../src/daemon/serve.js";
import { grpcJsClient, transport } from "../support/clients.js";
import { testConfig } from "../support/compose.js";
import { removeDir, tempDir } from "../support/daemon.js";

const SUITE = fileURLToPath(new URL("../../../test/fixtures/sigv4-testsuite/v4/", import.meta.url));

/**
 * The one case not run as written: the suite expects a session token that is
 * left out of the signature and added afterwards, which SignRequest never does
 * (an unsigned token could be swapped in transit). It is checked below to be
 * signed instead.
 */
const EXCLUDED = new Map([
  ["post-sts-header-after", "expects the session token left unsigned; SignRequest always signs it"],
]);

interface Context {
  credentials: { access_key_id: string; secret_access_key: string; token?: string };
  expiration_in_seconds: number;
  normalize: boolean;
  region: string;
  service: string;
  sign_body: boolean;
  timestamp: string;
  omit_session_token?: boolean;
}

interface SuiteCase {
  name: string;
  context: Context;
  method: string;
  path: string;
  headers: [string, string][];
  body: string;
}

/** request.txt: request line (the path may hold spaces), headers (obs-fold continued), body. */
function parseRequest(text: string): Pick<SuiteCase, "method" | "path" | "headers" | "body"> {
  const lines = text.split("\n");
  const first = lines.shift() ?? "";
  const method = first.slice(0, first.indexOf(" "));
  const path = first.slice(first.indexOf(" ") + 1, first.lastIndexOf(" HTTP/"));
  const headers: [string, string][] = [];
  while (lines.length > 0) {
    const line = lines.shift() ?? "";
    if (line === "") break;
    const last = headers.at(-1);
    if (/^[ \t]/.test(line) && last !== undefined) {
      // Obsolete line folding means a single space (RFC 9112 §5.2): HTTP
      // clients cannot send a line break inside a value, and SignRequest refuses one.
      last[1] = `${last[1]} ${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(":");
    headers.push([line.slice(0, colon), line.slice(colon + 1)]);
  }
  return { method, path, headers, body: lines.join("\n") };
}

const cases: SuiteCase[] = readdirSync(SUITE)
  .sort()
  .map((name) => ({
    name,
    context: JSON.parse(readFileSync(path.join(SUITE, name, "context.json"), "utf8")) as Context,
    ...parseRequest(readFileSync(path.join(SUITE, name, "request.txt"), "utf8")),
  }));

function expected(name: string, file: string): string {
  return readFileSync(path.join(SUITE, name, file), "utf8");
}

/** The decoded query parameters of a request line or URL, sorted: a set to compare. */
function paramSet(urlOrLine: string): string[] {
  const query = urlOrLine.slice(urlOrLine.indexOf("?") + 1).replace(/ HTTP\/1\.1[\s\S]*$/, "");
  return query
    .split("&")
    .filter(Boolean)
    .map((p) => {
      const [k = "", v = ""] = p.split("=");
      return `${decodeURIComponent(k)}=${decodeURIComponent(v)}`;
    })
    .sort();
}

describe("AWS SigV4 test suite through SignRequest over gRPC", () => {
  let daemon: Daemon;
  let dataDir: string;
  let signing: ReturnType<typeof grpcJsClient<typeof SigningService>>;
  const credentialFor = new Map<string, string>();

  before(async () => {
    dataDir = await tempDir();
    const clock = new Date(cases[0]?.context.timestamp ?? "");
    daemon = await startDaemon(testConfig(dataDir), pino({ level: "silent" }), {
      now: () => clock,
      newId: randomUUID,
    });
    const token = (await readFile(path.join(dataDir, "admin.token"), "utf8")).trim();
    const credentials = createClient(CredentialService, transport(daemon.url, "connect-h2", token));
    // One stored credential per distinct (key, secret, token) in the suite.
    for (const c of cases) {
      const { access_key_id, secret_access_key, token: sessionToken } = c.context.credentials;
      const id = `${access_key_id}|${secret_access_key}|${sessionToken ?? ""}`;
      if (credentialFor.has(id)) continue;
      const name = `suite-${credentialFor.size}`;
      await credentials.createCredential({
        credential: {
          namespace: "sigv4",
          name,
          kind: {
            case: "accessKey",
            value: {
              accessKeyId: access_key_id,
              secretAccessKey: secret_access_key,
              ...(sessionToken ? { sessionToken } : {}),
            },
          },
        },
      });
      credentialFor.set(id, name);
    }
    signing = grpcJsClient(SigningService, daemon.url, token);
  });

  after(async () => {
    signing.close();
    await daemon.stop();
    await removeDir(dataDir);
  });

  function sign(c: SuiteCase, presign: boolean): Promise<SignRequestResponse> {
    const { access_key_id, secret_access_key, token } = c.context.credentials;
    const host = c.headers.find(([n]) => n.toLowerCase() === "host")?.[1] ?? "";
    return signing.client.signRequest({
      $typeName: "credbroker.v1.SignRequestRequest",
      provider: Provider.UNSPECIFIED,
      namespace: "sigv4",
      credential: credentialFor.get(`${access_key_id}|${secret_access_key}|${token ?? ""}`) ?? "",
      method: c.method,
      url: `https://${host}${c.path}`,
      headers: c.headers.map(([name, value]) => ({
        $typeName: "credbroker.v1.HttpHeader",
        name,
        value,
      })),
      payload:
        c.body !== "" || c.context.sign_body
          ? { case: "body", value: Buffer.from(c.body) }
          : { case: undefined },
      region: c.context.region,
      service: c.context.service,
      presignExpiresSeconds: presign ? c.context.expiration_in_seconds : 0,
      normalizePath: c.context.normalize,
    });
  }

  test("the suite is complete: 38 cases, one exclusion with its reason", () => {
    assert.equal(cases.length, 38);
    for (const name of EXCLUDED.keys())
      assert.ok(
        cases.some((c) => c.name === name),
        name,
      );
  });

  for (const c of cases.filter((k) => !EXCLUDED.has(k.name))) {
    test(`${c.name}: header mode`, async () => {
      const res = await sign(c, false);
      const want = expected(c.name, "header-signed-request.txt");
      const wantAuth = /^Authorization:(.*)$/m.exec(want)?.[1];
      const got = new Map(res.headers.map((h) => [h.name.toLowerCase(), h.value]));
      assert.equal(got.get("authorization"), wantAuth);
      assert.equal(got.get("x-amz-date"), /^X-Amz-Date:(.*)$/m.exec(want)?.[1]);
      const wantToken = /^X-Amz-Security-Token:(.*)$/m.exec(want)?.[1];
      assert.equal(got.get("x-amz-security-token"), wantToken);
      assert.equal(res.accessKeyId, "AKIDEXAMPLE");
    });

    test(`${c.name}: query mode (presigned URL)`, async () => {
      const res = await sign(c, true);
      const want = expected(c.name, "query-signed-request.txt").split("\n")[0] ?? "";
      assert.deepEqual(paramSet(res.url), paramSet(want));
      assert.equal(
        new URL(res.url).searchParams.get("X-Amz-Signature"),
        expected(c.name, "query-signature.txt").trim(),
      );
    });
  }

  test("post-sts-header-after (excluded as written): the session token is signed, never appended unsigned", async () => {
    const c = cases.find((k) => k.name === "post-sts-header-after");
    assert.ok(c);
    const res = await sign(c, false);
    const auth = res.headers.find((h) => h.name === "authorization")?.value ?? "";
    assert.match(auth, /SignedHeaders=host;x-amz-date;x-amz-security-token,/);
    assert.equal(
      res.headers.find((h) => h.name === "x-amz-security-token")?.value,
      c.context.credentials.token,
    );
  });
});
