/**
 * The daemon's log: readable lines on a terminal, JSON anywhere else, and
 * --log-format (CREDBROKER_LOG_FORMAT, log_format) overriding both ways.
 * The terminal is a real pseudo-terminal (test/support/pty.ts).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { PassThrough } from "node:stream";
import { after, describe, test } from "node:test";
import { createLogger } from "../../src/daemon/logger.js";
import { cliEnv, runCredbroker } from "../support/cli-run.js";
import { CLI, removeDir, tempDir } from "../support/daemon.js";
import { credbrokerOnPty, withoutColour } from "../support/pty.js";

/** A pretty line: "[2026-12-04 21:45:44.102] INFO: listening {…}". */
const PRETTY_LISTENING =
  /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] INFO: listening \{.*"url":"http:\/\/127\.0\.0\.1:\d+"/m;
const JSON_LISTENING = /^\{.*"msg":"listening".*\}$/m;

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await removeDir(dir);
});

async function dataDir(): Promise<string> {
  const dir = await tempDir();
  dirs.push(dir);
  return dir;
}

const serveArgs = (dir: string, ...more: string[]) => [
  "serve",
  "--listen",
  "127.0.0.1:0",
  "--data-dir",
  dir,
  ...more,
];

/** Every non-empty line the daemon wrote is a JSON object. */
function assertAllJson(output: string): void {
  const lines = output.split("\n").filter((l) => l.trim() !== "");
  assert.ok(lines.length >= 3, output);
  for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), line);
}

/** `serve` on a terminal until `pattern` shows, then SIGTERM; the terminal's text (colour codes kept). */
async function serveOnPty(args: string[], pattern: RegExp, env = {}): Promise<string> {
  const run = credbrokerOnPty(args, cliEnv({ CREDBROKER_MASTER_KEY: "", ...env }));
  try {
    await run.waitFor(pattern);
  } finally {
    run.process.kill("SIGTERM");
  }
  assert.equal(await run.exited, 0, run.output());
  return run.output();
}

/** `serve` with stdout a pipe until `pattern` shows, then SIGTERM; what it wrote. */
async function serveOnPipe(args: string[], pattern: RegExp, env = {}): Promise<string> {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: cliEnv({ CREDBROKER_MASTER_KEY: "", ...env }),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not logged: ${pattern}\n${out}`)), 15_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      if (pattern.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`exited before ${pattern}:\n${out}`));
    });
  }).finally(() => child.kill("SIGTERM"));
  assert.equal(await exited, 0, out);
  return out;
}

describe("log format", () => {
  test("on a terminal: readable lines, no JSON", async () => {
    const raw = await serveOnPty(serveArgs(await dataDir()), PRETTY_LISTENING);
    assert.notEqual(raw, withoutColour(raw), "coloured on a terminal");
    const out = withoutColour(raw);
    assert.match(out, /\] INFO: admin token file /);
    assert.doesNotMatch(out, /^\{/m, "no JSON line on a terminal");
    assert.match(out, /\] INFO: shutting down /, "the whole run is pretty");
    assert.match(out, /\] INFO: stopped/);
  });

  test("on a terminal with NO_COLOR: readable lines without colour", async () => {
    const raw = await serveOnPty(serveArgs(await dataDir()), PRETTY_LISTENING, { NO_COLOR: "1" });
    assert.equal(raw, withoutColour(raw));
  });

  test("on a terminal with --log-format json: JSON lines", async () => {
    const out = await serveOnPty(
      serveArgs(await dataDir(), "--log-format", "json"),
      JSON_LISTENING,
    );
    assertAllJson(out);
  });

  test("on a terminal with CREDBROKER_LOG_FORMAT=json: JSON lines", async () => {
    const out = await serveOnPty(serveArgs(await dataDir()), JSON_LISTENING, {
      CREDBROKER_LOG_FORMAT: "json",
    });
    assertAllJson(out);
  });

  test("without a terminal: JSON lines", async () => {
    assertAllJson(await serveOnPipe(serveArgs(await dataDir()), JSON_LISTENING));
  });

  test("without a terminal, --log-format pretty: readable lines", async () => {
    const out = await serveOnPipe(
      serveArgs(await dataDir(), "--log-format", "pretty"),
      PRETTY_LISTENING,
    );
    assert.doesNotMatch(out, /^\{/m);
    assert.equal(out, withoutColour(out), "no colour codes outside a terminal");
  });

  test('without a terminal, log_format = "pretty" in the config file', async () => {
    const dir = await dataDir();
    const config = path.join(dir, "credbroker.toml");
    await writeFile(config, 'log_format = "pretty"\n');
    const out = await serveOnPipe(serveArgs(dir, "--config", config), PRETTY_LISTENING);
    assert.doesNotMatch(out, /^\{/m);
  });

  test("an invalid value is a usage error that does not repeat it", async () => {
    const dir = await dataDir();
    for (const [args, env] of [
      [serveArgs(dir, "--log-format", "hunter2-secret"), {}],
      [serveArgs(dir), { CREDBROKER_LOG_FORMAT: "hunter2-secret" }],
    ] as const) {
      const res = await runCredbroker(args, { env });
      assert.equal(res.code, 2, res.stderr);
      assert.match(res.stderr, /--log-format: json or pretty/);
      assert.doesNotMatch(res.stderr + res.stdout, /hunter2/);
    }
  });

  test("pretty lines are made after redaction: a secret a log call carries is masked", () => {
    let out = "";
    const into = new PassThrough();
    into.on("data", (d: Buffer) => {
      out += d.toString();
    });
    const log = createLogger({ logLevel: "info", logFormat: "pretty" }, { isTTY: false, into });
    log.info(
      { req: { authorization: "Bearer tok-SECRET-1" }, key: { secretAccessKey: "sak-SECRET-2" } },
      "a careless line",
    );
    assert.match(out, /INFO: a careless line/);
    assert.match(out, /\[Redacted\]/);
    assert.doesNotMatch(out, /SECRET/);
  });
});
