import { readFile } from "node:fs/promises";
import path from "node:path";
import { type DescMessage, type MessageShape, toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { type Credential, Provider } from "../../../gen/credbroker/v1/credential_pb.js";
import {
  CreateCredentialResponseSchema,
  DeleteCredentialResponseSchema,
  GetCredentialResponseSchema,
  type ListCredentialsResponse,
  ListCredentialsResponseSchema,
  UpdateCredentialResponseSchema,
  VerifyCredentialResponseSchema,
} from "../../../gen/credbroker/v1/credential_service_pb.js";
import { DEFAULT_ADDR } from "../../client/address.js";
import { type BrokerClient, createBrokerClient } from "../../client/broker-client.js";
import { defaultDataDir } from "../../config/serve-config.js";
import {
  CLEARABLE,
  credentialFromFlags,
  FIELD_FLAGS,
  kindFromFlags,
  updateFromFlags,
} from "../credential-flags.js";
import { EXIT, exitCodeFor } from "../exit-codes.js";
import { type FlagSpec, helpText, type ParsedFlags, parseFlags, UsageError } from "../flags.js";
import type { Io } from "../io.js";
import { credentialList, credentialTable, verdictTable } from "../render.js";
import { readSecret } from "../secret-input.js";

const CONNECTION_FLAGS: readonly FlagSpec[] = [
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

const NAMESPACE_FLAG: FlagSpec = {
  name: "namespace",
  short: "n",
  kind: "string",
  value: "NS",
  env: "CREDBROKER_NAMESPACE",
  default: "",
  help: 'namespace ("" is the workspace)',
};

const ETAG_FLAG: FlagSpec = {
  name: "etag",
  kind: "string",
  value: "ETAG",
  help: "only if the credential still has this etag (else exit 8)",
};

interface Context {
  readonly flags: ParsedFlags;
  readonly io: Io;
  readonly namespace: string;
  /** The NAME argument. */
  readonly name: string;
  client(): BrokerClient;
  print<D extends DescMessage>(schema: D, message: MessageShape<D>, table: () => string): void;
}

interface Subcommand {
  readonly args: "NAME" | "[NAME]" | "";
  readonly about: string;
  readonly flags: readonly FlagSpec[];
  run(ctx: Context): Promise<void>;
}

const SUBCOMMANDS: Record<string, Subcommand> = {
  create: {
    args: "NAME",
    about:
      "Creates a credential. The secret comes from --secret-stdin, --secret-file or\n--secret-env, or a prompt without echo on a terminal; never from argv.",
    flags: [NAMESPACE_FLAG, ...FIELD_FLAGS],
    async run(ctx) {
      const kind = kindFromFlags(ctx.flags);
      const secret = await readSecret(
        ctx.flags,
        "secret",
        ctx.io,
        kind === "token" ? "Token: " : kind === "accessKey" ? "Secret access key: " : undefined,
      );
      if (secret === undefined && kind !== "role") {
        throw new UsageError(
          "the secret is required: --secret-stdin, --secret-file FILE or --secret-env NAME (never on the command line)",
        );
      }
      const sessionToken = await readSecret(ctx.flags, "session-token", ctx.io);
      const credential = credentialFromFlags(ctx.flags, ctx.namespace, ctx.name, {
        secret,
        sessionToken,
      });
      const res = await ctx.client().credentials.createCredential({ credential });
      ctx.print(CreateCredentialResponseSchema, res, () => credentialTable(need(res.credential)));
    },
  },

  get: {
    args: "NAME",
    about: "Shows a credential (never its secret).",
    flags: [NAMESPACE_FLAG],
    async run(ctx) {
      const res = await ctx
        .client()
        .credentials.getCredential({ namespace: ctx.namespace, name: ctx.name });
      ctx.print(GetCredentialResponseSchema, res, () => credentialTable(need(res.credential)));
    },
  },

  list: {
    args: "",
    about: "Lists a namespace's credentials in name order, one page or --all.",
    flags: [
      NAMESPACE_FLAG,
      { name: "provider", kind: "string", value: "aws|generic", help: "only this provider" },
      { name: "page-size", kind: "string", value: "N", default: "100", help: "1-1000" },
      {
        name: "page-token",
        kind: "string",
        value: "TOKEN",
        help: "the next page token of a previous page",
      },
      { name: "all", kind: "boolean", help: "follow page tokens to the end" },
    ],
    async run(ctx) {
      const provider = { aws: Provider.AWS, generic: Provider.GENERIC, "": Provider.UNSPECIFIED }[
        ctx.flags.string("provider")?.toLowerCase() ?? ""
      ];
      if (provider === undefined) throw new UsageError("--provider: aws or generic");
      const pageSize = Number(ctx.flags.string("page-size"));
      if (!Number.isInteger(pageSize) || pageSize < 1) throw new UsageError("--page-size: 1-1000");
      let pageToken = ctx.flags.string("page-token") ?? "";
      const all: Credential[] = [];
      let last: ListCredentialsResponse;
      do {
        last = await ctx
          .client()
          .credentials.listCredentials({ namespace: ctx.namespace, provider, pageSize, pageToken });
        all.push(...last.credentials);
        pageToken = last.nextPageToken;
      } while (ctx.flags.bool("all") && pageToken !== "");
      const res = { ...last, credentials: all };
      ctx.print(ListCredentialsResponseSchema, res, () => {
        const more = res.nextPageToken ? `next page: --page-token ${res.nextPageToken}\n` : "";
        return `${credentialList(all)}${more}`;
      });
    },
  },

  update: {
    args: "NAME",
    about: `Changes the fields whose flags are given, nothing else. A secret changes only
when a --secret-* or --session-token-* flag is given. --clear empties a field
(${Object.keys(CLEARABLE).join(", ")}).`,
    flags: [
      NAMESPACE_FLAG,
      { name: "rename", kind: "string", value: "NEW-NAME", help: "new name (the id stays)" },
      ...FIELD_FLAGS,
      { name: "clear", kind: "list", value: "FIELD", help: "empty FIELD" },
      ETAG_FLAG,
    ],
    async run(ctx) {
      const client = ctx.client();
      const secret = await readSecret(ctx.flags, "secret", ctx.io);
      const sessionToken = await readSecret(ctx.flags, "session-token", ctx.io);
      // Which kind a secret or kind field belongs to is the stored credential's.
      const current = ctx.flags.given("kind")
        ? undefined
        : (await client.credentials.getCredential({ namespace: ctx.namespace, name: ctx.name }))
            .credential;
      const { patch, paths } = updateFromFlags(ctx.flags, current?.kind.case, {
        secret,
        sessionToken,
      });
      if (paths.length === 0)
        throw new UsageError("nothing to change: give the flags of the fields to update");
      patch.etag = ctx.flags.string("etag") ?? "";
      const res = await client.credentials.updateCredential({
        namespace: ctx.namespace,
        name: ctx.name,
        credential: patch,
        updateMask: { paths },
      });
      ctx.print(UpdateCredentialResponseSchema, res, () => credentialTable(need(res.credential)));
    },
  },

  delete: {
    args: "NAME",
    about: "Deletes a credential. A role's source cannot be deleted while the role exists.",
    flags: [NAMESPACE_FLAG, ETAG_FLAG],
    async run(ctx) {
      const res = await ctx.client().credentials.deleteCredential({
        namespace: ctx.namespace,
        name: ctx.name,
        etag: ctx.flags.string("etag") ?? "",
      });
      ctx.print(
        DeleteCredentialResponseSchema,
        res,
        () => `deleted ${ctx.namespace ? `${ctx.namespace}/` : ""}${ctx.name}\n`,
      );
    },
  },

  verify: {
    args: "[NAME]",
    about: `Checks a stored credential, or with --candidate one described by the field
flags (not stored). Exit 0 when valid, 5 when a check fails with severity error.`,
    flags: [
      NAMESPACE_FLAG,
      { name: "live", kind: "boolean", help: "also ask the provider (STS)" },
      { name: "candidate", kind: "boolean", help: "verify the credential the flags describe" },
      ...FIELD_FLAGS,
    ],
    async run(ctx) {
      const live = ctx.flags.bool("live");
      let target: Parameters<BrokerClient["credentials"]["verifyCredential"]>[0]["target"];
      if (ctx.flags.bool("candidate")) {
        const secret = await readSecret(ctx.flags, "secret", ctx.io);
        const sessionToken = await readSecret(ctx.flags, "session-token", ctx.io);
        target = {
          case: "candidate",
          value: credentialFromFlags(ctx.flags, ctx.namespace, ctx.name, { secret, sessionToken }),
        };
      } else {
        if (ctx.name === "") throw new UsageError("NAME is required (or --candidate)");
        target = { case: "stored", value: { namespace: ctx.namespace, name: ctx.name } };
      }
      const res = await ctx.client().credentials.verifyCredential({ target, live });
      ctx.print(VerifyCredentialResponseSchema, res, () => verdictTable(res.valid, res.checks));
      if (!res.valid) throw new InvalidVerdict();
    },
  },
};

/** Verify answered, and the answer is "not valid": exit 5 without an error message. */
class InvalidVerdict extends Error {}

function need<T>(value: T | undefined): T {
  if (value === undefined) throw new Error("the daemon's answer is missing its credential");
  return value;
}

export const CRED_USAGE = `Usage: credbroker cred COMMAND [NAME] [flags]

Commands:
${Object.entries(SUBCOMMANDS)
  .map(([name, c]) => `  ${`${name} ${c.args}`.padEnd(16)}${c.about.split("\n")[0]}`)
  .join("\n")}

Run "credbroker cred COMMAND --help" for its flags.
`;

/** `credbroker cred …`: returns the exit code. */
export async function credCommand(argv: readonly string[], io: Io): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined) {
    io.err(CRED_USAGE);
    return EXIT.usage;
  }
  if (sub === "--help" || sub === "-h" || sub === "help") {
    io.out(CRED_USAGE);
    return EXIT.ok;
  }
  const command = SUBCOMMANDS[sub];
  if (command === undefined) {
    io.err(`credbroker cred: unknown command "${sub}"\n\n${CRED_USAGE}`);
    return EXIT.usage;
  }
  const specs = [...command.flags, ...CONNECTION_FLAGS];
  const usage = `credbroker cred ${sub}${command.args ? ` ${command.args}` : ""} [flags]`;
  let addr = DEFAULT_ADDR;
  try {
    const flags = parseFlags(specs, rest, io.env);
    if (flags.bool("help")) {
      io.out(helpText(usage, command.about, specs));
      return EXIT.ok;
    }
    addr = flags.string("addr") ?? DEFAULT_ADDR;
    const ctx = await context(flags, command, io);
    await command.run(ctx);
    return EXIT.ok;
  } catch (err) {
    return report(err, io, `credbroker cred ${sub}`, usage, addr);
  }
}

async function context(flags: ParsedFlags, command: Subcommand, io: Io): Promise<Context> {
  const max = command.args === "" ? 0 : 1;
  if (flags.positionals.length > max) {
    throw new UsageError(`unexpected argument "${flags.positionals[max]}"`);
  }
  const name = flags.positionals[0] ?? "";
  if (command.args === "NAME" && name === "") throw new UsageError("NAME is required");
  const output = flags.string("output");
  if (output !== "table" && output !== "json") throw new UsageError("--output: table or json");
  let client: BrokerClient | undefined;
  const token = await resolveToken(flags, io.env);
  return {
    flags,
    io,
    namespace: flags.string("namespace") ?? "",
    name,
    client() {
      client ??= createBrokerClient({ addr: flags.string("addr") ?? DEFAULT_ADDR, token });
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
  } catch {
    throw new NoToken(file);
  }
}

class NoToken extends Error {
  constructor(readonly file: string) {
    super(`no token: cannot read ${file}; give --token-file FILE or set CREDBROKER_TOKEN`);
  }
}

function report(err: unknown, io: Io, command: string, usage: string, addr: string): number {
  if (err instanceof InvalidVerdict) return EXIT.invalidInput;
  if (err instanceof UsageError || err instanceof TypeError) {
    io.err(`${command}: ${err.message}\nUsage: ${usage} (see --help)\n`);
    return EXIT.usage;
  }
  if (err instanceof NoToken) {
    io.err(`${command}: ${err.message}\n`);
    return EXIT.unauthenticated;
  }
  if (err instanceof ConnectError) {
    if (err.code === Code.Unavailable && refused(err)) {
      io.err(
        `${command}: cannot reach credbroker at ${addr} (connection refused).\n` +
          "Start the daemon with `credbroker serve` (or `npm start`), or point --addr / CREDBROKER_ADDR at it.\n",
      );
      return EXIT.unavailable;
    }
    io.err(`${command}: ${codeToString(err.code)}: ${err.rawMessage}\n`);
    return exitCodeFor(err.code);
  }
  io.err(`${command}: ${err instanceof Error ? err.message : String(err)}\n`);
  return EXIT.error;
}

function refused(err: ConnectError): boolean {
  const cause = err.cause as { code?: string } | undefined;
  return cause?.code === "ECONNREFUSED" || /ECONNREFUSED/.test(err.rawMessage);
}
