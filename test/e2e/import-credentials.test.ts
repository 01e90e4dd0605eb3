/**
 * ImportCredentials against the real daemon: a client stream of several
 * messages, each row checked and authorized as CreateCredential would; bad
 * rows (and every row of a message over the item limit) reported by line and
 * skipped, the rows around them created; audited row by row and with counts,
 * no secret.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { type MessageInitShape, toJsonString } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { CallerRole } from "../../gen/credbroker/v1/caller_pb.js";
import { CallerService } from "../../gen/credbroker/v1/caller_service_pb.js";
import {
  type ImportCredentialsRequestSchema,
  type ImportCredentialsResponse,
  ImportCredentialsResponseSchema,
  type ImportItemSchema,
} from "../../gen/credbroker/v1/credential_service_pb.js";
import { credentialClient, PROTOCOLS, type Protocol, transport } from "../support/clients.js";
import { type RunningDaemon, removeDir, startDaemon } from "../support/daemon.js";

const SECRET = "importSECRETvalue0123456789abcdefghijklm";

type Item = MessageInitShape<typeof ImportItemSchema>;
type Request = MessageInitShape<typeof ImportCredentialsRequestSchema>;

function key(namespace: string, name: string, line: number): Item {
  return {
    line: BigInt(line),
    credential: {
      namespace,
      name,
      kind: {
        case: "accessKey",
        value: { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: SECRET },
      },
    },
  };
}

async function* stream(messages: Request[]): AsyncIterable<Request> {
  for (const m of messages) yield m;
}

/** "LINE CODE" for each failure, in order. */
const failed = (res: ImportCredentialsResponse): string[] =>
  res.failures.map((f) => `${f.line} ${f.code}`);

describe("ImportCredentials", () => {
  let daemon: RunningDaemon;
  const responses: string[] = [];

  before(async () => {
    daemon = await startDaemon();
  });
  after(async () => {
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
  });

  const names = async (namespace: string): Promise<string[]> =>
    (
      await credentialClient(daemon.url, "connect-h2", daemon.token).listCredentials({
        namespace,
        pageSize: 1000,
      })
    ).credentials.map((c) => c.name);

  for (const protocol of PROTOCOLS) {
    test(`${protocol}: rows across messages; bad rows and an oversized message reported, the rest created`, async () => {
      const ns = `imp-${protocol}`;
      const client = credentialClient(daemon.url, protocol as Protocol, daemon.token);
      const past = key(ns, "past", 4);
      if (past.credential) past.credential.expiresAt = timestampFromDate(new Date(0));
      const role = (name: string, source: string, line: number): Item => ({
        line: BigInt(line),
        credential: {
          namespace: ns,
          name,
          kind: {
            case: "role",
            value: { roleArn: "arn:aws:iam::123456789012:role/Deployer", sourceCredential: source },
          },
        },
      });
      const res = await client.importCredentials(
        stream([
          {
            items: [
              key(ns, "k1", 1),
              key(ns, "bad name!", 2),
              key(ns, "k3", 3),
              past,
              key(ns, "k1", 5),
            ],
          },
          { items: Array.from({ length: 1001 }, (_, i) => key(ns, `big-${i}`, 100 + i)) },
          {
            items: [
              role("deployer", "k3", 2000),
              role("orphan", "missing", 2001),
              { line: 2002n },
              key(ns, "k4", 2003),
            ],
          },
        ]),
      );
      responses.push(toJsonString(ImportCredentialsResponseSchema, res));
      assert.equal(res.created, 4n);
      assert.deepEqual(failed(res), [
        "2 invalid_argument",
        "4 invalid_argument",
        "5 already_exists",
        ...Array.from({ length: 1001 }, (_, i) => `${100 + i} invalid_argument`),
        "2001 failed_precondition",
        "2002 invalid_argument",
      ]);
      const message = (line: bigint) => res.failures.find((f) => f.line === line)?.message;
      assert.match(message(2n) ?? "", /^name: /);
      assert.match(message(4n) ?? "", /expires_at: is in the past/);
      assert.match(message(5n) ?? "", new RegExp(`${ns}/k1 already exists`));
      assert.match(message(100n) ?? "", /1001 in one message, at most 1000/);
      assert.match(message(2001n) ?? "", /missing does not exist/);
      assert.match(message(2002n) ?? "", /credential: is required/);
      assert.deepEqual(await names(ns), ["deployer", "k1", "k3", "k4"]);
    });
  }

  test("each row is authorized as CreateCredential: a writer's rows outside its namespaces are permission_denied", async () => {
    const admin = createClient(CallerService, transport(daemon.url, "connect-h2", daemon.token));
    const { token } = await admin.createCaller({
      caller: { name: "importer", role: CallerRole.WRITER, namespaces: ["mine"] },
    });
    const writer = credentialClient(daemon.url, "grpc-h2", token);
    const res = await writer.importCredentials(
      stream([
        { items: [key("mine", "a", 1), key("theirs", "b", 2)] },
        { items: [key("mine", "c", 3)] },
      ]),
    );
    responses.push(toJsonString(ImportCredentialsResponseSchema, res));
    assert.equal(res.created, 2n);
    assert.deepEqual(failed(res), ["2 permission_denied"]);
    assert.deepEqual(await names("mine"), ["a", "c"]);
    assert.deepEqual(await names("theirs"), []);
  });

  test("a call over 100,000 rows fails invalid_argument", async () => {
    const client = credentialClient(daemon.url, "connect-h2", daemon.token);
    // Rows without a credential: refused at once, so the limit is reached cheaply.
    const messages = Array.from({ length: 101 }, (_, m) => ({
      items: Array.from({ length: 1000 }, (_, i) => ({ line: BigInt(m * 1000 + i) })),
    }));
    const err = await client.importCredentials(stream(messages)).then(
      () => assert.fail("the call should fail"),
      (e: unknown) => ConnectError.from(e),
    );
    assert.equal(err.code, Code.InvalidArgument);
    assert.match(err.rawMessage, /at most 100000 rows/);
  });

  test("no token: unauthenticated", async () => {
    const err = await credentialClient(daemon.url, "connect-h2")
      .importCredentials(stream([{ items: [key("x", "y", 1)] }]))
      .then(
        () => assert.fail("the call should fail"),
        (e: unknown) => ConnectError.from(e),
      );
    assert.equal(err.code, Code.Unauthenticated);
  });

  test("one audit line per row, in row order, then the call's line with counts; no secret; responses hold no secret", async () => {
    const raw = await readFile(path.join(daemon.dataDir, "audit.log"), "utf8");
    assert.ok(!raw.includes(SECRET), "no secret in the audit log");
    const imports = raw
      .trim()
      .split("\n")
      .map(
        (l) =>
          JSON.parse(l) as {
            rpc: string;
            requestId: string;
            decision: string;
            namespace?: string;
            credential?: string;
            line?: string;
            outcome?: string;
            reason?: string;
            created?: number;
            failed?: number;
            caller?: string;
          },
      )
      .filter((l) => l.rpc === "/credbroker.v1.CredentialService/ImportCredentials");
    const allowed = imports.filter((l) => l.decision === "allow" && l.line === undefined);
    assert.equal(allowed.length, PROTOCOLS.length + 1);

    // The writer's call: the attempt (before authentication: no caller yet), its rows as read, then the counts.
    const importerCall = imports.find((l) => l.caller === "importer")?.requestId;
    const byImporter = imports.filter((l) => l.requestId === importerCall);
    assert.deepEqual(
      byImporter.map((l) => [
        l.decision,
        l.line,
        l.namespace,
        l.credential,
        l.outcome,
        l.reason,
        l.created,
        l.failed,
      ]),
      [
        ["attempt", undefined, undefined, undefined, undefined, undefined, undefined, undefined],
        ["allow", "1", "mine", "a", "created", undefined, undefined, undefined],
        ["deny", "2", "theirs", "b", "failed", "permission_denied", undefined, undefined],
        ["allow", "3", "mine", "c", "created", undefined, undefined, undefined],
        ["allow", undefined, undefined, undefined, undefined, undefined, 2, 1],
      ],
    );

    // Each protocol's call: every row, in the order sent, named and with its outcome.
    for (const protocol of PROTOCOLS) {
      const ns = `imp-${protocol}`;
      const summary = allowed.find(
        (l) =>
          l.created === 4 &&
          l.failed === 1006 &&
          imports.some((r) => r.requestId === l.requestId && r.namespace === ns),
      );
      assert.ok(summary, `${protocol}: the call's line`);
      const call = imports.filter((l) => l.requestId === summary.requestId);
      assert.deepEqual(call.at(-1), summary, "the counts come last");
      const rows = call.filter((l) => l.line !== undefined);
      assert.deepEqual(
        rows.map((l) => l.line),
        [
          "1",
          "2",
          "3",
          "4",
          "5",
          ...Array.from({ length: 1001 }, (_, i) => `${100 + i}`),
          "2000",
          "2001",
          "2002",
          "2003",
        ],
      );
      const row = (line: string) => rows.find((l) => l.line === line);
      assert.deepEqual(
        ["1", "2", "4", "5", "100", "2000", "2001", "2002"].map((line) => {
          const r = row(line);
          return [line, r?.namespace, r?.credential, r?.outcome, r?.decision, r?.reason];
        }),
        [
          ["1", ns, "k1", "created", "allow", undefined],
          // A malformed name is not written to the log.
          ["2", ns, undefined, "failed", "error", "invalid_argument"],
          ["4", ns, "past", "failed", "error", "invalid_argument"],
          ["5", ns, "k1", "skipped", "error", "already_exists"],
          ["100", ns, "big-0", "failed", "error", "invalid_argument"],
          ["2000", ns, "deployer", "created", "allow", undefined],
          ["2001", ns, "orphan", "failed", "error", "failed_precondition"],
          ["2002", undefined, undefined, "failed", "error", "invalid_argument"],
        ],
      );
    }
    assert.ok(
      imports.some((l) => l.decision === "error" && l.line === undefined),
      "the call over the limit",
    );
    for (const r of responses) assert.ok(!r.includes(SECRET), "no secret in a response");
    assert.ok(!daemon.output().includes(SECRET), "no secret in the daemon log");
  });
});
