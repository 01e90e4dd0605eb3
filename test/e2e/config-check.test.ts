/**
 * `credbroker config check FILE` is serve's own validation (issue 19): every
 * invalid fixture gets the same verdict from both, every problem of a file at
 * once in line order, and a refused config leaves the data dir as it was.
 */
import assert from "node:assert/strict";
import { mkdir, readdir, stat, writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { assertOpenssl, openssl } from "../support/certs.js";
import { runCredbroker } from "../support/cli-run.js";
import { removeDir, tempDir } from "../support/daemon.js";

/** Never printed: it stands for a secret in a file or the environment. */
const MARKER = "MARKER-SECRET-c0nf1g-ch3ck-0000000000";
const MASTER_KEY = Buffer.alloc(32, 7).toString("base64");
/** One problem line: `FILE:LINE: path: message`. */
const PROBLEM = /^\S+\.toml:\d+: [a-z_]+(\[\d+\]\.[a-z0-9_]+)?: \S/;

/** Every file and directory under `dir` (with its size), or null when `dir` does not exist. */
async function listing(dir: string): Promise<string[] | null> {
  const exists = await stat(dir).then(
    () => true,
    () => false,
  );
  if (!exists) return null;
  const entries = await readdir(dir, { recursive: true });
  const out: string[] = [];
  for (const e of entries.sort()) {
    const st = await stat(path.join(dir, e));
    out.push(`${e} ${st.isDirectory() ? "dir" : st.size}`);
  }
  return out;
}

/** The problem lines of a refusal (all but its closing summary line). */
function problemLines(stderr: string): string[] {
  const lines = stderr.trimEnd().split("\n");
  assert.match(lines.at(-1) ?? "", /^credbroker (serve|config check): the config is invalid/);
  return lines.slice(0, -1);
}

describe("config check is serve's own validation", () => {
  let dir: string;
  const file = (name: string) => path.join(dir, name);

  before(async () => {
    await assertOpenssl();
    dir = await tempDir("credbroker-config-check-");
    // Real PEM files, right and wrong.
    await openssl([
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      file("server.key"),
      "-out",
      file("server.crt"),
      "-subj",
      "/CN=server",
      "-days",
      "1",
    ]);
    await openssl([
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      file("other.key"),
      "-out",
      file("other.crt"),
      "-subj",
      "/CN=other",
      "-days",
      "1",
    ]);
    await openssl([
      "req",
      "-x509",
      "-newkey",
      "rsa:512",
      "-nodes",
      "-keyout",
      file("small.key"),
      "-out",
      file("small.crt"),
      "-subj",
      "/CN=small",
      "-days",
      "1",
    ]);
    await openssl([
      "pkey",
      "-in",
      file("server.key"),
      "-aes256",
      "-passout",
      "pass:pw",
      "-out",
      file("encrypted.key"),
    ]);
    await writeFile(
      file("garbage.key"),
      `-----BEGIN PRIVATE KEY-----\n${Buffer.from(MARKER).toString("base64")}\n-----END PRIVATE KEY-----\n`,
    );
    await writeFile(file("secret.txt"), `${MARKER}\n`);
    await mkdir(file("a-directory"));
    await writeFile(file("not-a-dir"), "x");
  });
  after(async () => {
    await removeDir(dir);
  });

  /** Each: the file, extra environment, and what its problem lines must say. */
  const fixtures: [string, () => string, Record<string, string>, RegExp[]][] = [
    ["an unknown top-level key", () => "listen_port = 5\n", {}, [/:1: listen_port: unknown key/]],
    [
      "a wrong type",
      () => "allow_ambient = 1\n",
      {},
      [/:1: allow_ambient: expected true or false/],
    ],
    [
      "transport limits whose headers deadline outlasts the request's",
      () => 'transport_limits = "request-timeout-ms=2000"\n',
      {},
      [/:1: transport_limits: .*headers-timeout-ms is at most request-timeout-ms/],
    ],
    [
      "a credential with an unknown field",
      () => `[[credentials]]\nname = "a"\ntoken = "${MARKER}"\ncolour = "red"\n`,
      {},
      [/:4: credentials\[0\]\.colour: unknown field/],
    ],
    [
      "a credential lacking its secret",
      () => '[[credentials]]\nname = "k"\naccess_key_id = "AKIAEXAMPLE000000000"\n',
      {},
      [/:1: credentials\[0\]\.secret_access_key: required/],
    ],
    [
      "a credential whose secret's variable is not set",
      () =>
        '[[credentials]]\naccess_key_id = "AKIAEXAMPLE000000000"\nsecret_access_key_env = "NOT_SET_ANYWHERE"\n',
      {},
      [/:3: credentials\[0\]\.secret_access_key_env: NOT_SET_ANYWHERE is not set/],
    ],
    [
      "a credential declared twice",
      () =>
        `[[credentials]]\nname = "a"\ntoken = "x"\n\n[[credentials]]\nname = "a"\ntoken = "y"\n`,
      {},
      [/:6: credentials\[1\]\.name: a is declared twice/],
    ],
    [
      "a caller with a bad role",
      () => `[[callers]]\nname = "ci"\nrole = "boss"\ntoken_sha256 = "${"a".repeat(64)}"\n`,
      {},
      [/:3: callers\[0\]\.role: admin, writer, reader or signer/],
    ],
    ["a bad limit", () => 'rate_limit = "lots"\n', {}, [/:1: rate_limit: a whole number/]],
    [
      "a missing TLS file",
      () => `tls_cert = "${file("nope.crt")}"\ntls_key = "${file("server.key")}"\n`,
      {},
      [/:1: tls_cert: no such file \(ENOENT\)$/m],
    ],
    [
      "a TLS key that is not a key",
      () => `tls_cert = "${file("server.crt")}"\ntls_key = "${file("garbage.key")}"\n`,
      {},
      [/:2: tls_key: \S*garbage\.key: not a PEM private key/],
    ],
    [
      "a TLS key of another certificate",
      () => `tls_cert = "${file("server.crt")}"\ntls_key = "${file("other.key")}"\n`,
      {},
      [/:2: tls_key: \S*other\.key is not the private key of the certificate in --tls-cert/],
    ],
    [
      "a bad environment override",
      () => 'log_level = "info"\n',
      { CREDBROKER_LOG_LEVEL: "loud", CREDBROKER_MASTER_KEY: MARKER },
      [/^--log-level: one of/m, /^CREDBROKER_MASTER_KEY: the master key must be the base64/m],
    ],
    [
      "a data dir that is a file",
      () => `data_dir = "${file("not-a-dir")}"\n`,
      {},
      [/:1: data_dir: \S*not-a-dir: it is not a directory/],
    ],
  ];

  for (const [what, body, env, expected] of fixtures) {
    test(`${what}: config check and serve give the same verdict; the data dir is untouched`, async () => {
      const f = file(`${what.replaceAll(" ", "-")}.toml`);
      await writeFile(f, body());
      const dataDir = file(`data-${what.replaceAll(" ", "-")}`);
      await mkdir(dataDir);
      await writeFile(path.join(dataDir, "keep.txt"), "kept");
      const fresh = `${dataDir}-fresh`;
      const beforeListing = await listing(dataDir);
      // The environment beats the file: a fixture that sets data_dir gets no CREDBROKER_DATA_DIR.
      const ownDataDir = /^data_dir/m.test(body());
      const baseEnv = {
        CREDBROKER_MASTER_KEY: MASTER_KEY,
        ...(ownDataDir ? {} : { CREDBROKER_DATA_DIR: dataDir }),
        ...env,
      };

      const check = await runCredbroker(["config", "check", f], { env: baseEnv });
      const serve = await runCredbroker(["serve", "--listen", "127.0.0.1:0", "--config", f], {
        env: baseEnv,
      });
      const serveFresh = await runCredbroker(
        [
          "serve",
          "--listen",
          "127.0.0.1:0",
          "--config",
          f,
          ...(ownDataDir ? [] : ["--data-dir", fresh]),
        ],
        { env: baseEnv },
      );
      assert.equal(check.code, 2, check.stderr);
      assert.equal(serve.code, 2, serve.stderr);
      assert.equal(serveFresh.code, 2, serveFresh.stderr);
      const lines = problemLines(check.stderr);
      assert.deepEqual(problemLines(serve.stderr), lines, "serve's verdict is config check's");
      for (const re of expected) assert.match(lines.join("\n"), re);
      for (const out of [check.stdout, check.stderr, serve.stdout, serve.stderr]) {
        assert.ok(!out.includes(MARKER), "a secret value was printed");
        assert.ok(!/error:[0-9A-F]{8}|routines:/.test(out), "a raw OpenSSL error was printed");
      }
      assert.deepEqual(await listing(dataDir), beforeListing, "the data dir is as it was");
      assert.equal(await listing(fresh), null, "no data dir was created");
    });
  }

  test("every problem of a file at once, as FILE:LINE: path: message, in line order", async () => {
    const f = file("many.toml");
    await writeFile(
      f,
      [
        'log_level = "loud"', // 1
        'listen = "nowhere"', // 2
        `tls_cert = "${file("server.crt")}"`, // 3
        `tls_key = "${file("encrypted.key")}"`, // 4
        "",
        "[[credentials]]", // 6
        'name = "a"',
        `token_file = "${file("secret.txt")}"`,
        'colour = "red"', // 9
        "",
        "[[credentials]]", // 11
        'access_key_id = "AKIAEXAMPLE000000000"',
        "",
        "[[callers]]", // 14
        'name = "ci"',
        'role = "boss"', // 16
        'token_sha256 = "abc"', // 17
        "",
      ].join("\n"),
    );
    const check = await runCredbroker(["config", "check", f], {
      env: { CREDBROKER_MASTER_KEY: MASTER_KEY, CREDBROKER_DATA_DIR: file("never") },
    });
    assert.equal(check.code, 2, check.stderr);
    const lines = problemLines(check.stderr);
    const at = lines.map((l) => Number(/^\S+\.toml:(\d+):/.exec(l)?.[1]));
    assert.deepEqual(at, [1, 2, 4, 9, 11, 16, 17], check.stderr);
    for (const l of lines) assert.match(l, PROBLEM);
    assert.match(lines[2] ?? "", /tls_key: \S*encrypted\.key: an encrypted PEM private key/);
    assert.match(check.stderr, /\(7 problems\)/);
    assert.ok(!check.stderr.includes(MARKER));
  });

  test("TLS files: a key too small for TLS is named, not OpenSSL's words; a directory is not a file", async () => {
    const cases: [string[], RegExp][] = [
      [
        ["--tls-cert", file("small.crt"), "--tls-key", file("small.key")],
        /^--tls-cert \S*small\.crt: refused by TLS: the key is too small/m,
      ],
      [
        ["--tls-cert", file("server.crt"), "--tls-key", file("a-directory")],
        /^--tls-key \S*a-directory: is a directory, not a file/m,
      ],
      [
        ["--tls-cert", file("server.crt"), "--tls-key", file("server.crt")],
        /^--tls-key \S*server\.crt: not a PEM private key \(it holds a certificate\)/m,
      ],
    ];
    for (const [args, message] of cases) {
      const dataDir = file("tls-never");
      const r = await runCredbroker(
        ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, ...args],
        {
          env: { CREDBROKER_MASTER_KEY: MASTER_KEY },
        },
      );
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, message);
      assert.ok(!/error:[0-9A-F]{8}|routines:/.test(r.stderr + r.stdout), r.stderr);
      assert.equal(await listing(dataDir), null, "nothing was created");
    }
  });

  test("config check --help prints its usage", async () => {
    for (const args of [
      ["config", "check", "--help"],
      ["config", "--help"],
    ]) {
      const r = await runCredbroker(args);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /Usage: credbroker config check \[--print\] FILE/);
      assert.match(r.stdout, /--print/);
    }
  });

  test("config check --print: file + environment + defaults, secrets as <set>", async () => {
    const f = file("print.toml");
    await writeFile(
      f,
      `rate_limit = 7\n\n[[credentials]]\nname = "a"\ntoken = "${MARKER}"\n\n[[callers]]\nname = "ci"\nrole = "reader"\ntoken_sha256 = "${"b".repeat(64)}"\n`,
    );
    const r = await runCredbroker(["config", "check", "--print", f], {
      env: {
        CREDBROKER_MASTER_KEY: MASTER_KEY,
        CREDBROKER_LOG_LEVEL: "warn",
        CREDBROKER_DATA_DIR: file("print-data"),
      },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^rate_limit = 7 {2}# \S*print\.toml:1$/m, "from the file, at its line");
    assert.match(
      r.stdout,
      /^log_level = "warn" {2}# CREDBROKER_LOG_LEVEL$/m,
      "from the environment",
    );
    assert.match(r.stdout, /^rate_burst = 14 {2}# default$/m, "a default, derived");
    assert.match(r.stdout, /^master_key = "<set>"/m);
    assert.match(r.stdout, /^\[\[credentials\]\]\nname = "a"\ntoken = "<set>"$/m);
    assert.match(r.stdout, /^token_sha256 = "<set>"$/m);
    assert.ok(!r.stdout.includes(MARKER) && !r.stdout.includes(MASTER_KEY), "a secret was printed");
    assert.equal(await listing(file("print-data")), null);
  });

  test("a fatal startup error: one human line on stderr, a JSON log line without a stack (unless --log-level debug)", async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const { port } = blocker.address() as net.AddressInfo;
    try {
      for (const level of ["info", "debug"]) {
        const dataDir = file(`busy-${level}`);
        const r = await runCredbroker(
          ["serve", "--listen", `127.0.0.1:${port}`, "--data-dir", dataDir, "--log-level", level],
          { env: { CREDBROKER_MASTER_KEY: MASTER_KEY } },
        );
        assert.equal(r.code, 1, r.stderr);
        assert.deepEqual(r.stderr.trimEnd().split("\n"), [
          `credbroker serve: listen EADDRINUSE: address already in use 127.0.0.1:${port}`,
        ]);
        const fatal = r.stdout
          .split("\n")
          .filter((l) => l.startsWith("{"))
          .map((l) => JSON.parse(l) as Record<string, unknown>)
          .find((l) => l.level === 60);
        assert.ok(fatal, r.stdout);
        assert.match(String(fatal.msg), /EADDRINUSE/);
        assert.equal(
          JSON.stringify(fatal).includes('"stack"'),
          level === "debug",
          JSON.stringify(fatal),
        );
      }
    } finally {
      blocker.close();
    }
  });
});
