import { create } from "@bufbuild/protobuf";
import type { Credential } from "../../gen/credbroker/v1/credential_pb.js";
import {
  type ImportCredentialsRequest,
  ImportCredentialsRequestSchema,
  type ImportCredentialsResponse,
  type ImportItem,
  ImportItemSchema,
} from "../../gen/credbroker/v1/credential_service_pb.js";
import { parseRow } from "./jsonl-rows.js";

/** How rows are grouped: within the daemon's limits (docs/API.md), with room to spare. */
export const BULK: {
  readonly itemsPerMessage: number;
  readonly bytesPerMessage: number;
  readonly rowsPerCall: number;
} = {
  itemsPerMessage: 1000,
  /** JSON bytes per message; the binary form is smaller, and a message may be 1 MiB. */
  bytesPerMessage: 512 * 1024,
  /** Rows per call: the daemon allows 100,000, and a call's answer lists its failures. */
  rowsPerCall: 50_000,
} as const;

/** A row that was not imported: its line (1-based) and why (never its content). */
export interface RowFailure {
  line: number;
  code: string;
  reason: string;
}

export interface BulkImportOptions {
  /** The input's lines, in order, without line ends. */
  lines: AsyncIterable<string>;
  /** The namespace of rows that name none. */
  namespace: string;
  /** One ImportCredentials call. */
  call(requests: AsyncIterable<ImportCredentialsRequest>): Promise<ImportCredentialsResponse>;
  /** Lines read so far (rows are read as the daemon takes them). */
  onProgress(lines: number): void;
  /** A call's failures, in line order, once it is answered. */
  onFailures(failures: readonly RowFailure[]): void;
  /** Smaller limits, for tests. */
  limits?: Partial<typeof BULK>;
}

export interface BulkImportResult {
  created: number;
  failed: number;
}

/** A call failed: what was confirmed before it, and which lines are in doubt. */
export class BulkImportStopped extends Error {
  constructor(
    readonly confirmed: BulkImportResult,
    /** Lines from here to `lastLine` were sent in the failed call. */
    readonly firstUnconfirmedLine: number,
    readonly lastLine: number,
    options: { cause: unknown },
  ) {
    super("the import stopped", options);
  }
}

interface Row {
  line: number;
  credential: Credential;
  bytes: number;
}

/**
 * Streams a JSON-lines file to ImportCredentials: rows in messages of at
 * most `itemsPerMessage` rows and `bytesPerMessage` bytes, calls of at most
 * `rowsPerCall` rows. A line that is no credential is a failure here and is
 * not sent; the daemon reports the rows it refuses. Either way the rows
 * around it go on.
 */
export async function bulkImport(opts: BulkImportOptions): Promise<BulkImportResult> {
  const limits = { ...BULK, ...opts.limits };
  const lines = opts.lines[Symbol.asyncIterator]();
  const result: BulkImportResult = { created: 0, failed: 0 };
  let local: RowFailure[] = [];
  let lineNo = 0;
  let eof = false;

  const report = (failures: RowFailure[]) => {
    result.failed += failures.length;
    if (failures.length > 0) opts.onFailures(failures.sort((a, b) => a.line - b.line));
  };
  const nextRow = async (): Promise<Row | undefined> => {
    while (!eof) {
      const next = await lines.next();
      if (next.done) {
        eof = true;
        break;
      }
      lineNo++;
      opts.onProgress(lineNo);
      if (next.value.trim() === "") continue;
      const parsed = parseRow(next.value, opts.namespace);
      if (parsed.ok) return { line: lineNo, credential: parsed.credential, bytes: parsed.bytes };
      local.push({ line: lineNo, code: "invalid_argument", reason: parsed.reason });
    }
    return undefined;
  };

  async function* requests(first: Row): AsyncGenerator<ImportCredentialsRequest> {
    let items: ImportItem[] = [];
    let bytes = 0;
    let sent = 0;
    for (let row: Row | undefined = first; row !== undefined; ) {
      if (items.length === limits.itemsPerMessage || bytes + row.bytes > limits.bytesPerMessage) {
        yield create(ImportCredentialsRequestSchema, { items });
        items = [];
        bytes = 0;
      }
      items.push(create(ImportItemSchema, { line: BigInt(row.line), credential: row.credential }));
      bytes += row.bytes;
      row = ++sent < limits.rowsPerCall ? await nextRow() : undefined;
    }
    if (items.length > 0) yield create(ImportCredentialsRequestSchema, { items });
  }

  for (let first = await nextRow(); first !== undefined; first = await nextRow()) {
    let res: ImportCredentialsResponse;
    try {
      res = await opts.call(requests(first));
    } catch (cause) {
      report(local);
      throw new BulkImportStopped({ ...result }, first.line, lineNo, { cause });
    }
    result.created += Number(res.created);
    const refused = res.failures.map((f) => ({
      line: Number(f.line),
      code: f.code,
      reason: f.message,
    }));
    report([...local, ...refused]);
    local = [];
  }
  report(local);
  return result;
}
