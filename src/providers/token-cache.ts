import { DomainError } from "../core/errors.js";
import type { AccessToken } from "./provider.js";

/** A cached token is replaced this long before it expires. */
export const REFRESH_MARGIN_MS = 5 * 60_000;
/** Distinct scope sets cached per credential; the oldest goes first. */
const MAX_SCOPE_SETS = 32;

type Entry = { token: AccessToken } | { pending: Promise<AccessToken> };

/**
 * Access tokens by credential id, then by a key the caller makes (its etag
 * and scope set): kept until REFRESH_MARGIN_MS before they expire, one mint
 * in flight per key, at most 32 keys per credential. A token minted while
 * its credential was forgotten (or its entry replaced) is returned, not kept.
 */
export class TokenCache {
  private readonly byCredential = new Map<string, Map<string, Entry>>();

  constructor(private readonly now: () => Date) {}

  async get(
    credentialId: string,
    key: string,
    mint: () => Promise<AccessToken>,
  ): Promise<AccessToken> {
    let entries = this.byCredential.get(credentialId);
    const hit = entries?.get(key);
    if (hit !== undefined) {
      if ("pending" in hit) return hit.pending;
      if (hit.token.expiresAt.getTime() - REFRESH_MARGIN_MS > this.now().getTime()) {
        return hit.token;
      }
    }
    if (entries === undefined) {
      entries = new Map();
      this.byCredential.set(credentialId, entries);
    }
    const mine = entries;
    const pending = mint();
    mine.delete(key);
    mine.set(key, { pending });
    while (mine.size > MAX_SCOPE_SETS) {
      const oldest = mine.keys().next().value;
      if (oldest === undefined) break;
      mine.delete(oldest);
    }
    const stillMine = () => {
      const current = mine.get(key);
      return current !== undefined && "pending" in current && current.pending === pending;
    };
    try {
      const token = await pending;
      if (stillMine() && this.byCredential.get(credentialId) === mine) mine.set(key, { token });
      return token;
    } catch (err) {
      if (stillMine()) mine.delete(key);
      throw err;
    }
  }

  /** Drops every token of the credential (a write, a delete, the store watch). */
  forget(credentialId: string): void {
    this.byCredential.delete(credentialId);
  }
}

/**
 * The scopes to ask for: those requested (sorted, deduplicated), each one of
 * `allowed` (the credential's token_scopes, or the provider's default when
 * it lists none; permission_denied otherwise); none requested means all.
 */
export function scopesWithin(
  allowed: readonly string[],
  requested: readonly string[],
  who: string,
): string[] {
  if (requested.length === 0) return [...new Set(allowed)].sort();
  for (const scope of requested) {
    if (!allowed.includes(scope)) {
      throw new DomainError(
        "permission_denied",
        `token_scopes: ${who} does not allow a requested scope`,
      );
    }
  }
  return [...new Set(requested)].sort();
}
