import type { Credential } from "../../gen/credbroker/v1/credential_pb.js";
import { isDomainError } from "../core/errors.js";
import { redact } from "../core/redact.js";
import type { CredentialStore } from "./credential-store.js";
import { StoreTrust } from "./store-trust.js";

/** What hot paths read credentials through: public fields from memory, secrets only on demand. */
export type CredentialReads = Pick<ReadCache, "get" | "getWithSecrets">;

/**
 * Credentials read on hot paths (SignRequest, IMDS, role sources), kept in
 * memory by namespace and name WITHOUT their secrets: each entry is the
 * redacted copy every read RPC returns (policy fields, the access key id), so
 * no long-lived structure holds a secret (docs/SECURITY.md, "In memory").
 * Bounded: the least recently used entry goes first. Exact because every
 * written credential is `forget(id)`-ten: this daemon's writes, and with etcd
 * the other daemons' through the store watch. A write can also demote
 * another credential (the provider default), so every forget drops the
 * cached provider defaults too. While `trust` says changes may go unseen,
 * reads go to the store, and a cached copy answers only when the store
 * cannot be reached, within the stale limit (store-trust.ts).
 */
export class ReadCache {
  private readonly entries = new Map<string, Credential>();
  /** Cached entries by credential id, and the keys of cached provider defaults. */
  private readonly keyOfId = new Map<string, string>();
  private readonly defaults = new Set<string>();
  /**
   * Bumped by every forget and clear. A read that began before one must not
   * cache a record it may have read before the write: `recent` holds the
   * last RECENT forgotten ids with the generation that forgot them.
   */
  private generation = 0;
  private readonly recent: { generation: number; id: string }[] = [];
  /** Generations up to this one were cleared wholesale (or fell out of `recent`). */
  private clearedAt = 0;

  constructor(
    private readonly store: Pick<CredentialStore, "get">,
    private readonly max = 4096,
    private readonly trust = StoreTrust.always(),
  ) {
    // Changes made while the watch was down were not seen.
    trust.onRegain(() => this.clear());
  }

  /** Like CredentialStore.get, but redacted: not_found when absent (absence is not cached). */
  async get(namespace: string, name: string): Promise<Credential> {
    const key = `${namespace}/${name}`;
    const hit = this.entries.get(key);
    if (hit !== undefined && this.trust.trusted) {
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit;
    }
    return this.trust.instead(hit) ?? this.read(key, namespace, name);
  }

  /**
   * The whole record, secrets included, straight from the store (it opens the
   * sealed record) and never cached: for the moment a secret is needed, to
   * derive a signing key or call STS. Its redacted copy refreshes the cache.
   */
  async getWithSecrets(namespace: string, name: string): Promise<Credential> {
    const key = `${namespace}/${name}`;
    const generation = this.generation;
    const c = await this.store.get(namespace, name).catch((err: unknown) => {
      throw this.forgetAbsent(key, err);
    });
    this.remember(key, generation, c);
    return c;
  }

  /** The credential `id` was written or deleted: drop it, and the cached provider defaults. */
  forget(id: string): void {
    this.generation++;
    this.recent.push({ generation: this.generation, id });
    if (this.recent.length > RECENT) {
      this.clearedAt = (this.recent.shift() as { generation: number }).generation;
    }
    const key = this.keyOfId.get(id);
    if (key !== undefined) this.drop(key);
    for (const k of this.defaults) this.drop(k);
  }

  clear(): void {
    this.entries.clear();
    this.keyOfId.clear();
    this.defaults.clear();
    this.recent.length = 0;
    this.generation++;
    this.clearedAt = this.generation;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Every cached record, for tests that prove no secret is kept. */
  values(): IterableIterator<Credential> {
    return this.entries.values();
  }

  /** From the store; when it cannot be reached, the cached copy if the stale limit allows. */
  private async read(key: string, namespace: string, name: string): Promise<Credential> {
    const generation = this.generation;
    let c: Credential;
    try {
      c = await this.store.get(namespace, name);
    } catch (err) {
      return this.trust.stale(this.entries.get(key), this.forgetAbsent(key, err));
    }
    return this.remember(key, generation, c);
  }

  /** A record found gone must never be served later as a stale copy; returns `err`. */
  private forgetAbsent(key: string, err: unknown): unknown {
    if (isDomainError(err, "not_found")) this.drop(key);
    return err;
  }

  private remember(key: string, generation: number, c: Credential): Credential {
    const kept = redact(c);
    if (this.forgottenSince(generation, kept)) return kept;
    this.drop(key);
    if (this.entries.size >= this.max) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.drop(oldest);
    }
    this.entries.set(key, kept);
    this.keyOfId.set(kept.id, key);
    if (kept.providerDefault) this.defaults.add(key);
    return kept;
  }

  /** Whether `c`, read by a read begun at `generation`, may have been written since. */
  private forgottenSince(generation: number, c: Credential): boolean {
    if (generation === this.generation) return false;
    // A default may have been demoted by any write; a wholesale clear covers everything.
    if (c.providerDefault || generation < this.clearedAt) return true;
    for (let i = this.recent.length - 1; i >= 0; i--) {
      const entry = this.recent[i] as { generation: number; id: string };
      if (entry.generation <= generation) return false;
      if (entry.id === c.id) return true;
    }
    return false;
  }

  private drop(key: string): void {
    const c = this.entries.get(key);
    if (c === undefined) return;
    this.entries.delete(key);
    this.defaults.delete(key);
    if (this.keyOfId.get(c.id) === key) this.keyOfId.delete(c.id);
  }
}

/** Forgotten ids remembered for reads in flight; a read older than that many writes is not cached. */
const RECENT = 1024;
