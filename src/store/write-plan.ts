import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type Credential,
  CredentialSchema,
  type Provider,
} from "../../gen/credbroker/v1/credential_pb.js";
import { DomainError } from "../core/errors.js";
import { displayName } from "../core/names.js";
import { referencedName, sourceCheck } from "../core/references.js";
import type { CreateOutcome } from "./credential-store.js";
import { defaultKey, nameKey, recordKey, referrerPrefix } from "./keys.js";
import type { Sealer } from "./sealing.js";
import { assertEtag, indexOps, matching, notFound, type WriteOp } from "./store-rules.js";

/**
 * What a write is decided on: the store as one backend reads it. LevelDB
 * reads the live database under its write lock; etcd reads one snapshot
 * revision and records every key read, so the commit can require that none
 * of them changed.
 */
export interface StoreReader {
  /** The value of a logical key, or undefined when absent. */
  get(key: string): Promise<Buffer | undefined>;
  /** The values of logical keys, in order. */
  getMany(keys: readonly string[]): Promise<(Buffer | undefined)[]>;
  /** The first key under `prefix`, or undefined when none is. */
  firstKey(prefix: string): Promise<string | undefined>;
  /** The credential stored as `cred/<id>`, opened, with its etag. */
  readRecord(id: string): Promise<Credential | undefined>;
}

/** The credential named `namespace/name`, if any (data_loss when its index lies). */
export async function findCredential(
  reader: StoreReader,
  namespace: string,
  name: string,
): Promise<Credential | undefined> {
  const id = await reader.get(nameKey(namespace, name));
  if (id === undefined) return undefined;
  const record = await reader.readRecord(id.toString("utf8"));
  return record === undefined ? undefined : matching(record, namespace, name);
}

/** The provider default of a namespace, if any. */
export async function findDefault(
  reader: StoreReader,
  namespace: string,
  provider: Provider,
): Promise<Credential | undefined> {
  const id = await reader.get(defaultKey(namespace, provider));
  const record = id === undefined ? undefined : await reader.readRecord(id.toString("utf8"));
  return record === undefined ? undefined : matching(record, namespace, record.name);
}

/** Seals a credential as the record `cred/<id>`; the key is the additional data. */
export function sealRecord(sealer: Sealer, c: Credential): WriteOp {
  const key = recordKey(c.id);
  return { type: "put", key, value: sealer.seal(toBinary(CredentialSchema, c), key) };
}

/** Opens the record `cred/<id>` (data_loss when damaged or moved). */
export function openRecord(sealer: Sealer, id: string, value: Uint8Array): Credential {
  return fromBinary(CredentialSchema, sealer.open(value, recordKey(id)));
}

export interface WritePlannerOptions {
  sealer: Sealer;
  now(): Date;
  /**
   * A copy of `c` as it will be stored. LevelDB gives it a fresh random etag;
   * etcd clears it (the etag is the record's revision, known at commit).
   */
  stamp(c: Credential): Credential;
}

/** A planned createMany: per-credential results and the one atomic write. */
export interface CreatePlan {
  ops: WriteOp[];
  outcomes: CreateOutcome[];
  /** Stored credentials demoted from provider default, as they will be stored. */
  demoted: Credential[];
}

/** A planned update: the credentials it writes, as stored, and the one atomic write. */
export interface UpdatePlan {
  ops: WriteOp[];
  stored: Credential;
  demoted: Credential[];
}

/**
 * Decides a write from what a StoreReader sees and returns it as one list of
 * operations to apply atomically: every invariant of CredentialStore (unique
 * names, one provider default, role sources) is checked here, once for all
 * backends. The backend supplies the reader and makes the check and the write
 * one step (LevelDB: its write lock; etcd: a transaction comparing every key read).
 */
export class WritePlanner {
  constructor(private readonly opts: WritePlannerOptions) {}

  async createMany(reader: StoreReader, credentials: readonly Credential[]): Promise<CreatePlan> {
    const pending = new Pending();
    // One read for every name, instead of one per credential.
    const taken = await reader.getMany(credentials.map((c) => nameKey(c.namespace, c.name)));
    const results: (string | DomainError)[] = [];
    for (const [i, credential] of credentials.entries()) {
      try {
        results.push(await this.addCreate(reader, pending, credential, taken[i] !== undefined));
      } catch (err) {
        if (!(err instanceof DomainError)) throw err;
        results.push(err);
      }
    }
    return {
      ops: pending.created.size > 0 ? this.pendingOps(pending) : [],
      outcomes: results.map((r) =>
        typeof r === "string" ? created(pending, r) : { ok: false, error: r },
      ),
      demoted: [...pending.demoted.values()],
    };
  }

  async update(
    reader: StoreReader,
    namespace: string,
    name: string,
    change: (current: Credential) => Credential,
    expectedEtag: string,
  ): Promise<UpdatePlan> {
    const current = await findCredential(reader, namespace, name);
    if (current === undefined) throw notFound(namespace, name);
    assertEtag(current, expectedEtag);
    const next = change(current);
    if (next.id !== current.id || next.namespace !== current.namespace) {
      throw new DomainError("invalid_argument", "id and namespace cannot change");
    }
    if (next.name !== current.name) {
      if ((await reader.get(nameKey(namespace, next.name))) !== undefined) {
        throw new DomainError(
          "already_exists",
          `cannot rename to ${displayName(namespace, next.name)}: it already exists`,
        );
      }
      await assertNotReferred(reader, current, "renamed");
    }
    if (next.kind.case !== "accessKey")
      await assertNotReferred(reader, current, "changed from an access_key");
    await this.assertSourceUsable(reader, next, current);
    const stored = this.opts.stamp(next);
    const pending = new Pending();
    await this.demotePreviousDefault(reader, stored, pending);
    const ops = [
      ...this.pendingOps(pending),
      sealRecord(this.opts.sealer, stored),
      ...indexOps(current, stored),
    ];
    return { ops, stored, demoted: [...pending.demoted.values()] };
  }

  async delete(
    reader: StoreReader,
    namespace: string,
    name: string,
    expectedEtag: string,
  ): Promise<WriteOp[]> {
    const current = await findCredential(reader, namespace, name);
    if (current === undefined) throw notFound(namespace, name);
    assertEtag(current, expectedEtag);
    await assertNotReferred(reader, current, "deleted");
    return [{ type: "del", key: recordKey(current.id) }, ...indexOps(current, undefined)];
  }

  /**
   * Adds `credential` to a batch of creates, or throws create's DomainError.
   * `taken`: its name is in the store. Returns its name key.
   */
  private async addCreate(
    reader: StoreReader,
    pending: Pending,
    credential: Credential,
    taken: boolean,
  ): Promise<string> {
    const { namespace, name } = credential;
    const key = nameKey(namespace, name);
    if (taken || pending.created.has(key)) {
      throw new DomainError(
        "already_exists",
        `credential ${displayName(namespace, name)} already exists`,
      );
    }
    await this.assertSourceUsable(reader, credential, undefined, pending);
    const stored = this.opts.stamp(credential);
    pending.created.set(key, stored);
    await this.demotePreviousDefault(reader, stored, pending);
    return key;
  }

  /**
   * Throws failed_precondition unless `next`'s source is usable once the write
   * lands: a source named like `next` is `next` itself, one named like the
   * credential before a rename no longer exists, and one the batch creates
   * counts as stored.
   */
  private async assertSourceUsable(
    reader: StoreReader,
    next: Credential,
    current?: Credential,
    pending?: Pending,
  ): Promise<void> {
    const source = referencedName(next);
    if (source === undefined) return;
    const after =
      source === next.name
        ? next
        : source === current?.name
          ? undefined
          : (pending?.created.get(nameKey(next.namespace, source)) ??
            (await findCredential(reader, next.namespace, source)));
    const problem = sourceCheck(next, after);
    if (problem !== undefined) throw new DomainError("failed_precondition", problem);
  }

  /**
   * When `c` becomes its provider's default, the previous default (stored,
   * or created earlier in the batch) stops being one, in the same batch.
   */
  private async demotePreviousDefault(
    reader: StoreReader,
    c: Credential,
    pending: Pending,
  ): Promise<void> {
    if (!c.providerDefault) return;
    const key = defaultKey(c.namespace, c.provider);
    const previous =
      pending.defaults.get(key) ?? (await findDefault(reader, c.namespace, c.provider));
    pending.defaults.set(key, c);
    if (previous === undefined || previous.id === c.id) return;
    const demoted = this.opts.stamp({
      ...previous,
      providerDefault: false,
      updatedAt: timestampFromDate(this.opts.now()),
    });
    const own = nameKey(previous.namespace, previous.name);
    if (pending.created.get(own)?.id === previous.id) pending.created.set(own, demoted);
    else pending.demoted.set(previous.id, demoted);
  }

  /**
   * The batch's operations: demoted records first (their default index entry
   * is overwritten by the new default's, later in the same batch), then each
   * created record with its index entries.
   */
  private pendingOps(pending: Pending): WriteOp[] {
    const ops: WriteOp[] = [];
    const { sealer } = this.opts;
    for (const c of pending.demoted.values()) ops.push(sealRecord(sealer, c));
    for (const c of pending.created.values())
      ops.push(sealRecord(sealer, c), ...indexOps(undefined, c));
    return ops;
  }
}

/** failed_precondition when a role names `c` as its source; the message names the role. */
async function assertNotReferred(
  reader: StoreReader,
  c: Credential,
  action: string,
): Promise<void> {
  const prefix = referrerPrefix(c.namespace, c.name);
  const first = await reader.firstKey(prefix);
  if (first !== undefined) {
    const referrer = displayName(c.namespace, first.slice(prefix.length));
    throw new DomainError(
      "failed_precondition",
      `${displayName(c.namespace, c.name)} cannot be ${action}: role ${referrer} uses it as its source_credential`,
    );
  }
}

/**
 * What one write batch will store, so that each credential's checks see
 * those added before it in the same batch.
 */
class Pending {
  /** Credentials the batch creates, by name key, as they will be stored. */
  readonly created = new Map<string, Credential>();
  /** Stored credentials the batch rewrites (demoted defaults), by id. */
  readonly demoted = new Map<string, Credential>();
  /** The provider defaults the batch sets, by default key. */
  readonly defaults = new Map<string, Credential>();
}

function created(pending: Pending, key: string): CreateOutcome {
  const credential = pending.created.get(key);
  if (credential === undefined) throw new Error(`${key} vanished from its batch`);
  return { ok: true, credential };
}
