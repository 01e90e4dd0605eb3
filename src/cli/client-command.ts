import { readFile } from "node:fs/promises";
import path from "node:path";
import { type DescMessage, type MessageShape, toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { addressProblem, DEFAULT_ADDR } from "../client/address.js";
import { type BrokerClient, createBrokerClient } from "../client/broker-client.js";
import { defaultDataDir } from "../config/serve-config.js";
import { EXIT, exitCodeFor } from "./exit-codes.js";
import {
  FlagError,
  type FlagSpec,
  helpText,
  type ParsedFlags,
  parseFlags,
  UsageError,
} from "./flags.js";
import type { Io } from "./io.js";

export const CONNECTION_FLAGS: readonly FlagSpec[] = [
  {
    name: "addr",
    kind: "string",
    value: "ADDR",
    env: "CREDBROKER_ADDR",
    default: DEFAULT_ADDR,
    help: "daemon address: host:port or http(s)://host:port",
  },
  {
    name: "token-file",
    kind: "string",
    value: "FILE",
    env: "CREDBROKER_TOKEN_FILE",
    default: "<data dir>/admin.token",
    help: "file holding the bearer token (else env CREDBROKER_TOKEN holds the token itself)",
  },
  {
    name: "output",
    short: "o",
    kind: "string",
    value: "table|json",
    env: "CREDBROKER_OUTPUT",
    default: "table",
    help: "json prints the response's proto3 JSON",
  },
  { name: "help", short: "h", kind: "boolean", help: "show this help" },
];

export const NAMESPACE_FLAG: FlagSpec = {
  name: "namespace",
  short: "n",
  kind: "string",
  value: "NS",
  env: "CREDBROKER_NAMESPACE",
  default: "",
  help: 'namespace ("" is the workspace)',
};

/** What a command that talks to the daemon gets: its flags, streams, and a lazily made client. */
export interface Context {
  readonly flags: ParsedFlags;
  readonly io: Io;
  readonly namespace: string;
  /** The positional argument (NAME or URL), "" when absent. */
  readonly arg: string;
  /** Every positional argument (a command line, for exec). */
  readonly args: readonly string[];
  client(): BrokerClient;
  print<D extends DescMessage>(schema: D, message: MessageShape<D>, table: () => string): void;
}

/** A command that talks to the daemon. */
export interface ClientCommand {
  /** "credbroker cred get", for messages. */
  readonly command: string;
  /** The positional argument it takes ("-- COMMAND…": one or more after "--"). */
  readonly args: "NAME" | "[NAME]" | "URL" | "ID" | "-- COMMAND…" | "";
  readonly about: string;
  readonly flags: readonly FlagSpec[];
  run(ctx: Context): Promise<void>;
}

/** Ends a command with an exit code and no further message (e.g. verify: not valid). */
export class ExitWith extends Error {
  constructor(readonly exitCode: number) {
    super(`exit ${exitCode}`);
  }
}

/** Parses flags (adding the connection flags), answers --help, runs, and maps every failure to an exit code. */
export async function runClientCommand(
  spec: ClientCommand,
  argv: readonly string[],
  io: Io,
): Promise<number> {
  const specs = [...spec.flags, ...CONNECTION_FLAGS];
  const usage = `${spec.command}${spec.args ? ` ${spec.args}` : ""} [flags]`;
  let where = DEFAULT_ADDR;
  try {
    const flags = parseFlags(specs, argv, io.env);
    if (flags.bool("help")) {
      io.out(helpText(usage, spec.about, specs));
      return EXIT.ok;
    }
    const source = addressSource(flags);
    where = source === undefined ? DEFAULT_ADDR : `the ${source} address`;
    const problem = addressProblem(flags.string("addr") ?? DEFAULT_ADDR);
    if (problem !== undefined) {
      throw new UsageError(
        `${source ?? "--addr"}: malformed address: ${problem}; expected host:port or http(s)://host[:port]`,
      );
    }
    await spec.run(await context(flags, spec, io));
    return EXIT.ok;
  } catch (err) {
    return report(err, io, spec.command, usage, where);
  }
}

/**
 * The flag or variable that set the address, undefined for the default.
 * Messages name it instead of repeating a typed value.
 */
function addressSource(flags: ParsedFlags): "--addr" | "CREDBROKER_ADDR" | undefined {
  if (flags.given("addr")) return "--addr";
  return flags.string("addr") === DEFAULT_ADDR ? undefined : "CREDBROKER_ADDR";
}

async function context(flags: ParsedFlags, command: ClientCommand, io: Io): Promise<Context> {
  const max =
    command.args === "" ? 0 : command.args === "-- COMMAND…" ? Number.POSITIVE_INFINITY : 1;
  if (command.args === "-- COMMAND…" && flags.positionals.length === 0) {
    throw new UsageError("a command to run is required after --");
  }
  if (flags.positionals.length > max) {
    // Not quoted: it may be a value typed after a flag that takes none.
    throw new UsageError(
      `unexpected argument ${max + 1} (this command takes ${command.args === "" ? "none" : `one: ${command.args}`})`,
    );
  }
  const arg = flags.positionals[0] ?? "";
  if ((command.args === "NAME" || command.args === "URL" || command.args === "ID") && arg === "") {
    throw new UsageError(`${command.args} is required`);
  }
  const output = flags.string("output");
  if (output !== "table" && output !== "json") throw new UsageError("--output: table or json");
  let client: BrokerClient | undefined;
  const token = await resolveToken(flags, io.env);
  return {
    flags,
    io,
    namespace: command.flags.some((f) => f.name === "namespace")
      ? (flags.string("namespace") ?? "")
      : "",
    arg,
    args: flags.positionals,
    client() {
      client ??= createBrokerClient({
        addr: flags.string("addr") ?? DEFAULT_ADDR,
        token,
        transport: "connect",
      });
      return client;
    },
    print(schema, message, render) {
      io.out(
        output === "json" ? `${toJsonString(schema, message, { prettySpaces: 2 })}\n` : render(),
      );
    },
  };
}

/** --token-file, else CREDBROKER_TOKEN, else admin.token in the default data dir. */
async function resolveToken(flags: ParsedFlags, env: NodeJS.ProcessEnv): Promise<string> {
  const explicit = flags.given("token-file") || (env.CREDBROKER_TOKEN_FILE ?? "") !== "";
  if (!explicit && env.CREDBROKER_TOKEN) return env.CREDBROKER_TOKEN.trim();
  const file = explicit
    ? (flags.string("token-file") ?? "")
    : path.join(env.CREDBROKER_DATA_DIR || defaultDataDir(env), "admin.token");
  try {
    return (await readFile(file, "utf8")).trim();
  } catch (err) {
    // A typed path is not repeated (someone may have typed the token itself there).
    const what = flags.given("token-file")
      ? "the --token-file file"
      : explicit
        ? "the CREDBROKER_TOKEN_FILE file"
        : file;
    throw new NoToken(what, (err as NodeJS.ErrnoException).code ?? "unreadable");
  }
}

class NoToken extends Error {
  constructor(what: string, reason: string) {
    super(
      `no token: cannot read ${what} (${reason}); give --token-file FILE or set CREDBROKER_TOKEN`,
    );
  }
}

function report(err: unknown, io: Io, command: string, usage: string, where: string): number {
  if (err instanceof ExitWith) return err.exitCode;
  if (err instanceof FlagError) {
    io.err(`${command}: ${err.message} (see ${command} --help)\n`);
    return EXIT.usage;
  }
  if (err instanceof UsageError) {
    io.err(`${command}: ${err.message}\nUsage: ${usage} (see --help)\n`);
    return EXIT.usage;
  }
  if (err instanceof NoToken) {
    io.err(`${command}: ${err.message}\n`);
    return EXIT.unauthenticated;
  }
  if (err instanceof ConnectError) {
    const failure = err.code === Code.Unavailable ? networkFailure(err) : undefined;
    if (failure === "ECONNREFUSED") {
      io.err(
        `${command}: cannot reach credbroker at ${where} (connection refused).\n` +
          "Start the daemon with `credbroker serve` (or `npm start`), or point --addr / CREDBROKER_ADDR at it.\n",
      );
      return EXIT.unavailable;
    }
    if (failure !== undefined) {
      // The system's text names the host, which was typed; its code says enough.
      io.err(`${command}: cannot reach credbroker at ${where} (${failure})\n`);
      return EXIT.unavailable;
    }
    io.err(`${command}: ${codeToString(err.code)}: ${err.rawMessage}\n`);
    return exitCodeFor(err.code);
  }
  io.err(`${command}: ${err instanceof Error ? err.message : String(err)}\n`);
  return EXIT.error;
}

/** The system error code (ECONNREFUSED, ENOTFOUND, …) when the connection itself failed. */
function networkFailure(err: ConnectError): string | undefined {
  const cause = err.cause as { code?: unknown } | undefined;
  if (typeof cause?.code === "string" && /^E[A-Z_]+$/.test(cause.code)) return cause.code;
  return /^(?:getaddrinfo|connect|read|write) (E[A-Z_]+)/.exec(err.rawMessage)?.[1];
}

/**
 * A command group (`credbroker cred …`, `credbroker caller …`): its usage,
 * then dispatch to the subcommand named first. Usage goes to stdout for
 * --help and to stderr (exit 2) when no or an unknown subcommand is given.
 */
export function subcommandGroup(
  group: string,
  title: string,
  subcommands: Record<string, Omit<ClientCommand, "command">>,
): { usage: string; run(argv: readonly string[], io: Io): Promise<number> } {
  const usage = `Usage: credbroker ${group} COMMAND [NAME] [flags]${title}

Commands:
${Object.entries(subcommands)
  .map(([name, c]) => `  ${`${name} ${c.args}`.padEnd(16)}${c.about.split("\n")[0]}`)
  .join("\n")}

Run "credbroker ${group} COMMAND --help" for its flags.
`;
  return {
    usage,
    async run(argv, io) {
      const [sub, ...rest] = argv;
      if (sub === "--help" || sub === "-h" || sub === "help") {
        io.out(usage);
        return EXIT.ok;
      }
      const command = sub === undefined ? undefined : subcommands[sub];
      if (command === undefined) {
        io.err(
          sub === undefined ? usage : `credbroker ${group}: unknown command "${sub}"\n\n${usage}`,
        );
        return EXIT.usage;
      }
      return runClientCommand({ ...command, command: `credbroker ${group} ${sub}` }, rest, io);
    },
  };
}
