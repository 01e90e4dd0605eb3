import { spawn } from "node:child_process";
import {
  BindingProtocol,
  type CreateContainerBindingResponse,
} from "../../../gen/credbroker/v1/signing_service_pb.js";
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
  "AWS_CONTAINER_CREDENTIALS_FULL_URI",
  "AWS_CONTAINER_AUTHORIZATION_TOKEN",
  "AZURE_CLIENT_SECRET",
  "AZURE_CLIENT_CERTIFICATE_PATH",
  "AZURE_CLIENT_CERTIFICATE_PASSWORD",
  "AZURE_FEDERATED_TOKEN_FILE",
  "AZURE_USERNAME",
  "AZURE_PASSWORD",
  "AZURE_STORAGE_KEY",
  "AZURE_STORAGE_CONNECTION_STRING",
  "AZURE_STORAGE_SAS_TOKEN",
  "AZURE_POD_IDENTITY_AUTHORITY_HOST",
  "IDENTITY_ENDPOINT",
  "IDENTITY_HEADER",
  "IDENTITY_SERVER_THUMBPRINT",
  "IMDS_ENDPOINT",
  "MSI_ENDPOINT",
  "MSI_SECRET",
  "GOOGLE_APPLICATION_CREDENTIALS",
  "GCE_METADATA_HOST",
  "GCE_METADATA_IP",
  "CREDBROKER_TOKEN",
  "CREDBROKER_TOKEN_FILE",
];

/** The variables a binding is handed to the child in, by its protocol (each cloud's SDKs read these). */
function bindingEnv(binding: CreateContainerBindingResponse): Record<string, string> {
  switch (binding.protocol) {
    case BindingProtocol.AZURE_APP_SERVICE:
      return { IDENTITY_ENDPOINT: binding.fullUri, IDENTITY_HEADER: binding.authorizationToken };
    case BindingProtocol.GCE_METADATA:
      return { GCE_METADATA_HOST: binding.fullUri };
    default:
      // ECS_CONTAINER, and UNSPECIFIED from daemons that predate the field.
      return {
        AWS_CONTAINER_CREDENTIALS_FULL_URI: binding.fullUri,
        AWS_CONTAINER_AUTHORIZATION_TOKEN: binding.authorizationToken,
      };
  }
}

export const EXEC: ClientCommand = {
  command: "credbroker exec",
  args: "-- COMMAND…",
  about: `Runs COMMAND with short-lived credentials of one credential (allowed_in_tasks),
served by the daemon's container-credentials listener, in the variables its
cloud's SDKs read, and nothing else secret:
  AWS     AWS_CONTAINER_CREDENTIALS_FULL_URI, AWS_CONTAINER_AUTHORIZATION_TOKEN (STS sessions)
  Azure   IDENTITY_ENDPOINT, IDENTITY_HEADER (a service principal's Entra tokens)
  Google  GCE_METADATA_HOST (a service account's OAuth tokens)
Credential variables COMMAND would otherwise inherit are removed.
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
    Object.assign(env, bindingEnv(binding));
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
