/**
 * A fleet: two real daemons (`credbroker serve --store etcd`) on one real
 * etcd. A credential created on one signs on the other (the fake STS checks
 * each signature with the secret it knows), a credential disabled on one
 * stops signing on the other within a bound (the store watch; the measured
 * delay is printed), and concurrent updates with one etag across the two
 * daemons have exactly one winner. Also: the etcd flags' validation, and the
 * master key a fleet must be given.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { CredentialService } from "../../gen/credbroker/v1/credential_service_pb.js";
import { SigningService } from "../../gen/credbroker/v1/signing_service_pb.js";
import { transport } from "../support/clients.js";
import { type RunningDaemon, removeDir, runCli, startDaemon, tempDir } from "../support/daemon.js";
import { type EtcdServer, startEtcd } from "../support/etcd.js";
import { type FakeSts, startFakeSts } from "../support/sts-server.js";

const ACCOUNT = "123456789012";
const BODY = "Action=GetCallerIdentity&Version=2011-06-15";
const SECRET = "fleet/secret/KEY0000000000000000000000000";
/** The bound within which a write on one daemon reaches the other's caches. */
const PROPAGATION_BOUND_MS = 1000;

describe("serve --store etcd: flag validation", { concurrency: true }, () => {
  const cases: [string, string[], Record<string, string>, RegExp][] = [
    ["etcd without endpoints", ["--store", "etcd"], {}, /--etcd-endpoints: required/],
    ["an unknown store", ["--store", "redis"], {}, /--store: leveldb or etcd/],
    [
      "etcd settings without --store etcd",
      ["--etcd-endpoints", "http://127.0.0.1:2379"],
      {},
      /--etcd-endpoints: needs --store etcd/,
    ],
    [
      "a malformed endpoint",
      ["--store", "etcd", "--etcd-endpoints", "127.0.0.1:2379"],
      {},
      /--etcd-endpoints: http\(s\):\/\/HOST:PORT/,
    ],
    [
      "a prefix without its slashes",
      ["--store", "etcd", "--etcd-endpoints", "http://127.0.0.1:2379", "--etcd-prefix", "fleet"],
      {},
      /--etcd-prefix: starts and ends with "\/"/,
    ],
    [
      "TLS files over http://",
      ["--store", "etcd", "--etcd-endpoints", "http://127.0.0.1:2379", "--etcd-ca", "ca.pem"],
      {},
      /--etcd-ca: needs https:\/\//,
    ],
    [
      "https:// without a CA",
      ["--store", "etcd", "--etcd-endpoints", "https://127.0.0.1:2379"],
      {},
      /--etcd-ca: required with https:\/\//,
    ],
    [
      "a client certificate without its key",
      [
        ...["--store", "etcd", "--etcd-endpoints", "https://127.0.0.1:2379"],
        ...["--etcd-ca", "ca.pem", "--etcd-cert", "c.pem"],
      ],
      {},
      /--etcd-key: required with --etcd-cert/,
    ],
    [
      "a user without CREDBROKER_ETCD_PASSWORD",
      ["--store", "etcd", "--etcd-endpoints", "http://127.0.0.1:2379", "--etcd-user", "fleet"],
      { CREDBROKER_ETCD_PASSWORD: "" },
      /--etcd-user: needs the password in the environment variable CREDBROKER_ETCD_PASSWORD/,
    ],
    [
      "the environment's endpoints, no store",
      [],
      { CREDBROKER_ETCD_ENDPOINTS: "http://127.0.0.1:2379" },
      /--etcd-endpoints: needs --store etcd/,
    ],
  ];
  for (const [what, args, env, message] of cases) {
    test(`${what}: invalid_argument naming the flag, exit 2`, async () => {
      const run = await runCli(["serve", "--data-dir", "/nonexistent/credbroker", ...args], {
        CREDBROKER_STORE: "",
        CREDBROKER_ETCD_ENDPOINTS: "",
        ...env,
      });
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, message);
    });
  }
});

describe("a fleet of two daemons on one etcd", () => {
  const masterKey = randomBytes(32).toString("base64");
  let etcd: EtcdServer;
  let sts: FakeSts;
  const daemons: RunningDaemon[] = [];
  const dirs: string[] = [];
  let args: string[];
  let creds: Client<typeof CredentialService>[];
  let signing: Client<typeof SigningService>[];

  const sign = (on: number, credential: string) =>
    (signing[on] as Client<typeof SigningService>).signRequest({
      credential,
      method: "POST",
      url: `${sts.endpoint}/`,
      headers: [{ name: "content-type", value: "application/x-www-form-urlencoded" }],
      payload: { case: "body", value: Buffer.from(BODY) },
      service: "sts",
      region: "us-east-1",
    });
  /** Signs on daemon `on` and sends it: STS's status, and the access key id signed with. */
  const signAndSend = async (on: number, credential: string) => {
    const signed = await sign(on, credential);
    const res = await fetch(signed.url, {
      method: "POST",
      headers: Object.fromEntries(signed.headers.map((h) => [h.name, h.value])),
      body: BODY,
    });
    await res.text();
    const authorization = signed.headers.find((h) => h.name === "authorization")?.value ?? "";
    return { status: res.status, accessKeyId: /Credential=([^/]+)\//.exec(authorization)?.[1] };
  };
  const createKey = (on: number, name: string, accessKeyId: string) => {
    sts.addKey({
      accessKeyId,
      secretAccessKey: SECRET,
      arn: `arn:aws:iam::${ACCOUNT}:user/${name}`,
      account: ACCOUNT,
    });
    return (creds[on] as Client<typeof CredentialService>).createCredential({
      credential: {
        name,
        allowedHosts: ["127.0.0.1"],
        kind: { case: "accessKey", value: { accessKeyId, secretAccessKey: SECRET } },
      },
    });
  };

  before(async () => {
    [etcd, sts] = await Promise.all([startEtcd(), startFakeSts()]);
    args = [
      ...["--store", "etcd", "--etcd-endpoints", etcd.endpoint],
      ...["--etcd-prefix", "/fleet-test/", "--sts-endpoint", sts.endpoint],
    ];
    for (let i = 0; i < 2; i++) dirs.push(await tempDir());
    daemons.push(
      ...(await Promise.all(
        dirs.map((dataDir) =>
          startDaemon({ dataDir, args, env: { CREDBROKER_MASTER_KEY: masterKey } }),
        ),
      )),
    );
    creds = daemons.map((d) =>
      createClient(CredentialService, transport(d.url, "connect-h2", d.token)),
    );
    signing = daemons.map((d) =>
      createClient(SigningService, transport(d.url, "grpc-h2", d.token)),
    );
  });

  after(async () => {
    await Promise.all(daemons.map((d) => d.stop()));
    for (const d of dirs) await removeDir(d);
    await sts?.stop();
    await etcd?.stop();
  });

  test("a credential created on one daemon signs on the other, with the same key", async () => {
    await createKey(0, "shared", "AKIAFLEETSHARED00001");
    const onA = await signAndSend(0, "shared");
    const onB = await signAndSend(1, "shared");
    assert.deepEqual(onA, { status: 200, accessKeyId: "AKIAFLEETSHARED00001" });
    assert.deepEqual(onB, onA);
    const got = await (creds[1] as Client<typeof CredentialService>).getCredential({
      name: "shared",
    });
    assert.equal(
      got.credential?.etag,
      (await creds[0]?.getCredential({ name: "shared" }))?.credential?.etag,
    );
  });

  test(`disabled on one daemon, the other stops signing within ${PROPAGATION_BOUND_MS} ms`, async (t) => {
    await createKey(0, "toggled", "AKIAFLEETTOGGLED0001");
    // Warm daemon B's caches: its read cache and derived key hold the credential.
    for (let i = 0; i < 3; i++) assert.equal((await signAndSend(1, "toggled")).status, 200);

    const delays: number[] = [];
    for (const enabled of [false, true, false]) {
      await creds[0]?.updateCredential({
        name: "toggled",
        credential: { enabled },
        updateMask: { paths: ["enabled"] },
      });
      const written = performance.now();
      for (;;) {
        const outcome = await sign(1, "toggled").then(
          () => "signed",
          (e: unknown) => {
            const err = ConnectError.from(e);
            assert.equal(err.code, Code.PermissionDenied, err.message);
            return "denied";
          },
        );
        const delay = performance.now() - written;
        if (outcome === (enabled ? "signed" : "denied")) {
          delays.push(delay);
          break;
        }
        assert.ok(delay < PROPAGATION_BOUND_MS, `daemon B still ${outcome} after ${delay} ms`);
        await new Promise((r) => setTimeout(r, 2));
      }
    }
    const shown = delays.map((d) => `${d.toFixed(1)} ms`).join(", ");
    t.diagnostic(`propagation delay (disable, enable, disable on A → seen on B): ${shown}`);
    console.log(`fleet propagation delay A → B: ${shown}`);
  });

  test("concurrent updates with one etag across the daemons: exactly one winner", async () => {
    await createKey(0, "contended", "AKIAFLEETCONTENDED01");
    for (let round = 0; round < 5; round++) {
      const current = await creds[1]?.getCredential({ name: "contended" });
      const etag = current?.credential?.etag ?? "";
      const outcomes = await Promise.all(
        [0, 1, 0, 1].map((on, i) =>
          (creds[on] as Client<typeof CredentialService>)
            .updateCredential({
              name: "contended",
              credential: { description: `round ${round} writer ${i}`, etag },
              updateMask: { paths: ["description"] },
            })
            .then(
              (res) => ({ ok: true as const, description: res.credential?.description }),
              (e: unknown) => ({ ok: false as const, code: ConnectError.from(e).code }),
            ),
        ),
      );
      const winners = outcomes.filter((o) => o.ok);
      assert.equal(winners.length, 1, JSON.stringify(outcomes));
      for (const o of outcomes) if (!o.ok) assert.equal(o.code, Code.Aborted);
      const stored = await creds[0]?.getCredential({ name: "contended" });
      assert.equal(stored?.credential?.description, winners[0]?.description);
      assert.notEqual(stored?.credential?.etag, etag);
    }
  });

  test("etcd restarted: the watch comes back and changes propagate again", async () => {
    await createKey(0, "restarted", "AKIAFLEETRESTARTED01");
    assert.equal((await signAndSend(1, "restarted")).status, 200);
    const b = daemons[1] as RunningDaemon;
    const logged = async (text: string) => {
      const deadline = Date.now() + 15_000;
      while (!b.output().includes(text)) {
        assert.ok(Date.now() < deadline, `daemon B never logged "${text}"`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    await etcd.kill();
    await logged("store watch lost");
    await etcd.start();
    await logged("store watch re-established");
    await creds[0]?.updateCredential({
      name: "restarted",
      credential: { enabled: false },
      updateMask: { paths: ["enabled"] },
    });
    const written = performance.now();
    for (;;) {
      const denied = await sign(1, "restarted").then(
        () => false,
        (e: unknown) => ConnectError.from(e).code === Code.PermissionDenied,
      );
      if (denied) break;
      assert.ok(performance.now() - written < PROPAGATION_BOUND_MS, "daemon B still signs");
      await new Promise((r) => setTimeout(r, 2));
    }
  });

  test("a daemon without the fleet's master key does not start (serve never makes one for etcd)", async () => {
    const dataDir = await tempDir();
    try {
      const run = await runCli(
        ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, ...args],
        {
          CREDBROKER_MASTER_KEY: "",
        },
      );
      assert.equal(run.code, 1, run.stderr);
      assert.match(
        run.stderr,
        /--store etcd: no master key; every daemon of a fleet needs the same one/,
      );
    } finally {
      await removeDir(dataDir);
    }
  });
});
