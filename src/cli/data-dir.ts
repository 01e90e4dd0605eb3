import { defaultDataDir } from "../config/serve-config.js";
import type { FlagSpec, ParsedFlags } from "./flags.js";

/**
 * `--data-dir`, as every command that opens a data dir takes it; `help`
 * says what the command uses it for. Its `default` only describes the
 * platform default for `--help`: read the value with `dataDirOf`.
 */
export function dataDirFlag(help: string): FlagSpec {
  return {
    name: "data-dir",
    kind: "string",
    value: "DIR",
    env: "CREDBROKER_DATA_DIR",
    default: "$XDG_DATA_HOME/credbroker or ~/.local/share/credbroker",
    help,
  };
}

/** The data dir: --data-dir, else CREDBROKER_DATA_DIR, else the platform default (as serve finds it). */
export function dataDirOf(flags: ParsedFlags, env: NodeJS.ProcessEnv): string {
  return flags.given("data-dir")
    ? (flags.string("data-dir") ?? "")
    : env.CREDBROKER_DATA_DIR || defaultDataDir(env);
}
