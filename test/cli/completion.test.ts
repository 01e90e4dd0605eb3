import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdir, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { CONNECTION_FLAGS } from "../../src/cli/client-command.js";
import { SUBCOMMANDS as CRED_SUBCOMMANDS } from "../../src/cli/commands/cred.js";
import { SERVE_FLAGS } from "../../src/cli/commands/serve.js";
import { cliEnv, runCredbroker } from "../support/cli-run.js";
import { CLI, type RunningDaemon, removeDir, startDaemon, tempDir } from "../support/daemon.js";

interface Completed {
  words: string[];
  stderr: string;
}

/**
 * Sources the bash script, sets COMP_WORDS/COMP_CWORD as bash does for the
 * command line `words` (the last word is the one being completed), calls the
 * completion function and returns COMPREPLY. COMP_WORDS[0] is the built CLI,
 * which the script runs for names from the daemon.
 */
function completeBash(script: string, words: readonly string[]): Completed {
  const line = [CLI, ...words].map((w) => `'${w.replace(/'/g, "'\\''")}'`).join(" ");
  const run = spawnSync(
    "bash",
    [
      "-c",
      `source "$1"; COMP_WORDS=(${line}); COMP_CWORD=${words.length}; _credbroker; printf '%s\\n' "\${COMPREPLY[@]}"`,
      "bash",
      script,
    ],
    { encoding: "utf8", env: cliEnv(), timeout: 20_000 },
  );
  assert.equal(run.status, 0, run.stderr);
  return { words: run.stdout.split("\n").filter(Boolean), stderr: run.stderr };
}

const flagWords = (names: readonly { name: string }[]) => names.map((f) => `--${f.name}`);

describe("credbroker completion", () => {
  let dir: string;
  let bashScript: string;

  before(async () => {
    dir = await tempDir("credbroker-completion-");
    const res = await runCredbroker(["completion", "bash"]);
    assert.equal(res.code, 0, res.stderr);
    bashScript = path.join(dir, "credbroker.bash");
    await writeFile(bashScript, res.stdout);
  });
  after(() => removeDir(dir));

  /** fish's completions of `line` (the first word `credbroker`: the built CLI, on PATH). */
  async function fish(line: string): Promise<string[]> {
    const binDir = path.join(dir, "bin");
    await mkdir(binDir, { recursive: true });
    await symlink(CLI, path.join(binDir, "credbroker")).catch(() => undefined);
    const res = spawnSync(
      "fish",
      ["--no-config", "-c", `source ${path.join(dir, "credbroker.fish")}; complete -C '${line}'`],
      {
        encoding: "utf8",
        env: cliEnv({ PATH: `${binDir}:${path.dirname(process.execPath)}:${process.env.PATH}` }),
      },
    );
    return res.stdout
      .split("\n")
      .filter(Boolean)
      .map((l) => l.split("\t")[0] ?? "");
  }

  test("bash -n accepts the bash script", () => {
    const check = spawnSync("bash", ["-n", bashScript], { encoding: "utf8" });
    assert.equal(check.status, 0, check.stderr);
  });

  test("credbroker cred cr<TAB> completes to create", () => {
    assert.deepEqual(completeBash(bashScript, ["cred", "cr"]).words, ["create"]);
  });

  test("top-level commands and a group's subcommands complete", () => {
    const top = completeBash(bashScript, [""]).words;
    for (const c of ["serve", "cred", "sign", "exec", "caller", "audit", "key", "version"]) {
      assert.ok(top.includes(c), `${c} is offered at the top level`);
    }
    assert.ok(!top.includes("__complete"), "the hidden helper is not offered");
    assert.deepEqual(
      completeBash(bashScript, ["cred", ""]).words.sort(),
      Object.keys(CRED_SUBCOMMANDS).sort(),
    );
  });

  test("flags come from the commands' own flag specs", () => {
    const create = CRED_SUBCOMMANDS.create;
    assert.ok(create);
    assert.deepEqual(
      completeBash(bashScript, ["cred", "create", "NAME", "--"]).words.sort(),
      flagWords([...create.flags, ...CONNECTION_FLAGS]).sort(),
    );
    assert.deepEqual(
      completeBash(bashScript, ["serve", "--"]).words.sort(),
      flagWords(SERVE_FLAGS).sort(),
    );
  });

  test("a flag's value completes from its placeholder (-o table|json)", () => {
    assert.deepEqual(completeBash(bashScript, ["cred", "list", "-o", ""]).words, ["table", "json"]);
  });

  test("without a reachable daemon, names complete to nothing, quietly", () => {
    const res = completeBash(bashScript, ["cred", "get", "--addr", "127.0.0.1:1", ""]);
    assert.deepEqual(res.words, []);
    assert.equal(res.stderr, "");
  });

  test("zsh and fish scripts carry the same commands and flags", async () => {
    const zsh = await runCredbroker(["completion", "zsh"]);
    assert.equal(zsh.code, 0, zsh.stderr);
    assert.match(zsh.stdout, /^#compdef credbroker/);
    assert.match(zsh.stdout, /bashcompinit/);
    assert.ok(zsh.stdout.includes("_credbroker()"));
    const fish = await runCredbroker(["completion", "fish"]);
    assert.equal(fish.code, 0, fish.stderr);
    for (const f of CRED_SUBCOMMANDS.create?.flags ?? []) {
      assert.ok(
        fish.stdout.includes(`'__credbroker_at cred create' -l ${f.name}`),
        `fish completes cred create --${f.name}`,
      );
    }
  });

  test("zsh -n and fish -n accept their scripts; fish completes cred cr<TAB> and -o values", async () => {
    for (const shell of ["zsh", "fish"]) {
      const res = await runCredbroker(["completion", shell]);
      const file = path.join(dir, `credbroker.${shell}`);
      await writeFile(file, res.stdout);
      const check = spawnSync(shell, ["-n", file], { encoding: "utf8" });
      assert.equal(check.status, 0, `${shell} -n: ${check.stderr}`);
    }
    assert.deepEqual(await fish("credbroker cred cr"), ["create"]);
    assert.deepEqual((await fish("credbroker cred list -o ")).sort(), ["json", "table"]);
  });

  test("zsh completes credbroker cred cr<TAB> at an interactive prompt (zpty)", async () => {
    const binDir = path.join(dir, "bin");
    await mkdir(binDir, { recursive: true });
    await symlink(CLI, path.join(binDir, "credbroker")).catch(() => undefined);
    const script = path.join(dir, "credbroker.zsh");
    await writeFile(script, (await runCredbroker(["completion", "zsh"])).stdout);
    // Types the line and TAB into an interactive zsh; reads its screen until the word appears (10 s at most).
    const driver = `zmodload zsh/zpty
zpty z 'zsh -f -i'
zpty -w z 'autoload -U compinit; compinit -u; source ${script}; PS1="> "'
zpty -w -n z $'credbroker cred cr\t'
out=""
for i in {1..100}; do
  zpty -r -t z chunk && out+=$chunk
  [[ $out == *"cred create"* ]] && break
  sleep 0.1
done
zpty -d z
print -r -- "$out"`;
    const res = spawnSync("zsh", ["-f", "-c", driver], {
      encoding: "utf8",
      timeout: 20_000,
      env: cliEnv({
        HOME: dir,
        PATH: `${binDir}:${path.dirname(process.execPath)}:${process.env.PATH}`,
      }),
    });
    assert.match(res.stdout, /credbroker cred create/, res.stdout + res.stderr);
  });

  test("an unknown shell is a usage error", async () => {
    const res = await runCredbroker(["completion", "tcsh"]);
    assert.equal(res.code, 2);
    assert.equal(res.stdout, "");
  });

  describe("names from a running daemon", () => {
    let daemon: RunningDaemon;
    let tokenFile: string;

    before(async () => {
      daemon = await startDaemon();
      tokenFile = path.join(daemon.dataDir, "admin.token");
      for (const [ns, name] of [
        ["team-a", "s3-reader"],
        ["team-a", "s3-writer"],
        ["team-b", "deployer"],
      ] as const) {
        const res = await runCredbroker(
          [
            "cred",
            "create",
            name,
            "-n",
            ns,
            "--addr",
            daemon.url,
            "--token-file",
            tokenFile,
            "--access-key-id",
            "AKIAIOSFODNN7EXAMPLE",
            "--secret-stdin",
          ],
          { stdin: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYCOMPLETIONsecret" },
        );
        assert.equal(res.code, 0, res.stderr);
      }
      const caller = await runCredbroker(
        ["caller", "create", "ci", "--role", "signer", "-n", "team-b", "--addr", daemon.url],
        { env: { CREDBROKER_TOKEN_FILE: tokenFile } },
      );
      assert.equal(caller.code, 0, caller.stderr);
    });
    after(() => daemon?.stop());

    test("cred get -n team-a s3-<TAB> lists that namespace's credentials", async () => {
      const res = completeBash(bashScript, [
        "cred",
        "get",
        "-n",
        "team-a",
        "--addr",
        daemon.url,
        "--token-file",
        tokenFile,
        "s3-",
      ]);
      assert.deepEqual(res.words.sort(), ["s3-reader", "s3-writer"]);
      const line = `credbroker cred get -n team-a --addr ${daemon.url} --token-file ${tokenFile} s3-`;
      assert.deepEqual((await fish(line)).sort(), ["s3-reader", "s3-writer"], "fish too");
    });

    test("sign -c <TAB> lists credentials; -n <TAB> lists the callers' namespaces", () => {
      const base = ["--addr", daemon.url, "--token-file", tokenFile];
      assert.deepEqual(
        completeBash(bashScript, ["sign", ...base, "-n", "team-b", "-c", ""]).words,
        ["deployer"],
      );
      assert.deepEqual(completeBash(bashScript, ["cred", "list", ...base, "-n", "team-"]).words, [
        "team-b",
      ]);
    });

    test("a bad token completes to nothing, quietly", async () => {
      const bad = path.join(dir, "bad.token");
      await writeFile(bad, "not-a-token\n");
      const res = completeBash(bashScript, [
        "cred",
        "get",
        "-n",
        "team-a",
        "--addr",
        daemon.url,
        "--token-file",
        bad,
        "",
      ]);
      assert.deepEqual(res.words, []);
      assert.equal(res.stderr, "");
    });
  });
});
