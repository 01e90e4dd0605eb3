/**
 * kill -9 under load: 20 rounds of 1,000 concurrent CreateCredential calls
 * against the real daemon, SIGKILLed by PID at a random point of each round
 * (after a random number of acknowledgements). After each kill the stopped
 * store is checked key by key (`checkStore`, what `credbroker repair`
 * runs), then the daemon restarts on the same data dir and every
 * acknowledged create must read back (one listing of the round's namespace
 * opens every record) and sign (its secret decrypts); an unacknowledged one
 * is there whole or not at all.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, describe, test } from "node:test";
import { createClient } from "@connectrpc/connect";
import { SigningService } from "../../gen/credbroker/v1/signing_service_pb.js";
import { credentialClient, transport } from "../support/clients.js";
import { type RunningDaemon, removeDir, startDaemon, tempDir } from "../support/daemon.js";
import { assertSignsWith, checkDataDir } from "./offline-check.js";

const ROUNDS = 20;
const CALLS = 1000;
const HOST = "sts.us-east-1.amazonaws.com";

interface Key {
  namespace: string;
  name: string;
  accessKeyId: string;
}

const keyId = () => `AKIA${randomBytes(8).toString("hex").toUpperCase()}`;

describe("kill -9 during 1,000 concurrent creates", () => {
  let dataDir: string;
  let daemon: RunningDaemon | undefined;

  after(async () => {
    await daemon?.stop("SIGKILL");
    if (dataDir !== undefined) await removeDir(dataDir);
  });

  for (let round = 1; round <= ROUNDS; round++) {
    test(`round ${round}`, async (t) => {
      dataDir ??= await tempDir();
      daemon ??= await startDaemon({ dataDir });
      const running = daemon;
      const keys: Key[] = Array.from({ length: CALLS }, (_, i) => ({
        namespace: `round-${round}`,
        name: `k${i}`,
        accessKeyId: keyId(),
      }));
      const killAfter = Math.floor(Math.random() * (CALLS * 0.95));
      t.diagnostic(`SIGKILL after ${killAfter} acknowledgements`);

      const acked = new Set<string>();
      const failedBeforeKill: string[] = [];
      let killed = false;
      const kill = () => {
        if (killed) return;
        killed = true;
        process.kill(running.process.pid ?? 0, "SIGKILL");
      };
      const clients = [
        credentialClient(running.url, "connect-h2", running.token),
        credentialClient(running.url, "grpc-h2", running.token),
      ];
      const calls = keys.map((k, i) =>
        clients[i % 2]
          ?.createCredential({
            credential: {
              namespace: k.namespace,
              name: k.name,
              allowedHosts: [HOST],
              kind: {
                case: "accessKey",
                value: {
                  accessKeyId: k.accessKeyId,
                  secretAccessKey: randomBytes(30).toString("base64"),
                },
              },
            },
          })
          .then(
            () => {
              acked.add(k.name);
              if (acked.size >= killAfter) kill();
            },
            (err: unknown) => {
              if (!killed) failedBeforeKill.push(`${k.name}: ${String(err)}`);
            },
          ),
      );
      if (killAfter === 0) setTimeout(kill, Math.random() * 20);
      await Promise.all(calls);
      kill();
      assert.deepEqual(failedBeforeKill, []);
      assert.equal((await running.exited).signal, "SIGKILL");
      t.diagnostic(`${acked.size} of ${CALLS} creates acknowledged`);

      const check = await checkDataDir(dataDir);
      assert.deepEqual(check.problems, [], "the store is consistent after kill -9");

      daemon = await startDaemon({ dataDir });
      await assertReadable(daemon, keys, acked);
    });
  }
});

/** Every acknowledged key reads back and signs; any other is absent or whole. */
async function assertReadable(
  daemon: RunningDaemon,
  keys: readonly Key[],
  acked: ReadonlySet<string>,
): Promise<void> {
  const creds = credentialClient(daemon.url, "connect-h2", daemon.token);
  const signing = createClient(SigningService, transport(daemon.url, "grpc-h2", daemon.token));
  const namespace = keys[0]?.namespace ?? "";
  const page = await creds.listCredentials({ namespace, pageSize: CALLS });
  assert.equal(page.nextPageToken, "");
  const stored = new Map(
    page.credentials.map((c) => [
      c.name,
      c.kind.case === "accessKey" ? c.kind.value.accessKeyId : "",
    ]),
  );
  const created = new Map(keys.map((k) => [k.name, k.accessKeyId]));
  for (const [name, accessKeyId] of stored) {
    assert.equal(accessKeyId, created.get(name), `${namespace}/${name} reads back as created`);
  }
  const lost = [...acked].filter((name) => !stored.has(name));
  assert.deepEqual(lost, [], "every acknowledged create is stored");
  await Promise.all(
    [...stored].map(async ([name, accessKeyId]) => {
      await assertSignsWith(signing, namespace, name, accessKeyId);
    }),
  );
}
