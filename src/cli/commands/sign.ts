import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { SignRequestResponseSchema } from "../../../gen/credbroker/v1/signing_service_pb.js";
import { type ClientCommand, NAMESPACE_FLAG, runClientCommand } from "../client-command.js";
import { UsageError } from "../flags.js";
import type { Io } from "../io.js";

export const SIGN: ClientCommand = {
  command: "credbroker sign",
  args: "URL",
  about: `Signs a request with a stored credential (SigV4) and prints the headers to send,
one "name: value" per line, or with --presign the presigned URL. For curl:

  mapfile -t H < <(credbroker sign --credential s3-reader https://bucket.s3.amazonaws.com/key)
  curl "\${H[@]/#/-H}" https://bucket.s3.amazonaws.com/key`,
  flags: [
    NAMESPACE_FLAG,
    {
      name: "credential",
      short: "c",
      kind: "string",
      value: "NAME",
      env: "CREDBROKER_CREDENTIAL",
      default: "",
      help: 'credential to sign with ("" = the namespace\'s AWS provider default)',
    },
    {
      name: "method",
      short: "X",
      kind: "string",
      value: "METHOD",
      default: "GET",
      help: "HTTP method",
    },
    {
      name: "header",
      short: "H",
      kind: "list",
      value: "NAME:VALUE",
      help: "a header that will be sent",
    },
    {
      name: "presign",
      kind: "string",
      value: "SECONDS",
      help: "print a presigned URL valid this long (1-604800)",
    },
    {
      name: "region",
      kind: "string",
      value: "REGION",
      help: "signing region (default: from the host or the credential)",
    },
    {
      name: "service",
      kind: "string",
      value: "SERVICE",
      help: 'signing service (default: from the host; e.g. "s3")',
    },
    {
      name: "body-file",
      kind: "string",
      value: "FILE",
      help: "sign this body's SHA-256 (the body stays here)",
    },
    { name: "payload-sha256", kind: "string", value: "HEX", help: "sign this payload hash" },
    { name: "unsigned-payload", kind: "boolean", help: "sign with UNSIGNED-PAYLOAD" },
  ],
  async run(ctx) {
    const f = ctx.flags;
    const payloads = ["body-file", "payload-sha256", "unsigned-payload"].filter((p) => f.given(p));
    if (payloads.length > 1)
      throw new UsageError("give one of --body-file, --payload-sha256, --unsigned-payload");
    const presign = f.string("presign");
    if (presign !== undefined && !/^\d{1,6}$/.test(presign))
      throw new UsageError("--presign: seconds, 1-604800");
    const headers = f.list("header").map((h) => {
      const colon = h.indexOf(":");
      if (colon <= 0) throw new UsageError("--header: NAME:VALUE");
      return { name: h.slice(0, colon).trim(), value: h.slice(colon + 1).trim() };
    });
    let payload:
      | { case: "payloadSha256"; value: string }
      | { case: "unsignedPayload"; value: true }
      | { case: undefined } = {
      case: undefined,
    };
    if (f.given("body-file")) {
      const file = f.string("body-file") ?? "";
      const body = await readFile(file).catch((err: NodeJS.ErrnoException) => {
        throw new UsageError(`--body-file: cannot read the file (${err.code ?? "unreadable"})`);
      });
      // The body's hash, not the body, goes to the daemon.
      payload = { case: "payloadSha256", value: createHash("sha256").update(body).digest("hex") };
    } else if (f.given("payload-sha256")) {
      payload = { case: "payloadSha256", value: f.string("payload-sha256") ?? "" };
    } else if (f.bool("unsigned-payload")) {
      payload = { case: "unsignedPayload", value: true };
    }
    const res = await ctx.client().signing.signRequest({
      namespace: ctx.namespace,
      credential: f.string("credential") ?? "",
      method: f.string("method") ?? "GET",
      url: ctx.arg,
      headers,
      payload,
      region: f.string("region") ?? "",
      service: f.string("service") ?? "",
      presignExpiresSeconds: presign === undefined ? 0 : Number(presign),
    });
    ctx.print(SignRequestResponseSchema, res, () =>
      presign !== undefined
        ? `${res.url}\n`
        : res.headers.map((h) => `${h.name}: ${h.value}\n`).join(""),
    );
  },
};

/** `credbroker sign …`: returns the exit code. */
export function signCommand(argv: readonly string[], io: Io): Promise<number> {
  return runClientCommand(SIGN, argv, io);
}
