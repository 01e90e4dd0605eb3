/**
 * The API port over TLS and mutual TLS, with real certificates made by the
 * openssl CLI: every client (Connect over HTTP/2 and HTTP/1.1, gRPC through
 * connect-node and through grpc-js, curl) works over TLS; under mutual TLS a
 * client without a certificate from the client CA never gets past the
 * handshake, and a verified certificate whose subject is a caller's
 * certificate_subject is that caller when no bearer token is sent.
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import tls from "node:tls";
import { create } from "@bufbuild/protobuf";
import {
  type Client,
  Code,
  ConnectError,
  createClient,
  type Interceptor,
} from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { CallerRole } from "../../gen/credbroker/v1/caller_pb.js";
import { CallerService } from "../../gen/credbroker/v1/caller_service_pb.js";
import {
  CreateCredentialRequestSchema,
  CredentialService,
  ListCredentialsRequestSchema,
} from "../../gen/credbroker/v1/credential_service_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { certificateSubject } from "../../src/api/peer-certificate.js";
import { assertOpenssl, keyAndCsr, selfSignedCa, signCsr } from "../support/certs.js";
import { type GrpcStatusError, grpcJsClient } from "../support/clients.js";
import { type RunningDaemon, removeDir, runCli, startDaemon, tempDir } from "../support/daemon.js";
import { exec } from "../support/exec.js";

/** PEM files of a small PKI, and their contents. */
interface Pki {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  /** "CN=ci,O=team-a", signed by the CA. */
  clientCert: string;
  clientKey: string;
  /** "CN=stranger,O=team-a", signed by the CA: a certificate no caller has. */
  strangerCert: string;
  strangerKey: string;
  /** "CN=ci,O=team-a" again, but signed by another CA. */
  rogueCert: string;
  rogueKey: string;
}

const CI_SUBJECT = "CN=ci,O=team-a";

async function makePki(dir: string): Promise<Pki> {
  const client = "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n";
  await selfSignedCa(dir, "ca", "credbroker test CA");
  await selfSignedCa(dir, "other-ca", "another CA");
  await keyAndCsr(dir, "server", "/CN=127.0.0.1");
  await signCsr(
    dir,
    "server",
    "ca",
    "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n",
    1,
  );
  await keyAndCsr(dir, "client", "/CN=ci/O=team-a");
  await signCsr(dir, "client", "ca", client, 2);
  await keyAndCsr(dir, "stranger", "/CN=stranger/O=team-a");
  await signCsr(dir, "stranger", "ca", client, 3);
  await keyAndCsr(dir, "rogue", "/CN=ci/O=team-a");
  await signCsr(dir, "rogue", "other-ca", client, 4);
  const file = (name: string) => path.join(dir, name);
  return {
    dir,
    caCert: file("ca.crt"),
    serverCert: file("server.crt"),
    serverKey: file("server.key"),
    clientCert: file("client.crt"),
    clientKey: file("client.key"),
    strangerCert: file("stranger.crt"),
    strangerKey: file("stranger.key"),
    rogueCert: file("rogue.crt"),
    rogueKey: file("rogue.key"),
  };
}

/** TLS options for a client: trust `ca`, present `cert`/`key` when given. */
interface ClientTls {
  ca: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

type Protocol = "connect-h2" | "connect-h1" | "grpc" | "grpc-web-h2";

function bearer(token: string | undefined): Interceptor {
  return (next) => (req) => {
    if (token !== undefined) req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}

function tlsTransport(url: string, protocol: Protocol, nodeOptions: ClientTls, token?: string) {
  const interceptors = [bearer(token)];
  switch (protocol) {
    case "connect-h2":
      return createConnectTransport({ baseUrl: url, httpVersion: "2", nodeOptions, interceptors });
    case "connect-h1":
      return createConnectTransport({
        baseUrl: url,
        httpVersion: "1.1",
        nodeOptions,
        interceptors,
      });
    case "grpc":
      return createGrpcTransport({ baseUrl: url, nodeOptions, interceptors });
    case "grpc-web-h2":
      return createGrpcWebTransport({ baseUrl: url, httpVersion: "2", nodeOptions, interceptors });
  }
}

function credentials(
  url: string,
  protocol: Protocol,
  nodeOptions: ClientTls,
  token?: string,
): Client<typeof CredentialService> {
  return createClient(CredentialService, tlsTransport(url, protocol, nodeOptions, token));
}

async function code(call: Promise<unknown>): Promise<Code | "ok"> {
  try {
    await call;
    return "ok";
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

/**
 * A bare TLS handshake (ALPN h2) and a first read: resolves with the error
 * code the client sees, "closed" when the server hangs up without one, or
 * "connected" when the server keeps the connection open for a second.
 */
function handshake(port: number, opts: ClientTls): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: "127.0.0.1", port, ALPNProtocols: ["h2"], ...opts });
    // TLS 1.3: the client's handshake completes before the server checks
    // its certificate; the server's verdict (an alert, or hanging up)
    // arrives on the first read.
    let outcome: string | undefined;
    const timer = setTimeout(() => {
      outcome ??= "connected";
      socket.destroy();
    }, 1000);
    socket.once("error", (err: NodeJS.ErrnoException) => {
      outcome ??= err.code ?? err.message;
    });
    socket.once("close", () => {
      clearTimeout(timer);
      resolve(outcome ?? "closed");
    });
    socket.resume();
  });
}

const key = (id: string) => ({
  case: "accessKey" as const,
  value: { accessKeyId: id, secretAccessKey: `secret-${id}-0000000000000000000000` },
});

describe("TLS and mutual TLS on the API port", () => {
  let pki: Pki;
  let ca: Buffer;

  before(async () => {
    await assertOpenssl();
    pki = await makePki(await tempDir("credbroker-tls-"));
    ca = await readFile(pki.caCert);
  });

  after(async () => {
    if (pki) await removeDir(pki.dir);
  });

  describe("TLS without a client CA", () => {
    let daemon: RunningDaemon;

    before(async () => {
      daemon = await startDaemon({
        args: ["--tls-cert", pki.serverCert, "--tls-key", pki.serverKey],
      });
      const admin = credentials(daemon.url, "connect-h2", { ca }, daemon.token);
      await admin.createCredential({
        credential: { name: "tls-key", kind: key("AKIATLSTLSTLSTLSTLS1") },
      });
    });

    after(async () => {
      if (daemon) {
        assert.deepEqual(await daemon.stop(), { code: 0, signal: null });
        await removeDir(daemon.dataDir);
      }
    });

    test("the listener's URL is https; the log says TLS, not mutual", () => {
      assert.match(daemon.url, /^https:\/\/127\.0\.0\.1:\d+$/);
      assert.match(daemon.output(), /"mutualTls":false[^\n]*"msg":"listening"/);
    });

    for (const protocol of ["connect-h2", "connect-h1", "grpc", "grpc-web-h2"] as const) {
      test(`${protocol} with the bearer token: List; without it: unauthenticated`, async () => {
        const res = await credentials(daemon.url, protocol, { ca }, daemon.token).listCredentials(
          {},
        );
        assert.deepEqual(
          res.credentials.map((c) => c.name),
          ["tls-key"],
        );
        assert.equal(
          await code(credentials(daemon.url, protocol, { ca }).listCredentials({})),
          Code.Unauthenticated,
        );
      });
    }

    test("@grpc/grpc-js over createSsl(ca) with the bearer token", async () => {
      const { client, close } = grpcJsClient(
        CredentialService,
        daemon.url,
        daemon.token,
        grpc.credentials.createSsl(ca),
      );
      try {
        const res = await client.listCredentials(create(ListCredentialsRequestSchema, {}));
        assert.deepEqual(
          res.credentials.map((c) => c.name),
          ["tls-key"],
        );
      } finally {
        close();
      }
    });

    test("curl --cacert: Connect JSON over HTTP/2 and HTTP/1.1", async () => {
      for (const [flag, version] of [
        ["--http2", "2"],
        ["--http1.1", "1.1"],
      ] as const) {
        const r = await exec("curl", [
          "-sS",
          flag,
          "--cacert",
          pki.caCert,
          "-H",
          `authorization: Bearer ${daemon.token}`,
          "-H",
          "content-type: application/json",
          "-d",
          "{}",
          "-w",
          "\n%{http_version} %{http_code}",
          `${daemon.url}/credbroker.v1.CredentialService/ListCredentials`,
        ]);
        assert.equal(r.code, 0, r.stderr);
        const [body, status] = r.stdout.split("\n");
        assert.equal(status, `${version} 200`);
        assert.match(body ?? "", /"name":"tls-key"/);
      }
    });

    test("health needs no token; a client that does not trust the CA fails the handshake", async () => {
      const health = createClient(Health, tlsTransport(daemon.url, "grpc", { ca }));
      const res = await health.check({});
      assert.equal(res.status, HealthCheckResponse_ServingStatus.SERVING);

      const untrusting = createClient(
        Health,
        createGrpcTransport({ baseUrl: daemon.url, nodeOptions: {} }),
      );
      const err = ConnectError.from(
        await untrusting.check({}).then(
          () => undefined,
          (e) => e,
        ),
      );
      assert.equal(err.code, Code.Internal);
      assert.match(err.message, /unable to verify the first certificate/);

      const cleartext = await exec("curl", [
        "-sS",
        "--http2-prior-knowledge",
        "-H",
        "content-type: application/json",
        "-d",
        "{}",
        `${daemon.url.replace("https:", "http:")}/grpc.health.v1.Health/Check`,
      ]);
      assert.notEqual(cleartext.code, 0, "cleartext HTTP/2 must not be served on a TLS port");
    });
  });

  test("SIGTERM over TLS: in-flight calls finish, open connections close, exit 0 well before the grace", async () => {
    const daemon = await startDaemon({
      args: ["--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--shutdown-grace", "30"],
    });
    try {
      const acked: string[] = [];
      const clients = (["connect-h2", "connect-h1"] as const).map((p) =>
        credentials(daemon.url, p, { ca }, daemon.token),
      );
      // Open (then idle) connections of both kinds, which must not hold the drain.
      for (const c of clients) await c.listCredentials({});
      const calls = Array.from({ length: 60 }, (_, i) =>
        (clients[i % 2] as Client<typeof CredentialService>)
          .createCredential({
            credential: { name: `drain-${i}`, kind: key("AKIADRAINDRAINDRAIN1") },
          })
          .then(
            () => {
              acked.push(`drain-${i}`);
            },
            (err: unknown) => {
              // Calls that arrive after the drain began are refused cleanly, never hung.
              assert.ok(err instanceof ConnectError, String(err));
            },
          ),
      );
      await new Promise((r) => setTimeout(r, 20));
      const started = Date.now();
      const exit = await daemon.stop("SIGTERM");
      await Promise.all(calls);
      assert.deepEqual(exit, { code: 0, signal: null });
      assert.ok(Date.now() - started < 10_000, `drained in ${Date.now() - started} ms`);
      assert.ok(acked.length > 0, "some calls completed");
    } finally {
      await daemon.stop("SIGKILL");
      await removeDir(daemon.dataDir);
    }
  });

  test("the subject string: the certificate's order, RFC 2253 escapes, exactly openssl's -nameopt esc_2253,esc_ctrl,utf8,sep_comma_plus,sname", async () => {
    const cases: [string, string][] = [
      ["/CN=ci/O=team-a", "CN=ci,O=team-a"],
      ["/O=team-a/CN=ci", "O=team-a,CN=ci"],
      [
        '/CN=ci+UID=7/O=t"a;b<c/OU=x\\, y/OU=\\ lead/OU=#h/OU=caf\u00e9',
        'CN=ci+UID=7,O=t\\"a\\;b\\<c,OU=x\\, y,OU=\\ lead,OU=\\#h,OU=caf\u00e9',
      ],
    ];
    for (const [i, [subj, expected]] of cases.entries()) {
      await keyAndCsr(pki.dir, `subject-${i}`, subj);
      await signCsr(pki.dir, `subject-${i}`, "ca", "basicConstraints=CA:FALSE\n", 100 + i);
      const file = path.join(pki.dir, `subject-${i}.crt`);
      const ours = certificateSubject(new X509Certificate(await readFile(file)).subject);
      assert.equal(ours, expected, subj);
      const printed = await exec("openssl", [
        "x509",
        "-in",
        file,
        "-noout",
        "-subject",
        "-nameopt",
        "esc_2253,esc_ctrl,utf8,sep_comma_plus,sname",
      ]);
      assert.equal(printed.stdout, `subject=${expected}\n`, subj);
    }
  });

  describe("mutual TLS (--client-ca)", () => {
    let daemon: RunningDaemon;
    let port: number;
    let ci: ClientTls;
    let stranger: ClientTls;

    before(async () => {
      daemon = await startDaemon({
        args: ["--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--client-ca", pki.caCert],
      });
      port = Number(new URL(daemon.url).port);
      ci = { ca, cert: await readFile(pki.clientCert), key: await readFile(pki.clientKey) };
      stranger = {
        ca,
        cert: await readFile(pki.strangerCert),
        key: await readFile(pki.strangerKey),
      };
    });

    after(async () => {
      if (daemon) {
        assert.deepEqual(await daemon.stop(), { code: 0, signal: null });
        await removeDir(daemon.dataDir);
      }
    });

    test("the log says mutual TLS", () => {
      assert.match(daemon.output(), /"mutualTls":true[^\n]*"msg":"listening"/);
    });

    test("no client certificate: the handshake is refused, even with the admin token", async () => {
      assert.equal(await handshake(port, { ca }), "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED");
      const err = await code(
        credentials(daemon.url, "connect-h2", { ca }, daemon.token).listCredentials({}),
      );
      assert.notEqual(err, "ok");
      const curl = await exec("curl", [
        "-sS",
        "--cacert",
        pki.caCert,
        "-H",
        "content-type: application/json",
        "-d",
        "{}",
        `${daemon.url}/grpc.health.v1.Health/Check`,
      ]);
      assert.notEqual(curl.code, 0);
    });

    test("a certificate from another CA, with the same subject: refused", async () => {
      const rogue = {
        ca,
        cert: await readFile(pki.rogueCert),
        key: await readFile(pki.rogueKey),
      };
      // Node's server checks the chain itself after OpenSSL's handshake and
      // hangs up (no alert), so the client sees the connection close.
      assert.match(await handshake(port, rogue), /^(closed|ECONNRESET)$/);
      assert.notEqual(
        await code(credentials(daemon.url, "connect-h2", rogue, daemon.token).listCredentials({})),
        "ok",
      );
      assert.equal(await handshake(port, ci), "connected");
    });

    test("health works without a token over mutual TLS", async () => {
      for (const protocol of ["grpc", "connect-h1"] as const) {
        const health = createClient(Health, tlsTransport(daemon.url, protocol, ci));
        assert.equal((await health.check({})).status, HealthCheckResponse_ServingStatus.SERVING);
      }
    });

    test("the client certificate is the caller whose certificate_subject matches; a token wins", async () => {
      const admin = {
        creds: credentials(daemon.url, "connect-h2", ci, daemon.token),
        callers: createClient(
          CallerService,
          tlsTransport(daemon.url, "connect-h2", ci, daemon.token),
        ),
      };
      await admin.creds.createCredential({
        credential: { namespace: "team-a", name: "shared", kind: key("AKIATEAMATEAMATEAMA1") },
      });

      // No caller has the subject yet: unauthenticated (and the miss is not cached past a write).
      const asCert = (protocol: Protocol) => credentials(daemon.url, protocol, ci);
      assert.equal(await code(asCert("connect-h2").listCredentials({})), Code.Unauthenticated);

      await admin.callers.createCaller({
        caller: {
          name: "ci",
          role: CallerRole.READER,
          namespaces: ["team-a"],
          certificateSubject: CI_SUBJECT,
        },
      });

      for (const protocol of ["connect-h2", "connect-h1", "grpc"] as const) {
        const res = await asCert(protocol).listCredentials({ namespace: "team-a" });
        assert.deepEqual(
          res.credentials.map((c) => c.name),
          ["shared"],
          protocol,
        );
        assert.equal(
          await code(
            asCert(protocol).createCredential({
              credential: { namespace: "team-a", name: "new", kind: key("AKIATEAMATEAMATEAMA2") },
            }),
          ),
          Code.PermissionDenied,
          protocol,
        );
      }

      // grpc-js with the client certificate and no token.
      const { client, close } = grpcJsClient(
        CredentialService,
        daemon.url,
        undefined,
        grpc.credentials.createSsl(ca, ci.key, ci.cert),
      );
      try {
        const res = await client.listCredentials(
          create(ListCredentialsRequestSchema, { namespace: "team-a" }),
        );
        assert.deepEqual(
          res.credentials.map((c) => c.name),
          ["shared"],
        );
        await assert.rejects(
          client.createCredential(
            create(CreateCredentialRequestSchema, {
              credential: { namespace: "team-a", name: "new", kind: key("AKIATEAMATEAMATEAMA2") },
            }),
          ),
          (err: GrpcStatusError) => err.code === grpc.status.PERMISSION_DENIED,
        );
      } finally {
        close();
      }

      // A bearer token, when sent, decides: the admin's creates; a wrong one is refused.
      assert.equal(
        await code(
          credentials(daemon.url, "connect-h2", ci, daemon.token).createCredential({
            credential: {
              namespace: "team-a",
              name: "by-admin",
              kind: key("AKIATEAMATEAMATEAMA3"),
            },
          }),
        ),
        "ok",
      );
      assert.equal(
        await code(
          credentials(daemon.url, "connect-h2", ci, "cbt_not-a-token").listCredentials({
            namespace: "team-a",
          }),
        ),
        Code.Unauthenticated,
      );

      // A disabled caller is nobody, by certificate as by token.
      await admin.callers.updateCaller({
        name: "ci",
        caller: { enabled: false },
        updateMask: { paths: ["enabled"] },
      });
      assert.equal(
        await code(asCert("connect-h2").listCredentials({ namespace: "team-a" })),
        Code.Unauthenticated,
      );
    });

    test("a subject with escapes and a multi-valued RDN matches as documented", async () => {
      await keyAndCsr(pki.dir, "odd", "/CN=bot+UID=7/O=a, b\\;c/OU=caf\u00e9");
      await signCsr(
        pki.dir,
        "odd",
        "ca",
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
        50,
      );
      const odd = {
        ca,
        cert: await readFile(path.join(pki.dir, "odd.crt")),
        key: await readFile(path.join(pki.dir, "odd.key")),
      };
      const callers = createClient(
        CallerService,
        tlsTransport(daemon.url, "connect-h2", ci, daemon.token),
      );
      await callers.createCaller({
        caller: {
          name: "odd",
          role: CallerRole.READER,
          namespaces: ["odd"],
          certificateSubject: "CN=bot+UID=7,O=a\\, b\\;c,OU=caf\u00e9",
        },
      });
      const res = await credentials(daemon.url, "connect-h1", odd).listCredentials({
        namespace: "odd",
      });
      assert.deepEqual(res.credentials, []);
    });

    test("a certificate from the right CA that no caller has, and no token: unauthenticated", async () => {
      const err = ConnectError.from(
        await credentials(daemon.url, "connect-h2", stranger)
          .listCredentials({})
          .then(
            () => undefined,
            (e) => e,
          ),
      );
      assert.equal(err.code, Code.Unauthenticated);
      assert.match(err.rawMessage, /client certificate is no enabled caller's/);
    });
  });

  describe("serve flags", () => {
    let dataDir: string;

    before(async () => {
      dataDir = path.join(await tempDir("credbroker-tls-flags-"), "data");
    });

    after(async () => {
      await removeDir(path.dirname(dataDir));
    });

    const serve = (args: string[], env: Record<string, string> = {}) =>
      runCli(["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, ...args], {
        CREDBROKER_TLS_CERT: "",
        CREDBROKER_TLS_KEY: "",
        CREDBROKER_CLIENT_CA: "",
        ...env,
      });

    test("a certificate without its key, a key without a certificate, a client CA without TLS: usage errors naming the flag", async () => {
      const cases: [string[], Record<string, string>, RegExp][] = [
        [["--tls-cert", "c.pem"], {}, /--tls-key FILE is required with --tls-cert/],
        [["--tls-key", "k.pem"], {}, /--tls-cert FILE is required with --tls-key/],
        [["--client-ca", "ca.pem"], {}, /--client-ca needs TLS/],
        [[], { CREDBROKER_TLS_CERT: "c.pem" }, /--tls-key FILE is required with --tls-cert/],
        [[], { CREDBROKER_CLIENT_CA: "ca.pem" }, /--client-ca needs TLS/],
      ];
      for (const [args, env, message] of cases) {
        const r = await serve(args, env);
        assert.equal(r.code, 2, `${args.join(" ")} ${JSON.stringify(env)}: ${r.stderr}`);
        assert.match(r.stderr, message);
      }
      // Flag and env combine (flag > env): cert from env, key from the flag is complete.
      const combined = await serve(["--tls-key", path.join(pki.dir, "missing.key")], {
        CREDBROKER_TLS_CERT: pki.serverCert,
      });
      assert.equal(combined.code, 2, combined.stderr);
      assert.match(combined.stderr, /--tls-key: no such file \(ENOENT\)/);
    });

    test("unreadable or wrong files: a startup error naming the flag (and the file, when it exists), never its contents; nothing created", async () => {
      const secretish = "MHcCAQEEIKEYBYTESMUSTNEVERBEPRINTEDxxxxxxxxxxxxxxxxxxxxxxx";
      const garbageKey = path.join(pki.dir, "garbage.key");
      await writeFile(
        garbageKey,
        `-----BEGIN EC PRIVATE KEY-----\n${secretish}\n-----END EC PRIVATE KEY-----\n`,
      );
      const cases: [string[], RegExp][] = [
        [
          ["--tls-cert", path.join(pki.dir, "nope.crt"), "--tls-key", pki.serverKey],
          /--tls-cert: no such file \(ENOENT\)/,
        ],
        [
          ["--tls-cert", pki.serverCert, "--tls-key", garbageKey],
          /--tls-key \S*garbage\.key: not a PEM private key/,
        ],
        [
          ["--tls-cert", pki.serverKey, "--tls-key", pki.serverKey],
          /--tls-cert \S*server\.key: not a PEM certificate/,
        ],
        [
          ["--tls-cert", pki.serverCert, "--tls-key", pki.clientKey],
          /--tls-key \S*client\.key is not the private key of the certificate in --tls-cert \S*server\.crt/,
        ],
        [
          [
            "--tls-cert",
            pki.serverCert,
            "--tls-key",
            pki.serverKey,
            "--client-ca",
            path.join(pki.dir, "nope-ca.crt"),
          ],
          /--client-ca: no such file \(ENOENT\)/,
        ],
      ];
      const keyPem = (await readFile(pki.serverKey, "utf8")).split("\n")[1] ?? "";
      for (const [args, message] of cases) {
        const r = await serve(args);
        assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
        assert.match(r.stderr, message);
        for (const out of [r.stdout, r.stderr]) {
          assert.ok(!out.includes(secretish), "the key file's bytes leaked");
          assert.ok(keyPem.length > 20 && !out.includes(keyPem), "the server key leaked");
        }
      }
      await assert.rejects(stat(dataDir), { code: "ENOENT" });
    });
  });
});
