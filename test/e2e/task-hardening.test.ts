/**
 * Holes in the task paths (issue 20, items 5, 8 and 12), over the real
 * daemon (spawned) and the STS stand-in (test/support/sts-server.ts):
 * - live verify uses a stored secret only for a caller that may sign with it;
 * - a container binding serves only while its creator exists, is enabled,
 *   unexpired and may still sign with the credential, and only the very
 *   credential bound (by id); bindings are listed (never their tokens) and
 *   ended from the CLI;
 * - a flood of IMDSv2 token PUTs never evicts a live token: a full table,
 *   or a full share of one peer address, makes room with its oldest unused
 *   token (503 only when every token is in use: test/imds/).
 */
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, test } from "node:test";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { CallerRole } from "../../gen/credbroker/v1/caller_pb.js";
import { CallerService } from "../../gen/credbroker/v1/caller_service_pb.js";
import { RoleSource } from "../../gen/credbroker/v1/credential_pb.js";
import type { CredentialService } from "../../gen/credbroker/v1/credential_service_pb.js";
import { SigningService } from "../../gen/credbroker/v1/signing_service_pb.js";
import { credentialClient, transport } from "../support/clients.js";
import {
  listenerUrl,
  type RunningDaemon,
  removeDir,
  runCli,
  startDaemon,
} from "../support/daemon.js";
import { type FakeSts, startFakeSts } from "../support/sts-server.js";

const ACCOUNT = "123456789012";
const KEY = {
  accessKeyId: "AKIAHARDEN0000000001",
  secretAccessKey: "harden/secret/KEY00000000000000000000000",
  arn: `arn:aws:iam::${ACCOUNT}:user/open`,
  account: ACCOUNT,
};
const OTHER_KEY = {
  accessKeyId: "AKIAHARDEN0000000002",
  secretAccessKey: "harden/other/KEY000000000000000000000000",
  arn: `arn:aws:iam::${ACCOUNT}:user/other`,
  account: ACCOUNT,
};
const ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/task-role`;
const THIRD_PARTY_ROLE = "arn:aws:iam::210987654321:role/vendor-integration";
const accessKey = (k: typeof KEY) => ({
  case: "accessKey" as const,
  value: { accessKeyId: k.accessKeyId, secretAccessKey: k.secretAccessKey },
});

async function codeOf(p: Promise<unknown>): Promise<Code | "ok"> {
  return p.then(
    () => "ok" as const,
    (e: unknown) => ConnectError.from(e).code,
  );
}

describe("task hardening over the real daemon", () => {
  let sts: FakeSts;
  let daemon: RunningDaemon;
  let imds: string;
  let creds: Client<typeof CredentialService>;
  let callers: Client<typeof CallerService>;
  const tokens = new Map<string, string>();

  const credsAs = (who: string) => credentialClient(daemon.url, "connect-h2", tokens.get(who));
  const signingAs = (who: string) =>
    createClient(SigningService, transport(daemon.url, "connect-h2", tokens.get(who)));
  const stsCalls = (action: string) => sts.calls.filter((c) => c.action === action).length;

  async function addCaller(name: string, role: CallerRole, namespaces = ["tasks"]) {
    const res = await callers.createCaller({ caller: { name, role, namespaces } });
    tokens.set(name, res.token);
  }

  /** GET a binding's credentials as an SDK's container provider does: the HTTP status. */
  async function fetchBinding(b: { fullUri: string; authorizationToken: string }) {
    const res = await fetch(b.fullUri, { headers: { authorization: b.authorizationToken } });
    const body = (await res.json()) as Record<string, string>;
    return { status: res.status, body };
  }

  before(async () => {
    sts = await startFakeSts();
    sts.addKey(KEY);
    sts.addKey(OTHER_KEY);
    sts.addRole({ arn: ROLE_ARN });
    sts.addRole({ arn: THIRD_PARTY_ROLE, externalId: "vendor-ext-1" });
    daemon = await startDaemon({
      args: [
        "--sts-endpoint",
        sts.endpoint,
        "--imds-listen",
        "127.0.0.1:0",
        "--imds-credential",
        "tasks/open",
        "--container-listen",
        "127.0.0.1:0",
      ],
    });
    imds = listenerUrl(daemon, "imds listening");
    tokens.set("admin", daemon.token);
    creds = credsAs("admin");
    callers = createClient(CallerService, transport(daemon.url, "connect-h2", daemon.token));
    await creds.createCredential({
      credential: { namespace: "tasks", name: "open", kind: accessKey(KEY), allowedInTasks: true },
    });
    await creds.createCredential({
      credential: {
        namespace: "tasks",
        name: "deployer",
        allowedInTasks: true,
        kind: { case: "role", value: { roleArn: ROLE_ARN, sourceCredential: "open" } },
      },
    });
    await addCaller("reader-t", CallerRole.READER);
    await addCaller("writer-t", CallerRole.WRITER);
    await addCaller("sgA", CallerRole.SIGNER);
    await addCaller("sgB", CallerRole.SIGNER);
  });

  after(async () => {
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
    await sts?.stop();
  });

  describe("live verify needs sign on the stored secret it uses (item 5)", () => {
    const probe = {
      namespace: "tasks",
      name: "probe",
      kind: {
        case: "role" as const,
        value: { roleArn: THIRD_PARTY_ROLE, externalId: "vendor-ext-1", sourceCredential: "open" },
      },
    };

    test("a reader's candidate role over a stored source: permission_denied, STS never called", async () => {
      const before = stsCalls("AssumeRole");
      for (const who of ["reader-t", "writer-t"]) {
        const code = await codeOf(
          credsAs(who).verifyCredential({
            target: { case: "candidate", value: probe },
            live: true,
          }),
        );
        assert.equal(code, Code.PermissionDenied, who);
      }
      assert.equal(stsCalls("AssumeRole"), before, "no AssumeRole signed with the stored key");
      // Without live, the same candidate is checked structurally as before.
      const structural = await credsAs("reader-t").verifyCredential({
        target: { case: "candidate", value: probe },
      });
      assert.equal(structural.valid, true);
    });

    test("a reader's live verify of a stored key or a stored role: permission_denied, STS never called", async () => {
      const before = sts.calls.length;
      for (const name of ["open", "deployer"]) {
        const code = await codeOf(
          credsAs("reader-t").verifyCredential({
            target: { case: "stored", value: { namespace: "tasks", name } },
            live: true,
          }),
        );
        assert.equal(code, Code.PermissionDenied, name);
      }
      assert.equal(sts.calls.length, before);
    });

    test("an ambient-source candidate role needs sign in the namespace too", async () => {
      const code = await codeOf(
        credsAs("reader-t").verifyCredential({
          target: {
            case: "candidate",
            value: {
              namespace: "tasks",
              name: "ambient-probe",
              kind: {
                case: "role",
                value: { roleArn: THIRD_PARTY_ROLE, source: RoleSource.AMBIENT },
              },
            },
          },
          live: true,
        }),
      );
      assert.equal(code, Code.PermissionDenied);
    });

    test("a candidate access key brings its own secret: a reader may check it live", async () => {
      const res = await credsAs("reader-t").verifyCredential({
        target: {
          case: "candidate",
          value: { namespace: "tasks", name: "mine", kind: accessKey(OTHER_KEY) },
        },
        live: true,
      });
      assert.equal(res.valid, true);
      assert.equal(sts.calls.at(-1)?.accessKeyId, OTHER_KEY.accessKeyId);
    });

    test("an admin (who may sign) still gets the live checks", async () => {
      const before = stsCalls("AssumeRole");
      const res = await creds.verifyCredential({
        target: { case: "candidate", value: probe },
        live: true,
      });
      assert.equal(res.checks.find((c) => c.check === "live.assume_role")?.ok, true);
      assert.equal(stsCalls("AssumeRole"), before + 1);
    });
  });

  describe("container bindings end with their creator and their credential (item 8)", () => {
    const bindAs = (who: string, credential = "open") =>
      signingAs(who).createContainerBinding({ namespace: "tasks", credential, ttlSeconds: 600 });
    const setEnabled = (name: string, enabled: boolean) =>
      callers.updateCaller({ name, caller: { enabled }, updateMask: { paths: ["enabled"] } });
    let signers = 0;
    /** A signer in "tasks" of its own, so one test's changes to it touch no other test. */
    async function freshSigner(): Promise<string> {
      const name = `signer-${++signers}`;
      await addCaller(name, CallerRole.SIGNER);
      return name;
    }

    test("disabling the creator stops the binding at once; enabling it again resumes it", async () => {
      const signer = await freshSigner();
      const binding = await bindAs(signer);
      assert.equal((await fetchBinding(binding)).status, 200);
      await setEnabled(signer, false);
      const refused = await fetchBinding(binding);
      assert.equal(refused.status, 403);
      assert.equal(refused.body.AccessKeyId, undefined);
      await setEnabled(signer, true);
      assert.equal((await fetchBinding(binding)).status, 200);
    });

    test("an expired creator, or one that lost the namespace, stops the binding", async () => {
      const signer = await freshSigner();
      const binding = await bindAs(signer);
      assert.equal((await fetchBinding(binding)).status, 200);
      await callers.updateCaller({
        name: signer,
        caller: { namespaces: ["elsewhere"] },
        updateMask: { paths: ["namespaces"] },
      });
      assert.equal((await fetchBinding(binding)).status, 403);
      await callers.updateCaller({
        name: signer,
        caller: { namespaces: ["tasks"] },
        updateMask: { paths: ["namespaces"] },
      });
      assert.equal((await fetchBinding(binding)).status, 200);
      const expiring = await freshSigner();
      const short = await bindAs(expiring);
      assert.equal((await fetchBinding(short)).status, 200);
      await callers.updateCaller({
        name: expiring,
        caller: { expiresAt: { seconds: BigInt(Math.floor(Date.now() / 1000) + 2), nanos: 0 } },
        updateMask: { paths: ["expires_at"] },
      });
      await new Promise((r) => setTimeout(r, 2500));
      assert.equal((await fetchBinding(short)).status, 403);
    });

    test("a deleted creator's binding is refused, also after a caller of the same name is created again", async () => {
      await addCaller("sgGone", CallerRole.SIGNER);
      const binding = await bindAs("sgGone");
      assert.equal((await fetchBinding(binding)).status, 200);
      await callers.deleteCaller({ name: "sgGone" });
      assert.equal((await fetchBinding(binding)).status, 403);
      await addCaller("sgGone", CallerRole.SIGNER);
      assert.equal((await fetchBinding(binding)).status, 403, "a new caller is not the creator");
    });

    test("a credential deleted and re-created under the same name is not served", async () => {
      await creds.createCredential({
        credential: {
          namespace: "tasks",
          name: "swap",
          kind: accessKey(KEY),
          allowedInTasks: true,
        },
      });
      const signer = await freshSigner();
      const binding = await bindAs(signer, "swap");
      assert.equal((await fetchBinding(binding)).status, 200);
      await creds.deleteCredential({ namespace: "tasks", name: "swap" });
      assert.equal((await fetchBinding(binding)).status, 403);
      await creds.createCredential({
        credential: {
          namespace: "tasks",
          name: "swap",
          kind: accessKey(OTHER_KEY),
          allowedInTasks: true,
        },
      });
      const before = sts.calls.length;
      assert.equal((await fetchBinding(binding)).status, 403);
      assert.equal(sts.calls.length, before, "no session of the new credential was made");
      // A binding made for the new credential serves it.
      assert.equal((await fetchBinding(await bindAs(signer, "swap"))).status, 200);
    });

    test("ListContainerBindings: an admin sees all, a signer its own; never a token", async () => {
      const a = await bindAs("sgA", "deployer");
      const b = await bindAs("sgB");
      const list = async (who: string, pageSize = 0) => {
        const all = [];
        let pageToken = "";
        do {
          const page = await signingAs(who).listContainerBindings({ pageSize, pageToken });
          for (const t of [a.authorizationToken, b.authorizationToken]) {
            assert.ok(
              !JSON.stringify(page, (_, v) => (typeof v === "bigint" ? `${v}` : v)).includes(t),
            );
          }
          all.push(...page.bindings);
          pageToken = page.nextPageToken;
        } while (pageToken !== "");
        return all;
      };
      const admins = await list("admin", 1);
      const ids = admins.map((x) => x.bindingId);
      assert.ok(ids.includes(a.bindingId) && ids.includes(b.bindingId));
      assert.deepEqual(ids, [...ids].sort(), "in id order, each once");
      assert.equal(new Set(ids).size, ids.length);
      const mine = await list("sgA");
      assert.ok(mine.every((x) => x.creator === "sgA"));
      const listed = mine.find((x) => x.bindingId === a.bindingId);
      assert.equal(listed?.credential, "deployer");
      assert.equal(listed?.namespace, "tasks");
      assert.equal(listed?.fullUri, a.fullUri);
      assert.match(listed?.credentialId ?? "", /./);
      assert.ok(!(await list("sgA")).some((x) => x.bindingId === b.bindingId));
      assert.deepEqual(
        (await list("sgB")).map((x) => x.bindingId),
        admins.filter((x) => x.creator === "sgB").map((x) => x.bindingId),
      );
      assert.deepEqual(await list("reader-t"), []);
      assert.equal(
        await codeOf(signingAs("sgA").listContainerBindings({ pageToken: "not-a-token" })),
        Code.InvalidArgument,
      );
    });

    test("credbroker binding list and delete", async () => {
      const binding = await bindAs("sgA");
      const env = { CREDBROKER_ADDR: daemon.url, CREDBROKER_TOKEN: tokens.get("sgA") ?? "" };
      const listed = await runCli(["binding", "list", "-o", "json"], env);
      assert.equal(listed.code, 0, listed.stderr);
      const json = JSON.parse(listed.stdout) as { bindings: { bindingId: string }[] };
      assert.ok(json.bindings.some((x) => x.bindingId === binding.bindingId));
      assert.ok(!listed.stdout.includes(binding.authorizationToken));
      const table = await runCli(["binding", "list"], env);
      assert.match(table.stdout, new RegExp(`^${binding.bindingId}\\s+tasks/open\\s+sgA\\s`, "m"));

      const other = await runCli(["binding", "delete", binding.bindingId], {
        ...env,
        CREDBROKER_TOKEN: tokens.get("sgB") ?? "",
      });
      assert.equal(other.code, 4, "another signer's delete: not found");
      const deleted = await runCli(["binding", "delete", binding.bindingId], env);
      assert.equal(deleted.code, 0, deleted.stderr);
      assert.equal((await fetchBinding(binding)).status, 403);
      const usage = await runCli(["binding", "delete"], env);
      assert.equal(usage.code, 2);
    });
  });

  describe("IMDSv2 token flood (item 12)", () => {
    /** A token PUT from `localAddress` (any 127.x.y.z is loopback): its status and body. */
    function put(
      agent: http.Agent,
      localAddress: string,
    ): Promise<{ status: number; body: string }> {
      return new Promise((resolve, reject) => {
        const req = http.request(new URL("/latest/api/token", imds), {
          method: "PUT",
          headers: { "x-aws-ec2-metadata-token-ttl-seconds": "21600" },
          agent,
          localAddress,
        });
        req.on("error", reject);
        req.on("response", (res) => {
          let body = "";
          res.on("data", (d: Buffer) => {
            body += d.toString();
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.end();
      });
    }

    /** `count` PUTs from `localAddress`, 8 at a time: how many got each status. */
    async function flood(count: number, localAddress: string): Promise<Record<number, number>> {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
      const statuses: Record<number, number> = {};
      let sent = 0;
      const worker = async () => {
        while (sent < count) {
          sent++;
          const { status } = await put(agent, localAddress);
          statuses[status] = (statuses[status] ?? 0) + 1;
        }
      };
      try {
        await Promise.all(Array.from({ length: 8 }, worker));
      } finally {
        agent.destroy();
      }
      return statuses;
    }

    test("4,100 PUTs never evict a live token: unused tokens make room for each other (one peer's share is 1024, the table 4096)", async () => {
      const agent = new http.Agent({ keepAlive: false });
      const first = await put(agent, "127.0.0.1");
      assert.equal(first.status, 200);
      const live = first.body;
      const read = async (token = live) =>
        (
          await fetch(`${imds}/latest/meta-data/iam/security-credentials/open`, {
            headers: { "x-aws-ec2-metadata-token": token },
          })
        ).status;
      assert.equal(await read(), 200);

      // Tokens nobody presents (a flood) never lock IMDS out.
      assert.deepEqual(await flood(1100, "127.0.0.1"), { 200: 1100 });
      assert.equal(await read(), 200, "the live token still works");
      assert.deepEqual(await flood(1100, "127.0.0.2"), { 200: 1100 });
      assert.deepEqual(await flood(1024, "127.0.0.3"), { 200: 1024 });
      assert.deepEqual(await flood(1030, "127.0.0.4"), { 200: 1030 });
      // The table holds 4096 now; new tokens still come, in place of unused ones.
      const late = await put(agent, "127.0.0.5");
      assert.equal(late.status, 200);
      assert.equal(await read(late.body), 200);
      assert.equal(await read(), 200, "the live token survived the flood");
    });
  });
});
