import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type RunningDaemon, removeDir, startDaemon } from "../support/daemon.js";
import { BUF, type ExecResult, exec } from "../support/exec.js";

// The tools people paste from the docs: `buf curl` (with server reflection,
// no --schema) and plain `curl` speaking Connect's JSON over HTTP/1.1.

const SERVICE = "credbroker.v1.CredentialService";
const EXPECTED_SERVICES = [
  "credbroker.v1.CallerService",
  "credbroker.v1.CredentialService",
  "credbroker.v1.KeyService",
  "credbroker.v1.ServerService",
  "credbroker.v1.SigningService",
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
];
const NS = "cli-tools";
const AKID = "AKIAIOSFODNN7EXAMPLE";
const SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLEsessiontoken";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** The `buf curl` flag sets under test: the protocol and how it reaches the port. */
const BUF_PROTOCOLS: { name: string; flags: string[] }[] = [
  { name: "grpc (h2c)", flags: ["--http2-prior-knowledge", "--protocol", "grpc"] },
  { name: "connect (HTTP/1.1)", flags: [] },
  { name: "connect (h2c)", flags: ["--http2-prior-knowledge"] },
  { name: "grpcweb (HTTP/1.1)", flags: ["--protocol", "grpcweb"] },
];

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isObject(value: Json | undefined): value is { [key: string]: Json } {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function parseObject(text: string, what: string): { [key: string]: Json } {
  let parsed: Json;
  try {
    parsed = JSON.parse(text) as Json;
  } catch (err) {
    throw new Error(`${what} is not JSON: ${JSON.stringify(text)}`, { cause: err });
  }
  assert.ok(isObject(parsed), `${what} is not a JSON object: ${text}`);
  return parsed;
}

function field(obj: { [key: string]: Json }, key: string): { [key: string]: Json } {
  const value = obj[key];
  assert.ok(isObject(value), `${key} is not an object in ${JSON.stringify(obj)}`);
  return value;
}

function assertNoSecret(text: string): void {
  for (const secret of [SECRET, SESSION_TOKEN]) {
    assert.ok(!text.includes(secret), "a secret was returned");
  }
  assert.ok(!text.includes("secretAccessKey"), "secretAccessKey appears in the output");
  assert.ok(!text.includes("sessionToken"), "sessionToken appears in the output");
}

interface HttpResult {
  status: number;
  contentType: string;
  body: string;
}

const STATUS_MARKER = "\n--credbroker-test-status--\n";

describe("CLI tools against the real daemon", () => {
  let daemon: RunningDaemon | undefined;
  const running = (): RunningDaemon => {
    assert.ok(daemon !== undefined, "daemon not started");
    return daemon;
  };

  const bufCurl = (flags: string[], args: string[], token?: string): Promise<ExecResult> =>
    exec(BUF, [
      "curl",
      ...flags,
      ...(token === undefined ? [] : ["-H", `authorization: Bearer ${token}`]),
      ...args,
    ]);

  const call = (flags: string[], method: string, body: object, token?: string) =>
    bufCurl(flags, ["-d", JSON.stringify(body), `${running().url}/${SERVICE}/${method}`], token);

  /** Plain curl; returns status, content type and body. */
  const curl = async (args: string[]): Promise<HttpResult> => {
    const res = await exec("curl", [
      "--silent",
      "--show-error",
      "--http1.1",
      "--write-out",
      `${STATUS_MARKER}%{http_code} %{content_type}`,
      ...args,
    ]);
    assert.equal(res.code, 0, `curl failed: ${res.stderr}`);
    const at = res.stdout.lastIndexOf(STATUS_MARKER);
    assert.ok(at >= 0, res.stdout);
    const [status = "", contentType = ""] = res.stdout.slice(at + STATUS_MARKER.length).split(" ");
    return { status: Number(status), contentType, body: res.stdout.slice(0, at) };
  };

  const postJson = (method: string, body: object, headers: string[] = []) =>
    curl([
      "-X",
      "POST",
      "-H",
      "content-type: application/json",
      ...headers.flatMap((h) => ["-H", h]),
      "--data-binary",
      JSON.stringify(body),
      `${running().url}/${SERVICE}/${method}`,
    ]);

  const bearer = () => `authorization: Bearer ${running().token}`;

  before(async () => {
    // Codes, not the failed-authentication throttle (limits.test.ts tests that).
    daemon = await startDaemon({ args: ["--auth-failure-delay", "0"] });
    assert.match(daemon.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  });

  after(async () => {
    if (daemon === undefined) return;
    const exit = await daemon.stop("SIGTERM");
    const output = daemon.output();
    await removeDir(daemon.dataDir);
    assert.deepEqual(exit, { code: 0, signal: null }, output);
    assert.ok(!output.includes(SECRET), "the daemon logged a secret");
  });

  describe("buf curl", () => {
    for (const { name, flags } of BUF_PROTOCOLS) {
      test(`--list-services through reflection, without a token: ${name}`, async () => {
        const res = await bufCurl(flags, ["--list-services", running().url]);
        assert.equal(res.code, 0, res.stderr);
        assert.deepEqual(res.stdout.trim().split("\n").sort(), EXPECTED_SERVICES);
      });
    }

    let created: { [key: string]: Json } | undefined;

    test("CreateCredential over gRPC returns JSON without the secret", async () => {
      const res = await call(
        ["--http2-prior-knowledge", "--protocol", "grpc"],
        "CreateCredential",
        {
          credential: {
            namespace: NS,
            name: "from-buf",
            accessKey: { accessKeyId: AKID, secretAccessKey: SECRET, sessionToken: SESSION_TOKEN },
            description: "made with buf curl",
          },
        },
        running().token,
      );
      assert.equal(res.code, 0, res.stderr);
      assertNoSecret(res.stdout);
      const credential = field(parseObject(res.stdout, "buf curl output"), "credential");
      assert.match(String(credential.id), UUID);
      assert.equal(credential.namespace, NS);
      assert.equal(credential.name, "from-buf");
      assert.deepEqual(credential.accessKey, { accessKeyId: AKID });
      assert.equal(credential.provider, "PROVIDER_AWS");
      assert.equal(credential.enabled, true);
      assert.equal(credential.description, "made with buf curl");
      assert.equal(typeof credential.etag, "string");
      assert.equal(typeof credential.createdAt, "string");
      created = credential;
    });

    for (const { name, flags } of BUF_PROTOCOLS) {
      test(`GetCredential returns what create returned, without the secret: ${name}`, async () => {
        const res = await call(
          flags,
          "GetCredential",
          { namespace: NS, name: "from-buf" },
          running().token,
        );
        assert.equal(res.code, 0, res.stderr);
        assertNoSecret(res.stdout);
        assert.deepEqual(field(parseObject(res.stdout, "buf curl output"), "credential"), created);
      });

      test(`without the token the exit is non-zero and says unauthenticated: ${name}`, async () => {
        const res = await call(flags, "GetCredential", { namespace: NS, name: "from-buf" });
        assert.notEqual(res.code, 0);
        assert.equal(res.stdout, "");
        const err = parseObject(res.stderr, "buf curl error");
        assert.equal(err.code, "unauthenticated");
        assert.match(String(err.message), /authorization/);
      });

      test(`a wrong token is unauthenticated too: ${name}`, async () => {
        const res = await call(
          flags,
          "GetCredential",
          { namespace: NS, name: "from-buf" },
          "cbt_wrong",
        );
        assert.notEqual(res.code, 0);
        assert.equal(parseObject(res.stderr, "buf curl error").code, "unauthenticated");
      });

      test(`a missing credential is not_found, naming it: ${name}`, async () => {
        const res = await call(
          flags,
          "GetCredential",
          { namespace: NS, name: "nope" },
          running().token,
        );
        assert.notEqual(res.code, 0);
        const err = parseObject(res.stderr, "buf curl error");
        assert.equal(err.code, "not_found");
        assert.match(String(err.message), /cli-tools\/nope/);
      });
    }

    test("a bad request is invalid_argument naming the field, with the message decoded", async () => {
      const res = await call(
        ["--http2-prior-knowledge", "--protocol", "grpc"],
        "CreateCredential",
        {
          credential: {
            namespace: NS,
            name: "bad-host",
            accessKey: { accessKeyId: AKID, secretAccessKey: SECRET },
            allowedHosts: ["http://x.com"],
          },
        },
        running().token,
      );
      assert.notEqual(res.code, 0);
      const err = parseObject(res.stderr, "buf curl error");
      assert.equal(err.code, "invalid_argument");
      assert.match(String(err.message), /^allowed_hosts: .*\(allowed_hosts\[0\]\)/);
    });

    test("health Check needs no token", async () => {
      const res = await bufCurl(
        ["--http2-prior-knowledge", "--protocol", "grpc"],
        ["-d", "{}", `${running().url}/grpc.health.v1.Health/Check`],
      );
      assert.equal(res.code, 0, res.stderr);
      assert.deepEqual(parseObject(res.stdout, "health"), { status: "SERVING" });
    });
  });

  describe("plain curl (Connect JSON over HTTP/1.1)", () => {
    before(async () => {
      const res = await postJson(
        "CreateCredential",
        {
          credential: {
            namespace: NS,
            name: "from-curl",
            accessKey: { accessKeyId: AKID, secretAccessKey: SECRET },
          },
        },
        [bearer()],
      );
      assert.equal(res.status, 200, res.body);
    });

    test("POST GetCredential: 200 and JSON without the secret", async () => {
      const res = await postJson("GetCredential", { namespace: NS, name: "from-curl" }, [bearer()]);
      assert.equal(res.status, 200, res.body);
      assert.equal(res.contentType, "application/json");
      assertNoSecret(res.body);
      const credential = field(parseObject(res.body, "response"), "credential");
      assert.equal(credential.name, "from-curl");
      assert.equal(credential.namespace, NS);
      assert.deepEqual(credential.accessKey, { accessKeyId: AKID });
      assert.match(String(credential.id), UUID);
    });

    test("a missing token is HTTP 401 with code unauthenticated", async () => {
      const res = await postJson("GetCredential", { namespace: NS, name: "from-curl" });
      assert.equal(res.status, 401, res.body);
      assert.equal(res.contentType, "application/json");
      const body = parseObject(res.body, "error");
      assert.equal(body.code, "unauthenticated");
      assert.equal(typeof body.message, "string");
    });

    test("a wrong token, or the right token in another scheme, is HTTP 401 too", async () => {
      for (const header of [
        "authorization: Bearer cbt_wrong",
        `authorization: Basic ${running().token}`,
      ]) {
        const res = await postJson("GetCredential", { namespace: NS, name: "from-curl" }, [header]);
        assert.equal(res.status, 401, res.body);
        assert.equal(parseObject(res.body, "error").code, "unauthenticated");
      }
    });

    test("the same JSON POST works over h2c (curl --http2-prior-knowledge)", async () => {
      const res = await exec("curl", [
        "--silent",
        "--show-error",
        "--http2-prior-knowledge",
        "--write-out",
        `${STATUS_MARKER}%{http_version} %{http_code}`,
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "-H",
        bearer(),
        "--data-binary",
        JSON.stringify({ namespace: NS, name: "from-curl" }),
        `${running().url}/${SERVICE}/GetCredential`,
      ]);
      assert.equal(res.code, 0, res.stderr);
      const at = res.stdout.lastIndexOf(STATUS_MARKER);
      assert.equal(res.stdout.slice(at + STATUS_MARKER.length), "2 200");
      const credential = field(parseObject(res.stdout.slice(0, at), "h2 response"), "credential");
      assert.equal(credential.name, "from-curl");
      assertNoSecret(res.stdout);
    });

    test("a missing credential is HTTP 404 not_found", async () => {
      const res = await postJson("GetCredential", { namespace: NS, name: "nope" }, [bearer()]);
      assert.equal(res.status, 404, res.body);
      const body = parseObject(res.body, "error");
      assert.equal(body.code, "not_found");
      assert.match(String(body.message), /cli-tools\/nope/);
    });

    test("an invalid request is HTTP 400 invalid_argument", async () => {
      const res = await postJson("ListCredentials", { namespace: NS, pageSize: -1 }, [bearer()]);
      assert.equal(res.status, 400, res.body);
      const body = parseObject(res.body, "error");
      assert.equal(body.code, "invalid_argument");
      assert.match(String(body.message), /page_size/);
    });

    test("Connect GET of GetCredential (no side effects) returns 200 and the same JSON", async () => {
      const post = await postJson("GetCredential", { namespace: NS, name: "from-curl" }, [
        bearer(),
      ]);
      const message = encodeURIComponent(JSON.stringify({ namespace: NS, name: "from-curl" }));
      const res = await curl([
        "-H",
        bearer(),
        `${running().url}/${SERVICE}/GetCredential?encoding=json&message=${message}`,
      ]);
      assert.equal(res.status, 200, res.body);
      assert.equal(res.contentType, "application/json");
      assert.deepEqual(
        parseObject(res.body, "GET response"),
        parseObject(post.body, "POST response"),
      );
    });

    test("Connect GET of ListCredentials works too", async () => {
      const message = encodeURIComponent(JSON.stringify({ namespace: NS }));
      const res = await curl([
        "-H",
        bearer(),
        `${running().url}/${SERVICE}/ListCredentials?encoding=json&message=${message}`,
      ]);
      assert.equal(res.status, 200, res.body);
      const listed = parseObject(res.body, "list");
      const credentials = listed.credentials;
      assert.ok(Array.isArray(credentials), res.body);
      assert.deepEqual(
        credentials.map((c) => (isObject(c) ? c.name : undefined)),
        ["from-buf", "from-curl"],
      );
      assertNoSecret(res.body);
    });

    test("Connect GET needs the token as well", async () => {
      const message = encodeURIComponent(JSON.stringify({ namespace: NS, name: "from-curl" }));
      const res = await curl([
        `${running().url}/${SERVICE}/GetCredential?encoding=json&message=${message}`,
      ]);
      assert.equal(res.status, 401, res.body);
      assert.equal(parseObject(res.body, "error").code, "unauthenticated");
    });

    test("Connect GET of CreateCredential (has side effects) is refused", async () => {
      const message = encodeURIComponent(
        JSON.stringify({
          credential: {
            namespace: NS,
            name: "via-get",
            accessKey: { accessKeyId: AKID, secretAccessKey: SECRET },
          },
        }),
      );
      const res = await curl([
        "-H",
        bearer(),
        `${running().url}/${SERVICE}/CreateCredential?encoding=json&message=${message}`,
      ]);
      assert.equal(res.status, 405, res.body);
      const check = await postJson("GetCredential", { namespace: NS, name: "via-get" }, [bearer()]);
      assert.equal(check.status, 404, check.body);
    });

    test("UpdateCredential with a JSON field mask in camelCase", async () => {
      const res = await postJson(
        "UpdateCredential",
        {
          namespace: NS,
          name: "from-curl",
          credential: { description: "set by curl", providerDefault: true },
          updateMask: "description,providerDefault",
        },
        [bearer()],
      );
      assert.equal(res.status, 200, res.body);
      const credential = field(parseObject(res.body, "update"), "credential");
      assert.equal(credential.description, "set by curl");
      assert.equal(credential.providerDefault, true);
      assertNoSecret(res.body);
    });

    test("a secret rotated through JSON (accessKey.secretAccessKey) is still never returned", async () => {
      const res = await postJson(
        "UpdateCredential",
        {
          namespace: NS,
          name: "from-curl",
          credential: { accessKey: { secretAccessKey: `${SECRET}2` } },
          updateMask: "accessKey.secretAccessKey",
        },
        [bearer()],
      );
      assert.equal(res.status, 200, res.body);
      assertNoSecret(res.body);
      const verify = await postJson(
        "VerifyCredential",
        { stored: { namespace: NS, name: "from-curl" } },
        [bearer()],
      );
      assert.equal(verify.status, 200, verify.body);
      const body = parseObject(verify.body, "verify");
      assert.equal(body.valid, true);
      const checks = body.checks;
      assert.ok(Array.isArray(checks));
      const secretCheck = checks.find(
        (c) => isObject(c) && c.check === "access_key.secret_access_key.format",
      );
      assert.ok(isObject(secretCheck), verify.body);
      assert.equal(secretCheck.ok, true);
    });

    test("health Check over HTTP/1.1 JSON needs no token", async () => {
      const res = await curl([
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "--data-binary",
        "{}",
        `${running().url}/grpc.health.v1.Health/Check`,
      ]);
      assert.equal(res.status, 200, res.body);
      assert.deepEqual(parseObject(res.body, "health"), { status: "SERVING" });
    });
  });
});
