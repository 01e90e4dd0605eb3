import { EXIT } from "../exit-codes.js";
import { parseFlags } from "../flags.js";
import type { Io } from "../io.js";
import { resolveServeConfig, SERVE_FLAGS } from "./serve.js";

const USAGE =
  "Usage: credbroker config check FILE\n\nValidates a daemon config file (with the environment, as serve would) without starting anything.\n";

/** `credbroker config check FILE`: 0 when `serve --config FILE` would accept it, 2 with the reason otherwise. */
export async function configCommand(argv: readonly string[], io: Io): Promise<number> {
  const [sub, file, ...rest] = argv;
  if (sub === "--help" || sub === "-h") {
    io.out(USAGE);
    return EXIT.ok;
  }
  if (sub !== "check" || file === undefined || rest.length > 0) {
    io.err(USAGE);
    return EXIT.usage;
  }
  try {
    const config = await resolveServeConfig(
      parseFlags(SERVE_FLAGS, ["--config", file], {}),
      io.env,
    );
    io.out(
      `${file}: ok (listen ${config.listen.host}:${config.listen.port}, data dir ${config.dataDir})\n`,
    );
    return EXIT.ok;
  } catch (err) {
    io.err(`credbroker config check: ${(err as Error).message}\n`);
    return EXIT.usage;
  }
}
