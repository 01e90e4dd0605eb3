import type { Credential } from "../../gen/credbroker/v1/credential_pb.js";
import type { CredentialStore } from "./credential-store.js";

/**
 * Credentials read on hot paths (SignRequest, IMDS, role sources), kept in
 * memory by namespace and name: a store read opens a sealed record. Exact
 * because every write goes through this daemon, which calls `clear()` after
 * each one (a write can change other records too: a demoted provider default).
 */
export class ReadCache {
  private readonly entries = new Map<string, Credential>();

  constructor(
    private readonly store: CredentialStore,
    private readonly max = 4096,
  ) {}

  /** Like CredentialStore.get: not_found when absent (absence is not cached). */
  async get(namespace: string, name: string): Promise<Credential> {
    const key = `${namespace}/${name}`;
    const hit = this.entries.get(key);
    if (hit !== undefined) return hit;
    const c = await this.store.get(namespace, name);
    if (this.entries.size >= this.max) this.entries.clear();
    this.entries.set(key, c);
    return c;
  }

  clear(): void {
    this.entries.clear();
  }
}
