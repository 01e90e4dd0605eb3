/**
 * A fleet: three real daemons (`credbroker serve --store etcd`) on one real
 * etcd, started at once on one config file (each reconciles its
 * declarations; they are made once). A credential created on one signs on
 * the others (the fake STS checks each signature with the secret it knows),
 * a credential disabled on one stops signing on the others within a bound
 * (the store watch; the measured delay is printed), and concurrent updates
 * with one etag across the daemons have exactly one winner. Also: the etcd
 * flags' validation, and the master key a fleet must be given.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import type { CredentialService } from "../../gen/credbroker/v1/credential_service_pb.js";
import { SigningService } from "../../gen/credbroker/v1/signing_service_pb.js";
import { transport } from "../support/clients.js";
import { removeDir, runCli, tempDir } from "../support/daemon.js";
import { type EtcdServer, startEtcd } from "../support/etcd.js";
import { type Fleet, signAndSendSts, startFleet } from "../support/fleet.js";
import { startTogether } from "../support/start-together.js";
import { type FakeSts, startFakeSts } from "../support/sts-server.js";

const ACCOUNT = "123456789012";
const SECRET = "fleet/secret/KEY0000000000000000000000000";
const SIGNER_TOKEN = "fleet-signer-token-0000000000000000000000";
/** The bound within which a write on one daemon reaches the other's caches. */
const PROPAGATION_BOUND_MS = 1000;

describe("serve --store etcd (and --sts-timeout): flag validation", { concurrency: true }, () => {
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
      "a stale limit past 600 s",
      ["--store", "etcd", "--etcd-endpoints", "http://127.0.0.1:2379", "--etcd-stale-limit", "601"],
      {},
      /--etcd-stale-limit: whole seconds, 0-600$/m,
    ],
    [
      "a stale limit that is not whole seconds",
      ["--store", "etcd", "--etcd-endpoints", "http://127.0.0.1:2379", "--etcd-stale-limit", "1.5"],
      {},
      /--etcd-stale-limit: whole seconds, 0-600$/m,
    ],
    [
      "a stale limit without --store etcd",
      ["--etcd-stale-limit", "5"],
      {},
      /--etcd-stale-limit: needs --store etcd/,
    ],
    [
      "an STS timeout of 0",
      ["--sts-timeout", "0"],
      {},
      /--sts-timeout: seconds, above 0 and at most 60 \(up to 3 decimals\)$/m,
    ],
    [
      "an STS timeout past 60 s",
      ["--sts-timeout", "61"],
      {},
      /--sts-timeout: seconds, above 0 and at most 60 \(up to 3 decimals\)$/m,
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

describe("a fleet of three daemons on one etcd", () => {
  let etcd: EtcdServer;
  let sts: FakeSts;
  let fleet: Fleet;
  let configDir: string;
  let creds: Client<typeof CredentialService>[];

  /** Signs on daemon `on` and sends it: STS's status, and the access key id signed with. */
  const signAndSend = (on: number, credential: string) =>
    signAndSendSts(fleet.signing[on] as Client<typeof SigningService>, credential, sts.endpoint);
  const sign = (on: number, credential: string) => fleet.sign(on, credential, `${sts.endpoint}/`);
  const addKey = (name: string, accessKeyId: string) =>
    sts.addKey({
      accessKeyId,
      secretAccessKey: SECRET,
      arn: `arn:aws:iam::${ACCOUNT}:user/${name}`,
      account: ACCOUNT,
    });
  const createKey = (on: number, name: string, accessKeyId: string) => {
    addKey(name, accessKeyId);
    return fleet.createKey(on, name, accessKeyId, SECRET);
  };

  before(async () => {
    [etcd, sts] = await startTogether([startEtcd(), startFakeSts()]);
    // Every daemon reads the same declarations and reconciles them at the same moment.
    configDir = await tempDir();
    const config = path.join(configDir, "credbroker.toml");
    await writeFile(
      config,
      `[[credentials]]
name = "declared"
namespace = "team-a"
access_key_id = "AKIAFLEETDECLARED001"
secret_access_key = "${SECRET}"
allowed_scopes = [{ bucket = "fleet-data", prefixes = [], actions = ["get_object"] }]

[[callers]]
name = "fleet-signer"
role = "signer"
namespaces = ["team-a"]
token_sha256 = "${createHash("sha256").update(SIGNER_TOKEN).digest("hex")}"
`,
    );
    fleet = await startFleet({
      etcd,
      size: 3,
      prefix: "/fleet-test/",
      extraArgs: ["--sts-endpoint", sts.endpoint, "--config", config],
    });
    creds = fleet.creds;
  });

  after(async () => {
    await fleet?.stop();
    await removeDir(configDir);
    await sts?.stop();
    await etcd?.stop();
  });

  test("three daemons started at once on one config file all serve its declarations", async () => {
    for (let on = 0; on < 3; on++) {
      for (const token of [fleet.daemons[on]?.token, SIGNER_TOKEN]) {
        const signing = createClient(
          SigningService,
          transport(fleet.daemons[on]?.url ?? "", "connect-h2", token),
        );
        const signed = await signing.signRequest({
          namespace: "team-a",
          credential: "declared",
          method: "GET",
          url: "https://fleet-data.s3.us-east-1.amazonaws.com/reports/q3.csv",
        });
        const authorization = signed.headers.find((h) => h.name === "authorization")?.value;
        assert.match(authorization ?? "", /Credential=AKIAFLEETDECLARED001\//);
      }
    }
    const listed = await creds[2]?.listCredentials({ namespace: "team-a" });
    assert.deepEqual(
      listed?.credentials.map((c) => c.name),
      ["declared"],
      "created once, not once per daemon",
    );
  });

  test("a credential created on one daemon signs on the others, with the same key", async () => {
    await createKey(0, "shared", "AKIAFLEETSHARED00001");
    const etags = new Set<string | undefined>();
    for (let on = 0; on < 3; on++) {
      assert.deepEqual(await signAndSend(on, "shared"), {
        status: 200,
        accessKeyId: "AKIAFLEETSHARED00001",
      });
      etags.add((await creds[on]?.getCredential({ name: "shared" }))?.credential?.etag);
    }
    assert.equal(etags.size, 1, "one etag everywhere");
  });

  test(`disabled on one daemon, the others stop signing within ${PROPAGATION_BOUND_MS} ms`, async (t) => {
    await createKey(0, "toggled", "AKIAFLEETTOGGLED0001");
    // Warm the other daemons' caches: their read caches and derived keys hold the credential.
    for (const on of [1, 2]) {
      for (let i = 0; i < 3; i++) assert.equal((await signAndSend(on, "toggled")).status, 200);
    }

    const delays: number[] = [];
    for (const [enabled, on] of [
      [false, 1],
      [true, 2],
      [false, 1],
      [true, 2],
      [false, 2],
    ] as const) {
      await creds[0]?.updateCredential({
        name: "toggled",
        credential: { enabled },
        updateMask: { paths: ["enabled"] },
      });
      const written = performance.now();
      for (;;) {
        const outcome = await sign(on, "toggled").then(
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
        assert.ok(delay < PROPAGATION_BOUND_MS, `daemon ${on} still ${outcome} after ${delay} ms`);
        await new Promise((r) => setTimeout(r, 2));
      }
    }
    const shown = delays.map((d) => `${d.toFixed(1)} ms`).join(", ");
    t.diagnostic(`propagation delay (written on 0, seen on 1 or 2): ${shown}`);
    console.log(`fleet propagation delay: ${shown}`);
  });

  test("concurrent updates with one etag across the daemons: exactly one winner", async () => {
    await createKey(0, "contended", "AKIAFLEETCONTENDED01");
    for (let round = 0; round < 5; round++) {
      const current = await creds[round % 3]?.getCredential({ name: "contended" });
      const etag = current?.credential?.etag ?? "";
      const outcomes = await Promise.all(
        [0, 1, 2, 0, 1, 2].map((on, i) =>
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
    await etcd.kill();
    await fleet.logged(1, "store watch lost");
    await etcd.start();
    await fleet.logged(1, "store watch re-established");
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
        ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, ...fleet.args],
        {
          CREDBROKER_MASTER_KEY: "",
        },
      );
      assert.equal(run.code, 2, run.stderr);
      assert.match(
        run.stderr,
        /--store etcd: no master key; every daemon of a fleet needs the same one/,
      );
    } finally {
      await removeDir(dataDir);
    }
  });
});
