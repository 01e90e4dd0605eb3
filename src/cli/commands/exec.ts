import { spawn } from "node:child_process";
import {
  type ClientCommand,
  ExitWith,
  NAMESPACE_FLAG,
  runClientCommand,
} from "../client-command.js";
import { UsageError } from "../flags.js";
import type { Io } from "../io.js";

/** Variables that would give the child other credentials, or the broker's own token. */
const SCRUBBED = [
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN",
  "AWS_SECURITY_TOKEN",
  "AWS_PROFILE",
  "AWS_DEFAULT_PROFILE",
  "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
  "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
  "CREDBROKER_TOKEN",
  "CREDBROKER_TOKEN_FILE",
];

export const EXEC: ClientCommand = {
  command: "credbroker exec",
  args: "-- COMMAND…",
  about: `Runs COMMAND with short-lived credentials of one credential (allowed_in_tasks),
served by the daemon's container-credentials listener: COMMAND gets
AWS_CONTAINER_CREDENTIALS_FULL_URI and AWS_CONTAINER_AUTHORIZATION_TOKEN and
nothing else secret; AWS SDKs and the AWS CLI v2 pick them up unmodified.
The binding ends when COMMAND exits (or at --ttl, if exec is killed).

  credbroker exec -n team-a -c deployer -- aws s3 ls`,
  flags: [
    NAMESPACE_FLAG,
    {
      name: "credential",
      short: "c",
      kind: "string",
      value: "NAME",
      env: "CREDBROKER_CREDENTIAL",
      help: "the credential to lend, in --namespace (NS/NAME also works, without -n)",
    },
    {
      name: "ttl",
      kind: "string",
      value: "SECONDS",
      default: "3600",
      help: "binding lifetime, 60-43200",
    },
  ],
  async run(ctx) {
    const ref = ctx.flags.string("credential") ?? "";
    if (ref === "") throw new UsageError("--credential is required");
    const slash = ref.indexOf("/");
    if (slash >= 0 && ctx.flags.given("namespace")) {
      throw new UsageError("give the namespace once: -n NS -c NAME, or -c NS/NAME");
    }
    const [namespace, credential] =
      slash < 0 ? [ctx.namespace, ref] : [ref.slice(0, slash), ref.slice(slash + 1)];
    const ttl = Number(ctx.flags.string("ttl"));
    if (!Number.isInteger(ttl)) throw new UsageError("--ttl: seconds");
    const signing = ctx.client().signing;
    const binding = await signing.createContainerBinding({
      namespace,
      credential,
      ttlSeconds: ttl,
    });
    const env: NodeJS.ProcessEnv = { ...ctx.io.env };
    for (const name of SCRUBBED) delete env[name];
    env.AWS_CONTAINER_CREDENTIALS_FULL_URI = binding.fullUri;
    env.AWS_CONTAINER_AUTHORIZATION_TOKEN = binding.authorizationToken;
    const [command = "", ...args] = ctx.args;
    const code = await new Promise<number>((resolve) => {
      const child = spawn(command, args, { env, stdio: "inherit" });
      const forward = (signal: NodeJS.Signals) => child.kill(signal);
      process.on("SIGINT", forward);
      process.on("SIGTERM", forward);
      child.once("error", (err) => {
        ctx.io.err(`credbroker exec: cannot run ${command}: ${err.message}\n`);
        resolve(127);
      });
      child.once("exit", (status, signal) => {
        process.off("SIGINT", forward);
        process.off("SIGTERM", forward);
        resolve(status ?? 128 + (signal === "SIGKILL" ? 9 : signal === "SIGTERM" ? 15 : 2));
      });
    });
    await signing.deleteContainerBinding({ bindingId: binding.bindingId }).catch(() => undefined);
    if (code !== 0) throw new ExitWith(code);
  },
};

/** `credbroker exec …`: returns COMMAND's exit code (or the CLI's own on failure). */
export function execCommand(argv: readonly string[], io: Io): Promise<number> {
  return runClientCommand(EXEC, argv, io);
}
