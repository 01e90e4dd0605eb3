import path from "node:path";
import { pino } from "pino";
import { type ConfigFile, envOf, keyOf, loadConfigFile } from "../../config/config-file.js";
import { ConfigInvalid, type ConfigProblem, renderProblem } from "../../config/problems.js";
import {
  collectServeConfig,
  DEFAULT_LISTEN,
  DEFAULT_STALE_LIMIT_SECONDS,
  type ServeConfig,
  type ServeInputs,
} from "../../config/serve-config.js";
import { checkStartup } from "../../config/startup-check.js";
import { type DomainError, isDomainError } from "../../core/errors.js";
import { type Daemon, startDaemon } from "../../server.js";
import { dataDirFlag } from "../data-dir.js";
import { EXIT } from "../exit-codes.js";
import { type FlagSpec, helpText, type ParsedFlags, parseFlags, UsageError } from "../flags.js";
import type { Io } from "../io.js";

export const SERVE_FLAGS: readonly FlagSpec[] = [
  {
    name: "listen",
    kind: "string",
    value: "HOST:PORT",
    env: "CREDBROKER_LISTEN",
    default: DEFAULT_LISTEN,
    help: "API address (gRPC, gRPC-Web, Connect; HTTP/2 and HTTP/1.1, cleartext unless --tls-cert)",
  },
  dataDirFlag("database, master.key and admin.token"),
  {
    name: "log-level",
    kind: "string",
    value: "LEVEL",
    env: "CREDBROKER_LOG_LEVEL",
    default: "info",
    help: "fatal, error, warn, info, debug or trace",
  },
  {
    name: "shutdown-grace",
    kind: "string",
    value: "SECONDS",
    env: "CREDBROKER_SHUTDOWN_GRACE",
    default: "10",
    help: "how long SIGTERM waits for in-flight calls",
  },
  {
    name: "sts-endpoint",
    kind: "string",
    value: "URL",
    env: "CREDBROKER_STS_ENDPOINT",
    help: "STS endpoint (default: the regional endpoint of --sts-region)",
  },
  {
    name: "sts-region",
    kind: "string",
    value: "REGION",
    env: "CREDBROKER_STS_REGION",
    default: "us-east-1",
    help: "region STS calls are signed for",
  },
  {
    name: "sts-timeout",
    kind: "string",
    value: "SECONDS",
    env: "CREDBROKER_STS_TIMEOUT",
    default: "5",
    help: "the bound on one STS call, retry included; past it, requests waiting for a session fail unavailable",
  },
  {
    name: "allow-ambient",
    kind: "boolean",
    env: "CREDBROKER_ALLOW_AMBIENT",
    default: "false",
    help: "let roles use the daemon's own AWS identity (env, profile, instance metadata) as source",
  },
  {
    name: "imds-listen",
    kind: "string",
    value: "HOST:PORT",
    env: "CREDBROKER_IMDS_LISTEN",
    help: "serve the EC2 instance metadata protocol (IMDSv2) here, e.g. 127.0.0.1:9911",
  },
  {
    name: "imds-credential",
    kind: "string",
    value: "[NAMESPACE/]NAME",
    env: "CREDBROKER_IMDS_CREDENTIAL",
    help: "the credential IMDS serves (allowed_in_tasks); may be created later",
  },
  {
    name: "imds-allow-v1",
    kind: "boolean",
    env: "CREDBROKER_IMDS_ALLOW_V1",
    default: "false",
    help: "also answer IMDSv1 requests (no session token)",
  },
  {
    name: "container-listen",
    kind: "string",
    value: "HOST:PORT",
    env: "CREDBROKER_CONTAINER_LISTEN",
    help: "serve container credentials (for credbroker exec), e.g. 127.0.0.1:9912",
  },
  {
    name: "tls-cert",
    kind: "string",
    value: "FILE",
    env: "CREDBROKER_TLS_CERT",
    help: "serve the API over TLS only, with this PEM certificate (then intermediates); needs --tls-key",
  },
  {
    name: "tls-key",
    kind: "string",
    value: "FILE",
    env: "CREDBROKER_TLS_KEY",
    help: "the unencrypted PEM private key of --tls-cert",
  },
  {
    name: "client-ca",
    kind: "string",
    value: "FILE",
    env: "CREDBROKER_CLIENT_CA",
    help: "mutual TLS: require a client certificate signed by these PEM CAs; one whose subject is a caller's certificate_subject is that caller (no token needed)",
  },
  {
    name: "store",
    kind: "string",
    value: "leveldb|etcd",
    env: "CREDBROKER_STORE",
    default: "leveldb",
    help: "leveldb: the embedded database in the data dir; etcd: one store shared by a fleet of daemons",
  },
  {
    name: "etcd-endpoints",
    kind: "string",
    value: "URL[,URL…]",
    env: "CREDBROKER_ETCD_ENDPOINTS",
    help: "etcd client URLs (http://127.0.0.1:2379), required with --store etcd",
  },
  {
    name: "etcd-prefix",
    kind: "string",
    value: "PREFIX",
    env: "CREDBROKER_ETCD_PREFIX",
    default: "/credbroker/",
    help: "every key of this fleet is under it (starts and ends with /)",
  },
  {
    name: "etcd-ca",
    kind: "string",
    value: "FILE",
    env: "CREDBROKER_ETCD_CA",
    help: "PEM CA(s) etcd's certificate must chain to; required with https:// endpoints",
  },
  {
    name: "etcd-cert",
    kind: "string",
    value: "FILE",
    env: "CREDBROKER_ETCD_CERT",
    help: "client certificate (PEM) for etcd's mutual TLS; needs --etcd-key",
  },
  {
    name: "etcd-key",
    kind: "string",
    value: "FILE",
    env: "CREDBROKER_ETCD_KEY",
    help: "the unencrypted PEM private key of --etcd-cert",
  },
  {
    name: "etcd-user",
    kind: "string",
    value: "USER",
    env: "CREDBROKER_ETCD_USER",
    help: "etcd user; its password only from env CREDBROKER_ETCD_PASSWORD (never a flag)",
  },
  {
    name: "etcd-stale-limit",
    kind: "string",
    value: "SECONDS",
    env: "CREDBROKER_ETCD_STALE_LIMIT",
    default: String(DEFAULT_STALE_LIMIT_SECONDS),
    help: "etcd unreachable: cached credentials and callers serve for this long after it last answered, then calls fail unavailable (0 = at once)",
  },
  {
    name: "audit-log",
    kind: "string",
    value: "FILE|stdout",
    env: "CREDBROKER_AUDIT_LOG",
    default: "<data dir>/audit.log",
    help: "audit lines (JSON, 0600, appended); unwritable = requests fail closed",
  },
  {
    name: "rate-limit",
    kind: "string",
    value: "N",
    env: "CREDBROKER_RATE_LIMIT",
    default: "5000",
    help: "requests per second per caller (0 = unlimited); beyond: resource_exhausted",
  },
  {
    name: "rate-burst",
    kind: "string",
    value: "N",
    env: "CREDBROKER_RATE_BURST",
    default: "2 × --rate-limit",
    help: "requests a caller may send at once above the rate",
  },
  {
    name: "auth-failure-delay",
    kind: "string",
    value: "MS",
    env: "CREDBROKER_AUTH_FAILURE_DELAY",
    default: "100",
    help: "past 10 failed authentications a minute from one peer, each waits this much more (0 = off)",
  },
  {
    name: "transport-limits",
    kind: "string",
    value: "KEY=N,...",
    env: "CREDBROKER_TRANSPORT_LIMITS",
    help: "API port deadlines and caps: headers-timeout-ms, request-timeout-ms, streams-per-session, connections-per-peer, inflight-body-bytes (docs/SECURITY.md)",
  },
  {
    name: "disable-fast-unary",
    kind: "boolean",
    env: "CREDBROKER_DISABLE_FAST_UNARY",
    default: "false",
    help: "serve unary gRPC/Connect calls through connect-node only (a kill switch for the lean path)",
  },
  {
    name: "config",
    kind: "string",
    value: "FILE",
    env: "CREDBROKER_CONFIG",
    help: "a TOML file of these settings (key = flag with _ for -); flag > env > file > default",
  },
  { name: "help", short: "h", kind: "boolean", help: "show this help" },
];

/** ServeInputs fields and the flags that set them (strings). */
const STRING_INPUTS = {
  listen: "listen",
  dataDir: "data-dir",
  logLevel: "log-level",
  shutdownGrace: "shutdown-grace",
  stsEndpoint: "sts-endpoint",
  stsRegion: "sts-region",
  stsTimeout: "sts-timeout",
  imdsListen: "imds-listen",
  imdsCredential: "imds-credential",
  containerListen: "container-listen",
  tlsCert: "tls-cert",
  tlsKey: "tls-key",
  clientCa: "client-ca",
  store: "store",
  etcdEndpoints: "etcd-endpoints",
  etcdPrefix: "etcd-prefix",
  etcdCa: "etcd-ca",
  etcdCert: "etcd-cert",
  etcdKey: "etcd-key",
  etcdUser: "etcd-user",
  etcdStaleLimit: "etcd-stale-limit",
  auditLog: "audit-log",
  rateLimit: "rate-limit",
  rateBurst: "rate-burst",
  authFailureDelay: "auth-failure-delay",
  transportLimits: "transport-limits",
} as const satisfies Partial<Record<keyof ServeInputs, string>>;

/** …and the switches. */
const BOOLEAN_INPUTS = {
  allowAmbient: "allow-ambient",
  imdsAllowV1: "imds-allow-v1",
  disableFastUnary: "disable-fast-unary",
} as const satisfies Partial<Record<keyof ServeInputs, string>>;

/** The settings a config file may hold: every serve flag but --config and --help. */
export const FILE_KEYS: ReadonlyMap<string, "string" | "boolean"> = new Map(
  SERVE_FLAGS.filter((f) => f.name !== "config" && f.name !== "help").map((f) => [
    f.name,
    f.kind === "boolean" ? "boolean" : "string",
  ]),
);

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

  const log = pino(
    {
      level: config.logLevel,
      base: { pid: process.pid },
      // Defence in depth: nothing should log these, and if it does they are masked.
      redact: ["*.secretAccessKey", "*.sessionToken", "*.token", "*.authorization"],
    },
    pino.destination({ fd: 1, sync: true }),
  );

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
