import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import {
  type CliResult,
  type CliRunOptions,
  haveScript,
  runCredbroker,
  runCredbrokerInPty,
} from "../support/cli-run.js";
import { type RunningDaemon, removeDir, runCli, startDaemon, tempDir } from "../support/daemon.js";

// Distinctive secrets, so that a hit anywhere is unambiguous.
const STDIN_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSTDINsecret01";
const FILE_SECRET = "qL9mN2bV5cX8zA1sD4fG7hJ0kFILEsecret02xYz";
const ENV_SECRET = "pO3iU6yT9rE2wQ5aS8dF1gENVsecret03hJkLmN";
const TOKEN_SECRET = "ghp_TOKENsecret04abcdefghijklmnopqrstuv";
const PTY_SECRET = "tY7uI0oP3aS6dF9gH2jPTYsecret05kLzXcVbN";
const ROTATED_SECRET = "mN4bV7cX0zA3sD6fROTATEDsecret06gHjKlQw";
const SOURCE_SECRET = "zX1cV4bN7mQ0wE3rSOURCEsecret07tYuIoPaS";
const PAGE_SECRET = (i: number) => `pageTOKENsecret08-${i}-aB3dE6gH9jK2mN5pQ8`;
const SECRETS = [
  STDIN_SECRET,
  FILE_SECRET,
  ENV_SECRET,
  TOKEN_SECRET,
  PTY_SECRET,
  ROTATED_SECRET,
  SOURCE_SECRET,
  ...[1, 2, 3, 4, 5].map(PAGE_SECRET),
  ...[1, 2].map((i) => `provTOKENsecret09-${i}-qW2eR4tY6uI8oP0`),
];

const AKID = "AKIAIOSFODNN7EXAMPLE";
const AKID2 = "AKIAI44QH8DHBEXAMPLE";
const ROLE_ARN = "arn:aws:iam::123456789012:role/deploy";

/** The JSON shape of a Credential in proto3 JSON (only what the tests read). */
interface CredentialJson {
  id?: string;
  namespace?: string;
  name?: string;
  accessKey?: { accessKeyId?: string; secretAccessKey?: string; sessionToken?: string };
  role?: {
    roleArn?: string;
    externalId?: string;
    durationSeconds?: number;
    sourceCredential?: string;
  };
  token?: { token?: string };
  provider?: string;
  description?: string;
  enabled?: boolean;
  etag?: string;
}

interface CredentialResponseJson {
  credential?: CredentialJson;
}

interface ListJson {
  credentials?: CredentialJson[];
  nextPageToken?: string;
}

interface VerifyJson {
  valid?: boolean;
  checks?: { check?: string; ok?: boolean; severity?: string; message?: string }[];
}

/** FIELD / VALUE rows of a credential table (`cred get`, `create`, `update`). */
function fieldTable(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const m = /^(\S+(?: \S+)*?) {2,}(.*)$/.exec(line);
    assert.ok(m?.[1] !== undefined && m[2] !== undefined, `not a FIELD  VALUE row: ${line}`);
    fields.set(m[1], m[2]);
  }
  return fields;
}

/** The rows of a `cred list` table keyed by column header, and its page-token hint. */
function listTable(text: string): { rows: Record<string, string>[]; hint: string | undefined } {
  const lines = text.split("\n").filter((l) => l !== "");
  const hintLine = lines.find((l) => l.startsWith("next page: "));
  const tableLines = lines.filter((l) => !l.startsWith("next page: "));
  const header = tableLines[0] ?? "";
  const columns = [...header.matchAll(/\S+(?: \S+)*/g)].map((m) => ({
    name: m[0],
    start: m.index,
  }));
  const rows = tableLines.slice(1).map((line) => {
    const row: Record<string, string> = {};
    columns.forEach((c, i) => {
      row[c.name] = line.slice(c.start, columns[i + 1]?.start ?? line.length).trim();
    });
    return row;
  });
  const hint =
    hintLine === undefined ? undefined : /^next page: --page-token (\S+)$/.exec(hintLine);
  if (hintLine !== undefined) assert.ok(hint?.[1], `bad hint line: ${hintLine}`);
  return { rows, hint: hint?.[1] };
}

function parseJson<T>(r: CliResult): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch (err) {
    throw new Error(`stdout is not JSON: ${(err as Error).message}\n${r.stdout}`);
  }
}

/** Each secret as it could leak: raw, base64 and base64url. */
function encodings(secret: string): string[] {
  const b = Buffer.from(secret);
  return [secret, b.toString("base64"), b.toString("base64url")];
}

function assertNoSecret(text: string, where: string, secrets: readonly string[] = SECRETS): void {
  for (const secret of secrets) {
    for (const form of encodings(secret)) {
      assert.ok(!text.includes(form), `${where} contains a secret (${form.slice(0, 8)}…)`);
    }
  }
}

function describeRun(args: readonly string[], r: CliResult): string {
  return `credbroker ${args.join(" ")} → ${r.code ?? r.signal}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}

describe("credbroker CLI against a real daemon", () => {
  let daemon: RunningDaemon;
  let addr: string;
  let tokenFile: string;
  let work: string;
  /** Every stdout and stderr of every CLI run, and every terminal transcript. */
  const transcript: string[] = [];
  const otherDaemons: RunningDaemon[] = [];

  before(async () => {
    daemon = await startDaemon({ args: ["--log-level", "trace", "--auth-failure-delay", "0"] });
    addr = new URL(daemon.url).host;
    assert.match(addr, /^127\.0\.0\.1:\d+$/);
    tokenFile = path.join(daemon.dataDir, "admin.token");
    work = await tempDir("credbroker-cli-test-");
  });

  after(async () => {
    for (const d of [daemon, ...otherDaemons]) {
      if (d === undefined) continue;
      await d.stop();
      await removeDir(d.dataDir);
    }
    if (work !== undefined) await removeDir(work);
  });

  /** Runs the CLI with no connection settings but those in `opts` (recorded for the leak check). */
  async function raw(args: string[], opts: CliRunOptions = {}): Promise<CliResult> {
    const r = await runCredbroker(args, opts);
    transcript.push(`$ credbroker ${args.join(" ")}\n${r.stdout}${r.stderr}`);
    return r;
  }

  /** Runs the CLI pointed at the daemon through CREDBROKER_ADDR and CREDBROKER_TOKEN_FILE. */
  function cli(args: string[], opts: CliRunOptions = {}): Promise<CliResult> {
    return raw(args, {
      ...opts,
      env: { CREDBROKER_ADDR: addr, CREDBROKER_TOKEN_FILE: tokenFile, ...opts.env },
    });
  }

  /** Like `cli`, and asserts the exit status. */
  async function expectExit(
    code: number,
    args: string[],
    opts: CliRunOptions = {},
  ): Promise<CliResult> {
    const r = await cli(args, opts);
    assert.equal(r.code, code, describeRun(args, r));
    return r;
  }

  test("--help lists the commands; `cred create --help` and `serve --help` show every flag with env and default", async () => {
    const top = await raw(["--help"]);
    assert.equal(top.code, 0, describeRun(["--help"], top));
    assert.equal(top.stderr, "");
    assert.match(top.stdout, /^ {2}credbroker serve \[flags\]/m);
    for (const sub of ["create", "get", "list", "update", "delete", "verify"]) {
      assert.match(top.stdout, new RegExp(`^ {2}credbroker cred ${sub} `, "m"), sub);
    }
    // Exit 2 is also what config check and serve answer for a config they refuse.
    assert.match(
      top.stdout,
      /Exit codes: 0 ok, 1 error, 2 usage or invalid config \(bad flags; config check,\nor serve refusing its config before starting\), 3 unauthenticated, 4 not found,/,
    );

    const none = await raw([]);
    assert.equal(none.code, 2, describeRun([], none));
    assert.equal(none.stdout, "");
    assert.match(none.stderr, /credbroker cred create NAME/);

    const bare = await raw(["cred"]);
    assert.equal(bare.code, 2, describeRun(["cred"], bare));
    assert.equal(bare.stdout, "");
    assert.match(bare.stderr, /Usage: credbroker cred COMMAND/);

    const unknown = await raw(["cred", "frobnicate"]);
    assert.equal(unknown.code, 2, describeRun(["cred", "frobnicate"], unknown));
    assert.match(unknown.stderr, /unknown command "frobnicate"/);

    const create = await raw(["cred", "create", "--help"]);
    assert.equal(create.code, 0, describeRun(["cred", "create", "--help"], create));
    assert.match(create.stdout, /^Usage: credbroker cred create NAME \[flags\]$/m);
    const flagLine = (flag: string): string => {
      const line = create.stdout.split("\n").find((l) => new RegExp(`--${flag}(\\s|$)`).test(l));
      assert.ok(line !== undefined, `cred create --help lacks --${flag}:\n${create.stdout}`);
      return line;
    };
    for (const flag of [
      "namespace",
      "kind",
      "access-key-id",
      "secret-stdin",
      "secret-file",
      "secret-env",
      "session-token-stdin",
      "session-token-file",
      "session-token-env",
      "role-arn",
      "external-id",
      "session-name",
      "duration",
      "source",
      "provider",
      "region",
      "description",
      "principal-name",
      "metadata",
      "provider-default",
      "allowed-in-tasks",
      "enabled",
      "expires-at",
      "allowed-host",
      "scope",
      "addr",
      "token-file",
      "output",
      "help",
    ]) {
      flagLine(flag);
    }
    assert.match(
      flagLine("addr"),
      /--addr ADDR .*\[env CREDBROKER_ADDR; default 127\.0\.0\.1:50051\]$/,
    );
    assert.match(
      flagLine("namespace"),
      /-n, --namespace NS .*\[env CREDBROKER_NAMESPACE; default ""\]$/,
    );
    assert.match(
      flagLine("token-file"),
      /--token-file FILE .*\[env CREDBROKER_TOKEN_FILE; default <data dir>\/admin\.token\]$/,
    );
    assert.match(
      flagLine("output"),
      /-o, --output table\|json .*\[env CREDBROKER_OUTPUT; default table\]$/,
    );

    const serve = await raw(["serve", "--help"]);
    assert.equal(serve.code, 0, describeRun(["serve", "--help"], serve));
    const listen = serve.stdout.split("\n").find((l) => l.includes("--listen"));
    assert.match(
      listen ?? "",
      /--listen HOST:PORT .*\[env CREDBROKER_LISTEN; default 127\.0\.0\.1:50051\]$/,
    );
    assert.match(serve.stdout, /--data-dir DIR .*\[env CREDBROKER_DATA_DIR; default /);
  });

  test("create: secret on stdin, table output shows the access key id, never the secret", async () => {
    const args = ["cred", "create", "stdin-key", "--access-key-id", AKID, "--secret-stdin"];
    const r = await expectExit(0, args, { stdin: `${STDIN_SECRET}\n` });
    assert.equal(r.stderr, "");
    const f = fieldTable(r.stdout);
    assert.equal(f.get("namespace"), '"" (workspace)');
    assert.equal(f.get("name"), "stdin-key");
    assert.equal(f.get("kind"), "access-key");
    assert.equal(f.get("access key id"), AKID);
    assert.equal(f.get("session token"), "no");
    assert.equal(f.get("provider"), "aws");
    assert.equal(f.get("enabled"), "true");
    assert.match(f.get("id") ?? "", /^[0-9a-f-]{36}$/);
    assert.match(f.get("etag") ?? "", /^\S+$/);
    assertNoSecret(r.stdout + r.stderr, "create output");
  });

  test("create: secret from a file (-o json has credential.name and no secret field)", async () => {
    const file = path.join(work, "secret.txt");
    await writeFile(file, `${FILE_SECRET}\n`, { mode: 0o600 });
    const args = [
      "cred",
      "create",
      "file-key",
      "--access-key-id",
      AKID2,
      "--secret-file",
      file,
      "--region",
      "eu-west-1",
      "--description",
      "from a file",
      "-o",
      "json",
    ];
    const r = await expectExit(0, args);
    assert.equal(r.stderr, "");
    const body = parseJson<CredentialResponseJson>(r);
    const c = body.credential;
    assert.ok(c !== undefined, r.stdout);
    assert.equal(c.name, "file-key");
    assert.equal(c.namespace, undefined, "the workspace namespace is omitted in proto3 JSON");
    assert.deepEqual(c.accessKey, { accessKeyId: AKID2 });
    assert.equal(c.provider, "PROVIDER_AWS");
    assert.equal(c.enabled, true);
    assert.equal(c.description, "from a file");
    assert.match(c.id ?? "", /^[0-9a-f-]{36}$/);
    assert.ok((c.etag ?? "") !== "");
    assert.ok(!r.stdout.includes("secretAccessKey"), r.stdout);

    const missing = await expectExit(2, [
      "cred",
      "create",
      "no-file",
      "--access-key-id",
      AKID2,
      "--secret-file",
      path.join(work, "does-not-exist"),
    ]);
    assert.match(missing.stderr, /--secret-file: cannot read the file \(ENOENT\)/);
    assert.ok(!missing.stderr.includes("does-not-exist"), "the typed path is not repeated");
  });

  test("create: secret from an environment variable, in a namespace", async () => {
    const args = [
      "cred",
      "create",
      "env-key",
      "-n",
      "team-a",
      "--access-key-id",
      AKID,
      "--secret-env",
      "MY_TEST_SECRET",
    ];
    const r = await expectExit(0, args, { env: { MY_TEST_SECRET: ENV_SECRET } });
    const f = fieldTable(r.stdout);
    assert.equal(f.get("namespace"), "team-a");
    assert.equal(f.get("name"), "env-key");
    assert.equal(f.get("access key id"), AKID);

    const unset = await expectExit(2, [
      "cred",
      "create",
      "env-key-2",
      "-n",
      "team-a",
      "--access-key-id",
      AKID,
      "--secret-env",
      "CREDBROKER_TEST_UNSET_VARIABLE",
    ]);
    assert.match(unset.stderr, /--secret-env: no such environment variable/);
    assert.ok(
      !unset.stderr.includes("CREDBROKER_TEST_UNSET_VARIABLE"),
      "the typed name is not repeated",
    );

    // No secret source and no terminal: a usage error, nothing created.
    const none = await expectExit(2, ["cred", "create", "env-key-3", "--access-key-id", AKID]);
    assert.match(none.stderr, /the secret is required/);
    await expectExit(4, ["cred", "get", "env-key-3"]);
  });

  test("create: a token credential and a role with --source", async () => {
    const tok = await expectExit(
      0,
      ["cred", "create", "api-token", "--kind", "token", "--provider", "generic", "--secret-stdin"],
      { stdin: TOKEN_SECRET },
    );
    const t = fieldTable(tok.stdout);
    assert.equal(t.get("kind"), "token");
    assert.equal(t.get("provider"), "generic");
    assert.equal(t.has("access key id"), false);

    const role = await expectExit(0, [
      "cred",
      "create",
      "deploy-role",
      "--role-arn",
      ROLE_ARN,
      "--source",
      "stdin-key",
      "--duration",
      "900",
      "--session-name",
      "ci-deploy",
    ]);
    const f = fieldTable(role.stdout);
    assert.equal(f.get("kind"), "role");
    assert.equal(f.get("role arn"), ROLE_ARN);
    assert.equal(f.get("source"), "stdin-key");
    assert.equal(f.get("duration"), "900s");
    assert.equal(f.get("session name"), "ci-deploy");
    assert.match(f.get("external id") ?? "", /^[0-9a-f-]{36}$/, "generated external id");
  });

  test("create: the secret typed at a hidden prompt on a terminal is stored and not echoed", async (t) => {
    if (!haveScript()) {
      t.skip("util-linux script is not installed");
      return;
    }
    const r = await runCredbrokerInPty(
      [
        "cred",
        "create",
        "typed-key",
        "--access-key-id",
        AKID,
        "--addr",
        addr,
        "--token-file",
        tokenFile,
      ],
      { prompt: "Secret access key: ", answer: PTY_SECRET },
    );
    transcript.push(`[pty]\n${r.output}`);
    assert.ok(r.prompted, `no prompt on the terminal:\n${r.output}`);
    assert.equal(r.code, 0, r.output);
    assert.ok(!r.output.includes(PTY_SECRET), `the typed secret was echoed:\n${r.output}`);
    assertNoSecret(r.output, "terminal output");
    // The prompt, then (after Enter) a newline, then the table.
    assert.match(r.output, /Secret access key: \r?\n/);
    assert.match(r.output, /^name {2,}typed-key\r?$/m);

    const got = await expectExit(0, ["cred", "get", "typed-key", "-o", "json"]);
    const c = parseJson<CredentialResponseJson>(got).credential;
    assert.equal(c?.name, "typed-key");
    assert.deepEqual(c?.accessKey, { accessKeyId: AKID });
    // The stored secret is the typed one: it is well formed (a stray \r would fail this).
    const v = await expectExit(0, ["cred", "verify", "typed-key", "-o", "json"]);
    const verdict = parseJson<VerifyJson>(v);
    assert.equal(verdict.valid, true);
    assert.equal(
      verdict.checks?.find((k) => k.check === "access_key.secret_access_key.format")?.ok,
      true,
    );
  });

  test("get and list, as tables and as JSON", async () => {
    const get = await expectExit(0, ["cred", "get", "env-key", "-n", "team-a"]);
    const f = fieldTable(get.stdout);
    assert.equal(f.get("namespace"), "team-a");
    assert.equal(f.get("access key id"), AKID);
    assert.equal(f.get("session token"), "no");

    // The namespace from CREDBROKER_NAMESPACE, the output format from CREDBROKER_OUTPUT.
    const getJson = await expectExit(0, ["cred", "get", "env-key"], {
      env: { CREDBROKER_NAMESPACE: "team-a", CREDBROKER_OUTPUT: "json" },
    });
    const c = parseJson<CredentialResponseJson>(getJson).credential;
    assert.equal(c?.namespace, "team-a");
    assert.equal(c?.name, "env-key");
    assert.deepEqual(c?.accessKey, { accessKeyId: AKID });
    assert.equal(c?.etag, f.get("etag"));

    const list = await expectExit(0, ["cred", "list", "-n", "team-a"]);
    const { rows, hint } = listTable(list.stdout);
    assert.equal(hint, undefined);
    assert.deepEqual(rows, [
      {
        NAMESPACE: "team-a",
        NAME: "env-key",
        KIND: "access-key",
        PROVIDER: "aws",
        STATUS: "active",
        DEFAULT: "",
        "ACCESS KEY ID / ROLE": AKID,
        EXPIRES: "-",
        UPDATED: f.get("updated") ?? "",
      },
    ]);

    const ws = await expectExit(0, ["cred", "list"]);
    const wsRows = listTable(ws.stdout).rows;
    assert.deepEqual(
      wsRows.map((r) => [r.NAME, r.KIND, r["ACCESS KEY ID / ROLE"]]),
      [
        ["api-token", "token", ""],
        ["deploy-role", "role", ROLE_ARN],
        ["file-key", "access-key", AKID2],
        ["stdin-key", "access-key", AKID],
        ["typed-key", "access-key", AKID],
      ].filter(([name]) => name !== "typed-key" || haveScript()),
    );

    const wsJson = parseJson<ListJson>(await expectExit(0, ["cred", "list", "-o", "json"]));
    assert.deepEqual(
      wsJson.credentials?.map((x) => x.name),
      wsRows.map((r) => r.NAME),
    );
    assert.equal(wsJson.nextPageToken ?? "", "");
    for (const x of wsJson.credentials ?? []) {
      assert.equal(x.accessKey?.secretAccessKey, undefined);
      assert.equal(x.token?.token, undefined);
    }
  });

  test("list paging: --page-size, the --page-token hint, --all", async () => {
    const names = ["p1", "p2", "p3", "p4", "p5"];
    // Created in reverse order: the listing is in name order regardless.
    for (const [i, name] of [...names.entries()].reverse()) {
      await expectExit(
        0,
        ["cred", "create", name, "-n", "paging", "--kind", "token", "--secret-stdin"],
        {
          stdin: PAGE_SECRET(i + 1),
        },
      );
    }
    const page1 = await expectExit(0, ["cred", "list", "-n", "paging", "--page-size", "2"]);
    const l1 = listTable(page1.stdout);
    assert.deepEqual(
      l1.rows.map((r) => r.NAME),
      ["p1", "p2"],
    );
    assert.ok(l1.hint !== undefined, `no --page-token hint:\n${page1.stdout}`);

    const page2 = await expectExit(0, [
      "cred",
      "list",
      "-n",
      "paging",
      "--page-size",
      "2",
      "--page-token",
      l1.hint,
    ]);
    const l2 = listTable(page2.stdout);
    assert.deepEqual(
      l2.rows.map((r) => r.NAME),
      ["p3", "p4"],
    );
    assert.ok(l2.hint !== undefined && l2.hint !== l1.hint, page2.stdout);

    const page3 = await expectExit(0, [
      "cred",
      "list",
      "-n",
      "paging",
      "--page-size",
      "2",
      "--page-token",
      l2.hint,
      "-o",
      "json",
    ]);
    const j3 = parseJson<ListJson>(page3);
    assert.deepEqual(
      j3.credentials?.map((c) => c.name),
      ["p5"],
    );
    assert.equal(j3.nextPageToken ?? "", "");

    const all = await expectExit(0, [
      "cred",
      "list",
      "-n",
      "paging",
      "--page-size",
      "2",
      "--all",
      "-o",
      "json",
    ]);
    const j = parseJson<ListJson>(all);
    assert.deepEqual(
      j.credentials?.map((c) => c.name),
      names,
    );
    assert.ok(
      j.nextPageToken === undefined || j.nextPageToken === "",
      `nextPageToken: ${j.nextPageToken}`,
    );
    for (const c of j.credentials ?? []) {
      assert.equal(c.namespace, "paging");
      assert.deepEqual(c.token, {}, "a token is listed without its secret");
    }

    const allTable = await expectExit(0, [
      "cred",
      "list",
      "-n",
      "paging",
      "--page-size",
      "2",
      "--all",
    ]);
    const lt = listTable(allTable.stdout);
    assert.deepEqual(
      lt.rows.map((r) => r.NAME),
      names,
    );
    assert.equal(lt.hint, undefined);

    const bad = await expectExit(2, ["cred", "list", "-n", "paging", "--page-size", "0"]);
    assert.match(bad.stderr, /--page-size/);
  });

  test("list --provider filters by provider", async () => {
    await expectExit(
      0,
      ["cred", "create", "aws-key", "-n", "prov", "--access-key-id", AKID, "--secret-env", "S"],
      { env: { S: "provTOKENsecret09-1-qW2eR4tY6uI8oP0" } },
    );
    await expectExit(
      0,
      [
        "cred",
        "create",
        "gh-token",
        "-n",
        "prov",
        "--kind",
        "token",
        "--provider",
        "generic",
        "--secret-stdin",
      ],
      { stdin: "provTOKENsecret09-2-qW2eR4tY6uI8oP0" },
    );
    const generic = listTable(
      (await expectExit(0, ["cred", "list", "-n", "prov", "--provider", "generic"])).stdout,
    ).rows;
    assert.deepEqual(
      generic.map((r) => [r.NAME, r.PROVIDER, r.KIND]),
      [["gh-token", "generic", "token"]],
    );
    const aws = parseJson<ListJson>(
      await expectExit(0, ["cred", "list", "-n", "prov", "--provider", "aws", "-o", "json"]),
    );
    assert.deepEqual(
      aws.credentials?.map((c) => [c.name, c.provider]),
      [["aws-key", "PROVIDER_AWS"]],
    );
    const both = listTable((await expectExit(0, ["cred", "list", "-n", "prov"])).stdout).rows;
    assert.deepEqual(
      both.map((r) => r.NAME),
      ["aws-key", "gh-token"],
    );
    const bad = await expectExit(2, ["cred", "list", "-n", "prov", "--provider", "oracle"]);
    assert.match(bad.stderr, /--provider: aws, .*or generic/);
  });

  test("update: a toggle, a rotated secret, a rename, --clear, a stale --etag, nothing to change", async () => {
    const created = fieldTable(
      (
        await expectExit(
          0,
          [
            "cred",
            "create",
            "upd",
            "-n",
            "upd",
            "--access-key-id",
            AKID,
            "--description",
            "to be cleared",
            "--region",
            "us-east-1",
            "--secret-stdin",
          ],
          { stdin: SOURCE_SECRET },
        )
      ).stdout,
    );
    const etag0 = created.get("etag") ?? "";
    assert.equal(created.get("description"), "to be cleared");

    const off = fieldTable(
      (await expectExit(0, ["cred", "update", "upd", "-n", "upd", "--enabled", "false"])).stdout,
    );
    assert.equal(off.get("enabled"), "false");
    const etag1 = off.get("etag") ?? "";
    assert.notEqual(etag1, etag0);
    const got = fieldTable((await expectExit(0, ["cred", "get", "upd", "-n", "upd"])).stdout);
    assert.equal(got.get("enabled"), "false");
    assert.equal(got.get("description"), "to be cleared", "an update changes only its fields");
    assert.equal(got.get("region"), "us-east-1");
    assert.equal(got.get("etag"), etag1);

    const rotated = parseJson<CredentialResponseJson>(
      await expectExit(0, ["cred", "update", "upd", "-n", "upd", "--secret-stdin", "-o", "json"], {
        stdin: `${ROTATED_SECRET}\n`,
      }),
    ).credential;
    const etag2 = rotated?.etag ?? "";
    assert.notEqual(etag2, "");
    assert.notEqual(etag2, etag1, "rotating the secret changes the etag");
    assert.deepEqual(rotated?.accessKey, { accessKeyId: AKID }, "the key id stays");
    assert.equal(rotated?.enabled, false);

    // The etag read before the rotation is stale now.
    const stale = await expectExit(8, [
      "cred",
      "update",
      "upd",
      "-n",
      "upd",
      "--enabled",
      "true",
      "--etag",
      etag1,
    ]);
    assert.equal(stale.stdout, "");
    assert.match(stale.stderr, /^credbroker cred update: aborted: /);
    assert.equal(
      fieldTable((await expectExit(0, ["cred", "get", "upd", "-n", "upd"])).stdout).get("enabled"),
      "false",
      "a stale etag changes nothing",
    );

    const renamed = fieldTable(
      (
        await expectExit(0, [
          "cred",
          "update",
          "upd",
          "-n",
          "upd",
          "--rename",
          "upd-renamed",
          "--clear",
          "description",
          "--etag",
          etag2,
        ])
      ).stdout,
    );
    assert.equal(renamed.get("name"), "upd-renamed");
    assert.equal(renamed.get("id"), created.get("id"), "the id stays across a rename");
    assert.equal(renamed.get("description"), "-");
    assert.equal(renamed.get("region"), "us-east-1");
    await expectExit(4, ["cred", "get", "upd", "-n", "upd"]);
    const afterRename = parseJson<CredentialResponseJson>(
      await expectExit(0, ["cred", "get", "upd-renamed", "-n", "upd", "-o", "json"]),
    ).credential;
    assert.equal(afterRename?.description, undefined, "cleared");
    assert.equal(afterRename?.enabled, false);

    const nothing = await expectExit(2, ["cred", "update", "upd-renamed", "-n", "upd"]);
    assert.match(nothing.stderr, /nothing to change/);
    const badClear = await expectExit(2, [
      "cred",
      "update",
      "upd-renamed",
      "-n",
      "upd",
      "--clear",
      "name",
    ]);
    assert.match(badClear.stderr, /--clear: one of /);
  });

  test("verify: a stored valid credential exits 0; a --candidate with a bad role ARN exits 5 with FAIL", async () => {
    const ok = await expectExit(0, ["cred", "verify", "stdin-key"]);
    assert.match(ok.stdout, /^valid: yes\n/);
    const okRows = listTable(ok.stdout.replace(/^valid: yes\n/, "")).rows;
    assert.ok(okRows.length > 0);
    for (const row of okRows) assert.equal(row.OK, "ok", JSON.stringify(row));

    const bad = await expectExit(5, [
      "cred",
      "verify",
      "candidate-role",
      "--candidate",
      "--role-arn",
      "arn:aws:iam::not-an-account:role/x",
      "--source",
      "stdin-key",
    ]);
    assert.match(bad.stdout, /^valid: no\n/);
    assert.equal(bad.stderr, "", "an invalid verdict is not an error message");
    const rows = listTable(bad.stdout.replace(/^valid: no\n/, "")).rows;
    const arn = rows.find((r) => r.CHECK === "role.role_arn.format");
    assert.deepEqual(arn && [arn.OK, arn.SEVERITY], ["FAIL", "error"], bad.stdout);
    assert.match(arn?.MESSAGE ?? "", /^role\.role_arn: must look like arn:aws:iam::/);
    // Not stored.
    await expectExit(4, ["cred", "get", "candidate-role"]);

    const json = parseJson<VerifyJson>(
      await expectExit(5, [
        "cred",
        "verify",
        "--candidate",
        "--role-arn",
        "nope",
        "--source",
        "stdin-key",
        "-o",
        "json",
      ]),
    );
    // proto3 JSON omits false: valid and the failed check's ok are absent.
    assert.equal(json.valid, undefined);
    const arnCheck = json.checks?.find((k) => k.check === "role.role_arn.format");
    assert.ok(arnCheck !== undefined, JSON.stringify(json));
    assert.equal(arnCheck.ok, undefined);
    assert.equal(arnCheck.severity, "SEVERITY_ERROR");

    const noName = await expectExit(2, ["cred", "verify"]);
    assert.match(noName.stderr, /NAME is required \(or --candidate\)/);
  });

  test("delete, then get is not found (exit 4)", async () => {
    const del = await expectExit(0, ["cred", "delete", "file-key"]);
    assert.equal(del.stdout, "deleted file-key\n");
    const gone = await expectExit(4, ["cred", "get", "file-key"]);
    assert.equal(gone.stdout, "");
    assert.match(gone.stderr, /^credbroker cred get: not_found: /);
    await expectExit(4, ["cred", "delete", "file-key"]);

    const delNs = await expectExit(0, ["cred", "delete", "aws-key", "-n", "prov", "-o", "json"]);
    assert.deepEqual(JSON.parse(delNs.stdout), {});
  });

  test("exit codes: usage 2, not found 4, invalid 5, exists 7, conflict 8", async () => {
    const bogus = await expectExit(2, ["cred", "get", "stdin-key", "--bogus"]);
    assert.equal(bogus.stdout, "");
    assert.equal(
      bogus.stderr,
      "credbroker cred get: unknown flag --bogus (see credbroker cred get --help)\n",
    );

    const noName = await expectExit(2, ["cred", "get"]);
    assert.match(noName.stderr, /^credbroker cred get: NAME is required\n/);
    await expectExit(2, ["cred", "delete"]);
    await expectExit(2, ["cred", "get", "a", "b"]);
    await expectExit(2, ["cred", "get", "stdin-key", "-o", "yaml"]);

    const notFound = await expectExit(4, ["cred", "get", "no-such-credential"]);
    assert.match(notFound.stderr, /not_found/);

    const invalid = await expectExit(
      5,
      ["cred", "create", "bad-id", "--access-key-id", "has space", "--secret-stdin"],
      { stdin: STDIN_SECRET },
    );
    assert.equal(invalid.stdout, "");
    assert.match(invalid.stderr, /^credbroker cred create: invalid_argument: .*access_key_id/);

    const exists = await expectExit(
      7,
      ["cred", "create", "stdin-key", "--access-key-id", AKID, "--secret-stdin"],
      { stdin: STDIN_SECRET },
    );
    assert.match(exists.stderr, /^credbroker cred create: already_exists: /);

    // A role's source cannot be deleted while the role uses it.
    const source = await expectExit(8, ["cred", "delete", "stdin-key"]);
    assert.match(source.stderr, /^credbroker cred delete: failed_precondition: .*deploy-role/);
    await expectExit(0, ["cred", "get", "stdin-key"]);

    const staleDelete = await expectExit(8, [
      "cred",
      "delete",
      "api-token",
      "--etag",
      "stale-etag",
    ]);
    assert.match(staleDelete.stderr, /aborted/);
    await expectExit(0, ["cred", "get", "api-token"]);
  });

  test("exit code 3: a wrong token, a missing token file; the right token in CREDBROKER_TOKEN works", async () => {
    const wrong = await raw(["cred", "get", "stdin-key", "--addr", addr], {
      env: { CREDBROKER_TOKEN: "wrong" },
    });
    assert.equal(wrong.code, 3, describeRun(["cred", "get", "(wrong token)"], wrong));
    assert.equal(wrong.stdout, "");
    assert.match(wrong.stderr, /^credbroker cred get: unauthenticated: /);

    const missingFile = path.join(work, "no-such-token");
    const missing = await raw([
      "cred",
      "get",
      "stdin-key",
      "--addr",
      addr,
      "--token-file",
      missingFile,
    ]);
    assert.equal(missing.code, 3, describeRun(["cred", "get", "(missing token file)"], missing));
    assert.match(missing.stderr, /cannot read the --token-file file \(ENOENT\)/);
    assert.ok(!missing.stderr.includes(missingFile), "the typed path is not repeated");

    // No token anywhere: the default data dir has none.
    const emptyData = path.join(work, "empty-data-dir");
    const none = await raw(["cred", "get", "stdin-key", "--addr", addr], {
      env: { CREDBROKER_DATA_DIR: emptyData },
    });
    assert.equal(none.code, 3, describeRun(["cred", "get", "(no token)"], none));
    assert.ok(none.stderr.includes(path.join(emptyData, "admin.token")), none.stderr);

    const right = await raw(["cred", "get", "stdin-key", "--addr", `http://${addr}`], {
      env: { CREDBROKER_TOKEN: `${daemon.token}\n` },
    });
    assert.equal(right.code, 0, describeRun(["cred", "get", "(CREDBROKER_TOKEN)"], right));
    // A flag beats its environment variable.
    const flagWins = await raw(
      ["cred", "get", "stdin-key", "--addr", addr, "--token-file", tokenFile],
      {
        env: { CREDBROKER_ADDR: "127.0.0.1:1", CREDBROKER_TOKEN_FILE: missingFile },
      },
    );
    assert.equal(flagWins.code, 0, describeRun(["cred", "get", "(flags over env)"], flagWins));
  });

  test("exit code 6: nothing listening, or the daemon stopped; the message names where the address came from and `credbroker serve`", async () => {
    const nothing = await raw(["cred", "list", "--addr", "127.0.0.1:1", "--token-file", tokenFile]);
    assert.equal(nothing.code, 6, describeRun(["cred", "list", "--addr", "127.0.0.1:1"], nothing));
    assert.equal(nothing.stdout, "");
    assert.match(
      nothing.stderr,
      /cannot reach credbroker at the --addr address \(connection refused\)/,
    );
    assert.match(nothing.stderr, /`credbroker serve`/);

    const other = await startDaemon();
    otherDaemons.push(other);
    const otherAddr = new URL(other.url).host;
    const otherToken = path.join(other.dataDir, "admin.token");
    const listed = await raw(["cred", "list", "--addr", otherAddr, "--token-file", otherToken]);
    assert.equal(listed.code, 0, describeRun(["cred", "list", "(second daemon)"], listed));
    const exit = await other.stop();
    assert.equal(exit.code, 0);
    const stopped = await raw(["cred", "list", "--addr", otherAddr, "--token-file", otherToken]);
    assert.equal(stopped.code, 6, describeRun(["cred", "list", "(stopped daemon)"], stopped));
    assert.match(stopped.stderr, /cannot reach credbroker at the --addr address/);
    assert.ok(!stopped.stderr.includes(otherAddr), "the typed address is not repeated");
    const byEnv = await raw(["cred", "list", "--token-file", otherToken], {
      env: { CREDBROKER_ADDR: otherAddr },
    });
    assert.equal(byEnv.code, 6, describeRun(["cred", "list", "(CREDBROKER_ADDR)"], byEnv));
    assert.match(byEnv.stderr, /cannot reach credbroker at the CREDBROKER_ADDR address/);
    assert.match(stopped.stderr, /Start the daemon with `credbroker serve`/);
  });

  // Last: looks at everything the tests above produced.
  test("no secret (raw or base64) in any CLI output or in the daemon's output", () => {
    assert.ok(transcript.length > 40, `only ${transcript.length} CLI runs recorded`);
    const all = transcript.join("\n");
    assertNoSecret(all, "CLI output");
    assertNoSecret(daemon.output(), "daemon output");
    for (const d of otherDaemons) assertNoSecret(d.output(), "second daemon output");
    // Nor the admin token.
    assertNoSecret(all, "CLI output", [daemon.token]);
    assertNoSecret(daemon.output(), "daemon output", [daemon.token]);
    // The daemon did see the calls (trace log), so the check looked at something.
    assert.match(daemon.output(), /CreateCredential/);
  });
});

describe("commands that open a data dir find it as serve does", () => {
  test("repair: --data-dir, else CREDBROKER_DATA_DIR, else $XDG_DATA_HOME/credbroker", async () => {
    const dir = await tempDir();
    try {
      // A typed --data-dir (or CREDBROKER_DATA_DIR) is named by its flag (or variable), not repeated.
      const cases: [string[], Record<string, string>, string][] = [
        [["--data-dir", path.join(dir, "flag")], {}, "the --data-dir directory"],
        [[], { CREDBROKER_DATA_DIR: path.join(dir, "env") }, "the CREDBROKER_DATA_DIR directory"],
        [[], { CREDBROKER_DATA_DIR: "", XDG_DATA_HOME: dir }, path.join(dir, "credbroker")],
      ];
      for (const [args, env, expected] of cases) {
        const res = await runCli(["repair", ...args], env);
        assert.equal(res.code, 2, res.stderr);
        assert.equal(res.stderr.trim(), `credbroker repair: no database (db/) in ${expected}`);
      }
    } finally {
      await removeDir(dir);
    }
  });
});
