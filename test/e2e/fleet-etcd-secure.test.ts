/**
 * `serve --store etcd` against a real etcd that is locked down:
 *
 * - mutual TLS (`--client-cert-auth`, certificates made by the openssl CLI):
 *   a daemon given `--etcd-ca`, `--etcd-cert` and `--etcd-key` starts,
 *   creates a credential (stored sealed in etcd) and signs with it; a daemon
 *   trusting another CA, or presenting no client certificate, exits 1 within
 *   a bound saying that the TLS handshake with etcd failed, and which side
 *   refused.
 * - etcd authentication (users and roles made with the etcd3 client, then
 *   `auth enable`): `--etcd-user` with the right CREDBROKER_ETCD_PASSWORD
 *   starts, creates and signs; a wrong password exits 1 within a bound as an
 *   authentication failure; a user whose role covers another prefix exits 1
 *   as a permission error. No password ever appears in the daemon's output
 *   (at log level trace) or in any file of its data dir.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { createClient } from "@connectrpc/connect";
import { Etcd3, type IOptions, Range } from "etcd3";
import { CredentialService } from "../../gen/credbroker/v1/credential_service_pb.js";
import { SigningService } from "../../gen/credbroker/v1/signing_service_pb.js";
import { assertOpenssl, keyAndCsr, selfSignedCa, signCsr } from "../support/certs.js";
import { transport } from "../support/clients.js";
import {
  CLI,
  type Exit,
  type RunningDaemon,
  removeDir,
  startDaemon,
  tempDir,
} from "../support/daemon.js";
import { type EtcdServer, startEtcd } from "../support/etcd.js";
import { signAndSendSts } from "../support/fleet.js";
import { startTogether } from "../support/start-together.js";
import { type FakeSts, startFakeSts } from "../support/sts-server.js";

const ACCOUNT = "123456789012";
/**
 * How long a refused start may take: etcd answers a refusal at once, and
 * every etcd call has a 5 s deadline, so a daemon still running past this
 * is hanging (it is then killed by PID and the test fails).
 */
const REFUSAL_BOUND_MS = 12_000;

/** Settings that would otherwise leak in from the environment running the tests. */
const CLEAN_ENV = {
  CREDBROKER_STORE: "",
  CREDBROKER_ETCD_ENDPOINTS: "",
  CREDBROKER_ETCD_PREFIX: "",
  CREDBROKER_ETCD_CA: "",
  CREDBROKER_ETCD_CERT: "",
  CREDBROKER_ETCD_KEY: "",
  CREDBROKER_ETCD_USER: "",
  CREDBROKER_ETCD_PASSWORD: "",
};

interface Refused extends Exit {
  /** stdout and stderr, interleaved as they came. */
  output: string;
  stderr: string;
  ms: number;
}

/**
 * Runs `credbroker serve` that is expected to exit by itself. Past
 * REFUSAL_BOUND_MS it is killed by PID (SIGKILL), which the caller sees as
 * `signal`.
 */
/** Exited 1 within the bound, before listening, printing `credbroker serve: ${message}…`. */
function assertRefused(run: Refused, message: string): void {
  assert.equal(run.signal, null, `still running after ${REFUSAL_BOUND_MS} ms:\n${run.output}`);
  assert.equal(run.code, 1, run.output);
  assert.ok(run.ms < REFUSAL_BOUND_MS);
  assert.ok(run.stderr.includes(`credbroker serve: ${message}`), run.stderr);
  assert.doesNotMatch(run.output, /"msg":"listening"/);
}

async function serveRefused(
  args: string[],
  env: Record<string, string>,
  dataDir: string,
): Promise<Refused> {
  const started = performance.now();
  const child = spawn(
    process.execPath,
    [CLI, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, ...args],
    { env: { ...process.env, ...CLEAN_ENV, ...env }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => {
    output += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    output += d.toString();
    stderr += d.toString();
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), REFUSAL_BOUND_MS);
  const exit = await new Promise<Exit>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  clearTimeout(timer);
  return { ...exit, output, stderr, ms: performance.now() - started };
}

/** Every file under `dir`, concatenated (admin.token, audit.log, …). */
async function filesUnder(dir: string): Promise<string> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const contents = await Promise.all(
    entries
      .filter((e) => e.isFile())
      .map((e) => readFile(path.join(e.parentPath, e.name), "latin1")),
  );
  return contents.join("\n");
}

/**
 * On a daemon that opened its etcd store: creates an access-key credential
 * (the fake STS knows the key), signs an STS call with it and sends it; STS
 * must answer 200 (only a signature made with the secret passes) to a
 * signature with that key id. Returns the credential's id and secret.
 */
async function createAndSign(daemon: RunningDaemon, sts: FakeSts, name: string, keyId: string) {
  assert.match(daemon.output(), /"msg":"etcd store opened"/);
  const secret = `${name}/secret/${randomBytes(12).toString("hex")}`;
  sts.addKey({
    accessKeyId: keyId,
    secretAccessKey: secret,
    arn: `arn:aws:iam::${ACCOUNT}:user/${name}`,
    account: ACCOUNT,
  });
  const creds = createClient(CredentialService, transport(daemon.url, "connect-h2", daemon.token));
  const created = await creds.createCredential({
    credential: {
      name,
      allowedHosts: ["127.0.0.1"],
      kind: { case: "accessKey", value: { accessKeyId: keyId, secretAccessKey: secret } },
    },
  });
  const signing = createClient(SigningService, transport(daemon.url, "grpc-h2", daemon.token));
  const sent = await signAndSendSts(signing, name, sts.endpoint);
  assert.deepEqual(
    { status: sent.status, accessKeyId: sent.accessKeyId },
    { status: 200, accessKeyId: keyId },
  );
  return { id: created.credential?.id ?? "", secret };
}

/** The keys and values etcd holds under `prefix`, read with `client`. */
async function storedUnder(client: Etcd3, prefix: string): Promise<Record<string, Buffer>> {
  return client.getAll().prefix(prefix).buffers();
}

describe("serve --store etcd over mutual TLS", () => {
  const PREFIX = "/tls-fleet/";
  const masterKey = randomBytes(32).toString("base64");
  let pkiDir: string;
  const file = (name: string) => path.join(pkiDir, name);
  let etcd: EtcdServer;
  let sts: FakeSts;
  const dirs: string[] = [];
  const dataDir = async () => {
    const dir = await tempDir();
    dirs.push(dir);
    return dir;
  };
  const etcdArgs = (tls: string[]) => [
    ...["--store", "etcd", "--etcd-endpoints", etcd.endpoint, "--etcd-prefix", PREFIX],
    ...["--sts-endpoint", sts.endpoint, ...tls],
  ];

  before(async () => {
    await assertOpenssl();
    pkiDir = await tempDir("credbroker-etcd-pki-");
    const client = "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n";
    await Promise.all([
      selfSignedCa(pkiDir, "ca", "etcd test CA"),
      selfSignedCa(pkiDir, "other-ca", "another CA"),
      keyAndCsr(pkiDir, "server", "/CN=127.0.0.1"),
      keyAndCsr(pkiDir, "client", "/CN=credbroker"),
    ]);
    await Promise.all([
      // etcd 3.4's gRPC gateway dials etcd with the server certificate, so it is also a client one.
      signCsr(
        pkiDir,
        "server",
        "ca",
        "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1\n",
        1,
      ),
      signCsr(pkiDir, "client", "ca", client, 2),
    ]);
    [etcd, sts] = await startTogether([
      startEtcd({
        tls: {
          cert: file("server.crt"),
          key: file("server.key"),
          ca: file("ca.crt"),
          clientCertAuth: { cert: file("client.crt"), key: file("client.key") },
        },
      }),
      startFakeSts(),
    ]);
  });

  after(async () => {
    await sts?.stop();
    await etcd?.stop();
    for (const d of dirs) await removeDir(d);
    if (pkiDir !== undefined) await removeDir(pkiDir);
  });

  test("with --etcd-ca, --etcd-cert and --etcd-key: starts, creates a credential in etcd and signs", async () => {
    assert.match(etcd.endpoint, /^https:\/\/127\.0\.0\.1:\d+$/);
    const daemon = await startDaemon({
      dataDir: await dataDir(),
      args: etcdArgs([
        ...["--etcd-ca", file("ca.crt"), "--etcd-cert", file("client.crt")],
        ...["--etcd-key", file("client.key")],
      ]),
      env: { ...CLEAN_ENV, CREDBROKER_MASTER_KEY: masterKey },
    });
    let signed: Awaited<ReturnType<typeof createAndSign>>;
    try {
      signed = await createAndSign(daemon, sts, "over-tls", "AKIAETCDOVERTLS00001");
    } finally {
      await daemon.stop();
    }

    // It is in etcd (read over the same mutual TLS), sealed: no secret in any value.
    const reader = new Etcd3({
      hosts: [etcd.endpoint],
      credentials: {
        rootCertificate: await readFile(file("ca.crt")),
        certChain: await readFile(file("client.crt")),
        privateKey: await readFile(file("client.key")),
      },
    });
    try {
      const stored = await storedUnder(reader, PREFIX);
      const record = Object.keys(stored).filter((k) => k.includes(signed.id));
      assert.ok(signed.id !== "" && record.length > 0, `no record of ${signed.id} in etcd`);
      for (const value of Object.values(stored)) {
        assert.ok(!value.includes(signed.secret), "a plaintext secret is stored in etcd");
      }
    } finally {
      reader.close();
    }
  });

  test("trusting another CA: exits 1 within the bound, the TLS handshake with etcd named", async () => {
    const run = await serveRefused(
      etcdArgs([
        ...["--etcd-ca", file("other-ca.crt"), "--etcd-cert", file("client.crt")],
        ...["--etcd-key", file("client.key")],
      ]),
      { CREDBROKER_MASTER_KEY: masterKey },
      await dataDir(),
    );
    assertRefused(
      run,
      `etcd ${etcd.endpoint} prefix ${PREFIX}: TLS handshake failed: etcd's certificate is not trusted by the given CA`,
    );
  });

  test("no client certificate against --client-cert-auth: exits 1 within the bound, etcd's refusal named", async () => {
    const run = await serveRefused(
      etcdArgs(["--etcd-ca", file("ca.crt")]),
      { CREDBROKER_MASTER_KEY: masterKey },
      await dataDir(),
    );
    assertRefused(
      run,
      `etcd ${etcd.endpoint} prefix ${PREFIX}: TLS handshake failed: etcd refused the client certificate`,
    );
  });
});

describe("serve --store etcd with etcd authentication", () => {
  const PREFIX = "/auth-fleet/";
  const OTHER_PREFIX = "/elsewhere/";
  const masterKey = randomBytes(32).toString("base64");
  // Random, so a match in any output can only be a leak.
  const ROOT_PASSWORD = `root-${randomBytes(12).toString("hex")}`;
  const FLEET_PASSWORD = `fleet-${randomBytes(12).toString("hex")}`;
  const WRONG_PASSWORD = `wrong-${randomBytes(12).toString("hex")}`;
  const OUTSIDER_PASSWORD = `outsider-${randomBytes(12).toString("hex")}`;
  const PASSWORDS = [ROOT_PASSWORD, FLEET_PASSWORD, WRONG_PASSWORD, OUTSIDER_PASSWORD];
  let etcd: EtcdServer;
  let sts: FakeSts;
  const dirs: string[] = [];
  const dataDir = async () => {
    const dir = await tempDir();
    dirs.push(dir);
    return dir;
  };
  const client = (opts: Partial<IOptions> = {}) => new Etcd3({ hosts: [etcd.endpoint], ...opts });
  const etcdArgs = (user: string) => [
    ...["--store", "etcd", "--etcd-endpoints", etcd.endpoint, "--etcd-prefix", PREFIX],
    ...["--etcd-user", user, "--sts-endpoint", sts.endpoint, "--log-level", "trace"],
  ];
  const assertNoPassword = (where: string, text: string) => {
    for (const p of PASSWORDS) assert.ok(!text.includes(p), `a password appears in ${where}`);
  };

  before(async () => {
    [etcd, sts] = await startTogether([startEtcd(), startFakeSts()]);
    const admin = client();
    try {
      // etcd enables auth only with a root user holding the root role.
      await admin.user("root").create(ROOT_PASSWORD);
      await admin.user("root").addRole("root");
      await admin.role("fleet").create();
      await admin.role("fleet").grant({ permission: "Readwrite", range: Range.prefix(PREFIX) });
      await admin.user("fleet").create(FLEET_PASSWORD);
      await admin.user("fleet").addRole("fleet");
      await admin.role("outsider").create();
      await admin
        .role("outsider")
        .grant({ permission: "Readwrite", range: Range.prefix(OTHER_PREFIX) });
      await admin.user("outsider").create(OUTSIDER_PASSWORD);
      await admin.user("outsider").addRole("outsider");
      await admin.auth.authEnable();
    } finally {
      admin.close();
    }
    // Auth is really on: without a user, etcd refuses to read the prefix.
    const anonymous = client();
    try {
      await assert.rejects(storedUnder(anonymous, PREFIX));
    } finally {
      anonymous.close();
    }
  });

  after(async () => {
    await sts?.stop();
    await etcd?.stop();
    for (const d of dirs) await removeDir(d);
  });

  test("--etcd-user with the right password: starts, creates a credential in etcd and signs; the password is in no output", async () => {
    const dir = await dataDir();
    const daemon = await startDaemon({
      dataDir: dir,
      args: etcdArgs("fleet"),
      env: {
        ...CLEAN_ENV,
        CREDBROKER_MASTER_KEY: masterKey,
        CREDBROKER_ETCD_PASSWORD: FLEET_PASSWORD,
      },
    });
    let signed: Awaited<ReturnType<typeof createAndSign>>;
    try {
      signed = await createAndSign(daemon, sts, "with-auth", "AKIAETCDWITHAUTH0001");
    } finally {
      await daemon.stop();
    }
    assert.match(daemon.output(), /"level":(10|20),/, "debug lines were logged too");
    assertNoPassword("the daemon's stdout/stderr", daemon.output());
    assertNoPassword("the data dir (admin.token, audit log, …)", await filesUnder(dir));

    const root = client({ auth: { username: "root", password: ROOT_PASSWORD } });
    try {
      const stored = await storedUnder(root, PREFIX);
      assert.ok(
        signed.id !== "" && Object.keys(stored).some((k) => k.includes(signed.id)),
        `no record of ${signed.id} under ${PREFIX} in etcd`,
      );
    } finally {
      root.close();
    }
  });

  test("a wrong password: exits 1 within the bound as an authentication failure; no password in any output", async () => {
    const dir = await dataDir();
    const run = await serveRefused(
      etcdArgs("fleet"),
      { CREDBROKER_MASTER_KEY: masterKey, CREDBROKER_ETCD_PASSWORD: WRONG_PASSWORD },
      dir,
    );
    assertRefused(
      run,
      `etcd ${etcd.endpoint} prefix ${PREFIX} refused user "fleet": authentication failed (wrong user or password)`,
    );
    assert.match(run.output, /"code":"unauthenticated"/);
    assertNoPassword("the refused daemon's stdout/stderr", run.output);
    assertNoPassword("the refused daemon's data dir", await filesUnder(dir));
  });

  test("a user whose role covers only another prefix: exits 1 within the bound as a permission error", async () => {
    const dir = await dataDir();
    const run = await serveRefused(
      etcdArgs("outsider"),
      { CREDBROKER_MASTER_KEY: masterKey, CREDBROKER_ETCD_PASSWORD: OUTSIDER_PASSWORD },
      dir,
    );
    assertRefused(
      run,
      `etcd ${etcd.endpoint} prefix ${PREFIX} denied user "outsider" access to the prefix (its role needs readwrite on ${PREFIX})`,
    );
    assert.match(run.output, /"code":"permission_denied"/);
    assertNoPassword("the refused daemon's stdout/stderr", run.output);
    assertNoPassword("the refused daemon's data dir", await filesUnder(dir));
  });
});
