import { createHmac } from "node:crypto";

/**
 * Derived SigV4 signing keys, cached per daemon (never module-level), so a
 * signature costs two hashes instead of six. Keyed by the credential's id and
 * etag: a rotated secret comes with a new etag, so a stale key is never used,
 * and `drop` forgets a credential at once when it changes or goes away.
 */
export class SigningKeyCache {
  private readonly keys = new Map<string, Buffer>();

  constructor(private readonly max = 4096) {}

  /** The key for (date, region, service), derived on first use. */
  get(
    credential: { id: string; etag: string },
    secretAccessKey: string,
    shortDate: string,
    region: string,
    service: string,
  ): Buffer {
    const cacheKey = `${credential.id}\0${credential.etag}\0${shortDate}\0${region}\0${service}`;
    const hit = this.keys.get(cacheKey);
    if (hit !== undefined) return hit;
    const key = deriveSigningKey(secretAccessKey, shortDate, region, service);
    if (this.keys.size >= this.max) {
      const oldest = this.keys.keys().next().value;
      if (oldest !== undefined) this.keys.delete(oldest);
    }
    this.keys.set(cacheKey, key);
    return key;
  }

  /** Forgets every key of a credential (updated, disabled, deleted). */
  drop(credentialId: string): void {
    for (const k of this.keys.keys()) if (k.startsWith(`${credentialId}\0`)) this.keys.delete(k);
  }

  get size(): number {
    return this.keys.size;
  }
}

/** kSigning = HMAC chain over date, region, service, "aws4_request" (SigV4 §"derive a signing key"). */
export function deriveSigningKey(
  secretAccessKey: string,
  shortDate: string,
  region: string,
  service: string,
): Buffer {
  let key: Buffer | string = `AWS4${secretAccessKey}`;
  for (const part of [shortDate, region, service, "aws4_request"]) {
    key = createHmac("sha256", key).update(part).digest();
  }
  return key as Buffer;
}
