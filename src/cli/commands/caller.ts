import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Caller, CallerRole } from "../../../gen/credbroker/v1/caller_pb.js";
import {
  CreateCallerResponseSchema,
  DeleteCallerResponseSchema,
  GetCallerResponseSchema,
  ListCallersResponseSchema,
  RotateCallerTokenResponseSchema,
  UpdateCallerResponseSchema,
} from "../../../gen/credbroker/v1/caller_service_pb.js";
import { type ClientCommand, subcommandGroup } from "../client-command.js";
import { type FlagSpec, type ParsedFlags, UsageError } from "../flags.js";
import type { Io } from "../io.js";
import { table } from "../render.js";

const ROLES: Record<string, CallerRole> = {
  admin: CallerRole.ADMIN,
  writer: CallerRole.WRITER,
  reader: CallerRole.READER,
  signer: CallerRole.SIGNER,
};

const FIELD_FLAGS: readonly FlagSpec[] = [
  { name: "role", kind: "string", value: "admin|writer|reader|signer", help: "what it may do" },
  {
    name: "namespace",
    short: "n",
    kind: "list",
    value: "NS",
    help: 'a namespace it acts in ("" is the workspace)',
  },
  {
    name: "expires",
    kind: "string",
    value: "RFC3339",
    help: "its token is refused after this instant",
  },
  {
    name: "certificate-subject",
    kind: "string",
    value: "SUBJECT",
    help: 'a TLS client certificate subject that is this caller, e.g. "CN=ci,O=team-a"',
  },
];

function role(flags: ParsedFlags): CallerRole | undefined {
  const value = flags.string("role");
  if (value === undefined) return undefined;
  const r = ROLES[value.toLowerCase()];
  if (r === undefined) throw new UsageError("--role: admin, writer, reader or signer");
  return r;
}

function expires(flags: ParsedFlags) {
  const value = flags.string("expires");
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  if (!/^\d{4}-\d\d-\d\dT/.test(value) || Number.isNaN(ms))
    throw new UsageError("--expires: an RFC 3339 time");
  return timestampFromDate(new Date(ms));
}

function callerTable(c: Caller): string {
  return table([
    ["name", c.name],
    ["role", (CallerRole[c.role] ?? "").toLowerCase()],
    ["namespaces", c.namespaces.map((n) => (n === "" ? '""' : n)).join(", ") || "-"],
    ["enabled", String(c.enabled !== false)],
    ["expires", c.expiresAt ? timestampDate(c.expiresAt).toISOString() : "-"],
    ["certificate subject", c.certificateSubject || "-"],
  ]);
}

export const SUBCOMMANDS: Record<string, Omit<ClientCommand, "command">> = {
  create: {
    args: "NAME",
    about: "Creates a caller and prints its bearer token, once (only its hash is kept).",
    flags: FIELD_FLAGS,
    async run(ctx) {
      const r = role(ctx.flags);
      if (r === undefined) throw new UsageError("--role is required");
      const res = await ctx.client().callers.createCaller({
        caller: {
          name: ctx.arg,
          role: r,
          namespaces: ctx.flags.list("namespace"),
          expiresAt: expires(ctx.flags),
          certificateSubject: ctx.flags.string("certificate-subject") ?? "",
        },
      });
      ctx.print(
        CreateCallerResponseSchema,
        res,
        () => `token  ${res.token}\n${res.caller ? callerTable(res.caller) : ""}`,
      );
    },
  },
  get: {
    args: "NAME",
    about: "Shows a caller (never its token).",
    flags: [],
    async run(ctx) {
      const res = await ctx.client().callers.getCaller({ name: ctx.arg });
      ctx.print(GetCallerResponseSchema, res, () => (res.caller ? callerTable(res.caller) : ""));
    },
  },
  list: {
    args: "",
    about: "Lists every caller.",
    flags: [],
    async run(ctx) {
      const res = await ctx.client().callers.listCallers({});
      ctx.print(ListCallersResponseSchema, res, () =>
        table([
          ["NAME", "ROLE", "NAMESPACES", "ENABLED"],
          ...res.callers.map((c) => [
            c.name,
            (CallerRole[c.role] ?? "").toLowerCase(),
            c.namespaces.map((n) => (n === "" ? '""' : n)).join(",") || "-",
            String(c.enabled !== false),
          ]),
        ]),
      );
    },
  },
  update: {
    args: "NAME",
    about: "Changes the fields whose flags are given (--namespace replaces the list).",
    flags: [
      ...FIELD_FLAGS,
      {
        name: "enabled",
        kind: "string",
        value: "true|false",
        help: "a disabled caller is refused",
      },
    ],
    async run(ctx) {
      const f = ctx.flags;
      const paths: string[] = [];
      if (f.given("role")) paths.push("role");
      if (f.given("namespace")) paths.push("namespaces");
      if (f.given("expires")) paths.push("expires_at");
      if (f.given("certificate-subject")) paths.push("certificate_subject");
      if (f.given("enabled")) paths.push("enabled");
      if (paths.length === 0)
        throw new UsageError("nothing to change: give the flags of the fields to update");
      const enabled = f.string("enabled");
      if (enabled !== undefined && !/^(true|false)$/.test(enabled))
        throw new UsageError("--enabled: true or false");
      const res = await ctx.client().callers.updateCaller({
        name: ctx.arg,
        caller: {
          role: role(f),
          namespaces: f.list("namespace"),
          expiresAt: expires(f),
          certificateSubject: f.string("certificate-subject") ?? "",
          enabled: enabled === undefined ? undefined : enabled === "true",
        },
        updateMask: { paths },
      });
      ctx.print(UpdateCallerResponseSchema, res, () => (res.caller ? callerTable(res.caller) : ""));
    },
  },
  delete: {
    args: "NAME",
    about: "Deletes a caller; its token stops working at once.",
    flags: [],
    async run(ctx) {
      const res = await ctx.client().callers.deleteCaller({ name: ctx.arg });
      ctx.print(DeleteCallerResponseSchema, res, () => `deleted caller ${ctx.arg}\n`);
    },
  },
  rotate: {
    args: "NAME",
    about: "Gives a caller a new token and prints it, once; the old one stops working at once.",
    flags: [],
    async run(ctx) {
      const res = await ctx.client().callers.rotateCallerToken({ name: ctx.arg });
      ctx.print(RotateCallerTokenResponseSchema, res, () => `token  ${res.token}\n`);
    },
  },
};

const CALLER = subcommandGroup("caller", "   (admins only)", SUBCOMMANDS);

export const CALLER_USAGE = CALLER.usage;

/** `credbroker caller …`: returns the exit code. */
export function callerCommand(argv: readonly string[], io: Io): Promise<number> {
  return CALLER.run(argv, io);
}
