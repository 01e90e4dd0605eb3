import { DomainError } from "../core/errors.js";
import { CALLER_PREFIX, recordKey } from "./keys.js";
import type { SealedEntry } from "./rotation.js";
import type { Sealer } from "./sealing.js";

/** What a store offers a master key rotation (LevelDB: level-store.ts; etcd: rotation-etcd.ts). */
export interface ResealableStore {
  /** Key ids records may still be sealed under; empty when no rotation is in progress. */
  draining(): Promise<readonly string[]>;
  /**
   * Makes the current key the one everything moves to. LevelDB did at open
   * (rotation.ts, openKeys); etcd moves the fleet to this daemon's master key.
   */
  begin(): Promise<void>;
  /** Up to `limit` sealed entries after `after` ("" = first), in key order; read only. */
  sealedBatch(after: string, limit: number): Promise<SealedEntry[]>;
  /**
   * Under the store's write serialization (so no write of a client can
   * fall between the read and the write): reads up to `limit` sealed
   * entries after `after`, re-seals those not under the current key, and
   * writes them in one synced batch.
   */
  resealBatch(
    after: string,
    limit: number,
  ): Promise<{ scanned: number; resealed: number; last: string | undefined }>;
  /** Deletes the rotation marker: nothing is under a previous key any more. */
  endRotation(): Promise<void>;
  /** The previous keys were forgotten (etcd: this daemon's member record says so). */
  retired(): Promise<void>;
}

export interface KeyStatus {
  /** What writes are sealed under. */
  currentKeyId: string;
  /** This daemon's own master key: on etcd, where `rotate` moves the fleet. */
  masterKeyId: string;
  previousKeyIds: string[];
  rotationInProgress: boolean;
  drainingKeyIds: string[];
}

export interface RotationProgress {
  currentKeyId: string;
  scanned: number;
  resealed: number;
  done: boolean;
}

export const DEFAULT_BATCH = 500;
export const MAX_BATCH = 5000;
/** How many record keys retirement names when some are still under a previous key. */
const NAMED = 5;

/**
 * Master key rotation over a store: re-sealing in batches while the daemon
 * serves, and retiring the previous keys once nothing needs them.
 */
export class KeyRotation {
  constructor(
    private readonly sealer: Sealer,
    private readonly store: ResealableStore,
    readonly masterKeyId = sealer.currentKeyId,
  ) {}

  async status(): Promise<KeyStatus> {
    const draining = [...(await this.store.draining())];
    return {
      currentKeyId: this.sealer.currentKeyId,
      masterKeyId: this.masterKeyId,
      previousKeyIds: this.sealer.previousKeyIds,
      rotationInProgress: draining.length > 0,
      drainingKeyIds: draining,
    };
  }

  /**
   * Re-seals every sealed record not under the current key, `batchSize` at
   * a time, yielding progress after each batch and once more, `done`, after
   * the marker is gone. Idempotent: a pass over records already re-sealed
   * writes nothing. Stopped between batches when `signal` aborts (the
   * caller went away); what was written stays, and a later call resumes.
   *
   * One pass suffices: every write meanwhile seals under the current key,
   * so a record behind the cursor cannot go back under a previous one. On
   * etcd the fleet is first moved to this daemon's master key (`begin`).
   */
  async *rotate(batchSize: number, signal?: AbortSignal): AsyncGenerator<RotationProgress> {
    const store = this.store;
    const limit = batchSize === 0 ? DEFAULT_BATCH : batchSize;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_BATCH) {
      throw new DomainError(
        "invalid_argument",
        `batch_size: 1 to ${MAX_BATCH} (0 means ${DEFAULT_BATCH})`,
      );
    }
    await store.begin();
    const progress = {
      currentKeyId: this.sealer.currentKeyId,
      scanned: 0,
      resealed: 0,
      done: false,
    };
    let after = "";
    for (;;) {
      signal?.throwIfAborted();
      const batch = await store.resealBatch(after, limit);
      progress.scanned += batch.scanned;
      progress.resealed += batch.resealed;
      if (batch.last === undefined || batch.scanned < limit) break;
      after = batch.last;
      yield { ...progress };
    }
    await store.endRotation();
    yield { ...progress, done: true };
  }

  /**
   * Checks every sealed record (read only, in batches) and, when none is
   * under a previous key and no rotation is in progress, forgets the
   * previous keys. failed_precondition otherwise, naming a few records
   * (keys, never contents). Returns the retired key ids.
   */
  async retire(): Promise<{ retired: string[]; checked: number }> {
    const store = this.store;
    if ((await store.draining()).length > 0) {
      throw new DomainError(
        "failed_precondition",
        `the master key rotation to key id ${this.sealer.currentKeyId} is not finished: run "credbroker key rotate" first`,
      );
    }
    let checked = 0;
    const behind: string[] = [];
    let after = "";
    for (;;) {
      const entries = await store.sealedBatch(after, MAX_BATCH);
      checked += entries.length;
      for (const e of entries) if (!this.sealer.isCurrent(e.value)) behind.push(e.key);
      const last = entries.at(-1);
      if (last === undefined || entries.length < MAX_BATCH) break;
      after = last.key;
    }
    if (behind.length > 0) {
      throw new DomainError(
        "failed_precondition",
        `${behind.length} record(s) are not sealed under the current key id ${this.sealer.currentKeyId} (${behind.slice(0, NAMED).join(", ")}${behind.length > NAMED ? ", …" : ""}): run "credbroker key rotate"`,
      );
    }
    const retired = this.sealer.retirePrevious();
    await store.retired();
    return { retired, checked };
  }

  /** How many credentials and callers the store holds: one read-only pass over the sealed records' keys, in batches. */
  async recordCounts(): Promise<{ credentials: number; callers: number }> {
    const counts = { credentials: 0, callers: 0 };
    const credentialPrefix = recordKey("");
    let after = "";
    for (;;) {
      const entries = await this.store.sealedBatch(after, MAX_BATCH);
      for (const e of entries) {
        if (e.key.startsWith(credentialPrefix)) counts.credentials++;
        else if (e.key.startsWith(CALLER_PREFIX)) counts.callers++;
      }
      const last = entries.at(-1);
      if (last === undefined || entries.length < MAX_BATCH) break;
      after = last.key;
    }
    return counts;
  }
}
