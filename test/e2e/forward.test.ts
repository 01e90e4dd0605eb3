/**
 * ForwardRequest over real sockets: the real daemon calls a real HTTPS
 * upstream (test/support/echo-upstream.ts, a stand-in for a token API: it
 * checks the token where each placement puts it and echoes what it got)
 * with a token it never shows, under every guard of docs/SECURITY.md
 * ("ForwardRequest"): allowed hosts, scheme, addresses, redirects, limits,
 * the broker's own headers, redaction and the audit line.
 */
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import { CallerRole } from "../../gen/credbroker/v1/caller_pb.js";
import { CallerService } from "../../gen/credbroker/v1/caller_service_pb.js";
import {
  type Credential,
  TokenPlacement,
  TokenSchema,
} from "../../gen/credbroker/v1/credential_pb.js";
import {
  type ForwardRequestRequestSchema,
  SigningService,
} from "../../gen/credbroker/v1/signing_service_pb.js";
import { credentialClient, rejection, transport } from "../support/clients.js";
import { type RunningDaemon, removeDir, startDaemon, tempDir } from "../support/daemon.js";
import { type EchoUpstream, startEchoUpstream, upstreamPki } from "../support/echo-upstream.js";
import { startTogether } from "../support/start-together.js";

const TOKEN = "tok_FORWARDsecret0123456789abcdefghijKLMN/+=";
const USER = "ci-bot";

type ForwardInit = Omit<MessageInitShape<typeof ForwardRequestRequestSchema>, "$typeName">;
type CredentialInit = MessageInitShape<
  typeof import("../../gen/credbroker/v1/credential_pb.js").CredentialSchema
>;

function token(placement: TokenPlacement, fields: Record<string, string> = {}) {
  return {
    case: "token" as const,
    value: create(TokenSchema, { token: TOKEN, placement, ...fields }),
  };
}

async function filesUnder(dir: string): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(await readFile(path.join(e.parentPath, e.name)));
  }
  return out;
}

describe("ForwardRequest", () => {
  let pkiDir: string;
  let upstream: EchoUpstream;
  let daemon: RunningDaemon;
  let open: RunningDaemon;
  const answers: Buffer[] = [];

  const signing = (d: RunningDaemon, tokenValue = d.token) =>
    createClient(SigningService, transport(d.url, "connect-h2", tokenValue));
  const credentials = (d: RunningDaemon) => credentialClient(d.url, "connect-h2", d.token);
  const forward = async (init: ForwardInit, d: RunningDaemon = daemon) => {
    const res = await signing(d).forwardRequest({ namespace: "fw", method: "GET", ...init });
    answers.push(Buffer.from(res.body));
    for (const h of res.headers) answers.push(Buffer.from(`${h.name}: ${h.value}`));
    return res;
  };
  const json = (body: Uint8Array) => JSON.parse(Buffer.from(body).toString("utf8"));
  const add = (d: RunningDaemon, credential: CredentialInit) =>
    credentials(d).createCredential({ credential: { namespace: "fw", ...credential } });

  before(async () => {
    pkiDir = await tempDir("credbroker-fw-pki-");
    const pki = await upstreamPki(pkiDir);
    upstream = await startEchoUpstream({ pki });
    const env = { NODE_EXTRA_CA_CERTS: pki.ca };
    [daemon, open] = await startTogether([
      startDaemon({
        env,
        args: ["--forward-max-response", "262144", "--forward-max-in-flight", "2"],
      }),
      startDaemon({ env, args: ["--forward-allow-private"] }),
    ]);
    const ip = ["127.0.0.1"];
    await add(daemon, {
      name: "bearer",
      kind: token(TokenPlacement.UNSPECIFIED),
      allowedHosts: ip,
    });
    await add(daemon, {
      name: "header",
      kind: token(TokenPlacement.HEADER, { headerName: "X-Api-Key", prefix: "Key " }),
      allowedHosts: ip,
    });
    await add(daemon, {
      name: "query",
      kind: token(TokenPlacement.QUERY, { queryName: "api_key" }),
      allowedHosts: ip,
    });
    await add(daemon, {
      name: "basic",
      kind: token(TokenPlacement.BASIC, { username: USER }),
      allowedHosts: ip,
    });
    await add(daemon, { name: "nowhere", kind: token(TokenPlacement.BEARER) });
    await add(daemon, {
      name: "by-name",
      kind: token(TokenPlacement.BEARER),
      allowedHosts: ["localhost"],
    });
    await add(daemon, {
      name: "by-name-listed",
      kind: token(TokenPlacement.BEARER),
      allowedHosts: ["localhost", "127.0.0.1"],
    });
    await add(daemon, {
      name: "off",
      kind: token(TokenPlacement.BEARER),
      allowedHosts: ip,
      enabled: false,
    });
    await add(daemon, {
      name: "old",
      kind: token(TokenPlacement.BEARER),
      allowedHosts: ip,
      expiresAt: timestampFromDate(new Date(Date.now() + 1500)),
    });
    for (const [name, hosts] of [
      ["named", ["localhost"]],
      ["named-http", ["http://localhost"]],
      ["self", ["127.0.0.1"]],
    ] as const) {
      await add(open, { name, kind: token(TokenPlacement.BEARER), allowedHosts: [...hosts] });
    }
  });

  after(async () => {
    await Promise.all([daemon?.stop(), open?.stop()]);
    await upstream?.close();
    for (const d of [daemon, open]) if (d) await removeDir(d.dataDir);
    await removeDir(pkiDir);
  });

  describe("each placement reaches a token-checking upstream", () => {
    const cases: [string, string, () => void][] = [
      ["bearer", "/bearer", () => (upstream.expect = { bearer: TOKEN })],
      ["header", "/header", () => (upstream.expect = { header: ["x-api-key", `Key ${TOKEN}`] })],
      ["query", "/query", () => (upstream.expect = { query: ["api_key", TOKEN] })],
      ["basic", "/basic", () => (upstream.expect = { basic: [USER, TOKEN] })],
    ];
    for (const [name, route, expecting] of cases) {
      test(`${name}: 200 with the token, and the answer never shows it`, async () => {
        expecting();
        const res = await forward({ credential: name, url: `${upstream.url}${route}?x=1` });
        assert.equal(res.status, 200, Buffer.from(res.body).toString());
        // The upstream echoes what it received: the token (or its Basic form) came back redacted.
        const text = Buffer.from(res.body).toString();
        assert.ok(!text.includes(TOKEN) && !text.includes(encodeURIComponent(TOKEN)), text);
        assert.equal(res.redacted, true);
        assert.ok(text.includes("[redacted]"), text);
      });
    }

    test("without the token in the right place the same upstream says 401", async () => {
      upstream.expect = { bearer: "another-token" };
      const res = await forward({ credential: "bearer", url: `${upstream.url}/bearer` });
      assert.equal(res.status, 401);
    });

    test("an echo of every header and the body comes back with the token redacted in headers too", async () => {
      const res = await forward({
        credential: "bearer",
        method: "POST",
        url: `${upstream.url}/echo`,
        headers: [{ name: "content-type", value: "text/plain" }],
        body: new TextEncoder().encode("hello upstream"),
      });
      assert.equal(res.status, 200);
      const echoed = json(res.body);
      assert.equal(echoed.method, "POST");
      assert.equal(echoed.body, "hello upstream");
      assert.equal(echoed.headers.authorization, "Bearer [redacted]");
      const auth = res.headers.find((h) => h.name === "x-echo-auth");
      assert.equal(auth?.value, "Bearer [redacted]");
    });

    test("a gzip answer is decoded, then redacted", async () => {
      const res = await forward({ credential: "bearer", url: `${upstream.url}/gzip` });
      assert.equal(res.status, 200);
      assert.equal(json(res.body).headers.authorization, "Bearer [redacted]");
      assert.ok(!res.headers.some((h) => h.name.toLowerCase() === "content-encoding"));
    });

    test("an answer without the secret is not marked redacted", async () => {
      const res = await forward({ credential: "bearer", url: `${upstream.url}/hop` });
      assert.equal(res.redacted, false);
      assert.equal(Buffer.from(res.body).toString(), "hop");
    });
  });

  describe("guards", () => {
    test("fail closed: no allowed_hosts is failed_precondition and says to set them", async () => {
      const err = await rejection(forward({ credential: "nowhere", url: `${upstream.url}/echo` }));
      assert.equal(err.code, Code.FailedPrecondition);
      assert.match(err.rawMessage, /allowed_hosts/);
    });

    test("a host outside allowed_hosts is permission_denied, naming the rule, not the host", async () => {
      const err = await rejection(
        forward({ credential: "bearer", url: `https://[::1]:${upstream.port}/echo` }),
      );
      assert.equal(err.code, Code.PermissionDenied);
      assert.match(err.rawMessage, /HostNotAllowed/);
      assert.ok(!err.rawMessage.includes("::1"));
    });

    test("user info in the URL is invalid_argument and never quoted", async () => {
      const err = await rejection(
        forward({
          credential: "bearer",
          url: `https://me:pw-SECRET@127.0.0.1:${upstream.port}/echo`,
        }),
      );
      assert.equal(err.code, Code.InvalidArgument);
      assert.ok(!err.rawMessage.includes("pw-SECRET"));
    });

    test("localhost resolves to 127.0.0.1: refused unless that address is listed", async () => {
      const err = await rejection(
        forward({ credential: "by-name", url: `https://localhost:${upstream.port}/echo` }),
      );
      assert.equal(err.code, Code.PermissionDenied);
      assert.match(err.rawMessage, /AddressNotAllowed/);
      const res = await forward({
        credential: "by-name-listed",
        url: `https://localhost.:${upstream.port}/echo`,
      });
      assert.equal(res.status, 200, "a trailing dot names the same host; the IP literal is listed");
    });

    test("--forward-allow-private: the same name is reached, over https only unless http:// is listed", async () => {
      const ok = await forward(
        { credential: "named", url: `https://localhost:${upstream.port}/echo` },
        open,
      );
      assert.equal(ok.status, 200);
      const plain = await startEchoUpstream({});
      try {
        const port = new URL(plain.url).port;
        const err = await rejection(
          forward({ credential: "named", url: `http://localhost:${port}/echo` }, open),
        );
        assert.equal(err.code, Code.PermissionDenied);
        assert.match(err.rawMessage, /SchemeNotAllowed/);
        const res = await forward(
          { credential: "named-http", url: `http://localhost:${port}/echo` },
          open,
        );
        assert.equal(res.status, 200);
        assert.equal(plain.seen.length, 1);
      } finally {
        await plain.close();
      }
    });

    test("the daemon's own listeners are never reached, even listed and with --forward-allow-private", async () => {
      const port = new URL(open.url).port;
      const err = await rejection(
        forward({ credential: "self", url: `http://127.0.0.1:${port}/` }, open),
      );
      assert.equal(err.code, Code.PermissionDenied);
      assert.match(err.rawMessage, /AddressNotAllowed/);
    });

    test("a 302 comes back as it is; the redirect is not followed", async () => {
      const before = upstream.seen.length;
      const res = await forward({ credential: "bearer", url: `${upstream.url}/redirect` });
      assert.equal(res.status, 302);
      assert.equal(
        res.headers.find((h) => h.name === "location")?.value,
        "https://elsewhere.example/landing",
      );
      assert.equal(upstream.seen.length, before + 1);
    });

    test("an answer over --forward-max-response is resource_exhausted and the connection is dropped", async () => {
      const closedBefore = upstream.connections().closed;
      const err = await rejection(
        forward({ credential: "bearer", url: `${upstream.url}/big?bytes=${8 * 1024 * 1024}` }),
      );
      assert.equal(err.code, Code.ResourceExhausted);
      const deadline = Date.now() + 5000;
      while (upstream.connections().closed === closedBefore && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(upstream.connections().closed > closedBefore, "the upstream's socket was closed");
      const small = await forward({ credential: "bearer", url: `${upstream.url}/big?bytes=1000` });
      assert.equal(small.body.length, 1000);
    });

    test("a slow upstream is deadline_exceeded at timeout_ms, before headers and mid-body", async () => {
      for (const url of [`${upstream.url}/slow?ms=10000`, `${upstream.url}/drip`]) {
        const started = Date.now();
        const err = await rejection(forward({ credential: "bearer", url, timeoutMs: 700 }));
        assert.equal(err.code, Code.DeadlineExceeded, url);
        assert.ok(Date.now() - started < 5000, `${url} took ${Date.now() - started} ms`);
      }
    });

    test("timeout_ms above 120000 is invalid_argument", async () => {
      const err = await rejection(
        forward({ credential: "bearer", url: `${upstream.url}/echo`, timeoutMs: 120_001 }),
      );
      assert.equal(err.code, Code.InvalidArgument);
    });

    test("at most --forward-max-in-flight forwards per caller run at once", async () => {
      const slow = () => forward({ credential: "bearer", url: `${upstream.url}/slow?ms=1500` });
      const results = await Promise.allSettled([slow(), slow(), slow()]);
      const codes = results.map((r) =>
        r.status === "fulfilled" ? "ok" : (r.reason as { code: Code }).code,
      );
      assert.equal(codes.filter((c) => c === "ok").length, 2, String(codes));
      assert.ok(codes.includes(Code.ResourceExhausted), String(codes));
      // Slots are given back: the next one runs.
      assert.equal((await slow()).status, 200);
    });

    test("the broker's headers cannot be set by the caller", async () => {
      for (const name of ["Authorization", "Host", "proxy-authorization"]) {
        const err = await rejection(
          forward({
            credential: "bearer",
            url: `${upstream.url}/echo`,
            headers: [{ name, value: "x" }],
          }),
        );
        assert.equal(err.code, Code.InvalidArgument, name);
        assert.ok(!err.rawMessage.includes(": x"), err.rawMessage);
      }
      const header = await rejection(
        forward({
          credential: "header",
          url: `${upstream.url}/echo`,
          headers: [{ name: "x-api-key", value: "mine" }],
        }),
      );
      assert.equal(header.code, Code.InvalidArgument);
      const query = await rejection(
        forward({ credential: "query", url: `${upstream.url}/echo?api_key=mine` }),
      );
      assert.equal(query.code, Code.InvalidArgument);
    });

    test("hop-by-hop headers are dropped both ways", async () => {
      const res = await forward({
        credential: "bearer",
        url: `${upstream.url}/echo`,
        headers: [
          { name: "Connection", value: "x-caller-hop" },
          { name: "x-caller-hop", value: "1" },
          { name: "TE", value: "trailers" },
          { name: "Upgrade", value: "h2c" },
          { name: "x-kept", value: "yes" },
        ],
      });
      const seen = json(res.body).headers;
      assert.equal(seen["x-kept"], "yes");
      for (const h of ["x-caller-hop", "te", "upgrade"]) assert.equal(seen[h], undefined, h);
      const hop = await forward({ credential: "bearer", url: `${upstream.url}/hop` });
      const names = hop.headers.map((h) => h.name.toLowerCase());
      assert.ok(names.includes("x-kept"));
      for (const h of ["connection", "keep-alive", "x-private-hop"])
        assert.ok(!names.includes(h), h);
    });

    test("disabled and expired credentials forward nothing", async () => {
      const before = upstream.seen.length;
      const off = await rejection(forward({ credential: "off", url: `${upstream.url}/echo` }));
      assert.equal(off.code, Code.PermissionDenied);
      await new Promise((r) => setTimeout(r, 1600));
      const old = await rejection(forward({ credential: "old", url: `${upstream.url}/echo` }));
      assert.equal(old.code, Code.PermissionDenied);
      assert.match(old.rawMessage, /ExpiredCredentials/);
      assert.equal(upstream.seen.length, before);
    });

    test("roles: a signer forwards, a reader may not, and another namespace's caller sees nothing", async () => {
      const callers = createClient(
        CallerService,
        transport(daemon.url, "connect-h2", daemon.token),
      );
      const mint = async (name: string, role: CallerRole, namespaces: string[]) =>
        (await callers.createCaller({ caller: { name, role, namespaces } })).token;
      const [signer, reader, stranger] = await Promise.all([
        mint("fw-signer", CallerRole.SIGNER, ["fw"]),
        mint("fw-reader", CallerRole.READER, ["fw"]),
        mint("fw-stranger", CallerRole.SIGNER, ["elsewhere"]),
      ]);
      const as = (t: string) =>
        signing(daemon, t).forwardRequest({
          namespace: "fw",
          credential: "bearer",
          url: `${upstream.url}/hop`,
        });
      assert.equal((await as(signer)).status, 200);
      assert.equal((await rejection(as(reader))).code, Code.PermissionDenied);
      assert.equal((await rejection(as(stranger))).code, Code.NotFound);
    });
  });

  describe("audit and secrets", () => {
    test("one audit line per forward: caller, credential, method, host, path without query, status, bytes, duration", async () => {
      await forward({ credential: "query", url: `${upstream.url}/echo?secretparam=1` });
      const lines = (await readFile(path.join(daemon.dataDir, "audit.log"), "utf8"))
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => String(l.rpc).endsWith("/ForwardRequest"));
      const last = lines.at(-1);
      assert.ok(last);
      assert.equal(last.caller, "admin");
      assert.equal(last.credential, "query");
      assert.equal(last.namespace, "fw");
      assert.equal(last.method, "GET");
      assert.equal(last.host, "127.0.0.1");
      assert.equal(last.path, "/echo");
      assert.equal(last.status, 200);
      assert.equal(last.decision, "allow");
      assert.equal(typeof last.bytesReceived, "number");
      assert.equal(typeof last.durationMs, "number");
      assert.ok(!JSON.stringify(lines).includes("secretparam"), "no query string in the audit log");
      // Refusals are lines too.
      assert.ok(lines.some((l) => l.decision === "deny"));
      assert.ok(lines.some((l) => l.decision === "error"));
    });

    test("the token is nowhere: answers, daemon output, audit log, data dir", async () => {
      const forms = [
        TOKEN,
        encodeURIComponent(TOKEN),
        Buffer.from(`${USER}:${TOKEN}`).toString("base64"),
      ];
      const haystacks: [string, Buffer][] = [
        ...answers.map((a, i): [string, Buffer] => [`answer ${i}`, a]),
        ["daemon output", Buffer.from(daemon.output() + open.output())],
        ...(await filesUnder(daemon.dataDir)).map((f, i): [string, Buffer] => [
          `data file ${i}`,
          f,
        ]),
      ];
      for (const [where, hay] of haystacks) {
        for (const form of forms) assert.ok(!hay.includes(form), `${where} holds the token`);
      }
      assert.ok(answers.length > 10);
    });
  });
});

export type { Credential };
