/**
 * The Dockerfile, without Docker (these machines cannot run it): parsed and
 * linted with rcjsuen's dockerfile-ast and dockerfile-utils (the parser of the
 * VS Code Docker language server), the build context checked against
 * .dockerignore with @balena/dockerignore (Docker's own matching rules), and
 * the image's HEALTHCHECK script run against a real daemon.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readdir, readFile, stat } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { Copy, DockerfileParser, Env, From, type Instruction } from "dockerfile-ast";
import { validate } from "dockerfile-utils";
import { keyAndCsr, selfSignedCa, signCsr } from "../support/certs.js";
import { removeDir, startDaemon, tempDir } from "../support/daemon.js";

// A CommonJS module (module.exports = the factory) whose types declare an ES default export.
const dockerignore = createRequire(import.meta.url)(
  "@balena/dockerignore",
) as typeof import("@balena/dockerignore").default;

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const DATA_DIR = "/var/lib/credbroker";

interface Stage {
  from: From;
  instructions: Instruction[];
}

/** The Dockerfile's stages, each its FROM and the instructions up to the next one. */
function stagesOf(text: string): Stage[] {
  const stages: Stage[] = [];
  for (const instruction of DockerfileParser.parse(text).getInstructions()) {
    if (instruction instanceof From) stages.push({ from: instruction, instructions: [] });
    else stages[stages.length - 1]?.instructions.push(instruction);
  }
  return stages;
}

const args = (i: Instruction) => i.getArguments().map((a) => a.getValue());
const ofKeyword = (stage: Stage, keyword: string) =>
  stage.instructions.filter((i) => i.getKeyword() === keyword);

/** A stage's environment: ENV name → value. */
function envOf(stage: Stage): Map<string, string> {
  const env = new Map<string, string>();
  for (const i of stage.instructions) {
    if (i instanceof Env)
      for (const p of i.getProperties()) env.set(p.getName(), p.getValue() ?? "");
  }
  return env;
}

/** Runs `node FILE` to completion with `env` added; resolves with the exit code and stderr. */
function runNode(
  file: string,
  env: Record<string, string>,
): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [file],
      { encoding: "utf8", timeout: 20_000, env: { ...process.env, ...env } },
      (err, _stdout, stderr) => {
        if (err === null) resolve({ code: 0, stderr });
        else if (typeof err.code === "number") resolve({ code: err.code, stderr });
        else reject(err);
      },
    );
  });
}

/** Every file under `dir` (relative to ROOT, with / separators). */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(path.join(ROOT, dir), { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => path.relative(ROOT, path.join(e.parentPath, e.name)).split(path.sep).join("/"));
}

describe("Dockerfile", () => {
  let text: string;
  let stages: Stage[];
  let final: Stage;

  before(async () => {
    text = await readFile(path.join(ROOT, "Dockerfile"), "utf8");
    stages = stagesOf(text);
    const last = stages[stages.length - 1];
    assert.ok(last !== undefined, "the Dockerfile has a FROM");
    final = last;
  });

  it("lints clean with dockerfile-utils", () => {
    assert.deepEqual(
      validate(text).map((d) => `${d.range.start.line + 1}: ${d.message}`),
      [],
    );
    // …and the linter does find problems: a control.
    const broken = validate(
      "FROM node:24-slim\nEXPOSE port\nHEALTHCHECK --interval=x CMD true\nCOPY\n",
    );
    assert.ok(broken.length >= 3, JSON.stringify(broken.map((d) => d.message)));
  });

  it("is multi-stage: a named build stage, then node:24-slim", () => {
    assert.ok(stages.length >= 2, "at least a build stage and a runtime stage");
    const build = stages[0];
    assert.ok(build !== undefined);
    assert.equal(build.from.getBuildStage(), "build");
    assert.equal(final.from.getImageName(), "node");
    assert.equal(final.from.getImageTag(), "24-slim");
    const buildRuns = ofKeyword(build, "RUN").map((i) => args(i).join(" "));
    assert.ok(
      buildRuns.some((r) => /^npm ci\b/.test(r) && !r.includes("--omit=dev")),
      "build: npm ci with dev deps",
    );
    assert.ok(buildRuns.includes("npm run build"), "build: npm run build");
  });

  it("installs only production dependencies in the final stage", () => {
    const installs = ofKeyword(final, "RUN")
      .map((i) => args(i).join(" "))
      .filter((r) => /\bnpm (ci|install|i)\b/.test(r));
    assert.ok(installs.length > 0, "the final stage installs its dependencies");
    for (const r of installs) assert.match(r, /--omit=dev/, r);
    // Nothing from the build stage but the compiled output: its node_modules has the dev deps.
    for (const copy of final.instructions.filter((i) => i instanceof Copy)) {
      if (copy.getFromFlag() === null) continue;
      for (const source of args(copy).slice(0, -1)) {
        assert.match(source, /^\/src\/dist\/(src|gen)$/, `COPY --from ${source}`);
      }
    }
  });

  it("runs as a non-root user, with the data dir a volume, the API port exposed", () => {
    const users = ofKeyword(final, "USER").map((i) => args(i)[0] ?? "");
    const user = users[users.length - 1];
    assert.ok(user !== undefined, "USER is set in the final stage");
    assert.doesNotMatch(user, /^(0|root)(:|$)/);
    assert.deepEqual(ofKeyword(final, "VOLUME").flatMap(args), [DATA_DIR]);
    assert.deepEqual(ofKeyword(final, "EXPOSE").flatMap(args), ["50051"]);
    const env = envOf(final);
    assert.equal(env.get("CREDBROKER_DATA_DIR"), DATA_DIR);
    // Inside the container the API must be reachable through the published port.
    assert.equal(env.get("CREDBROKER_LISTEN"), "0.0.0.0:50051");
    assert.equal(env.get("NODE_ENV"), "production");
    // The volume's mount point belongs to that user before the VOLUME line (a named volume copies it).
    const runs = ofKeyword(final, "RUN").map((i) => args(i).join(" "));
    assert.ok(
      runs.some((r) => r.includes(`chown ${user} ${DATA_DIR}`)),
      runs.join("\n"),
    );
    const entrypoint = ofKeyword(final, "ENTRYPOINT")[0]?.getArgumentsContent() ?? "";
    assert.deepEqual(JSON.parse(entrypoint), ["node", "/app/dist/src/cli/main.js"]);
  });

  it("copies only files that exist and that .dockerignore lets into the context", async () => {
    const ignore = dockerignore().add(await readFile(path.join(ROOT, ".dockerignore"), "utf8"));
    const sources: string[] = [];
    for (const stage of stages) {
      for (const copy of stage.instructions.filter((i) => i instanceof Copy)) {
        if (copy.getFromFlag() === null) sources.push(...args(copy).slice(0, -1));
      }
    }
    assert.ok(sources.length > 0);
    for (const source of sources) {
      const st = await stat(path.join(ROOT, source)).catch(() => undefined);
      assert.ok(st !== undefined, `COPY source ${source} exists in the repo`);
      const files = st.isDirectory() ? await filesUnder(source) : [source];
      assert.ok(files.length > 0, `${source} has files`);
      for (const file of files)
        assert.equal(ignore.ignores(file), false, `${file} is in the context`);
    }
    // What must never reach the build context, whatever the Dockerfile copies.
    for (const kept of [
      ".data/master.key",
      "node_modules/level/package.json",
      "dist/src/cli/main.js",
      ".git/config",
      "test/e2e/x.test.ts",
      ".cache/node24/x",
    ]) {
      assert.equal(ignore.ignores(kept), true, `${kept} stays out of the context`);
    }
  });

  describe("HEALTHCHECK", () => {
    let script: string;
    let certDir: string;

    before(async () => {
      const checks = ofKeyword(final, "HEALTHCHECK");
      assert.equal(checks.length, 1, "one HEALTHCHECK");
      const content = checks[0]?.getArgumentsContent() ?? "";
      const cmd = /\bCMD\s+(\[.*\])\s*$/s.exec(content);
      assert.ok(cmd?.[1] !== undefined, content);
      const [program, file, ...rest] = JSON.parse(cmd[1]) as string[];
      assert.equal(program, "node");
      assert.deepEqual(rest, []);
      // The image path back to the repo file: the COPY that puts it there.
      const copy = final.instructions
        .filter((i) => i instanceof Copy && i.getFromFlag() === null)
        .map(args)
        .find((a) => path.posix.resolve("/app", a[a.length - 1] ?? "") === file);
      assert.ok(copy?.[0] !== undefined, `a COPY puts ${file} in the image`);
      script = path.join(ROOT, copy[0]);
      certDir = await tempDir("credbroker-healthcheck-");
    });
    after(() => removeDir(certDir));

    it("is healthy while the daemon serves, unhealthy once it stopped", async () => {
      const daemon = await startDaemon();
      const port = new URL(daemon.url).port;
      // As in the container: the same CREDBROKER_LISTEN the daemon reads, on all addresses.
      const env = { CREDBROKER_LISTEN: `0.0.0.0:${port}`, CREDBROKER_TLS_CERT: "" };
      try {
        const up = await runNode(script, env);
        assert.equal(up.code, 0, up.stderr);
      } finally {
        await daemon.stop();
        await removeDir(daemon.dataDir);
      }
      const down = await runNode(script, env);
      assert.equal(down.code, 1);
      assert.match(down.stderr, /not healthy: .*ECONNREFUSED/);
    });

    it("speaks TLS when the daemon does (CREDBROKER_TLS_CERT)", async () => {
      await selfSignedCa(certDir, "ca", "test CA");
      await keyAndCsr(certDir, "server", "/CN=127.0.0.1");
      await signCsr(certDir, "server", "ca", "subjectAltName=IP:127.0.0.1\n", 1);
      const cert = path.join(certDir, "server.crt");
      const daemon = await startDaemon({
        args: ["--tls-cert", cert, "--tls-key", path.join(certDir, "server.key")],
      });
      try {
        assert.match(daemon.url, /^https:/);
        const port = new URL(daemon.url).port;
        const tls = await runNode(script, {
          CREDBROKER_LISTEN: `0.0.0.0:${port}`,
          CREDBROKER_TLS_CERT: cert,
        });
        assert.equal(tls.code, 0, tls.stderr);
        const plain = await runNode(script, {
          CREDBROKER_LISTEN: `0.0.0.0:${port}`,
          CREDBROKER_TLS_CERT: "",
        });
        assert.equal(plain.code, 1, "cleartext to a TLS port is not healthy");
      } finally {
        await daemon.stop();
        await removeDir(daemon.dataDir);
      }
    });
  });
});
