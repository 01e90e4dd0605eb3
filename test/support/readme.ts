import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";

/** The clone's root (dist/test/support/ is three levels below it). */
export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));

/** The text of the README's `## ` section whose heading starts with `heading`. */
export async function readmeSection(heading: string): Promise<string> {
  const readme = await readFile(`${REPO_ROOT}README.md`, "utf8");
  const section = readme.split(/^## /m).find((s) => s.startsWith(heading));
  assert.ok(section, `README has a "${heading}" section`);
  return section;
}

/** The ```sh blocks of a README section, in order. */
export function shBlocks(section: string): string[] {
  const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] ?? "");
  assert.ok(blocks.length > 0, "the section has ```sh blocks");
  return blocks;
}
