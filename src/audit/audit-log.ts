import { closeSync, fsync, fsyncSync, openSync, writeSync } from "node:fs";
import { DomainError } from "../core/errors.js";

/**
 * One audited event. Never a secret, a token or a signature: names, hosts,
 * codes and the (secret-free) reasons the daemon gives callers.
 */
export interface AuditEvent {
  /** The caller's name; absent when authentication failed. */
  caller?: string | undefined;
  /** The peer's address, where the listener knows it. */
  peer?: string | undefined;
  /** The RPC (/credbroker.v1.SigningService/SignRequest) or route (imds:GET /latest/…). */
  rpc: string;
  /** The credential's namespace ("" is the workspace), for every call that names one. */
  namespace?: string | undefined;
  /** The credential the call names (UpdateCredential: its name before the call). */
  credential?: string | undefined;
  /** UpdateCredential renaming the credential: the name it is given. */
  newName?: string | undefined;
  /** CallerService: the caller the call names (`caller` is the one making the call). */
  targetCaller?: string | undefined;
  /** SignRequest, ForwardRequest: the target host and the S3 action, where relevant. */
  host?: string | undefined;
  action?: string | undefined;
  /** ForwardRequest: the method and the path (never the query string, which may carry a token). */
  method?: string | undefined;
  path?: string | undefined;
  /** ForwardRequest: the upstream's status, the body bytes sent and received, the time taken. */
  status?: number | undefined;
  bytesSent?: number | undefined;
  bytesReceived?: number | undefined;
  durationMs?: number | undefined;
  /** ImportCredentials' row lines: the client's number for the row (ImportItem.line, a string as in proto3 JSON). */
  line?: string | undefined;
  /** ImportCredentials' row lines: what became of the row (skipped: it exists already). */
  outcome?: "created" | "skipped" | "failed" | undefined;
  /** ImportCredentials' summary line: rows created and rows refused. */
  created?: number | undefined;
  failed?: number | undefined;
  /** "attempt" precedes a mutation; the outcome follows in its own line. */
  decision: "attempt" | "allow" | "deny" | "error";
  /**
   * deny/error: the error code and message the caller got; or, for a denial
   * answered as not_found, the rule that refused it (`namespace_not_allowed`);
   * an import row's: its error code.
   */
  reason?: string | undefined;
  requestId: string;
}

/**
 * Where audit lines go. `write` writes the line now and throws DomainError
 * unavailable when it cannot; `append` writes it together with the other
 * lines appended in the same turn of the event loop (one write(2) for all)
 * and resolves once it is written, or rejects with that error.
 */
export interface AuditSink {
  write(event: AuditEvent): void;
  append(event: AuditEvent): Promise<void>;
  close(): void;
}

/**
 * A sink of JSON lines written in batches: everything appended until the
 * event loop's check phase goes out in one write, in order. Under load that
 * is one syscall for many answers instead of one each; each caller still
 * waits for its own line. `write` writes at once, after anything pending.
 */
abstract class LineSink implements AuditSink {
  private pending: { line: string; settle: (err?: unknown) => void }[] = [];
  private stampMs = Number.NaN;
  private stampText = "";

  /** Writes `text` whole, or throws DomainError unavailable. */
  protected abstract writeText(text: string): void;
  /** One event as one line. */
  protected abstract line(event: AuditEvent): string;

  write(event: AuditEvent): void {
    this.flush();
    this.writeText(this.line(event));
  }

  append(event: AuditEvent): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({
        line: this.line(event),
        settle: (err) => (err === undefined ? resolve() : reject(err)),
      });
      if (this.pending.length === 1) setImmediate(() => this.flush());
    });
  }

  close(): void {
    this.flush();
  }

  /**
   * `event` as one JSON line: `prefix` (JSON members and a comma, or ""),
   * `time` (the clock's ISO time), then the event's fields in their order,
   * undefined ones left out. The same text as
   * JSON.stringify({ time, ...event }), without copying the event; and under
   * load many lines share a millisecond, so its ISO text is made once.
   */
  protected jsonLine(prefix: string, now: Date, event: AuditEvent): string {
    const ms = now.getTime();
    if (ms !== this.stampMs) {
      this.stampMs = ms;
      this.stampText = now.toISOString();
    }
    const fields = JSON.stringify(event);
    const rest = fields === "{}" ? "}" : `,${fields.slice(1)}`;
    return `{${prefix}"time":"${this.stampText}"${rest}\n`;
  }

  private flush(): void {
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    let err: unknown;
    try {
      this.writeText(batch.map((b) => b.line).join(""));
    } catch (cause) {
      err = cause;
    }
    for (const b of batch) b.settle(err);
  }
}

/**
 * An append-only JSON-lines file (0600). Each line is written with one
 * write(2) on an O_APPEND descriptor before the answer it records is sent;
 * the file is fsync'd at most once a second while lines arrive, and on
 * close. A line that cannot be written fails the request it belongs to
 * (fail-closed): nothing is signed or served unaudited.
 */
export class FileAuditLog extends LineSink {
  private readonly fd: number;
  private dirty = false;
  /** An fsync on the thread pool has not called back yet. */
  private syncing = false;
  private closed = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly path: string,
    private readonly now: () => Date,
  ) {
    super();
    this.fd = openSync(path, "a", 0o600);
    this.timer = setInterval(() => this.syncInBackground(), 1000);
    this.timer.unref();
  }

  protected line(event: AuditEvent): string {
    return this.jsonLine("", this.now(), event);
  }

  protected writeText(text: string): void {
    try {
      writeSync(this.fd, text);
      this.dirty = true;
    } catch (cause) {
      throw unwritable(cause);
    }
  }

  override close(): void {
    super.close();
    clearInterval(this.timer);
    this.closed = true;
    if (this.dirty || this.syncing) {
      this.dirty = false;
      try {
        fsyncSync(this.fd);
      } catch {
        // Nothing is left to retry it; the lines were written.
      }
    }
    // A background fsync still running closes the descriptor when it ends, so it never names a reused one.
    if (!this.syncing) closeSync(this.fd);
  }

  /**
   * The once-a-second fsync, on libuv's thread pool: done inline it held
   * the event loop (and every answer) for the disk's flush, ~4% of a busy
   * daemon's time. Lines written meanwhile are covered by the next one.
   */
  private syncInBackground(): void {
    if (!this.dirty || this.syncing) return;
    this.dirty = false;
    this.syncing = true;
    fsync(this.fd, (err) => {
      this.syncing = false;
      if (this.closed) {
        try {
          closeSync(this.fd);
        } catch {
          // Already gone with the process; nothing to report it to.
        }
        return;
      }
      // The next write reports a broken file; fsync errors alone are retried next second.
      if (err) this.dirty = true;
    });
  }
}

/** Audit lines on standard output (for containers that collect stdout). */
export class StdoutAuditLog extends LineSink {
  constructor(private readonly now: () => Date) {
    super();
  }

  protected line(event: AuditEvent): string {
    return this.jsonLine('"audit":true,', this.now(), event);
  }

  protected writeText(text: string): void {
    try {
      writeSync(1, text);
    } catch (cause) {
      throw unwritable(cause);
    }
  }
}

function unwritable(cause: unknown): DomainError {
  return new DomainError(
    "unavailable",
    "the audit log cannot be written; refusing to act unaudited",
    { cause },
  );
}
