import { auditCommand } from "./commands/audit.js";
import { bindingCommand } from "./commands/binding.js";
import { callerCommand } from "./commands/caller.js";
import { completionCommand, hiddenCompleteCommand } from "./commands/completion.js";
import { configCommand } from "./commands/config.js";
import { credCommand } from "./commands/cred.js";
import { execCommand } from "./commands/exec.js";
import { fetchCommand } from "./commands/fetch.js";
import { keyCommand } from "./commands/key.js";
import { repairCommand } from "./commands/repair.js";
import { serveCommand } from "./commands/serve.js";
import { signCommand } from "./commands/sign.js";
import { statusCommand } from "./commands/status.js";
import { versionCommand } from "./commands/version.js";
import { EXIT } from "./exit-codes.js";
import type { Io } from "./io.js";

export const USAGE = `credbroker — holds cloud credentials and lends their power, never the secret.

Usage:
  credbroker serve [flags]                 run the daemon
  credbroker status                        the daemon: version, uptime, store, listeners, health (admins)
  credbroker cred create NAME [flags]      store a credential (secret from stdin, file, env or prompt)
  credbroker cred get NAME [flags]         show one (never its secret)
  credbroker cred list [flags]             list a namespace, one page or --all
  credbroker cred update NAME [flags]      change the fields whose flags are given
  credbroker cred delete NAME [flags]      delete one
  credbroker cred verify [NAME] [flags]    check one, stored or --candidate
  credbroker cred import NAME --from SRC   one from env, an AWS profile or a URL
  credbroker cred import --bulk FILE       many: JSON lines, one credential each (- for stdin)
  credbroker sign [flags] URL              SigV4 headers (or --presign URL) for a request
  credbroker fetch -c NAME [flags] URL     the broker makes an HTTP request with it; prints the body
  credbroker exec [-n NS] -c NAME -- COMMAND…   run COMMAND with short-lived credentials (container endpoint)
  credbroker binding list|delete ID             container bindings (admins: all; others: their own)
  credbroker caller create NAME --role R -n NS   an API caller (admins; token printed once)
  credbroker caller list|get|update|delete|rotate
  credbroker audit tail [-n NS] [-c NAME] read the audit log (also --decision, --caller, -f)
  credbroker key status|rotate|retire      master key rotation (admins; docs/CLI.md)
  credbroker config check FILE             validate a daemon config file
  credbroker repair [--data-dir DIR]       stopped daemon: LevelDB repair, then verify every record
  credbroker version (or --version)        version, git commit, Node, store backends
  credbroker completion bash|zsh|fish      a shell completion script
  credbroker --help                        this help

Run "credbroker COMMAND --help" (e.g. "credbroker cred create --help") for every
flag with its environment variable and default.

Exit codes: 0 ok, 1 error, 2 usage or invalid config (bad flags; config check,
or serve refusing its config before starting), 3 unauthenticated, 4 not found,
5 invalid input, 6 unavailable, 7 already exists, 8 conflict, 9 permission denied,
10 partly done (import --bulk: some rows failed; repair: something was lost),
22 fetch --fail: the upstream answered 400 or more.
`;

/** Every command by its first word; help, tests and dispatch all read this table. */
export const COMMANDS: Readonly<
  Record<string, (argv: readonly string[], io: Io) => Promise<number>>
> = {
  serve: serveCommand,
  status: statusCommand,
  cred: credCommand,
  sign: signCommand,
  fetch: fetchCommand,
  exec: execCommand,
  binding: bindingCommand,
  caller: callerCommand,
  audit: auditCommand,
  key: keyCommand,
  config: configCommand,
  repair: repairCommand,
  version: versionCommand,
  completion: completionCommand,
};

/** Runs the CLI; returns the exit code. */
export async function runCli(argv: readonly string[], io: Io): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined) {
    io.err(USAGE);
    return EXIT.usage;
  }
  if (command === "help" || command === "--help" || command === "-h") {
    io.out(USAGE);
    return EXIT.ok;
  }
  if (command === "--version") return versionCommand(rest, io);
  // What the completion scripts call; not a command people type.
  if (command === "__complete") return hiddenCompleteCommand(rest, io);
  const run = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  if (run === undefined) {
    io.err(`credbroker: unknown command "${command}"\n\n${USAGE}`);
    return EXIT.usage;
  }
  return run(rest, io);
}
