import {
  CompareResult,
  CompareTarget,
  type ICompare,
  type IKeyValue,
  type IRequestOp,
  type KVClient,
} from "etcd3";
import type { Credential } from "../../../gen/credbroker/v1/credential_pb.js";
import { DomainError } from "../../core/errors.js";
import { prefixEnd, recordKey } from "../keys.js";
import type { Sealer } from "../sealing.js";
import type { WriteOp } from "../store-rules.js";
import { openRecord, type StoreReader } from "../write-plan.js";

/** How many reads one etcd transaction carries (etcd's default --max-txn-ops is 128). */
const READS_PER_TXN = 100;

/** Thrown when a read's revision was compacted away: the attempt starts over. */
export class SnapshotExpired extends Error {
  override readonly name = "SnapshotExpired";
}

/**
 * The store as of one etcd revision, for deciding one write.
 *
 * The first read fixes the revision; every later read asks for that same
 * revision, so a write is decided on one consistent state (never on an index
 * entry from one moment and a record from another). Every key read is
 * remembered with the mod_revision it had (0: absent), and every range found
 * empty as empty, so `commit` can be one transaction that applies the write
 * only if none of them changed since: optimistic concurrency, which is what
 * makes several daemons on one etcd as safe as one daemon's write lock.
 *
 * Keys are logical (keys.ts); the snapshot adds the store's prefix.
 */
export class EtcdSnapshot implements StoreReader {
  private revision: string | undefined;
  private readonly compares = new Map<string, ICompare>();

  constructor(
    private readonly kv: KVClient,
    private readonly prefix: string,
    private readonly sealer: Sealer,
    /** Names the store in error messages. */
    private readonly where: string,
  ) {}

  async get(key: string): Promise<Buffer | undefined> {
    return (await this.getKv(key))?.value;
  }

  async getMany(keys: readonly string[]): Promise<(Buffer | undefined)[]> {
    return (await this.getKvs(keys)).map((kv) => kv?.value);
  }

  async firstKey(prefix: string): Promise<string | undefined> {
    const key = this.full(prefix);
    const rangeEnd = this.full(prefixEnd(prefix));
    const res = await this.range({ key, range_end: rangeEnd, limit: 1, keys_only: true });
    const first = res.kvs[0];
    if (first === undefined) {
      // Still empty at commit: no key in the range was created since.
      this.compares.set(`${key.toString("utf8")}\0range`, {
        key,
        range_end: rangeEnd,
        target: CompareTarget.Create,
        result: CompareResult.Equal,
        create_revision: 0,
      });
      return undefined;
    }
    this.remember(first.key, first.mod_revision);
    return first.key.toString("utf8").slice(this.prefix.length);
  }

  async readRecord(id: string): Promise<Credential | undefined> {
    const kv = await this.getKv(recordKey(id));
    return kv === undefined ? undefined : this.openRecordKv(id, kv);
  }

  /** A stored record with its etag: the revision of its last write. */
  openRecordKv(id: string, kv: IKeyValue): Credential {
    return { ...openRecord(this.sealer, id, kv.value), etag: kv.mod_revision };
  }

  /**
   * Keys and values in [from, to) of the logical key space, in key order, at
   * the snapshot's revision: at most `limit` (0 = all). Not remembered for
   * commit (listing decides no write).
   */
  async scan(from: string, to: string, limit: number): Promise<{ key: string; kv: IKeyValue }[]> {
    const res = await this.range({ key: this.full(from), range_end: this.full(to), limit });
    return res.kvs.map((kv) => ({ key: kv.key.toString("utf8").slice(this.prefix.length), kv }));
  }

  /**
   * Every key in [from, to) at the snapshot's revision, held for commit:
   * the commit fails if any key in the range was written (or created)
   * since. For small ranges a write depends on whole (the fleet's members).
   */
  async scanHeld(from: string, to: string): Promise<{ key: string; kv: IKeyValue }[]> {
    const entries = await this.scan(from, to, 0);
    const key = this.full(from);
    const rangeEnd = this.full(to);
    this.compares.set(`${key.toString("utf8")}\0held`, {
      key,
      range_end: rangeEnd,
      target: CompareTarget.Mod,
      result: CompareResult.Less,
      mod_revision: String(BigInt(this.revision ?? "0") + 1n),
    });
    return entries;
  }

  /** The commit fails unless `key` still has `modRevision` ("0": absent) then. */
  expect(key: string, modRevision: string): void {
    this.remember(this.full(key), modRevision);
  }

  /** Values of logical keys, in order, at the snapshot's revision, with their revisions. */
  async getKvs(keys: readonly string[]): Promise<(IKeyValue | undefined)[]> {
    if (keys.length === 0) return [];
    if (keys.length === 1) return [await this.getKv(keys[0] as string)];
    if (this.revision === undefined) await this.range({ key: this.full(keys[0] as string) });
    const chunks: string[][] = [];
    for (let i = 0; i < keys.length; i += READS_PER_TXN) {
      chunks.push(keys.slice(i, i + READS_PER_TXN));
    }
    const results = await Promise.all(
      chunks.map(async (chunk) => {
        const res = await this.call(() =>
          this.kv.txn({
            success: chunk.map((k) => ({
              request_range: { key: this.full(k), revision: this.revision },
            })),
          }),
        );
        return res.responses.map((r, i) => {
          const kv = r.response_range.kvs[0];
          this.remember(this.full(chunk[i] as string), kv?.mod_revision ?? "0");
          return kv;
        });
      }),
    );
    return results.flat();
  }

  /**
   * Applies `ops` in one transaction if nothing read has changed since.
   * Returns the revision of the write, or undefined when something read
   * changed (the caller decides again on a new snapshot). A key written
   * twice keeps its last operation, as a batch would.
   */
  async commit(ops: readonly WriteOp[]): Promise<string | undefined> {
    const last = new Map<string, WriteOp>();
    for (const op of ops) {
      last.delete(op.key);
      last.set(op.key, op);
    }
    const success: IRequestOp[] = [...last.values()].map((op) =>
      op.type === "put"
        ? { request_put: { key: this.full(op.key), value: op.value } }
        : { request_delete_range: { key: this.full(op.key) } },
    );
    const compare = [...this.compares.values()];
    const res = await etcdCall(this.where, () => this.kv.txn({ compare, success }));
    return res.succeeded ? res.header.revision : undefined;
  }

  private async getKv(key: string): Promise<IKeyValue | undefined> {
    const full = this.full(key);
    const kv = (await this.range({ key: full })).kvs[0];
    this.remember(full, kv?.mod_revision ?? "0");
    return kv;
  }

  private remember(key: Buffer, modRevision: string): void {
    this.compares.set(key.toString("utf8"), {
      key,
      target: CompareTarget.Mod,
      result: CompareResult.Equal,
      mod_revision: modRevision,
    });
  }

  private async range(req: {
    key: Buffer;
    range_end?: Buffer;
    limit?: number;
    keys_only?: boolean;
  }) {
    const res = await this.call(() => this.kv.range({ ...req, revision: this.revision }));
    this.revision ??= res.header.revision;
    return res;
  }

  /** Runs one read; a compacted revision becomes SnapshotExpired. */
  private async call<T>(read: () => Promise<T>): Promise<T> {
    return etcdCall(this.where, async () => {
      try {
        return await read();
      } catch (err) {
        if (err instanceof Error && /compacted/.test(err.message)) {
          throw new SnapshotExpired("the snapshot's revision was compacted", { cause: err });
        }
        throw err;
      }
    });
  }

  private full(key: string): Buffer {
    return Buffer.from(`${this.prefix}${key}`, "utf8");
  }
}

/**
 * Runs etcd calls. Anything failing that is not already a DomainError (a
 * dead or unreachable etcd, a deadline, a refused request) becomes one whose
 * message names etcd and holds no value; the original is the cause (logged,
 * never sent).
 */
export async function etcdCall<T>(where: string, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (err) {
    if (err instanceof DomainError || err instanceof SnapshotExpired) throw err;
    const message = err instanceof Error ? err.message : String(err);
    if (/too many operations in txn request|request is too large/.test(message)) {
      throw new DomainError(
        "failed_precondition",
        `${where} refused a write as too large; start etcd with a larger --max-txn-ops and --max-request-bytes (docs/ARCHITECTURE.md, "etcd store")`,
        { cause: err },
      );
    }
    // etcd3's errors leave `name` as "Error"; their class says what happened.
    const kind = err instanceof Error ? errorKind(err) : "error";
    throw new DomainError("unavailable", `${where} is unavailable (${kind})`, { cause: err });
  }
}

/** "EtcdPermissionDeniedError" → "permission denied"; a plain Error → its code or "error". */
function errorKind(err: Error): string {
  const name = err.constructor.name !== "Error" ? err.constructor.name : err.name;
  if (name !== "Error") {
    return name
      .replace(/^Etcd|Error$/g, "")
      .replace(/([a-z])([A-Z])/g, "$1 $2")
      .toLowerCase();
  }
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" ? code : "error";
}
