import { readFile } from "node:fs/promises";
import { STATUS_CODES } from "node:http";
import { toJsonString } from "@bufbuild/protobuf";
import {
  type ForwardRequestResponse,
  ForwardRequestResponseSchema,
} from "../../../gen/credbroker/v1/signing_service_pb.js";
import {
  type ClientCommand,
  ExitWith,
  NAMESPACE_FLAG,
  runClientCommand,
} from "../client-command.js";
import { EXIT } from "../exit-codes.js";
import { UsageError } from "../flags.js";
import type { Io } from "../io.js";

export const FETCH: ClientCommand = {
  command: "credbroker fetch",
  args: "URL",
  about: `Has the broker make an HTTP request with a stored credential (a token placed as the
credential says, or a SigV4 signature) and prints the response body; the secret never
reaches this machine. Like curl: the exit code is 0 for any upstream status (22 with
--fail and a status of 400 or more), and a broker refusal exits with its code.

  credbroker fetch -n team-a -c github https://api.github.com/user`,
  flags: [
    NAMESPACE_FLAG,
    {
      name: "credential",
      short: "c",
      kind: "string",
      value: "NAME",
      env: "CREDBROKER_CREDENTIAL",
      help: "credential to use (required)",
    },
    {
      name: "method",
      short: "X",
      kind: "string",
      value: "METHOD",
      help: "HTTP method (default GET, or POST with --data)",
    },
    {
      name: "header",
      short: "H",
      kind: "list",
      value: "NAME:VALUE",
      help: "a header to send",
    },
    {
      name: "data",
      kind: "string",
      value: "@FILE|-|TEXT",
      help: "the request body: a file's bytes (@FILE), stdin (-), or the text itself",
    },
    {
      name: "include",
      short: "i",
      kind: "boolean",
      help: "print the status line and the response headers before the body",
    },
    {
      name: "fail",
      kind: "boolean",
      help: "a status of 400 or more prints no body and exits 22",
    },
    {
      name: "timeout",
      kind: "string",
      value: "MS",
      help: "the whole upstream exchange, 1-120000 ms (default: the broker's, 30000)",
    },
    {
      name: "region",
      kind: "string",
      value: "REGION",
      help: "SigV4 signing region (access keys and roles; default: from the host)",
    },
    {
      name: "service",
      kind: "string",
      value: "SERVICE",
      help: "SigV4 signing service (access keys and roles; default: from the host)",
    },
  ],
  async run(ctx) {
    const f = ctx.flags;
    const credential = f.string("credential") ?? "";
    if (credential === "") throw new UsageError("--credential is required");
    const headers = f.list("header").map(parseHeader);
    const timeout = f.string("timeout");
    if (timeout !== undefined && !/^\d{1,6}$/.test(timeout)) {
      throw new UsageError("--timeout: milliseconds, 1-120000");
    }
    const timeoutMs = timeout === undefined ? 0 : Number(timeout);
    if (timeout !== undefined && (timeoutMs < 1 || timeoutMs > 120_000)) {
      throw new UsageError("--timeout: milliseconds, 1-120000");
    }
    const data = f.string("data");
    const body = data === undefined ? new Uint8Array() : await readBody(data, ctx.io);
    const method = f.string("method") ?? (data === undefined ? "GET" : "POST");
    const res = await ctx.client().signing.forwardRequest({
      namespace: ctx.namespace,
      credential,
      method,
      url: ctx.arg,
      headers,
      body,
      region: f.string("region") ?? "",
      service: f.string("service") ?? "",
      timeoutMs,
    });
    if (res.redacted) {
      ctx.io.err(
        "credbroker fetch: note: the response held the credential's secret; the broker replaced it with [redacted]\n",
      );
    }
    const failed = f.bool("fail") && res.status >= 400;
    if (failed) {
      ctx.io.err(`credbroker fetch: the upstream answered ${res.status}\n`);
      throw new ExitWith(EXIT.upstreamFailed);
    }
    if (f.string("output") === "json") {
      ctx.io.out(`${toJsonString(ForwardRequestResponseSchema, res, { prettySpaces: 2 })}\n`);
      return;
    }
    if (f.bool("include")) ctx.io.out(head(res));
    writeBytes(ctx.io, res.body);
  },
};

/** An HTTP token (RFC 9110), as a header name must be. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** "Name: value", split at the first colon, both sides trimmed. Never quotes what was typed. */
function parseHeader(text: string): { name: string; value: string } {
  const colon = text.indexOf(":");
  const name = text.slice(0, colon).trim();
  const value = text.slice(colon + 1).trim();
  if (colon < 0 || !HEADER_NAME.test(name) || /[\0\r\n]/.test(value)) {
    throw new UsageError(
      "--header: 'NAME: VALUE' (a header name, a colon, then the value on one line)",
    );
  }
  return { name, value };
}

/** --data: @FILE is the file's bytes, - is stdin, anything else the text itself. */
async function readBody(data: string, io: Io): Promise<Uint8Array> {
  if (data === "-") {
    const chunks: Buffer[] = [];
    for await (const chunk of io.stdin) {
      chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
    }
    return Buffer.concat(chunks);
  }
  if (data.startsWith("@")) {
    return readFile(data.slice(1)).catch((err: NodeJS.ErrnoException) => {
      // The path is not repeated: it was typed, and may be anything.
      throw new UsageError(`--data: cannot read the file (${err.code ?? "unreadable"})`);
    });
  }
  return Buffer.from(data, "utf8");
}

/** As curl -i shows it: the status line, the headers, a blank line. */
function head(res: ForwardRequestResponse): string {
  const reason = STATUS_CODES[res.status] ?? "";
  const lines = [
    `HTTP/1.1 ${res.status}${reason ? ` ${reason}` : ""}`,
    ...res.headers.map((h) => `${h.name}: ${h.value}`),
  ];
  return `${lines.join("\r\n")}\r\n\r\n`;
}

function writeBytes(io: Io, bytes: Uint8Array): void {
  if (bytes.length === 0) return;
  if (io.outBytes) io.outBytes(bytes);
  else io.out(Buffer.from(bytes).toString("utf8"));
}

/** `credbroker fetch …`: returns the exit code. */
export function fetchCommand(argv: readonly string[], io: Io): Promise<number> {
  return runClientCommand(FETCH, argv, io);
}
