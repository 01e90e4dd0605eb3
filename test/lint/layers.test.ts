/**
 * The import-layer check (.dependency-cruiser.cjs, run by `npm run lint`):
 * the real src/ passes it, and a tree with a wrong-way import, an import
 * between two clouds or a cycle fails it, naming the rule broken.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const CONFIG = path.join(ROOT, ".dependency-cruiser.cjs");
const DEPCRUISE = path.join(ROOT, "node_modules/dependency-cruiser/bin/dependency-cruise.mjs");

interface Run {
  code: number;
  output: string;
}

function depcruise(cwd: string, ...paths: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [DEPCRUISE, ...paths, "--config", CONFIG, "--output-type", "err"],
      { cwd, timeout: 120_000 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === "number" ? err.code : 1;
        resolve({ code, output: stdout + stderr });
      },
    );
  });
}

/** A tree shaped like the project's: a tsconfig and the given files. */
async function tree(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "credbroker-layers-"));
  const all = {
    "tsconfig.json": JSON.stringify({
      compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext", strict: true },
      include: ["src"],
    }),
    ...files,
  };
  for (const [name, text] of Object.entries(all)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), text);
  }
  return dir;
}

describe("import layers", () => {
  const dirs: string[] = [];
  after(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  async function check(files: Record<string, string>): Promise<Run> {
    const dir = await tree(files);
    dirs.push(dir);
    return depcruise(dir, "src");
  }

  test("the real src/ and gen/ pass", async () => {
    const run = await depcruise(ROOT, "src", "gen");
    assert.equal(run.code, 0, run.output);
    assert.match(run.output, /no dependency violations found/);
  });

  test("a layer-respecting tree passes (the check can pass)", async () => {
    const run = await check({
      "src/core/names.ts": "export const name = 'x';\n",
      "src/api/service.ts": 'import { name } from "../core/names.js";\nexport const s = name;\n',
    });
    assert.equal(run.code, 0, run.output);
  });

  test("core importing api fails: layer-core", async () => {
    const run = await check({
      "src/api/service.ts": "export const s = 1;\n",
      "src/core/names.ts": 'import { s } from "../api/service.js";\nexport const name = s;\n',
    });
    assert.notEqual(run.code, 0, run.output);
    assert.match(run.output, /layer-core: src\/core\/names\.ts → src\/api\/service\.ts/);
  });

  test("a type-only wrong-way import fails too: metadata importing api", async () => {
    const run = await check({
      "src/api/limits.ts": "export interface Limits { n: number }\n",
      "src/metadata/guards.ts":
        'import type { Limits } from "../api/limits.js";\nexport const l: Limits = { n: 1 };\n',
    });
    assert.notEqual(run.code, 0, run.output);
    assert.match(run.output, /layer-metadata/);
  });

  test("one cloud importing another fails: one-cloud-per-folder", async () => {
    const run = await check({
      "src/providers/provider.ts": "export interface CloudProvider { label: string }\n",
      "src/providers/aws/sigv4.ts": "export const sigv4 = 1;\n",
      "src/providers/azure/sign.ts":
        'import { sigv4 } from "../aws/sigv4.js";\nimport type { CloudProvider } from "../provider.js";\nexport const p: CloudProvider = { label: String(sigv4) };\n',
    });
    assert.notEqual(run.code, 0, run.output);
    assert.match(
      run.output,
      /one-cloud-per-folder: src\/providers\/azure\/sign\.ts → src\/providers\/aws\/sigv4\.ts/,
    );
    assert.doesNotMatch(run.output, /provider\.ts/);
  });

  test("an import cycle fails: no-circular", async () => {
    const run = await check({
      "src/api/listener.ts":
        'import { drain } from "./drain.js";\nexport const listen = () => drain;\n',
      "src/api/drain.ts":
        'import { listen } from "./listener.js";\nexport const drain = () => listen;\n',
    });
    assert.notEqual(run.code, 0, run.output);
    assert.match(run.output, /no-circular/);
  });

  test("core doing I/O fails: core-is-pure", async () => {
    const run = await check({
      "src/core/read.ts":
        'import { readFileSync } from "node:fs";\nexport const r = readFileSync;\n',
    });
    assert.notEqual(run.code, 0, run.output);
    assert.match(run.output, /core-is-pure/);
  });
});
