import { create } from "@bufbuild/protobuf";
import type { Caller } from "../../gen/credbroker/v1/caller_pb.js";
import type { Credential } from "../../gen/credbroker/v1/credential_pb.js";
import {
  type ImportCredentialsRequest,
  type ImportCredentialsResponse,
  ImportCredentialsResponseSchema,
  type ImportFailure,
  ImportFailureSchema,
} from "../../gen/credbroker/v1/credential_service_pb.js";
import type { AuditEvent } from "../audit/audit-log.js";
import { DomainError } from "../core/errors.js";
import type { Ambient } from "../core/lifecycle.js";
import { isValidName, isValidNamespace } from "../core/names.js";
import type { CredentialStore } from "../store/credential-store.js";
import type { AuditLine } from "./audit-interceptor.js";
import { prepareCreate } from "./prepare-create.js";

/** ImportCredentials' limits (docs/API.md). */
export const IMPORT_LIMITS = {
  /** Items in one request message; a message with more has every item refused. */
  itemsPerMessage: 1000,
  /**
   * Rows in one call; a message that goes past it fails the call. Bounds the
   * memory a call's failure list can take (~200 bytes a row).
   */
  rowsPerCall: 100_000,
  /** Rows the daemon gathers into one synced store write. */
  batchRows: 1000,
} as const;

export interface ImportDeps {
  caller: Caller;
  store: CredentialStore;
  ambient: Ambient;
  /** Told every id written (created, or demoted from provider default). */
  changed(id: string): void;
  /** Told the counts after every batch (the audit line carries them). */
  progress(counts: { created: number; failed: number }): void;
  /** Writes an audit line of this call: one per row, in arrival order. */
  audit: AuditLine;
}

interface Row {
  /** Arrival order, to report failures in it. */
  seq: number;
  line: bigint;
  /** What the row names, when well-formed (as the audit line records it). */
  namespace: string | undefined;
  name: string | undefined;
  /** Set once known: at once for a row refused before the store, else when its batch is written. */
  outcome?: Pick<AuditEvent, "outcome" | "decision" | "reason">;
}

function outcomeOf(err: DomainError | undefined): NonNullable<Row["outcome"]> {
  if (err === undefined) return { outcome: "created", decision: "allow" };
  return {
    outcome: err.code === "already_exists" ? "skipped" : "failed",
    decision: err.code === "permission_denied" ? "deny" : "error",
    reason: err.code,
  };
}

/**
 * ImportCredentials: every row goes through CreateCredential's checks
 * (prepareCreate) and the rows that pass are stored in batches of about
 * `batchRows`, one store.createMany (one synced write) each. A refused row
 * becomes a failure and the others go on. While one batch is being written
 * the next one is read and checked.
 */
export async function importCredentials(
  requests: AsyncIterable<ImportCredentialsRequest>,
  deps: ImportDeps,
): Promise<ImportCredentialsResponse> {
  const failures: { seq: number; failure: ImportFailure }[] = [];
  let created = 0;
  let seq = 0;
  let batch: { row: Row; credential: Credential }[] = [];
  let writing: Promise<void> = Promise.resolve();

  /**
   * Rows not yet audited, in arrival order: a row's line goes out once its
   * outcome and those of every row before it are known.
   */
  const unaudited: Row[] = [];
  const auditSettled = async () => {
    const lines: Promise<void>[] = [];
    let audited = 0;
    for (const row of unaudited) {
      if (row.outcome === undefined) break;
      audited++;
      lines.push(
        deps.audit({
          namespace: row.namespace,
          credential: row.name,
          line: row.line.toString(),
          ...row.outcome,
        }),
      );
    }
    unaudited.splice(0, audited);
    await Promise.all(lines);
  };
  const fail = (row: Row, err: DomainError) => {
    row.outcome = outcomeOf(err);
    failures.push({
      seq: row.seq,
      failure: create(ImportFailureSchema, {
        line: row.line,
        code: err.code,
        message: err.message,
      }),
    });
  };
  const write = async (rows: typeof batch) => {
    const { outcomes, demoted } = await deps.store.createMany(rows.map((r) => r.credential));
    outcomes.forEach((outcome, i) => {
      const row = rows[i]?.row as Row;
      if (outcome.ok) {
        row.outcome = outcomeOf(undefined);
        created++;
        deps.changed(outcome.credential.id);
      } else {
        fail(row, outcome.error);
      }
    });
    for (const id of demoted) deps.changed(id);
    deps.progress({ created, failed: failures.length });
    await auditSettled();
  };
  const flush = async () => {
    await writing;
    const rows = batch;
    batch = [];
    writing = rows.length === 0 ? Promise.resolve() : write(rows);
    // Awaited at the next flush; until then a failure must not count as unhandled.
    writing.catch(() => {});
  };

  for await (const req of requests) {
    if (seq + req.items.length > IMPORT_LIMITS.rowsPerCall) {
      throw new DomainError(
        "invalid_argument",
        `a call carries at most ${IMPORT_LIMITS.rowsPerCall} rows; split the import into several calls (rows sent before may have been created)`,
      );
    }
    const oversized = req.items.length > IMPORT_LIMITS.itemsPerMessage;
    for (const item of req.items) {
      const row: Row = {
        seq: seq++,
        line: item.line,
        namespace: okNamespace(item.credential?.namespace),
        name: okName(item.credential?.name),
      };
      unaudited.push(row);
      if (oversized) {
        fail(
          row,
          new DomainError(
            "invalid_argument",
            `items: ${req.items.length} in one message, at most ${IMPORT_LIMITS.itemsPerMessage}; none of the message's rows was imported`,
          ),
        );
        continue;
      }
      try {
        batch.push({
          row,
          credential: prepareCreate(deps.caller, item.credential, deps.ambient),
        });
      } catch (err) {
        if (!(err instanceof DomainError)) throw err;
        fail(row, err);
      }
    }
    if (batch.length >= IMPORT_LIMITS.batchRows) await flush();
    await auditSettled();
  }
  await flush();
  await writing;
  await auditSettled();
  deps.progress({ created, failed: failures.length });
  return create(ImportCredentialsResponseSchema, {
    created: BigInt(created),
    failures: failures.sort((a, b) => a.seq - b.seq).map((f) => f.failure),
  });
}

const okNamespace = (ns: string | undefined) =>
  ns !== undefined && isValidNamespace(ns) ? ns : undefined;
const okName = (name: string | undefined) =>
  name !== undefined && isValidName(name) ? name : undefined;
