import type { Credential } from "../../gen/credbroker/v1/credential_pb.js";
import { redact } from "../core/redact.js";
import type { CredentialStore } from "./credential-store.js";

/** What hot paths read credentials through: public fields from memory, secrets only on demand. */
export type CredentialReads = Pick<ReadCache, "get" | "getWithSecrets">;

/**
 * Credentials read on hot paths (SignRequest, IMDS, role sources), kept in
 * memory by namespace and name WITHOUT their secrets: each entry is the
 * redacted copy every read RPC returns (policy fields, the access key id), so
 * no long-lived structure holds a secret (docs/SECURITY.md, "In memory").
 * Bounded: the least recently used entry goes first. Exact because every
 * write goes through this daemon, which calls `clear()` after each one (a
 * write can change other records too: a demoted provider default).
 */
export class ReadCache {
  private readonly entries = new Map<string, Credential>();
  /** Bumped by clear(): a read begun before a write must not cache what it read. */
  private generation = 0;
  /** Set by distrust(): nothing is kept, every read goes to the store. */
  private distrusted = false;

  constructor(
    private readonly store: Pick<CredentialStore, "get">,
    private readonly max = 4096,
  ) {}

  /** Like CredentialStore.get, but redacted: not_found when absent (absence is not cached). */
  async get(namespace: string, name: string): Promise<Credential> {
    const key = `${namespace}/${name}`;
    const hit = this.entries.get(key);
    if (hit !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit;
    }
    const generation = this.generation;
    return this.remember(key, generation, await this.store.get(namespace, name));
  }

  /**
   * The whole record, secrets included, straight from the store (it opens the
   * sealed record) and never cached: for the moment a secret is needed, to
   * derive a signing key or call STS. Its redacted copy refreshes the cache.
   */
  async getWithSecrets(namespace: string, name: string): Promise<Credential> {
    const generation = this.generation;
    const c = await this.store.get(namespace, name);
    this.remember(`${namespace}/${name}`, generation, c);
    return c;
  }

  clear(): void {
    this.entries.clear();
    this.generation++;
  }

  /**
   * Stops caching until `trust()`: for while changes made elsewhere (other
   * daemons on one etcd) cannot be seen, so every read goes to the store.
   */
  distrust(): void {
    this.distrusted = true;
    this.clear();
  }

  /** Caches again; what was read while distrusted is not kept (a read may straddle the moment). */
  trust(): void {
    this.distrusted = false;
    this.clear();
  }

  get size(): number {
    return this.entries.size;
  }

  /** Every cached record, for tests that prove no secret is kept. */
  values(): IterableIterator<Credential> {
    return this.entries.values();
  }

  private remember(key: string, generation: number, c: Credential): Credential {
    const kept = redact(c);
    if (generation !== this.generation || this.distrusted) return kept;
    this.entries.delete(key);
    if (this.entries.size >= this.max) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.set(key, kept);
    return kept;
  }
}
