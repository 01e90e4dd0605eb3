import { closeSync, fsyncSync, openSync, writeSync } from "node:fs";
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
  namespace?: string | undefined;
  credential?: string | undefined;
  /** SignRequest: the target host and the S3 action, where relevant. */
  host?: string | undefined;
  action?: string | undefined;
  /** ImportCredentials: rows created and rows refused, so far (the outcome line has the totals). */
  created?: number | undefined;
  failed?: number | undefined;
  /** "attempt" precedes a mutation; the outcome follows in its own line. */
  decision: "attempt" | "allow" | "deny" | "error";
  /** The error code and message for deny/error. */
  reason?: string | undefined;
  requestId: string;
}

/** Where audit lines go. `write` throws DomainError unavailable when the line cannot be written. */
export interface AuditSink {
  write(event: AuditEvent): void;
  close(): void;
}

/**
 * An append-only JSON-lines file (0600). Each line is written with one
 * write(2) on an O_APPEND descriptor before the answer it records is sent;
 * the file is fsync'd at most once a second while lines arrive, and on
 * close. A line that cannot be written fails the request it belongs to
 * (fail-closed): nothing is signed or served unaudited.
 */
export class FileAuditLog implements AuditSink {
  private readonly fd: number;
  private dirty = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly path: string,
    private readonly now: () => Date,
  ) {
    this.fd = openSync(path, "a", 0o600);
    this.timer = setInterval(() => this.sync(), 1000);
    this.timer.unref();
  }

  write(event: AuditEvent): void {
    const line = `${JSON.stringify({ time: this.now().toISOString(), ...event })}\n`;
    try {
      writeSync(this.fd, line);
      this.dirty = true;
    } catch (cause) {
      throw new DomainError(
        "unavailable",
        "the audit log cannot be written; refusing to act unaudited",
        {
          cause,
        },
      );
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.sync();
    closeSync(this.fd);
  }

  private sync(): void {
    if (!this.dirty) return;
    this.dirty = false;
    try {
      fsyncSync(this.fd);
    } catch {
      // The next write reports a broken file; fsync errors alone are retried next second.
      this.dirty = true;
    }
  }
}

/** Audit lines on standard output (for containers that collect stdout). */
export class StdoutAuditLog implements AuditSink {
  constructor(private readonly now: () => Date) {}

  write(event: AuditEvent): void {
    try {
      writeSync(
        1,
        `${JSON.stringify({ audit: true, time: this.now().toISOString(), ...event })}\n`,
      );
    } catch (cause) {
      throw new DomainError(
        "unavailable",
        "the audit log cannot be written; refusing to act unaudited",
        {
          cause,
        },
      );
    }
  }

  close(): void {}
}
