import { parseArgs } from "node:util";
import { pino } from "pino";
import { buildServeConfig, DEFAULT_LISTEN } from "../config/serve-config.js";
import { startDaemon } from "../server.js";

export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

const USAGE = `credbroker — holds cloud credentials and lends their power, never the secret.

Usage:
  credbroker serve [flags]     run the daemon
  credbroker --help            this help

Run "credbroker serve --help" for the daemon's flags.
`;

const SERVE_USAGE = `Usage: credbroker serve [flags]

Serves CredentialService (gRPC, gRPC-Web, Connect over h2c and HTTP/1.1),
grpc.health.v1 and gRPC reflection on one port.

Flags (flag > environment > default):
  --listen HOST:PORT       CREDBROKER_LISTEN          default ${DEFAULT_LISTEN}
  --data-dir DIR           CREDBROKER_DATA_DIR        default $XDG_DATA_HOME/credbroker or ~/.local/share/credbroker
  --log-level LEVEL        CREDBROKER_LOG_LEVEL       default info (fatal, error, warn, info, debug, trace)
  --shutdown-grace SECS    CREDBROKER_SHUTDOWN_GRACE  default 10
                           CREDBROKER_MASTER_KEY      base64 of 32 bytes; default: master.key in the data dir

The data dir holds the database, master.key (0600, created on first start
unless CREDBROKER_MASTER_KEY is set) and admin.token (0600), the admin's
bearer token. The token is never logged.
`;

/** Runs the CLI; returns the exit code. Writes only to stdout/stderr. */
export async function runCli(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE);
      return command === undefined ? EXIT.usage : EXIT.ok;
    case "serve":
      return serveCommand(rest, env);
    default:
      process.stderr.write(`credbroker: unknown command "${command}"\n\n${USAGE}`);
      return EXIT.usage;
  }
}

async function serveCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        listen: { type: "string" },
        "data-dir": { type: "string" },
        "log-level": { type: "string" },
        "shutdown-grace": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    process.stderr.write(`credbroker serve: ${(err as Error).message}\n\n${SERVE_USAGE}`);
    return EXIT.usage;
  }
  if (values.help) {
    process.stdout.write(SERVE_USAGE);
    return EXIT.ok;
  }
  const str = (k: string) => values[k] as string | undefined;
  let config: ReturnType<typeof buildServeConfig>;
  try {
    config = buildServeConfig(
      {
        listen: str("listen"),
        dataDir: str("data-dir"),
        logLevel: str("log-level"),
        shutdownGrace: str("shutdown-grace"),
      },
      env,
    );
  } catch (err) {
    process.stderr.write(`credbroker serve: ${(err as Error).message}\n`);
    return EXIT.usage;
  }

  const log = pino(
    {
      level: config.logLevel,
      base: { pid: process.pid },
      // Defence in depth: nothing should log these, and if it does they are masked.
      redact: ["*.secretAccessKey", "*.sessionToken", "*.token", "*.authorization"],
    },
    pino.destination({ fd: 1, sync: true }),
  );

  let daemon: Awaited<ReturnType<typeof startDaemon>>;
  try {
    daemon = await startDaemon(config, log);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    log.fatal({ err }, message);
    process.stderr.write(`credbroker serve: ${message}\n`);
    return EXIT.failure;
  }

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, "shutting down");
      daemon.stop().then(
        () => resolve(EXIT.ok),
        (err: unknown) => {
          log.error({ err }, "shutdown failed");
          resolve(EXIT.failure);
        },
      );
    };
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
  });
}
