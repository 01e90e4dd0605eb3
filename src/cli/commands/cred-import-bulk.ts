import { once } from "node:events";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createInterface } from "node:readline";
import { create } from "@bufbuild/protobuf";
import {
  ImportCredentialsResponseSchema,
  type ImportFailure,
  ImportFailureSchema,
} from "../../../gen/credbroker/v1/credential_service_pb.js";
import { BulkImportStopped, bulkImport } from "../bulk-import.js";
import { type Context, ExitWith } from "../client-command.js";
import { EXIT } from "../exit-codes.js";
import { UsageError } from "../flags.js";
import { Progress } from "../progress.js";

/**
 * `cred import --bulk FILE|-`: every line of a JSON-lines file, one
 * Credential each, through ImportCredentials. Bad rows are reported as
 * `line N: CODE: REASON` on stderr (never the line itself) and skipped; exit
 * 10 when any was. On a terminal, a progress line on stderr.
 */
export async function importBulk(ctx: Context, file: string): Promise<void> {
  const { io } = ctx;
  const input = file === "-" ? io.stdin : await openFile(file);
  const total =
    io.errIsTTY && file !== "-" && (await stat(file)).isFile() ? await countLines(file) : undefined;
  const progress = io.errIsTTY ? new Progress(io.err, { total, unit: "lines" }) : undefined;
  const json = ctx.flags.string("output") === "json";
  const failures: ImportFailure[] = [];
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  const client = ctx.client().credentials;
  let result: Awaited<ReturnType<typeof bulkImport>>;
  try {
    result = await bulkImport({
      lines,
      namespace: ctx.namespace,
      call: (requests) => client.importCredentials(requests),
      onProgress: (n) => progress?.update(n),
      onFailures(batch) {
        progress?.clear();
        io.err(batch.map((f) => `line ${f.line}: ${f.code}: ${f.reason}\n`).join(""));
        if (json) {
          for (const f of batch) {
            failures.push(
              create(ImportFailureSchema, {
                line: BigInt(f.line),
                code: f.code,
                message: f.reason,
              }),
            );
          }
        }
      },
    });
  } catch (err) {
    progress?.clear();
    if (!(err instanceof BulkImportStopped)) throw err;
    const { created, failed } = err.confirmed;
    io.err(
      `credbroker cred import: stopped after importing ${created} (failed ${failed}); lines ${err.firstUnconfirmedLine}-${err.lastLine} were in the call that failed and may or may not be imported\n`,
    );
    throw err.cause;
  } finally {
    lines.close();
  }
  progress?.clear();
  ctx.print(
    ImportCredentialsResponseSchema,
    create(ImportCredentialsResponseSchema, { created: BigInt(result.created), failures }),
    () => `imported ${result.created}, failed ${result.failed}\n`,
  );
  if (result.failed > 0) throw new ExitWith(EXIT.partial);
}

async function openFile(file: string): Promise<NodeJS.ReadableStream> {
  const stream = createReadStream(file, { highWaterMark: 1 << 20 });
  try {
    await once(stream, "open");
  } catch (err) {
    throw new UsageError(`--bulk: cannot read the file (${(err as NodeJS.ErrnoException).code})`);
  }
  return stream;
}

/** Lines in a file (a last line without a newline counts), read in 1 MiB chunks. */
export async function countLines(file: string): Promise<number> {
  let lines = 0;
  let last = 0x0a;
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
    const buf = chunk as Buffer;
    for (let i = buf.indexOf(0x0a); i !== -1; i = buf.indexOf(0x0a, i + 1)) lines++;
    last = buf[buf.length - 1] ?? last;
  }
  return last === 0x0a ? lines : lines + 1;
}
