import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  AccessKeySchema,
  type Credential,
  CredentialSchema,
  Provider,
  RoleSchema,
} from "../../../gen/credbroker/v1/credential_pb.js";
import {
  CreateCredentialResponseSchema,
  DeleteCredentialResponseSchema,
  GetCredentialResponseSchema,
  type ListCredentialsResponse,
  ListCredentialsResponseSchema,
  UpdateCredentialResponseSchema,
  VerifyCredentialResponseSchema,
} from "../../../gen/credbroker/v1/credential_service_pb.js";
import type { BrokerClient } from "../../client/broker-client.js";
import { displayName } from "../../core/names.js";
import {
  type ClientCommand,
  type Context,
  ExitWith,
  NAMESPACE_FLAG,
  subcommandGroup,
} from "../client-command.js";
import { confirm } from "../confirm.js";
import {
  CLEARABLE,
  credentialFromFlags,
  FIELD_FLAGS,
  kindFromFlags,
  updateFromFlags,
} from "../credential-flags.js";
import { EXIT } from "../exit-codes.js";
import { type FlagSpec, UsageError } from "../flags.js";
import { type Imported, Incomplete, readChain } from "../import-sources.js";
import type { Io } from "../io.js";
import { readKindSecret } from "../key-file.js";
import { credentialList, credentialTable, verdictTable } from "../render.js";
import { readSecret } from "../secret-input.js";
import { importBulk } from "./cred-import-bulk.js";

const ETAG_FLAG: FlagSpec = {
  name: "etag",
  kind: "string",
  value: "ETAG",
  help: "only if the credential still has this etag (else exit 8)",
};

type Subcommand = Omit<ClientCommand, "command">;

export const SUBCOMMANDS: Record<string, Subcommand> = {
  create: {
    args: "NAME",
    about:
      "Creates a credential. The secret comes from --secret-stdin, --secret-file or\n--secret-env, or a prompt without echo on a terminal; never from argv.",
    flags: [NAMESPACE_FLAG, ...FIELD_FLAGS],
    async run(ctx) {
      const kind = kindFromFlags(ctx.flags);
      const secret = await readKindSecret(
        ctx.flags,
        ctx.io,
        kind === "serviceAccount",
        kind === "token"
          ? "Token: "
          : kind === "accessKey"
            ? "Secret access key: "
            : kind === "servicePrincipal"
              ? "Client secret: "
              : undefined,
      );
      if (secret === undefined && kind === "serviceAccount") {
        throw new UsageError(
          "the key is required: --key-file FILE (or --secret-stdin / --secret-env)",
        );
      }
      if (secret === undefined && kind !== "role") {
        throw new UsageError(
          "the secret is required: --secret-stdin, --secret-file FILE or --secret-env NAME (never on the command line)",
        );
      }
      const sessionToken = await readSecret(ctx.flags, "session-token", ctx.io);
      const credential = credentialFromFlags(ctx.flags, ctx.namespace, ctx.arg, {
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
        .credentials.getCredential({ namespace: ctx.namespace, name: ctx.arg });
      ctx.print(GetCredentialResponseSchema, res, () => credentialTable(need(res.credential)));
    },
  },

  list: {
    args: "",
    about: "Lists a namespace's credentials in name order, one page or --all.",
    flags: [
      NAMESPACE_FLAG,
      {
        name: "provider",
        kind: "string",
        value: "aws|azure|gcp|generic",
        help: "only this provider",
      },
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
      const provider = {
        aws: Provider.AWS,
        azure: Provider.AZURE,
        gcp: Provider.GCP,
        generic: Provider.GENERIC,
        "": Provider.UNSPECIFIED,
      }[ctx.flags.string("provider")?.toLowerCase() ?? ""];
      if (provider === undefined) throw new UsageError("--provider: aws, azure, gcp or generic");
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
      // Which kind a secret or kind field belongs to is the stored credential's.
      const current = ctx.flags.given("kind")
        ? undefined
        : (await client.credentials.getCredential({ namespace: ctx.namespace, name: ctx.arg }))
            .credential;
      const kind = kindFromFlags(ctx.flags) ?? current?.kind.case;
      const secret = await readKindSecret(ctx.flags, ctx.io, kind === "serviceAccount");
      const sessionToken = await readSecret(ctx.flags, "session-token", ctx.io);
      const { patch, paths } = updateFromFlags(ctx.flags, current?.kind.case, {
        secret,
        sessionToken,
      });
      if (paths.length === 0)
        throw new UsageError("nothing to change: give the flags of the fields to update");
      patch.etag = ctx.flags.string("etag") ?? "";
      const res = await client.credentials.updateCredential({
        namespace: ctx.namespace,
        name: ctx.arg,
        credential: patch,
        updateMask: { paths },
      });
      ctx.print(UpdateCredentialResponseSchema, res, () => credentialTable(need(res.credential)));
    },
  },

  import: {
    args: "[NAME]",
    about: `Creates a credential from where it lives today (with --update, rotates it).
--from env | aws-profile[:NAME] | url-env:VAR | url-stdin, repeatable: the
first source that yields a complete credential wins. A role profile
(role_arn + source_profile) becomes a role, its source imported alongside
as NAME-source. Secrets are read, never printed, never taken from argv.

With --bulk FILE (- for stdin), and no NAME: creates every credential of a
JSON-lines file, one Credential in protobuf JSON per line (a row without
"namespace" is in -n's). A bad row is reported as "line N: CODE: REASON",
never echoed, and skipped; exit 10 when any was.`,
    flags: [
      NAMESPACE_FLAG,
      {
        name: "from",
        kind: "list",
        value: "SOURCE",
        help: "env, aws-profile[:NAME], url-env:VAR or url-stdin",
      },
      { name: "update", kind: "boolean", help: "rotate the credential when it exists" },
      {
        name: "bulk",
        kind: "string",
        value: "FILE",
        help: "JSON lines, one credential each (- for stdin)",
      },
    ],
    async run(ctx) {
      const bulk = ctx.flags.string("bulk");
      const sources = ctx.flags.list("from");
      if (bulk !== undefined) {
        if (ctx.arg !== "" || sources.length > 0 || ctx.flags.bool("update")) {
          throw new UsageError("--bulk takes no NAME, --from or --update");
        }
        return importBulk(ctx, bulk);
      }
      if (ctx.arg === "") throw new UsageError("NAME is required (or --bulk FILE)");
      if (sources.length === 0)
        throw new UsageError(
          "--from SOURCE is required (env, aws-profile[:NAME], url-env:VAR, url-stdin)",
        );
      let chain: Awaited<ReturnType<typeof readChain>>;
      try {
        chain = await readChain(sources, ctx.io);
      } catch (err) {
        if (!(err instanceof Incomplete)) throw err;
        ctx.io.err(`credbroker cred import: ${err.message}\n`);
        throw new ExitWith(EXIT.invalidInput);
      }
      const { from, imported } = chain;
      const update = ctx.flags.bool("update");
      const sourceName = `${ctx.arg}-source`.slice(0, 64);
      if (imported.kind === "role") await upsert(ctx, sourceName, imported.source, update);
      const credential = await upsert(
        ctx,
        ctx.arg,
        imported,
        update,
        imported.kind === "role" ? sourceName : undefined,
      );
      ctx.print(
        CreateCredentialResponseSchema,
        create(CreateCredentialResponseSchema, { credential }),
        () =>
          `imported ${ctx.namespace ? `${ctx.namespace}/` : ""}${ctx.arg} (${imported.kind === "role" ? `role, source ${sourceName}` : "access-key"}) from ${from}\n`,
      );
    },
  },

  delete: {
    args: "NAME",
    about: `Deletes a credential. A role's source cannot be deleted while the role exists.
On a terminal it asks first (--yes does not); without one (a script) it does not ask.`,
    flags: [
      NAMESPACE_FLAG,
      ETAG_FLAG,
      { name: "yes", short: "y", kind: "boolean", help: "delete without asking" },
    ],
    async run(ctx) {
      const shown = displayName(ctx.namespace, ctx.arg);
      if (!ctx.flags.bool("yes") && ctx.io.stdin.isTTY === true) {
        if (!(await confirm(`Delete credential ${shown}? [y/N] `, ctx.io))) {
          ctx.io.err(`credbroker cred delete: not deleted (the answer was not yes): ${shown}\n`);
          throw new ExitWith(EXIT.error);
        }
      }
      const res = await ctx.client().credentials.deleteCredential({
        namespace: ctx.namespace,
        name: ctx.arg,
        etag: ctx.flags.string("etag") ?? "",
      });
      ctx.print(DeleteCredentialResponseSchema, res, () => `deleted ${shown}\n`);
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
        const serviceAccount = kindFromFlags(ctx.flags) === "serviceAccount";
        const secret = await readKindSecret(ctx.flags, ctx.io, serviceAccount);
        const sessionToken = await readSecret(ctx.flags, "session-token", ctx.io);
        target = {
          case: "candidate",
          value: credentialFromFlags(ctx.flags, ctx.namespace, ctx.arg, { secret, sessionToken }),
        };
      } else {
        if (ctx.arg === "") throw new UsageError("NAME is required (or --candidate)");
        target = { case: "stored", value: { namespace: ctx.namespace, name: ctx.arg } };
      }
      const res = await ctx.client().credentials.verifyCredential({ target, live });
      ctx.print(VerifyCredentialResponseSchema, res, () => verdictTable(res.valid, res.checks));
      if (!res.valid) throw new ExitWith(EXIT.invalidInput);
    },
  },
};

/** Creates `name`, or with `update` replaces its kind (and region, hosts) when it exists. */
async function upsert(
  ctx: Context,
  name: string,
  imported: Imported,
  update: boolean,
  source?: string,
): Promise<Credential> {
  const kind: Credential["kind"] =
    imported.kind === "accessKey"
      ? {
          case: "accessKey",
          value: create(AccessKeySchema, {
            accessKeyId: imported.accessKeyId,
            secretAccessKey: imported.secretAccessKey,
            sessionToken: imported.sessionToken,
          }),
        }
      : {
          case: "role",
          value: create(RoleSchema, {
            roleArn: imported.roleArn,
            externalId: imported.externalId ?? "",
            sessionName: imported.sessionName,
            durationSeconds: imported.durationSeconds ?? 0,
            sourceCredential: source ?? "",
          }),
        };
  const credential = create(CredentialSchema, {
    namespace: ctx.namespace,
    name,
    kind,
    region: imported.region ?? "",
    allowedHosts: imported.kind === "accessKey" ? (imported.allowedHosts ?? []) : [],
  });
  const api = ctx.client().credentials;
  try {
    return need((await api.createCredential({ credential })).credential);
  } catch (err) {
    if (!update || ConnectError.from(err).code !== Code.AlreadyExists) throw err;
    const paths = [kind.case === "accessKey" ? "access_key" : "role"];
    if (credential.region) paths.push("region");
    if (credential.allowedHosts.length > 0) paths.push("allowed_hosts");
    return need(
      (
        await api.updateCredential({
          namespace: ctx.namespace,
          name,
          credential,
          updateMask: { paths },
        })
      ).credential,
    );
  }
}

function need<T>(value: T | undefined): T {
  if (value === undefined) throw new Error("the daemon's answer is missing its credential");
  return value;
}

const CRED = subcommandGroup("cred", "", SUBCOMMANDS);

export const CRED_USAGE = CRED.usage;

/** `credbroker cred …`: returns the exit code. */
export function credCommand(argv: readonly string[], io: Io): Promise<number> {
  return CRED.run(argv, io);
}
