import { readdir, rm, stat, statfs, writeFile } from "node:fs/promises";
import path from "node:path";
import { Level } from "level";
import { DomainError } from "../../core/errors.js";
import { levelReason } from "./level-errors.js";

export type Db = Level<string, Buffer>;

/** Free space a reopen needs beyond the write-ahead log it turns into a table. */
const REOPEN_MARGIN_BYTES = 1 << 20;
const FIRST_RETRY_MS = 100;
const MAX_RETRY_MS = 5000;

export interface LevelHandleOptions {
  location: string;
  /**
   * Runs a task serialized with the store's writes: a reopen must not run
   * while a write batch is being applied.
   */
  serialize<T>(task: () => Promise<T>): Promise<T>;
}

/**
 * The open LevelDB of a store, and what happens after a write fails.
 *
 * A failed write (a full disk) may leave part of its record in LevelDB's
 * write-ahead log, and LevelDB goes on appending after it: on the next
 * recovery the log reader drops the rest of that 32 KiB block, acknowledged
 * writes included. A failed background compaction fails every write until
 * the database is reopened. So after a write error this handle writes
 * nothing more: writes fail `unavailable` at once, reads go on against the
 * same handle, and the database is closed and opened again (recovery drops
 * the torn record, whole: a batch is one log record) once the disk takes
 * writes, checked with backoff and before each write.
 */
export class LevelHandle {
  private current: Db;
  /** Why writes are refused, until a reopen succeeds. */
  private fault: DomainError | undefined;
  /** Set while the database is closed for a reopen; reads wait for it. */
  private reopening: Promise<void> | undefined;
  private retryMs = FIRST_RETRY_MS;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    db: Db,
    private readonly opts: LevelHandleOptions,
  ) {
    this.current = db;
  }

  /** Opens the database; LevelDB's errors are thrown as they are (the caller names them). */
  static async open(opts: LevelHandleOptions): Promise<LevelHandle> {
    const db = newLevel(opts.location);
    await db.open();
    return new LevelHandle(db, opts);
  }

  /** The database as it is now (reads): during a reopen, the one about to be closed. */
  get db(): Db {
    return this.current;
  }

  /** The database to read from once any reopen in progress has finished. */
  async readable(): Promise<Db> {
    if (this.reopening !== undefined) await this.reopening;
    return this.current;
  }

  /**
   * Applies a write through `apply`; call it serialized with the other
   * writes. Fails `unavailable` without touching the database while a
   * previous write error has not been cleared by a reopen.
   */
  async write(apply: (db: Db) => Promise<void>): Promise<void> {
    if (this.fault !== undefined) await this.tryReopen();
    if (this.fault !== undefined) throw this.fault;
    try {
      await apply(this.current);
    } catch (err) {
      if (err instanceof DomainError) throw err;
      this.fault = new DomainError(
        "unavailable",
        `the database cannot take writes (${levelReason(err)}); this change is not acknowledged, and writes resume once the disk takes them again`,
        { cause: err },
      );
      this.scheduleRetry();
      throw this.fault;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.reopening !== undefined) await this.reopening.catch(() => undefined);
    await this.current.close();
  }

  private scheduleRetry(): void {
    if (this.closed || this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.opts
        .serialize(() => this.tryReopen())
        .finally(() => {
          if (this.fault !== undefined) this.scheduleRetry();
        });
    }, this.retryMs);
    this.timer.unref();
    this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
  }

  /**
   * Closes and reopens the database when the disk looks able to take the
   * reopen (LevelDB writes its log out as a table): until then the old
   * handle keeps serving reads. Runs serialized with writes.
   */
  private async tryReopen(): Promise<void> {
    if (this.fault === undefined || this.closed || !(await diskTakesWrites(this.opts.location)))
      return;
    let done: () => void = () => undefined;
    this.reopening = new Promise((resolve) => {
      done = resolve;
    });
    try {
      await this.current.close().catch(() => undefined);
      const db = newLevel(this.opts.location);
      try {
        await db.open();
      } catch (err) {
        // Closed and not reopened: reads fail `unavailable` until a retry opens it.
        this.fault = new DomainError(
          "unavailable",
          `the database is being reopened after a write error and cannot be opened yet (${levelReason(err)})`,
          { cause: err },
        );
        return;
      }
      this.current = db;
      this.fault = undefined;
      this.retryMs = FIRST_RETRY_MS;
    } finally {
      this.reopening = undefined;
      done();
    }
  }
}

function newLevel(location: string): Db {
  return new Level<string, Buffer>(location, { keyEncoding: "utf8", valueEncoding: "buffer" });
}

/**
 * Whether a reopen can be expected to work: room for the write-ahead log as
 * a table (plus a margin), and a small file written beside the database.
 */
async function diskTakesWrites(location: string): Promise<boolean> {
  try {
    let logBytes = 0;
    for (const file of await readdir(location)) {
      if (file.endsWith(".log")) logBytes += (await stat(path.join(location, file))).size;
    }
    const fs = await statfs(location);
    if (fs.bavail * fs.bsize < logBytes + REOPEN_MARGIN_BYTES) return false;
    const probe = `${location}.write-probe`;
    try {
      await writeFile(probe, Buffer.alloc(4096));
    } finally {
      await rm(probe, { force: true });
    }
    return true;
  } catch {
    return false;
  }
}
