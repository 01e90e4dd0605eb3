/**
 * `credbroker fetch`: the built CLI, the real daemon and a real HTTP upstream
 * on 127.0.0.1 (allowed by the credential's allowed_hosts IP literal). The
 * body comes out byte for byte, curl's -i/-X/-H/--data/--fail behave as in
 * curl, and a broker refusal exits with its code.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { TokenPlacement, TokenSchema } from "../../gen/credbroker/v1/credential_pb.js";
import { cliEnv, runCredbroker } from "../support/cli-run.js";
import { credentialClient } from "../support/clients.js";
import { CLI, type RunningDaemon, removeDir, startDaemon, tempDir } from "../support/daemon.js";
import {
  BINARY,
  type Echoed,
  type FetchUpstream,
  startFetchUpstream,
} from "../support/fetch-upstream.js";
import { startTogether } from "../support/start-together.js";

const TOKEN = "fetchTOKENsecret51-aB3dE6gH9jK2mN5pQ8rStU";

interface Run {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

describe("credbroker fetch", () => {
  let daemon: RunningDaemon;
  let upstream: FetchUpstream;
  let dir: string;

  /** The built CLI with stdout kept as bytes. */
  const fetchCli = (args: string[], stdin?: Buffer): Promise<Run> =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, "fetch", ...args], {
        env: cliEnv({
          CREDBROKER_ADDR: daemon.url,
          CREDBROKER_TOKEN_FILE: path.join(daemon.dataDir, "admin.token"),
        }),
        stdio: [stdin === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      });
      const out: Buffer[] = [];
      let stderr = "";
      child.stdout?.on("data", (d: Buffer) => out.push(d));
      child.stderr?.setEncoding("utf8").on("data", (d: string) => {
        stderr += d;
      });
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      child.once("error", reject);
      child.once("close", (code) => {
        clearTimeout(timer);
        resolve({ code, stdout: Buffer.concat(out), stderr });
      });
      child.stdin?.end(stdin);
    });
  const echoed = (r: Run): Echoed => JSON.parse(r.stdout.toString("utf8")) as Echoed;

  before(async () => {
    dir = await tempDir("credbroker-fetch-");
    [daemon, upstream] = await startTogether([startDaemon(), startFetchUpstream()]);
    const credentials = credentialClient(daemon.url, "connect-h2", daemon.token);
    const token = (placement: TokenPlacement, fields: Record<string, string> = {}) => ({
      case: "token" as const,
      value: create(TokenSchema, { token: TOKEN, placement, ...fields }),
    });
    for (const [name, kind, allowedHosts] of [
      ["api", token(TokenPlacement.UNSPECIFIED), ["127.0.0.1"]],
      ["api-header", token(TokenPlacement.HEADER, { headerName: "X-Api-Key" }), ["127.0.0.1"]],
      ["nowhere", token(TokenPlacement.UNSPECIFIED), []],
    ] as const) {
      await credentials.createCredential({
        credential: { namespace: "fw", name, kind, allowedHosts: [...allowedHosts] },
      });
    }
  });
  after(async () => {
    await upstream?.close();
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
    await removeDir(dir);
  });

  test("GET prints the upstream's body; the token went where the credential says, never here", async () => {
    const r = await fetchCli(["-n", "fw", "-c", "api", `${upstream.url}/echo?q=1`]);
    assert.equal(r.code, 0, r.stderr);
    // The echo holds the header the broker sent: redacted, and said so.
    assert.match(r.stderr, /^credbroker fetch: note: .*\[redacted\]\n$/);
    const e = echoed(r);
    assert.equal(e.method, "GET");
    assert.equal(e.url, "/echo?q=1");
    // The body holds the header, redacted: what this process sees never has the token.
    assert.equal(e.headers.authorization, "Bearer [redacted]");

    const header = await fetchCli(["-n", "fw", "-c", "api-header", `${upstream.url}/echo`]);
    assert.equal(header.code, 0, header.stderr);
    assert.equal(echoed(header).headers["x-api-key"], "[redacted]");
    assert.equal(echoed(header).headers.authorization, undefined);
    for (const run of [r, header])
      assert.ok(!run.stdout.includes(TOKEN) && !run.stderr.includes(TOKEN));
  });

  test("a body that held the secret comes back redacted, with a one-line note on stderr", async () => {
    const r = await fetchCli(["-n", "fw", "-c", "api", "-i", `${upstream.url}/leak`]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stdout.includes(TOKEN));
    assert.match(r.stdout.toString(), /\r\nx-seen-auth: Bearer \[redacted\]\r\n/);
    assert.match(r.stdout.toString(), /\r\n\r\nyou sent: Bearer \[redacted\]$/);
    assert.match(r.stderr, /^credbroker fetch: note: .*\[redacted\]\n$/);
  });

  test("-i prints the status line and headers, then a blank line, then the body", async () => {
    const r = await fetchCli(["-n", "fw", "-c", "api", "-i", `${upstream.url}/missing`]);
    assert.equal(r.code, 0, r.stderr);
    const text = r.stdout.toString("utf8");
    const [head, body] = text.split("\r\n\r\n");
    assert.equal(body, "not here");
    const lines = (head ?? "").split("\r\n");
    assert.equal(lines[0], "HTTP/1.1 404 Not Found");
    assert.ok(lines.includes("content-type: text/plain"), head);
  });

  test("-X and -H: the method and each header are sent; 'Name: value' is split at the first colon", async () => {
    const r = await fetchCli([
      "-n",
      "fw",
      "-c",
      "api",
      "-X",
      "PUT",
      "-H",
      "X-One:  a: b ",
      "--header",
      "x-two:c",
      `${upstream.url}/echo`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const e = echoed(r);
    assert.equal(e.method, "PUT");
    assert.equal(e.headers["x-one"], "a: b");
    assert.equal(e.headers["x-two"], "c");
  });

  test("--data @file sends the file's bytes (POST by default); - sends stdin; else the text", async () => {
    const file = path.join(dir, "body.bin");
    await writeFile(file, BINARY);
    const fromFile = await fetchCli([
      "-n",
      "fw",
      "-c",
      "api",
      "--data",
      `@${file}`,
      `${upstream.url}/echo`,
    ]);
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.equal(echoed(fromFile).method, "POST");
    assert.deepEqual(Buffer.from(echoed(fromFile).body, "base64"), BINARY);

    const stdin = Buffer.from("from stdin\n\u00ff", "utf8");
    const fromStdin = await fetchCli(
      ["-n", "fw", "-c", "api", "-X", "PATCH", "--data", "-", `${upstream.url}/echo`],
      stdin,
    );
    assert.equal(fromStdin.code, 0, fromStdin.stderr);
    assert.equal(echoed(fromStdin).method, "PATCH");
    assert.deepEqual(Buffer.from(echoed(fromStdin).body, "base64"), stdin);

    const text = await fetchCli([
      "-n",
      "fw",
      "-c",
      "api",
      "--data",
      "a=1&b=2",
      `${upstream.url}/echo`,
    ]);
    assert.equal(Buffer.from(echoed(text).body, "base64").toString(), "a=1&b=2");

    const missing = await fetchCli([
      "-n",
      "fw",
      "-c",
      "api",
      "--data",
      `@${path.join(dir, "fetchMARKERfile")}`,
      `${upstream.url}/echo`,
    ]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--data: cannot read the file \(ENOENT\)/);
    assert.ok(!missing.stderr.includes("fetchMARKERfile"));
  });

  test("a binary body comes out byte for byte", async () => {
    const r = await fetchCli(["-n", "fw", "-c", "api", `${upstream.url}/binary`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, "", "no note: nothing was redacted");
    assert.deepEqual(r.stdout, BINARY);
  });

  test("any upstream status exits 0; with --fail a status >= 400 prints no body and exits 22", async () => {
    const plain = await fetchCli(["-n", "fw", "-c", "api", `${upstream.url}/missing`]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(plain.stdout.toString(), "not here");

    const failed = await fetchCli(["-n", "fw", "-c", "api", "--fail", `${upstream.url}/missing`]);
    assert.equal(failed.code, 22);
    assert.equal(failed.stdout.length, 0);
    assert.match(failed.stderr, /the upstream answered 404/);

    const ok = await fetchCli(["-n", "fw", "-c", "api", "--fail", `${upstream.url}/binary`]);
    assert.equal(ok.code, 0, ok.stderr);
  });

  test("a broker refusal exits with its code and says why; nothing reaches the upstream", async () => {
    const before = upstream.seen.length;
    const closed = await fetchCli(["-n", "fw", "-c", "nowhere", `${upstream.url}/echo`]);
    assert.equal(closed.code, 8, closed.stderr);
    assert.match(closed.stderr, /^credbroker fetch: failed_precondition: .*allowed_hosts/);
    const absent = await fetchCli(["-n", "fw", "-c", "no-such", `${upstream.url}/echo`]);
    assert.equal(absent.code, 4, absent.stderr);
    assert.match(absent.stderr, /^credbroker fetch: not_found: /);
    const offList = await fetchCli(["-n", "fw", "-c", "api", "http://127.0.0.2:9/echo"]);
    assert.notEqual(offList.code, 0);
    assert.equal(upstream.seen.length, before);
  });

  test("usage errors exit 2 and never repeat a value", async () => {
    const marker = "fetchMARKERvalue";
    const seen = upstream.seen.length;
    for (const [args, expected] of [
      [["-n", "fw", "-c", "api", "-H", `${marker} no colon`, `${upstream.url}/echo`], /--header: /],
      [["-n", "fw", "-c", "api", "-H", `${marker} x: y`, `${upstream.url}/echo`], /--header: /],
      [["-n", "fw", "-c", "api", "-H", `: ${marker}`, `${upstream.url}/echo`], /--header: /],
      [["-n", "fw", "-c", "api", "--timeout", marker, `${upstream.url}/echo`], /--timeout: /],
      [["-n", "fw", "-c", "api", "--timeout", "120001", `${upstream.url}/echo`], /--timeout: /],
      [["-n", "fw", `${upstream.url}/echo`], /--credential is required/],
      [["-n", "fw", "-c", "api"], /URL is required/],
    ] as const) {
      const r = await fetchCli([...args]);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, expected);
      assert.ok(!r.stderr.includes(marker), r.stderr);
      assert.equal(r.stdout.length, 0);
    }
    assert.equal(upstream.seen.length, seen, "nothing was sent");
  });

  test("-o json prints the whole response; help and completion know the command", async () => {
    const r = await fetchCli(["-n", "fw", "-c", "api", "-o", "json", `${upstream.url}/missing`]);
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout.toString()) as { status: number; body: string };
    assert.equal(res.status, 404);
    assert.equal(Buffer.from(res.body, "base64").toString(), "not here");

    const help = await runCredbroker(["--help"]);
    assert.match(help.stdout, /credbroker fetch -c NAME/);
    const bash = await runCredbroker(["completion", "bash"]);
    assert.match(bash.stdout, /"fetch"\)/);
    for (const flag of ["--include", "--fail", "--data", "--header", "--timeout"]) {
      assert.ok(bash.stdout.includes(flag), flag);
    }
  });
});
