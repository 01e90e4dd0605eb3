import assert from "node:assert/strict";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { discoverCommands, type Leaf, runInProcess } from "../support/cli-commands.js";
import { runCredbroker } from "../support/cli-run.js";
import { removeDir, tempDir } from "../support/daemon.js";

// Typed after flags as a secret would be; compared case-insensitively (URL hosts are lowercased).
const MARKER = "SECRETMARKERq7Zp";

/** True when `text` contains the marker in any case. */
function leaks(text: string): boolean {
  return text.toLowerCase().includes(MARKER.toLowerCase());
}

/** Each flag's environment variable, as the command's --help lists it ("[env CREDBROKER_X; …]"). */
async function envVarsOf(leaf: Leaf): Promise<Map<string, string>> {
  const help = await runInProcess([...leaf.path, "--help"]);
  const vars = new Map<string, string>();
  for (const line of help.out.split("\n")) {
    const m = /^ {2}(?:-[A-Za-z0-9], )? *--([a-z0-9-]+).*\[env (CREDBROKER_[A-Z0-9_]+)/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) vars.set(m[1], m[2]);
  }
  return vars;
}

describe("flag errors: one clear line, never a value typed after a flag", () => {
  let leaves: Leaf[] = [];
  let work = "";
  let env: NodeJS.ProcessEnv = {};
  /** serve's: a master key it refuses, so every run stops at validation, before anything is created. */
  let serveEnv: NodeJS.ProcessEnv = {};
  /** A regular file: a path under it names nothing and is invalid as a file or a directory. */
  let aFile = "";

  before(async () => {
    leaves = await discoverCommands();
    work = await tempDir("credbroker-flags-");
    await mkdir(path.join(work, "data"));
    // A token, and an address where nothing listens: a command gets as far as it can.
    env = {
      CREDBROKER_TOKEN: "not-a-real-token",
      CREDBROKER_ADDR: "127.0.0.1:1",
      CREDBROKER_DATA_DIR: path.join(work, "data"),
      HOME: work,
    };
    serveEnv = {
      CREDBROKER_MASTER_KEY: "not-a-master-key",
      CREDBROKER_DATA_DIR: path.join(work, "serve-data"),
      HOME: work,
    };
    await mkdir(path.join(work, "serve-data"));
    aFile = path.join(work, "a-file");
    await writeFile(aFile, "x");
  });
  after(async () => {
    await removeDir(work);
  });

  test("discovery finds every registered command and subcommand with its flags", () => {
    const names = leaves.map((l) => l.path.join(" "));
    for (const expected of [
      "serve",
      "cred create",
      "cred update",
      "sign",
      "exec",
      "caller rotate",
      "binding list",
      "binding delete",
      "audit tail",
      "config check",
    ]) {
      assert.ok(names.includes(expected), `${expected} in ${names.join(", ")}`);
    }
    const create = leaves.find((l) => l.path.join(" ") === "cred create");
    assert.ok(create?.flags.some((f) => f.long === "secret-stdin"));
    assert.ok(leaves.filter((l) => l.flags.length > 0).length >= 20, names.join(", "));
  });

  test("an unknown flag is one line naming it and the closest valid flag", async () => {
    const r = await runCredbroker(["cred", "create", "k", "--secret-access-key", MARKER]);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, "");
    assert.equal(
      r.stderr,
      "credbroker cred create: unknown flag --secret-access-key; did you mean --secret-stdin? (see credbroker cred create --help)\n",
    );

    const typo = await runInProcess(["cred", "list", "--namepsace", "team-a"], env);
    assert.equal(typo.code, 2);
    assert.match(
      typo.err,
      /^credbroker cred list: unknown flag --namepsace; did you mean --namespace\?/,
    );
    assert.equal(typo.err.split("\n").length, 2, "one line");

    const short = await runInProcess(["sign", "-Z", MARKER, "https://b.s3.amazonaws.com/k"], env);
    assert.equal(short.code, 2);
    assert.match(
      short.err,
      /^credbroker sign: unknown flag -Z; short flags here: -n -c -X -H -o -h/,
    );
  });

  test("a missing value, a flag where a value belongs, a value for a boolean: one line each", async () => {
    const cases: [string[], RegExp][] = [
      [["cred", "get", "k", "-n"], /^credbroker cred get: -n needs a value \(NS\) \(see /],
      [
        ["cred", "get", "k", "--namespace", "--output", "json"],
        /^credbroker cred get: --namespace needs a value \(NS\), not another flag; for a value that starts with "-", write --namespace=VALUE/,
      ],
      [["cred", "list", `--all=${MARKER}`], /^credbroker cred list: --all takes no value \(see /],
    ];
    for (const [argv, expected] of cases) {
      const r = await runInProcess(argv, env);
      assert.equal(r.code, 2, argv.join(" "));
      assert.match(r.err, expected);
      assert.equal(r.err.split("\n").length, 2, `one line: ${r.err}`);
      assert.ok(!leaks(r.err));
    }
    // A value starting with "-" still works with "=".
    const dash = await runInProcess(["cred", "get", "k", "--namespace=-x"], env);
    assert.doesNotMatch(dash.err, /needs a value/);
  });

  test("a marker typed after every flag of every command, known or not, is in no output", {
    timeout: 120_000,
  }, async () => {
    let runs = 0;
    const check = async (argv: string[]) => {
      runs++;
      const serve = argv[0] === "serve";
      const r = await runInProcess(argv, serve ? serveEnv : env);
      // serve never gets past validation here (see serveEnv): nothing started, nothing logged.
      if (serve) assert.equal(r.code, 2, `${argv.join(" ")}: ${r.err}`);
      assert.ok(
        !leaks(`${r.out}${r.err}`),
        `${argv.join(" ")} printed the value:\n${r.out}${r.err}`,
      );
    };
    for (const leaf of leaves) {
      const unknown = [`--bogus=${MARKER}`, "--bogus", MARKER, "-Z", MARKER];
      await check([...leaf.path, ...unknown.slice(0, 1), ...leaf.positionals]);
      await check([...leaf.path, ...unknown.slice(1, 3), ...leaf.positionals]);
      await check([...leaf.path, ...unknown.slice(3), ...leaf.positionals]);
      for (const flag of leaf.flags) {
        if (flag.long === "help") continue;
        await check([...leaf.path, `--${flag.long}=${MARKER}`, "--bogus", ...leaf.positionals]);
        await check([...leaf.path, `--${flag.long}`, MARKER, ...leaf.positionals]);
        await check([...leaf.path, `--${flag.long}=${MARKER}`, ...leaf.positionals]);
        if (flag.short) await check([...leaf.path, `-${flag.short}`, MARKER, ...leaf.positionals]);
        if (flag.short) await check([...leaf.path, `-${flag.short}${MARKER}`, ...leaf.positionals]);
      }
    }
    assert.ok(runs > 400, `only ${runs} runs`);
  });

  test("serve: every flag set to a marker, alone or with the settings that make it count, is refused before anything starts; no output holds it", {
    timeout: 120_000,
  }, async () => {
    const serve = leaves.find((l) => l.path.join(" ") === "serve");
    assert.ok(serve && serve.flags.length > 20, "serve's flags");
    const absent = path.join(work, "absent.pem");
    // With these, every setting's value is checked: etcd over TLS, IMDS, the API's TLS.
    const context: Record<string, string> = {
      store: "etcd",
      "etcd-endpoints": "https://127.0.0.1:2379",
      "etcd-ca": absent,
      "etcd-cert": absent,
      "etcd-key": absent,
      "etcd-user": "u",
      "imds-listen": "127.0.0.1:0",
      "imds-credential": "a",
      "tls-cert": absent,
      "tls-key": absent,
      "client-ca": absent,
    };
    const values = [MARKER, path.join(aFile, MARKER), `https://127.0.0.1:2379,${MARKER}`];
    const before = await readdir(path.join(work, "serve-data"));
    let runs = 0;
    const run = async (argv: string[], extraEnv: NodeJS.ProcessEnv = {}) => {
      runs++;
      const r = await runInProcess(["serve", ...argv], {
        ...serveEnv,
        CREDBROKER_ETCD_PASSWORD: "pw",
        ...extraEnv,
      });
      const what = `serve ${argv.join(" ")} ${JSON.stringify(extraEnv)}`;
      assert.equal(r.code, 2, `${what}: ${r.err}`);
      assert.equal(r.out, "", `${what}: nothing on stdout (where the log goes)`);
      assert.match(r.err, /the config is invalid|unexpected argument|takes no value/, what);
      assert.ok(!leaks(r.err), `${what} printed the value:\n${r.err}`);
    };
    for (const flag of serve?.flags ?? []) {
      if (flag.long === "help") continue;
      const { [flag.long]: _, ...others } = context;
      for (const around of [{}, others]) {
        const ctx = Object.entries(around).map(([k, v]) => `--${k}=${v}`);
        for (const value of values) {
          await run([...ctx, `--${flag.long}`, value]);
          await run([...ctx, `--${flag.long}=${value}`]);
        }
      }
    }
    // The environment: each flag's variable, and the variables that have no flag.
    const vars = await envVarsOf(serve as Leaf);
    assert.equal(vars.get("listen"), "CREDBROKER_LISTEN");
    const contextEnv = (except: string) =>
      Object.fromEntries(
        Object.entries(context)
          .filter(([k]) => k !== except)
          .map(([k, v]) => [vars.get(k) ?? "", v]),
      );
    for (const [flag, name] of vars) {
      for (const around of [{}, contextEnv(flag)]) {
        for (const value of values) await run([], { ...around, [name]: value });
      }
    }
    for (const name of [
      "CREDBROKER_MASTER_KEY",
      "CREDBROKER_PREVIOUS_MASTER_KEYS",
      "CREDBROKER_ETCD_PASSWORD",
    ]) {
      for (const value of values) {
        await run([], { ...contextEnv(""), [name]: value });
        await run([], { [name]: value });
      }
    }
    assert.deepEqual(await readdir(path.join(work, "serve-data")), before, "nothing created");
    assert.ok(
      !(await readdir(work)).some(leaks) && !(await readdir(process.cwd())).some(leaks),
      "no file named after the value",
    );
    assert.ok(runs > 300, `only ${runs} runs`);
  });

  test("config check: a marker as FILE, or as the value of every setting in the file, is in no output", {
    timeout: 120_000,
  }, async () => {
    for (const file of [MARKER, path.join(aFile, MARKER)]) {
      for (const argv of [
        ["config", "check", file],
        ["config", "check", "--print", file],
      ]) {
        const r = await runInProcess(argv, serveEnv);
        assert.equal(r.code, 2, `${argv.join(" ")}: ${r.err}`);
        assert.match(r.err, /config file: no such file/);
        assert.ok(!leaks(`${r.out}${r.err}`), `${argv.join(" ")} printed the value:\n${r.err}`);
      }
    }
    const serve = leaves.find((l) => l.path.join(" ") === "serve");
    const absent = JSON.stringify(path.join(work, "absent.pem"));
    const context = [
      'store = "etcd"',
      'etcd_endpoints = "https://127.0.0.1:2379"',
      `etcd_ca = ${absent}`,
      'imds_listen = "127.0.0.1:0"',
      'imds_credential = "a"',
      `tls_cert = ${absent}`,
      `tls_key = ${absent}`,
      `data_dir = ${JSON.stringify(path.join(work, "serve-data"))}`,
    ];
    let files = 0;
    for (const flag of serve?.flags ?? []) {
      if (flag.long === "help" || flag.long === "config") continue;
      const key = flag.long.replaceAll("-", "_");
      for (const value of [MARKER, path.join(aFile, MARKER)]) {
        const f = path.join(work, `${key}.toml`);
        const lines = context.filter((l) => !l.startsWith(`${key} =`));
        await writeFile(f, `${lines.join("\n")}\n${key} = ${JSON.stringify(value)}\n`);
        const { CREDBROKER_DATA_DIR: _, ...withoutDataDir } = serveEnv;
        const r = await runInProcess(["config", "check", f], withoutDataDir);
        files++;
        assert.equal(r.code, 2, `${key}: ${r.err}`);
        assert.match(r.err, /the config is invalid/);
        assert.ok(!leaks(`${r.out}${r.err}`), `${key} = marker was printed:\n${r.err}`);
      }
    }
    assert.ok(files > 40, `only ${files} files`);
  });

  test("every other command: each flag's CREDBROKER_* variable set to a marker is in no output", async () => {
    let runs = 0;
    for (const leaf of leaves) {
      if (leaf.path[0] === "serve") continue;
      for (const [, name] of await envVarsOf(leaf)) {
        for (const value of [MARKER, path.join(aFile, MARKER), `http//${MARKER}:1`]) {
          runs++;
          const r = await runInProcess([...leaf.path, ...leaf.positionals], {
            ...env,
            [name]: value,
          });
          const what = `${name}=${value} ${leaf.path.join(" ")}`;
          assert.ok(!leaks(`${r.out}${r.err}`), `${what} printed the value:\n${r.out}${r.err}`);
        }
      }
    }
    assert.ok(runs > 100, `only ${runs} runs`);
  });

  test("the real process: unknown flags, and a value after a boolean flag, print no value", async () => {
    for (const argv of [
      ["serve", `--bogus=${MARKER}`],
      ["serve", "-Z", MARKER],
      ["serve", "--allow-ambient", MARKER],
      ["cred", "create", "k", "--secret", MARKER],
      ["exec", "--bogus", MARKER, "--", "true"],
    ]) {
      const r = await runCredbroker(argv, { env });
      assert.equal(r.code, 2, argv.join(" "));
      assert.equal(r.stdout, "");
      assert.match(r.stderr, /unknown flag|unexpected argument/);
      assert.ok(!leaks(r.stderr), r.stderr);
    }
  });

  test("a short letter means one long flag in every command (and a long flag has one letter)", () => {
    const byShort = new Map<string, Set<string>>();
    const byLong = new Map<string, Set<string>>();
    for (const leaf of leaves) {
      for (const f of leaf.flags) {
        const where = `${leaf.path.join(" ")}: -${f.short ?? "(none)"} --${f.long}`;
        if (f.short) {
          const s = byShort.get(f.short) ?? new Set();
          byShort.set(f.short, s.add(`--${f.long}`));
        }
        const l = byLong.get(f.long) ?? new Set();
        byLong.set(f.long, l.add(f.short ? `-${f.short} (${where})` : "-"));
      }
    }
    for (const [short, longs] of byShort) {
      assert.equal(longs.size, 1, `-${short} means ${[...longs].join(" and ")}`);
    }
    assert.deepEqual([...(byShort.get("n") ?? [])], ["--namespace"]);
    for (const [long, shorts] of byLong) {
      const letters = new Set([...shorts].map((s) => s.slice(0, 2)));
      letters.delete("-");
      assert.ok(letters.size <= 1, `--${long} has several letters: ${[...shorts].join(", ")}`);
    }
    const exec = leaves.find((l) => l.path.join(" ") === "exec");
    assert.ok(
      exec?.flags.some((f) => f.short === "n" && f.long === "namespace"),
      "exec -n",
    );
  });
});
