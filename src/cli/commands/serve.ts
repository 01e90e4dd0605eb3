import path from "node:path";
import { type ConfigFile, envOf, keyOf, loadConfigFile } from "../../config/config-file.js";
import { ConfigInvalid, type ConfigProblem, renderProblem } from "../../config/problems.js";
import {
  collectServeConfig,
  type ServeConfig,
  type ServeInputs,
} from "../../config/serve-config.js";
import { checkStartup } from "../../config/startup-check.js";
import { type DomainError, isDomainError } from "../../core/errors.js";
import { createLogger } from "../../daemon/logger.js";
import { type Daemon, startDaemon } from "../../daemon/serve.js";
import { EXIT } from "../exit-codes.js";
import { helpText, type ParsedFlags, parseFlags, UsageError } from "../flags.js";
import type { Io } from "../io.js";
import { BOOLEAN_INPUTS, FILE_KEYS, SERVE_FLAGS, STRING_INPUTS } from "./serve-flags.js";

export { FILE_KEYS, SERVE_FLAGS } from "./serve-flags.js";

/** A valid config, and where each setting's value came from (for `config check --print`). */
export interface ResolvedConfig {
  config: ServeConfig;
  file: ConfigFile | undefined;
  /** `--flag`, the environment variable, `FILE:LINE`, or "default". */
  sourceOf(flag: string): string;
}

/**
 * The one validation `serve` and `config check` run. The daemon's config:
 * flag > environment > config file > default, one rule for every setting
 * (--imds-listen, CREDBROKER_IMDS_LISTEN, imds_listen); then what startup
 * needs (TLS files, data dir, master keys, declarations). Reads only; throws
 * ConfigInvalid with every problem, a file's at their lines.
 */
export async function validateServeConfig(
  flags: ParsedFlags,
  env: NodeJS.ProcessEnv,
): Promise<ResolvedConfig> {
  const configFile = flags.given("config") ? flags.string("config") : env.CREDBROKER_CONFIG;
  const loaded = configFile ? await loadConfigFile(configFile, FILE_KEYS) : undefined;
  const file = loaded?.settings ?? new Map<string, string | boolean>();
  const fromFile = (flag: string) => (env[envOf(flag)] === undefined ? file.get(flag) : undefined);
  const inputs: ServeInputs = {};
  for (const [field, flag] of Object.entries(STRING_INPUTS)) {
    const value = flags.given(flag) ? flags.string(flag) : fromFile(flag);
    inputs[field as keyof typeof STRING_INPUTS] = typeof value === "string" ? value : undefined;
  }
  for (const [field, flag] of Object.entries(BOOLEAN_INPUTS)) {
    inputs[field as keyof typeof BOOLEAN_INPUTS] = flags.bool(flag) || fromFile(flag) === true;
  }
  const built = collectServeConfig(inputs, env);
  const config = { ...built.config, configFile: configFile ? path.resolve(configFile) : undefined };
  const checked = await checkStartup(config, env, loaded);

  /** A setting's problem is reported at its line when the file gave the value (the first flag it names that the file set). */
  const locate = (err: DomainError): ConfigProblem => {
    const named = [...err.message.matchAll(/--([a-z0-9-]+)/g)].map((m) => m[1] ?? "");
    const flag = named.find(
      (f) => FILE_KEYS.has(f) && !flags.given(f) && fromFile(f) !== undefined,
    );
    if (configFile === undefined || loaded === undefined || flag === undefined) {
      return { message: err.message };
    }
    return {
      file: configFile,
      line: loaded.lineOf(keyOf(flag)),
      path: keyOf(flag),
      message: err.message.replace(new RegExp(`^--${flag}(: | )`), ""),
    };
  };
  const problems: ConfigProblem[] = [
    ...(loaded?.problems ?? []).filter((p) => p.path !== "credentials" && p.path !== "callers"),
    ...built.problems.map(locate),
    ...checked.settings.map(locate),
    ...checked.declarations,
  ];
  if (problems.length > 0) throw new ConfigInvalid(problems);
  return {
    config,
    file: loaded,
    sourceOf(flag) {
      if (flags.given(flag)) return `--${flag}`;
      if (env[envOf(flag)] !== undefined) return envOf(flag);
      if (configFile !== undefined && loaded?.settings.has(flag)) {
        return `${configFile}:${loaded.lineOf(keyOf(flag))}`;
      }
      return "default";
    },
  };
}

const ABOUT = `Runs the daemon: CredentialService, grpc.health.v1 and gRPC reflection on one
port, cleartext, or TLS with --tls-cert and --tls-key (mutual TLS with
--client-ca). The master key comes from env CREDBROKER_MASTER_KEY (base64 of 32
bytes) or master.key in the data dir (created 0600 on first start; with
--store etcd never created: every daemon of the fleet is given the same key). During a
master key rotation the old key is a previous key: env CREDBROKER_PREVIOUS_MASTER_KEYS
or master.key.previous (see "credbroker key --help"). On first start
admin.token (0600) receives the admin's bearer token; the token is never logged.
SIGTERM or SIGINT: finish in-flight calls, close the database, exit 0.`;

/** `credbroker serve`: runs until SIGTERM/SIGINT; returns the exit code. */
export async function serveCommand(argv: readonly string[], io: Io): Promise<number> {
  let config: ServeConfig;
  try {
    const flags = parseFlags(SERVE_FLAGS, argv, {});
    if (flags.bool("help")) {
      io.out(helpText("credbroker serve [flags]", ABOUT, SERVE_FLAGS));
      return EXIT.ok;
    }
    if (flags.positionals.length > 0) {
      throw new UsageError(
        "unexpected argument (serve takes none; is it the value of a flag that takes none?)",
      );
    }
    config = (await validateServeConfig(flags, io.env)).config;
  } catch (err) {
    if (err instanceof ConfigInvalid) {
      io.err(refusal(err, "credbroker serve", "nothing was created or changed"));
      return EXIT.usage;
    }
    io.err(
      `credbroker serve: ${(err as Error).message}\nUsage: credbroker serve [flags] (see --help)\n`,
    );
    return EXIT.usage;
  }

  const isTTY = process.stdout.isTTY === true;
  // https://no-color.org: any non-empty NO_COLOR turns colour off.
  const log = createLogger(config, { isTTY, colour: isTTY && !io.env.NO_COLOR });

  // Listen for signals before anything starts: a SIGTERM that arrives while
  // the daemon is starting (or right after "listening") still drains and exits 0.
  const signalled = new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });

  let daemon: Daemon;
  try {
    daemon = await startDaemon(config, log);
  } catch (err) {
    // One line for a person; the log line has the stack only when asked for.
    const message = (err instanceof Error ? err.message : String(err)).replaceAll("\n", "; ");
    const verbose = config.logLevel === "debug" || config.logLevel === "trace";
    log.fatal(
      verbose
        ? { err }
        : { code: isDomainError(err) ? err.code : (err as NodeJS.ErrnoException).code },
      message,
    );
    io.err(`credbroker serve: ${message}\n`);
    return EXIT.error;
  }

  // SIGHUP: reconcile the config file's declared credentials again.
  process.on("SIGHUP", () => {
    daemon.reload().catch((err: unknown) => {
      log.error(
        { err: (err as Error).message },
        "reload failed; the declared credentials are as before",
      );
    });
  });
  const signal = await signalled;
  log.info({ signal }, "shutting down");
  try {
    await daemon.stop();
    return EXIT.ok;
  } catch (err) {
    log.error({ err }, "shutdown failed");
    return EXIT.error;
  }
}

/** Every problem on its own line (`FILE:LINE: path: message`, in line order), then what was refused. */
export function refusal(err: ConfigInvalid, command: string, consequence: string): string {
  const n = err.problems.length;
  return `${err.problems.map(renderProblem).join("\n")}\n${command}: the config is invalid (${n} problem${n === 1 ? "" : "s"}); ${consequence}\n`;
}
