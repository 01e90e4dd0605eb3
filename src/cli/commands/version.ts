import { versionInfo } from "../../daemon/version-info.js";
import { EXIT } from "../exit-codes.js";
import type { Io } from "../io.js";

/** `credbroker version` and `credbroker --version`. */
export async function versionCommand(argv: readonly string[], io: Io): Promise<number> {
  const usage =
    "Usage: credbroker version\n\nPrints the version, git commit (in a clone), Node version and store backends.\n";
  if (argv[0] === "--help" || argv[0] === "-h") {
    io.out(usage);
    return EXIT.ok;
  }
  if (argv.length > 0) {
    io.err(usage);
    return EXIT.usage;
  }
  const info = await versionInfo();
  io.out(
    `credbroker ${info.version}\n` +
      (info.commit ? `commit  ${info.commit}\n` : "") +
      `node    ${info.node}\n` +
      `stores  ${info.stores.join(", ")}\n`,
  );
  return EXIT.ok;
}
