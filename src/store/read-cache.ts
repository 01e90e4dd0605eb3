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
 * write calls `clear()` (a write can change other records too: a demoted
 * provider default): this daemon's own, and with etcd the other daemons'
 * through the store watch. While `trust` says changes may go unseen, reads
 * go to the store, and a cached copy answers only when the store cannot be
 * reached, within the stale limit (store-trust.ts).
 */
export class ReadCache {
  private readonly entries = new Map<string, Credential>();
  /** Bumped by clear(): a read begun before a write must not cache what it read. */
  private generation = 0;

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

  clear(): void {
    this.entries.clear();
    this.generation++;
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
    if (isDomainError(err, "not_found")) this.entries.delete(key);
    return err;
  }

  private remember(key: string, generation: number, c: Credential): Credential {
    const kept = redact(c);
    if (generation !== this.generation) return kept;
    this.entries.delete(key);
    if (this.entries.size >= this.max) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.set(key, kept);
    return kept;
  }
}
