import type { Caller } from "../../../gen/credbroker/v1/caller_pb.js";
import type { Credential, Provider } from "../../../gen/credbroker/v1/credential_pb.js";
import { DomainError } from "../../core/errors.js";
import {
  callerByTokenHash,
  openCaller,
  planCreateCaller,
  planDeleteCaller,
  planRotateCallerToken,
  planUpdateCaller,
  readCaller,
} from "../caller-plan.js";
import type { CallerStore } from "../caller-store.js";
import type {
  CreateManyResult,
  CredentialStore,
  ListPage,
  ListQuery,
} from "../credential-store.js";
import { KeyRotation } from "../key-rotation.js";
import { CALLER_PREFIX, KEYCHECK_KEY, namePrefix, prefixEnd, recordKey } from "../keys.js";
import { Mutex } from "../mutex.js";
import { RandomPool } from "../random-pool.js";
import { planReseal, ROTATION_KEY } from "../rotation.js";
import type { Sealer } from "../sealing.js";
import {
  KEYCHECK_PLAINTEXT,
  matching,
  notFound,
  onlyCreated,
  type WriteOp,
} from "../store-rules.js";
import {
  findCredential,
  findDefault,
  openRecord,
  type StoreReader,
  WritePlanner,
} from "../write-plan.js";
import { namedDamage, readError } from "./level-errors.js";
import { type Db, LevelHandle } from "./level-handle.js";
import { openLevelKeys, sealedBatch } from "./rotation-level.js";

export interface LevelStoreOptions {
  /** The LevelDB directory. */
  location: string;
  /**
   * Returns the sealer for this database; `fresh` is true when the database
   * holds no sealed record yet (the only time a new master key may be made).
   */
  sealer(fresh: boolean): Promise<Sealer>;
  now(): Date;
}

/**
 * The embedded store: LevelDB, one process at a time (LevelDB's lock), every
 * value that holds credential data sealed with AES-256-GCM. Writes are
 * serialized in-process and each acknowledged write is one synced batch.
 */
export class LevelCredentialStore implements CredentialStore, CallerStore {
  private readonly random = new RandomPool();
  private readonly planner: WritePlanner;
  /** The live database as the write planner and the reads see it. */
  private readonly reader: StoreReader;
  /** Key ids records may still be sealed under (a master key rotation in progress). */
  private draining: readonly string[] = [];

  private constructor(
    private readonly handle: LevelHandle,
    private readonly writes: Mutex,
    private readonly sealer: Sealer,
    now: () => Date,
  ) {
    this.planner = new WritePlanner({
      sealer,
      now,
      // Hex: an etag never starts with "-", so `--etag VALUE` always parses as a flag value.
      stamp: (c) => ({ ...c, etag: this.random.take(12).toString("hex") }),
    });
    this.reader = {
      get: (key) => this.read(key, (db) => db.get(key)),
      getMany: (keys) => this.read("index entries", (db) => db.getMany(keys as string[])),
      firstKey: (prefix) =>
        this.read(
          prefix,
          async (db) => (await db.keys({ gte: prefix, lt: prefixEnd(prefix), limit: 1 }).all())[0],
        ),
      readRecord: async (id) => {
        const value = await this.read(recordKey(id), (db) => db.get(recordKey(id)));
        return value === undefined ? undefined : openRecord(sealer, id, value);
      },
    };
  }

  /** A read, once any reopen has finished, with LevelDB's errors as DomainErrors. */
  private async read<T>(what: string, body: (db: Db) => Promise<T>): Promise<T> {
    try {
      return await body(await this.handle.readable());
    } catch (err) {
      throw readError(err, what);
    }
  }

  /**
   * Opens the store. Fails with `unavailable` when another process holds the
   * data dir, and `failed_precondition` when the master key does not open it;
   * either way nothing is written.
   */
  static async open(opts: LevelStoreOptions): Promise<LevelCredentialStore> {
    const writes = new Mutex();
    let handle: LevelHandle;
    try {
      handle = await LevelHandle.open({
        location: opts.location,
        serialize: (task) => writes.run(task),
      });
    } catch (err) {
      throw openError(opts.location, err);
    }
    try {
      const check = await handle.db.get(KEYCHECK_KEY).catch((err: unknown) => {
        throw readError(err, `the key check of ${opts.location}`);
      });
      const sealer = await opts.sealer(check === undefined);
      let draining: readonly string[] = [];
      if (check === undefined) {
        const sealed = sealer.seal(KEYCHECK_PLAINTEXT, KEYCHECK_KEY);
        await handle.write((db) => db.put(KEYCHECK_KEY, sealed, { sync: true }));
      } else {
        // Checks the key and, given a new one, starts a rotation (store/rotation.ts).
        draining = (await openLevelKeys(handle, sealer, check, "this data dir")).draining;
      }
      const store = new LevelCredentialStore(handle, writes, sealer, opts.now);
      store.draining = draining;
      return store;
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  async create(credential: Credential): Promise<Credential> {
    return onlyCreated(await this.createMany([credential]));
  }

  async createMany(credentials: readonly Credential[]): Promise<CreateManyResult> {
    return this.writes.run(async () => {
      const plan = await this.planner.createMany(this.reader, credentials);
      if (plan.ops.length > 0) await this.commit(plan.ops);
      return { outcomes: plan.outcomes, demoted: plan.demoted.map((c) => c.id) };
    });
  }

  async get(namespace: string, name: string): Promise<Credential> {
    const found = await findCredential(this.reader, namespace, name).catch((err: unknown) => {
      throw namedDamage(err, namespace, name);
    });
    if (found === undefined) throw notFound(namespace, name);
    return found;
  }

  async getDefault(namespace: string, provider: Provider): Promise<Credential | undefined> {
    return findDefault(this.reader, namespace, provider).catch((err: unknown) => {
      throw namedDamage(err, namespace, "(provider default)");
    });
  }

  async list(query: ListQuery): Promise<ListPage> {
    const prefix = namePrefix(query.namespace, query.provider);
    const range = query.after === "" ? { gte: prefix } : { gt: `${prefix}${query.after}` };
    const entries: { name: string; id: string }[] = [];
    await this.read(`the listing of ${prefix}`, async (db) => {
      for await (const [key, id] of db.iterator({
        ...range,
        lt: prefixEnd(prefix),
        limit: query.limit + 1,
      })) {
        entries.push({ name: key.slice(prefix.length), id: id.toString("utf8") });
      }
    });
    const more = entries.length > query.limit;
    const page = entries.slice(0, query.limit);
    const values = await this.read(`the records listed under ${prefix}`, (db) =>
      db.getMany(page.map((e) => recordKey(e.id))),
    );
    const credentials: Credential[] = [];
    page.forEach(({ name, id }, i) => {
      const value = values[i];
      // A record deleted between the index read and this one is simply gone.
      if (value === undefined) return;
      // A damaged record fails the page (data_loss naming it) rather than
      // vanish from it: a listing that silently skipped would read as a delete.
      try {
        credentials.push(matching(openRecord(this.sealer, id, value), query.namespace, name));
      } catch (err) {
        throw namedDamage(err, query.namespace, name);
      }
    });
    return { credentials, more };
  }

  async update(
    namespace: string,
    name: string,
    change: (current: Credential) => Credential,
    expectedEtag: string,
  ): Promise<Credential> {
    return this.writes.run(async () => {
      const plan = await this.planner
        .update(this.reader, namespace, name, change, expectedEtag)
        .catch((err: unknown) => {
          throw namedDamage(err, namespace, name);
        });
      await this.commit(plan.ops);
      return plan.stored;
    });
  }

  async delete(namespace: string, name: string, expectedEtag: string): Promise<void> {
    await this.writes.run(async () => {
      const ops = await this.planner
        .delete(this.reader, namespace, name, expectedEtag)
        .catch((err: unknown) => {
          throw namedDamage(err, namespace, name);
        });
      await this.commit(ops);
    });
  }

  async createCaller(caller: Caller, tokenHash: string): Promise<Caller> {
    return this.writes.run(async () => {
      await this.commit(await planCreateCaller(this.reader, this.sealer, caller, tokenHash));
      return caller;
    });
  }

  async getCaller(name: string): Promise<Caller> {
    return readCaller(this.reader, this.sealer, name);
  }

  async callerByTokenHash(tokenHash: string): Promise<Caller | undefined> {
    return callerByTokenHash(this.reader, this.sealer, tokenHash);
  }

  async listCallers(): Promise<Caller[]> {
    const out: Caller[] = [];
    await this.read("the callers", async (db) => {
      for await (const [key, value] of db.iterator({
        gte: CALLER_PREFIX,
        lt: prefixEnd(CALLER_PREFIX),
      })) {
        out.push(openCaller(this.sealer, key.slice(CALLER_PREFIX.length), value));
      }
    });
    return out;
  }

  async updateCaller(name: string, change: (current: Caller) => Caller): Promise<Caller> {
    return this.writes.run(async () => {
      const { ops, next } = await planUpdateCaller(this.reader, this.sealer, name, change);
      await this.commit(ops);
      return next;
    });
  }

  async rotateCallerToken(name: string, tokenHash: string): Promise<void> {
    await this.writes.run(async () => {
      await this.commit(await planRotateCallerToken(this.reader, this.sealer, name, tokenHash));
    });
  }

  async deleteCaller(name: string): Promise<void> {
    await this.writes.run(async () => {
      await this.commit(await planDeleteCaller(this.reader, this.sealer, name));
    });
  }

  /**
   * One synced, atomic write. A chained batch: for thousands of operations
   * it costs a third of what the array form does (abstract-level's per-op checks).
   * A write error fails it `unavailable` and has the handle reopen the database
   * (level-handle.ts) before anything else is written.
   */
  private async commit(ops: readonly WriteOp[]): Promise<void> {
    await this.handle.write(async (db) => {
      const batch = db.batch();
      for (const op of ops) {
        if (op.type === "put") batch.put(op.key, op.value);
        else batch.del(op.key);
      }
      await batch.write({ sync: true });
    });
  }

  /** Master key rotation over this database (store/key-rotation.ts). */
  keyRotation(): KeyRotation {
    const scan = (after: string, limit: number) =>
      this.read("the sealed records", (db) => sealedBatch(db, after, limit));
    return new KeyRotation(this.sealer, {
      draining: async () => this.draining,
      // Began at open, before anything was sealed under the new key (openKeys).
      begin: async () => undefined,
      retired: async () => undefined,
      sealedBatch: scan,
      // Read, re-seal and write under the write lock: a client's write to the
      // same record waits for the batch instead of being overwritten by it.
      resealBatch: (after, limit) =>
        this.writes.run(async () => {
          const entries = await scan(after, limit);
          const plan = planReseal(this.sealer, entries);
          if (plan.ops.length > 0) await this.commit(plan.ops);
          return { scanned: entries.length, resealed: plan.ops.length, last: entries.at(-1)?.key };
        }),
      endRotation: () =>
        this.writes.run(async () => {
          if (this.draining.length === 0) return;
          await this.commit([{ type: "del", key: ROTATION_KEY }]);
          this.draining = [];
        }),
    });
  }

  async close(): Promise<void> {
    // Wait for queued writes, so nothing acknowledged is cut off.
    await this.writes.run(async () => this.handle.close());
  }
}

function openError(location: string, err: unknown): DomainError {
  const cause = (err as { cause?: { code?: string } }).cause;
  if (cause?.code === "LEVEL_LOCKED") {
    return new DomainError(
      "unavailable",
      `data dir ${location} is in use by another credbroker process (LevelDB lock held)`,
      { cause: err },
    );
  }
  return new DomainError("unavailable", `cannot open the database at ${location}`, { cause: err });
}
