/**
 * `credbroker cred import --bulk` against the real daemon: a 20,000-line
 * JSONL file with bad rows at known lines (broken JSON, an unknown field, a
 * wrong type, a bad name, a duplicate, a namespace the caller may not write,
 * a role without its source). Each is reported by line and nothing else; the
 * good rows are all stored; no secret is printed, logged or stored in the clear.
 */
import assert from "node:assert/strict";
import { readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { createClient } from "@connectrpc/connect";
import { CallerRole } from "../../gen/credbroker/v1/caller_pb.js";
import { CallerService } from "../../gen/credbroker/v1/caller_service_pb.js";
import {
  type CliResult,
  haveScript,
  runCredbroker,
  runCredbrokerInPty,
} from "../support/cli-run.js";
import { credentialClient, transport } from "../support/clients.js";
import { type RunningDaemon, removeDir, startDaemon, tempDir } from "../support/daemon.js";

const ROWS = 20_000;
/** Every row's secret starts with this: a hit anywhere is a leak. */
const MARK = "bulkSECRETmark";
const secretOf = (line: number) => `${MARK}${String(line).padStart(8, "0")}xYz0123456789abcd`;
/** Rows whose secret is also looked for in every encoding in the data dir. */
const WATCHED = [1, 10_000, 19_999];

/** Each secret as it could leak: raw, base64, base64url, hex (both cases). */
function encodings(secret: string): string[] {
  const b = Buffer.from(secret);
  return [
    secret,
    b.toString("base64"),
    b.toString("base64url"),
    b.toString("hex"),
    b.toString("hex").toUpperCase(),
  ];
}

const good = (line: number, fields: Record<string, unknown> = {}) =>
  JSON.stringify({
    name: `k${line}`,
    accessKey: { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: secretOf(line) },
    allowedHosts: ["*.amazonaws.com"],
    ...fields,
  });

/** The bad lines, and the code each is reported with. */
const BAD: Record<number, [string, string]> = {
  3: [`{"name":"k3","accessKey":{"secretAccessKey":"${secretOf(3)}"`, "invalid_argument"],
  1000: [good(1000, { secretKey: secretOf(1000) }), "invalid_argument"],
  1001: [good(1001, { allowedHosts: secretOf(1001) }), "invalid_argument"],
  5000: [good(5000, { name: "bad name!" }), "invalid_argument"],
  12345: [good(12_345, { name: "k10" }), "already_exists"],
  15000: [good(15_000, { namespace: "team-b" }), "permission_denied"],
  19000: [
    JSON.stringify({
      name: "orphan",
      role: { roleArn: "arn:aws:iam::123456789012:role/Deployer", sourceCredential: "missing" },
    }),
    "failed_precondition",
  ],
};
const BLANK = 17_000;

describe("credbroker cred import --bulk", () => {
  let daemon: RunningDaemon;
  let dir: string;
  let file: string;
  let writerToken: string;
  let result: CliResult;
  const outputs: string[] = [];

  const cli = async (args: string[], token: string, stdin?: string) => {
    const r = await runCredbroker(["cred", "import", ...args], {
      env: { CREDBROKER_ADDR: daemon.url, CREDBROKER_TOKEN: token },
      ...(stdin === undefined ? {} : { stdin }),
      timeoutMs: 60_000,
    });
    outputs.push(r.stdout, r.stderr);
    return r;
  };

  const count = async (namespace: string): Promise<number> => {
    const client = credentialClient(daemon.url, "connect-h2", daemon.token);
    let n = 0;
    let pageToken = "";
    do {
      const page = await client.listCredentials({ namespace, pageSize: 1000, pageToken });
      n += page.credentials.length;
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    return n;
  };

  before(async () => {
    daemon = await startDaemon({ args: ["--log-level", "trace"] });
    dir = await tempDir();
    const callers = createClient(CallerService, transport(daemon.url, "connect-h2", daemon.token));
    writerToken = (
      await callers.createCaller({
        caller: { name: "migrator", role: CallerRole.WRITER, namespaces: ["team-a"] },
      })
    ).token;
    const lines = Array.from({ length: ROWS }, (_, i) => {
      const line = i + 1;
      if (line === BLANK) return "";
      return BAD[line]?.[0] ?? good(line, line % 2 === 0 ? { namespace: "team-a" } : {});
    });
    file = path.join(dir, "credentials.jsonl");
    await writeFile(file, `${lines.join("\n")}\n`);
    // As a writer of team-a; rows without "namespace" take -n's.
    result = await cli(["--bulk", file, "-n", "team-a"], writerToken);
  });

  after(async () => {
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
    if (dir) await removeDir(dir);
  });

  test("every bad row is reported by its line and code, and only those; exit 10", () => {
    assert.equal(result.code, 10, result.stderr);
    const reported = [...result.stderr.matchAll(/^line (\d+): (\w+): .+$/gm)].map(
      (m) => `${m[1]} ${m[2]}`,
    );
    assert.deepEqual(
      reported,
      Object.entries(BAD).map(([line, [, code]]) => `${line} ${code}`),
    );
    assert.equal(result.stderr.trim().split("\n").length, reported.length, result.stderr);
    const good = ROWS - Object.keys(BAD).length - 1;
    assert.equal(result.stdout, `imported ${good}, failed ${Object.keys(BAD).length}\n`);
  });

  test("the reasons name what is wrong, never the line's content", () => {
    const reason = (line: number) =>
      new RegExp(`^line ${line}: \\w+: (.*)$`, "m").exec(result.stderr)?.[1] ?? "";
    assert.match(reason(3), /^not valid JSON/);
    assert.equal(reason(1000), 'message credbroker.v1.Credential: unknown field "secretKey"');
    assert.equal(reason(1001), "field credbroker.v1.Credential.allowed_hosts: expected Array");
    assert.match(reason(5000), /^name: /);
    assert.equal(reason(12_345), "credential team-a/k10 already exists");
    assert.match(reason(15_000), /may not write in namespace "team-b"/);
    assert.match(reason(19_000), /team-a\/missing does not exist/);
  });

  test("every good row is stored, around the bad ones", async () => {
    assert.equal(await count("team-a"), ROWS - Object.keys(BAD).length - 1);
    assert.equal(await count("team-b"), 0);
    const client = credentialClient(daemon.url, "connect-h2", daemon.token);
    for (const name of ["k1", "k2", "k4", "k999", "k1002", "k4999", "k5001", "k20000"]) {
      const c = (await client.getCredential({ namespace: "team-a", name })).credential;
      assert.deepEqual(c?.allowedHosts, ["*.amazonaws.com"], name);
    }
  });

  test("the audit log has a line per row the daemon read, in file order, with its name and outcome", async () => {
    const rows = (await readFile(path.join(daemon.dataDir, "audit.log"), "utf8"))
      .trim()
      .split("\n")
      .map(
        (l) =>
          JSON.parse(l) as {
            line?: string;
            namespace?: string;
            credential?: string;
            outcome?: string;
            reason?: string;
          },
      )
      .filter((l) => l.line !== undefined);
    // Lines that are not a credential's JSON are refused by the CLI and never sent.
    const unsent = new Set([3, 1000, 1001, BLANK]);
    const sent = Array.from({ length: ROWS }, (_, i) => i + 1).filter((l) => !unsent.has(l));
    assert.deepEqual(
      rows.map((r) => Number(r.line)),
      sent,
    );
    const row = (line: number) => {
      const r = rows.find((l) => l.line === String(line));
      return [r?.namespace, r?.credential, r?.outcome, r?.reason];
    };
    assert.deepEqual(row(1), ["team-a", "k1", "created", undefined]);
    assert.deepEqual(row(5000), ["team-a", undefined, "failed", "invalid_argument"]);
    assert.deepEqual(row(12_345), ["team-a", "k10", "skipped", "already_exists"]);
    assert.deepEqual(row(15_000), ["team-b", "k15000", "failed", "permission_denied"]);
    assert.deepEqual(row(19_000), ["team-a", "orphan", "failed", "failed_precondition"]);
  });

  test("stdin (-) with -o json: the response's JSON, failures included", async () => {
    const r = await cli(
      ["--bulk", "-", "-n", "piped", "-o", "json"],
      daemon.token,
      [good(1), "not json", good(3), good(1)].join("\r\n"),
    );
    assert.equal(r.code, 10, r.stderr);
    const res = JSON.parse(r.stdout) as { created: string; failures: { line: string }[] };
    assert.equal(res.created, "2");
    assert.deepEqual(
      res.failures.map((f) => f.line),
      ["2", "4"],
    );
    assert.equal(await count("piped"), 2);
  });

  test("a clean file exits 0", async () => {
    const clean = path.join(dir, "clean.jsonl");
    await writeFile(clean, `${good(1)}\n\n${good(2)}`);
    const r = await cli(["--bulk", clean, "-n", "clean"], daemon.token);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "imported 2, failed 0\n");
    assert.equal(r.stderr, "");
  });

  test("usage: --bulk with a NAME or --from, or a missing file, exits 2", async () => {
    for (const args of [
      ["name", "--bulk", file],
      ["--bulk", file, "--from", "env"],
      ["--bulk", path.join(dir, "absent.jsonl")],
      [],
    ]) {
      const r = await cli(args, daemon.token);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    }
  });

  test("on a terminal, progress is drawn on one line in place, with the total", async (t) => {
    if (!haveScript()) {
      t.skip("util-linux script is not installed");
      return;
    }
    const small = path.join(dir, "small.jsonl");
    await writeFile(small, `${Array.from({ length: 3000 }, (_, i) => good(i + 1)).join("\n")}\n`);
    const r = await runCredbrokerInPty(
      ["cred", "import", "--bulk", small, "-n", "tty", "--addr", daemon.url],
      {
        env: { CREDBROKER_TOKEN: daemon.token },
        prompt: "\u0000never shown",
        answer: "",
        timeoutMs: 30_000,
      },
    );
    assert.equal(r.code, 0, r.output);
    const erase = "\r\u001b[K";
    assert.match(r.output.replaceAll(erase, "<erase>"), /<erase>[\d,]+\/3,000 lines/);
    assert.match(r.output.replaceAll(erase, "<erase>"), /<erase>imported 3000, failed 0\r?\n/);
    assert.ok(!r.output.includes(MARK));
  });

  test("no secret in the CLI's output, the daemon's log or the data dir", async () => {
    for (const out of [...outputs, daemon.output()]) {
      assert.ok(!out.includes(MARK), "a secret was printed or logged");
    }
    const markHex = Buffer.from(MARK).toString("hex");
    const files = await readdir(daemon.dataDir, { recursive: true, withFileTypes: true });
    let scanned = 0;
    for (const f of files) {
      if (!f.isFile()) continue;
      const data = await readFile(path.join(f.parentPath, f.name));
      assert.ok(!data.includes(MARK) && !data.includes(markHex), `${f.name} holds a secret`);
      for (const line of WATCHED) {
        for (const form of encodings(secretOf(line))) {
          assert.ok(!data.includes(form), `${f.name} holds a secret (${form.slice(0, 6)}…)`);
        }
      }
      scanned++;
    }
    assert.ok(scanned >= 4, "the database files were scanned");
  });
});
