import { createHash, timingSafeEqual } from "node:crypto";

/** SHA-256 of a token: what the daemon keeps instead of the token. */
export function hashToken(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

/**
 * Accepts a bearer token when its hash equals one of the known hashes.
 * Comparing fixed-length hashes with timingSafeEqual keeps the comparison
 * constant-time whatever the presented token's length (threat: timing oracle).
 */
export class TokenVerifier {
  constructor(private readonly hashes: readonly Buffer[]) {}

  verify(token: string): boolean {
    const presented = hashToken(token);
    let ok = false;
    for (const known of this.hashes) ok = timingSafeEqual(presented, known) || ok;
    return ok;
  }
}
