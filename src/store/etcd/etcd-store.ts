import type { Etcd3 } from "etcd3";
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
import { ROTATION_KEY } from "../rotation.js";
import { KeyNotLoaded, type Sealer } from "../sealing.js";
import { matching, notFound, onlyCreated, type WriteOp } from "../store-rules.js";
import { findCredential, findDefault, WritePlanner } from "../write-plan.js";
import { FleetKey } from "./etcd-keys.js";
import type { FleetMember } from "./etcd-members.js";
import {
  checkKey,
  type EtcdStoreOptions,
  etcdClient,
  explainOpenFailure,
  isFresh,
  joinFleet,
} from "./etcd-open.js";
import { EtcdSnapshot, etcdCall, SnapshotExpired } from "./etcd-snapshot.js";
import { type StoreChangeListener, type StoreWatch, watchPrefix } from "./etcd-watch.js";
import { etcdResealable } from "./rotation-etcd.js";

export type { EtcdStoreOptions } from "./etcd-open.js";

export const DEFAULT_ETCD_PREFIX = "/credbroker/";

/** How often one write is decided again after another daemon changed what it read. */
const MAX_ATTEMPTS = 50;

/**
 * The fleet store: etcd v3, shared by every daemon of a fleet. The logical
 * key layout is LevelDB's (keys.ts) under a prefix, and every value holding
 * credential data is sealed the same way (the logical key is the additional
 * data), so etcd never sees a plaintext secret.
 *
 * A credential's etag is the etcd revision of its record's last write
 * (mod_revision), so it changes on every write, including one made by
 * another daemon. Each write is decided by the shared WritePlanner on one
 * snapshot revision and committed as one transaction that compares the
 * mod_revision of every key it read (and the emptiness of every range it
 * found empty): if another daemon wrote any of them in between, nothing is
 * written and the write is decided again on a new snapshot. Writes of one
 * daemon are also serialized in-process, so they never race each other.
 */
export class EtcdCredentialStore implements CredentialStore, CallerStore {
  private readonly writes = new Mutex();
  private readonly planner: WritePlanner;

  private constructor(
    private readonly client: Etcd3,
    private readonly prefix: string,
    private readonly sealer: Sealer,
    private readonly where: string,
    now: () => Date,
    /** The fleet's key, compared by every write (etcd-keys.ts). */
    private readonly fleet: FleetKey,
    private readonly member: FleetMember,
    /** This daemon's own master key, before it took the fleet's. */
    private readonly masterKeyId: string,
  ) {
    // The etag is the commit's revision: none is stored in the record.
    this.planner = new WritePlanner({ sealer, now, stamp: (c) => ({ ...c, etag: "" }) });
  }

  /**
   * Connects and checks the master key against the prefix's keycheck
   * (written on first use). `unavailable` when etcd cannot be reached
   * (a TLS handshake that fails says which side refused),
   * `unauthenticated` when etcd refuses the user and password,
   * `permission_denied` when the user may not use the prefix,
   * `failed_precondition` when the master key does not open the prefix;
   * in every case nothing is written.
   */
  static async open(opts: EtcdStoreOptions): Promise<EtcdCredentialStore> {
    const prefix = opts.prefix ?? DEFAULT_ETCD_PREFIX;
    if (!prefix.endsWith("/")) {
      throw new DomainError("invalid_argument", `etcd prefix ${prefix} must end with "/"`);
    }
    if (opts.endpoints.length === 0) {
      throw new DomainError("invalid_argument", "at least one etcd endpoint is needed");
    }
    const timeout = opts.callTimeoutMs ?? 5000;
    const where = `etcd ${opts.endpoints.join(",")} prefix ${prefix}`;
    const client = etcdClient(opts, timeout);
    let member: FleetMember | undefined;
    try {
      const fresh = await etcdCall(where, () =>
        isFresh(client, prefix).catch((err: unknown) => {
          throw explainOpenFailure(err, where, prefix, opts.auth?.username);
        }),
      );
      const sealer = await opts.sealer(fresh);
      const masterKeyId = sealer.currentKeyId;
      member = await joinFleet(client, prefix, where, sealer, opts);
      const [check, marker] = await etcdCall(where, () => checkKey(client, prefix, sealer));
      const fleet = new FleetKey(sealer, where, check, marker, opts.keyMoved ?? (() => undefined));
      return new EtcdCredentialStore(
        client,
        prefix,
        sealer,
        where,
        opts.now,
        fleet,
        member,
        masterKeyId,
      );
    } catch (err) {
      await member?.leave();
      client.close();
      throw err;
    }
  }

  async create(credential: Credential): Promise<Credential> {
    return onlyCreated(await this.createMany([credential]));
  }

  async createMany(credentials: readonly Credential[]): Promise<CreateManyResult> {
    return this.write(async (snapshot) => {
      const plan = await this.planner.createMany(snapshot, credentials);
      return {
        ops: plan.ops,
        done: (revision) => {
          for (const o of plan.outcomes) if (o.ok) o.credential.etag = revision;
          for (const c of plan.demoted) c.etag = revision;
          return { outcomes: plan.outcomes, demoted: plan.demoted.map((c) => c.id) };
        },
      };
    });
  }

  async get(namespace: string, name: string): Promise<Credential> {
    const found = await this.read((s) => findCredential(s, namespace, name));
    if (found === undefined) throw notFound(namespace, name);
    return found;
  }

  async getDefault(namespace: string, provider: Provider): Promise<Credential | undefined> {
    return this.read((s) => findDefault(s, namespace, provider));
  }

  /** One range read of the index (limit + 1, in key order), then the page's records, at one revision. */
  async list(query: ListQuery): Promise<ListPage> {
    return this.read(async (snapshot) => {
      const prefix = namePrefix(query.namespace, query.provider);
      // The smallest key after `prefix + after` is `prefix + after + "\0"`.
      const from = query.after === "" ? prefix : `${prefix}${query.after}\0`;
      const entries = await snapshot.scan(from, prefixEnd(prefix), query.limit + 1);
      const more = entries.length > query.limit;
      const page = entries.slice(0, query.limit).map(({ key, kv }) => ({
        name: key.slice(prefix.length),
        id: kv.value.toString("utf8"),
      }));
      const records = await snapshot.getKvs(page.map((e) => recordKey(e.id)));
      const credentials: Credential[] = [];
      page.forEach(({ name, id }, i) => {
        const kv = records[i];
        if (kv !== undefined) {
          credentials.push(matching(snapshot.openRecordKv(id, kv), query.namespace, name));
        }
      });
      return { credentials, more };
    });
  }

  /** `change` may run more than once: again on a fresh read when another daemon wrote in between. */
  async update(
    namespace: string,
    name: string,
    change: (current: Credential) => Credential,
    expectedEtag: string,
  ): Promise<Credential> {
    return this.write(async (snapshot) => {
      const plan = await this.planner.update(snapshot, namespace, name, change, expectedEtag);
      return {
        ops: plan.ops,
        done: (revision) => {
          for (const c of plan.demoted) c.etag = revision;
          plan.stored.etag = revision;
          return plan.stored;
        },
      };
    });
  }

  async delete(namespace: string, name: string, expectedEtag: string): Promise<void> {
    await this.write(async (snapshot) => ({
      ops: await this.planner.delete(snapshot, namespace, name, expectedEtag),
      done: () => undefined,
    }));
  }

  async createCaller(caller: Caller, tokenHash: string): Promise<Caller> {
    return this.write(async (s) => ({
      ops: await planCreateCaller(s, this.sealer, caller, tokenHash),
      done: () => caller,
    }));
  }

  async getCaller(name: string): Promise<Caller> {
    return this.read((s) => readCaller(s, this.sealer, name));
  }

  async callerByTokenHash(tokenHash: string): Promise<Caller | undefined> {
    return this.read((s) => callerByTokenHash(s, this.sealer, tokenHash));
  }

  async listCallers(): Promise<Caller[]> {
    return this.read(async (s) =>
      (await s.scan(CALLER_PREFIX, prefixEnd(CALLER_PREFIX), 0)).map(({ key, kv }) =>
        openCaller(this.sealer, key.slice(CALLER_PREFIX.length), kv.value),
      ),
    );
  }

  async updateCaller(name: string, change: (current: Caller) => Caller): Promise<Caller> {
    return this.write(async (s) => {
      const { ops, next } = await planUpdateCaller(s, this.sealer, name, change);
      return { ops, done: () => next };
    });
  }

  async rotateCallerToken(name: string, tokenHash: string): Promise<void> {
    await this.write(async (s) => ({
      ops: await planRotateCallerToken(s, this.sealer, name, tokenHash),
      done: () => undefined,
    }));
  }

  async deleteCaller(name: string): Promise<void> {
    await this.write(async (s) => ({
      ops: await planDeleteCaller(s, this.sealer, name),
      done: () => undefined,
    }));
  }

  /**
   * Watches the prefix for changes from every daemon (etcd-watch.ts);
   * resolves once watching. Close the watch before the store.
   */
  watch(listener: StoreChangeListener): Promise<StoreWatch> {
    return etcdCall(this.where, () => watchPrefix(this.client, this.prefix, listener));
  }

  /** Master key rotation of the fleet (rotation-etcd.ts). */
  keyRotation(): KeyRotation {
    return new KeyRotation(
      this.sealer,
      etcdResealable({
        sealer: this.sealer,
        fleet: this.fleet,
        masterKeyId: this.masterKeyId,
        read: (body) => this.read(body),
        write: (decide) => this.write(decide),
        refresh: () => this.refreshKeys(),
        retired: () => this.member.refresh(),
      }),
      this.masterKeyId,
    );
  }

  async close(): Promise<void> {
    // Wait for queued writes, so nothing acknowledged is cut off.
    await this.writes.run(async () => {
      await this.member.leave();
      this.client.close();
    });
  }

  private snapshot(): EtcdSnapshot {
    return new EtcdSnapshot(this.client.kv, this.prefix, this.sealer, this.where);
  }

  /** Reads the keycheck and rotation marker again; the fleet's key may have moved. */
  private async refreshKeys(): Promise<void> {
    const [check, marker] = await this.read((s) => s.getKvs([KEYCHECK_KEY, ROTATION_KEY]));
    this.fleet.take(check, marker);
  }

  /**
   * Reads on one snapshot (a new one when its revision was compacted
   * meanwhile). A record under a key this daemon does not hold may mean the
   * fleet moved to it: then the keycheck says so (failed_precondition).
   */
  private async read<T>(body: (snapshot: EtcdSnapshot) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await body(this.snapshot());
      } catch (err) {
        if (err instanceof KeyNotLoaded) await this.refreshKeys();
        if (!(err instanceof SnapshotExpired) || attempt >= MAX_ATTEMPTS) throw err;
      }
    }
  }

  /**
   * Decides a write on a snapshot and commits it if nothing it read changed;
   * otherwise decides again. `done` gets the commit's revision.
   */
  private async write<T>(
    decide: (
      snapshot: EtcdSnapshot,
    ) => Promise<{ ops: readonly WriteOp[]; done(revision: string): T }>,
  ): Promise<T> {
    return this.writes.run(async () => {
      for (let attempt = 1; ; attempt++) {
        const outcome = await (async () => {
          const snapshot = this.snapshot();
          // Every write compares the keycheck's revision: the fence of a rotation (etcd-keys.ts).
          snapshot.expect(KEYCHECK_KEY, this.fleet.checkRevision);
          let plan: { ops: readonly WriteOp[]; done(revision: string): T };
          try {
            plan = await decide(snapshot);
          } catch (err) {
            if (err instanceof SnapshotExpired) return { conflict: true } as const;
            if (err instanceof KeyNotLoaded) await this.refreshKeys();
            throw err;
          }
          // Nothing to write (every credential of a createMany refused): decided on the snapshot.
          if (plan.ops.length === 0) return { value: plan.done("") };
          const revision = await snapshot.commit(plan.ops);
          return revision === undefined
            ? ({ conflict: true } as const)
            : { value: plan.done(revision) };
        })();
        if (!("conflict" in outcome)) return outcome.value;
        // Perhaps the keycheck moved (a rotation elsewhere): take its key before deciding again.
        await this.refreshKeys();
        if (attempt >= MAX_ATTEMPTS) {
          throw new DomainError(
            "aborted",
            "the store kept changing under this write (other daemons writing the same keys); retry",
          );
        }
        await new Promise((r) => setTimeout(r, Math.random() * 10 * attempt));
      }
    });
  }
}
