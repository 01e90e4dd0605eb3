/**
 * `cred list` shows when each credential expires and whether it signs
 * (STATUS: active, disabled, expired); `cred delete` asks on a terminal
 * (a real pseudo-terminal) unless --yes, and never asks a script.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import {
  type CliResult,
  haveScript,
  runCredbroker,
  runCredbrokerInPty,
} from "../support/cli-run.js";
import { type RunningDaemon, removeDir, startDaemon } from "../support/daemon.js";

const SECRET = "listDELETEsecret-0123456789abcdefghijKLMN";
const QUESTION = /Delete credential del\/(\S+)\? \[y\/N\] /;

/** The rows of a table keyed by its header's column names. */
function rows(text: string): Record<string, string>[] {
  const lines = text.split("\n").filter((l) => l !== "" && !l.startsWith("next page: "));
  const columns = [...(lines[0] ?? "").matchAll(/\S+(?: \S+)*/g)].map((m) => ({
    name: m[0],
    start: m.index,
  }));
  return lines.slice(1).map((line) => {
    const row: Record<string, string> = {};
    columns.forEach((c, i) => {
      row[c.name] = line.slice(c.start, columns[i + 1]?.start ?? line.length).trim();
    });
    return row;
  });
}

describe("cred list columns and cred delete confirmation", () => {
  let daemon: RunningDaemon;
  let env: Record<string, string>;
  const cli = async (args: string[], stdin?: string): Promise<CliResult> =>
    runCredbroker(args, { env, ...(stdin === undefined ? {} : { stdin }) });
  const ok = async (args: string[], stdin?: string): Promise<CliResult> => {
    const r = await cli(args, stdin);
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    return r;
  };
  const token = (ns: string, name: string, ...more: string[]) =>
    ok(["cred", "create", name, "-n", ns, "--kind", "token", "--secret-stdin", ...more], SECRET);

  before(async () => {
    daemon = await startDaemon();
    env = {
      CREDBROKER_ADDR: new URL(daemon.url).host,
      CREDBROKER_TOKEN_FILE: path.join(daemon.dataDir, "admin.token"),
    };
  });
  after(async () => {
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
  });

  test("STATUS and EXPIRES: active, disabled, expired; the JSON form is unchanged", async () => {
    const later = new Date(Date.now() + 3_600_000).toISOString();
    await token("lst", "a-plain");
    await token("lst", "b-later", "--expires-at", later);
    await token("lst", "c-off", "--enabled", "false");
    // Time for two CLI runs on a busy machine.
    const soon = new Date(Date.now() + 6_000).toISOString();
    await token("lst", "d-soon", "--expires-at", soon);
    await token("lst", "e-off-soon", "--enabled", "false", "--expires-at", soon);
    // The daemon refuses a past expiry on create: wait until "soon" has passed.
    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(0, Date.parse(soon) - Date.now() + 200)),
    );

    const listed = rows((await ok(["cred", "list", "-n", "lst"])).stdout);
    const iso = (t: string) => new Date(t).toISOString();
    assert.deepEqual(
      listed.map((r) => [r.NAME, r.STATUS, r.EXPIRES]),
      [
        ["a-plain", "active", "-"],
        ["b-later", "active", iso(later)],
        ["c-off", "disabled", "-"],
        ["d-soon", "expired", iso(soon)],
        ["e-off-soon", "disabled,expired", iso(soon)],
      ],
    );
    // The machine-readable form is the response's proto3 JSON, as before.
    const json = JSON.parse((await ok(["cred", "list", "-n", "lst", "-o", "json"])).stdout) as {
      credentials: { name: string; enabled?: boolean; expiresAt?: string }[];
    };
    assert.deepEqual(
      json.credentials.map((c) => [c.name, c.enabled, c.expiresAt && iso(c.expiresAt)]),
      [
        ["a-plain", true, undefined],
        ["b-later", true, iso(later)],
        ["c-off", false, undefined],
        ["d-soon", true, iso(soon)],
        ["e-off-soon", false, iso(soon)],
      ],
    );
  });

  const exists = async (name: string) => {
    const r = await cli(["cred", "get", name, "-n", "del"]);
    assert.ok(r.code === 0 || r.code === 4, r.stderr);
    return r.code === 0;
  };
  const onTerminal = (args: string[], answer: string) =>
    runCredbrokerInPty(["cred", "delete", ...args, "-n", "del"], {
      env,
      prompt: "[y/N] ",
      answer,
    });

  test('on a terminal: "n" keeps the credential and exits 1', async (t) => {
    if (!haveScript()) return t.skip("util-linux script is not installed");
    await token("del", "keep-me");
    const r = await onTerminal(["keep-me"], "n");
    assert.ok(r.prompted, r.output);
    assert.equal(QUESTION.exec(r.output)?.[1], "keep-me", r.output);
    assert.equal(r.code, 1, r.output);
    assert.match(r.output, /not deleted \(the answer was not yes\): del\/keep-me/);
    assert.equal(await exists("keep-me"), true);
    // Enter alone is no too.
    const enter = await onTerminal(["keep-me"], "");
    assert.equal(enter.code, 1, enter.output);
    assert.equal(await exists("keep-me"), true);
  });

  test('on a terminal: "y" deletes it', async (t) => {
    if (!haveScript()) return t.skip("util-linux script is not installed");
    await token("del", "go-away");
    const r = await onTerminal(["go-away"], "y");
    assert.ok(r.prompted, r.output);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /^deleted del\/go-away\r?$/m);
    assert.equal(await exists("go-away"), false);
  });

  test("on a terminal: --yes and -y do not ask", async (t) => {
    if (!haveScript()) return t.skip("util-linux script is not installed");
    for (const flag of ["--yes", "-y"]) {
      await token("del", "no-question");
      const r = await onTerminal(["no-question", flag], "n");
      assert.equal(r.prompted, false, r.output);
      assert.equal(r.code, 0, r.output);
      assert.equal(await exists("no-question"), false);
    }
  });

  test("without a terminal: deletes without asking, as before", async () => {
    await token("del", "scripted");
    const r = await ok(["cred", "delete", "scripted", "-n", "del"]);
    assert.equal(r.stdout, "deleted del/scripted\n");
    assert.equal(r.stderr, "");
    assert.equal(await exists("scripted"), false);
  });
});
