import { effectiveConfig } from "../../config/effective-config.js";
import { ConfigInvalid } from "../../config/problems.js";
import { EXIT } from "../exit-codes.js";
import { type FlagSpec, helpText, parseFlags, UsageError } from "../flags.js";
import type { Io } from "../io.js";
import { FILE_KEYS, refusal, SERVE_FLAGS, validateServeConfig } from "./serve.js";

const CHECK_FLAGS: readonly FlagSpec[] = [
  {
    name: "print",
    kind: "boolean",
    help: "also print the effective config (file + environment + defaults; secrets as <set>)",
  },
  { name: "help", short: "h", kind: "boolean", help: "show this help" },
];

const USAGE = "credbroker config check [--print] FILE";
const ABOUT = `Runs serve's own validation of FILE (with the environment, as serve --config FILE
would) without creating or starting anything: every setting, [[credentials]] and
[[callers]], the TLS files, the data dir and the master keys. Every problem is
printed as FILE:LINE: path: message, in line order. Exit 0: serve would accept
it; 2: it would refuse it.`;

/** `credbroker config check FILE`: 0 when `serve --config FILE` would accept it, 2 with every reason otherwise. */
export async function configCommand(argv: readonly string[], io: Io): Promise<number> {
  const [sub, ...rest] = argv;
  const help = helpText(USAGE, ABOUT, CHECK_FLAGS);
  if (sub === "--help" || sub === "-h") {
    io.out(help);
    return EXIT.ok;
  }
  let file: string;
  let print: boolean;
  try {
    if (sub !== "check")
      throw new UsageError(
        sub === undefined ? "missing command check" : `unknown command "${sub}"`,
      );
    const flags = parseFlags(CHECK_FLAGS, rest, {});
    if (flags.bool("help")) {
      io.out(help);
      return EXIT.ok;
    }
    const [given, ...extra] = flags.positionals;
    if (given === undefined) throw new UsageError("missing FILE");
    if (extra.length > 0) throw new UsageError("one FILE only");
    file = given;
    print = flags.bool("print");
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.err(`credbroker config: ${err.message}\nUsage: ${USAGE} (see --help)\n`);
    return EXIT.usage;
  }
  try {
    const resolved = await validateServeConfig(
      parseFlags(SERVE_FLAGS, [`--config=${file}`], {}),
      io.env,
    );
    const { config } = resolved;
    io.out(
      `${file}: ok (listen ${config.listen.host}:${config.listen.port}, data dir ${config.dataDir})\n`,
    );
    if (print) {
      io.out(effectiveConfig(config, FILE_KEYS.keys(), resolved.sourceOf, resolved.file));
    }
    return EXIT.ok;
  } catch (err) {
    if (!(err instanceof ConfigInvalid)) throw err;
    io.err(refusal(err, "credbroker config check", "serve would refuse it"));
    return EXIT.usage;
  }
}
