import { createHmac } from "node:crypto";

/** A derived signing key and what goes with it into every signature; never the secret it came from. */
export interface SigningKey {
  key: Buffer;
  /**
   * x-amz-security-token of temporary credentials: it travels with every
   * signature, so it is kept with the key (docs/SECURITY.md, "In memory").
   */
  sessionToken: string | undefined;
}

/** One version of a credential's key material: a rotated secret comes with a new etag. */
export interface KeyOwner {
  id: string;
  etag: string;
}

/**
 * Derived SigV4 signing keys, cached per daemon (never module-level), so a
 * signature costs two hashes instead of six and needs no secret: the secret
 * is read only to derive a key for a new (credential version, date, region,
 * service). Keyed by the credential's id and etag, so a rotated secret never
 * signs with an old key, and `drop` forgets a credential at once when it
 * changes or goes away. Bounded: the oldest key goes first.
 */
export class SigningKeyCache {
  private readonly keys = new Map<string, SigningKey>();

  constructor(private readonly max = 4096) {}

  /** The key derived earlier for (owner, date, region, service), if any. */
  find(
    owner: KeyOwner,
    shortDate: string,
    region: string,
    service: string,
  ): SigningKey | undefined {
    return this.keys.get(cacheKey(owner, shortDate, region, service));
  }

  /** Derives the key and keeps it with the session token; the secret itself is not kept. */
  derive(
    owner: KeyOwner,
    material: { secretAccessKey: string; sessionToken?: string | undefined },
    shortDate: string,
    region: string,
    service: string,
  ): SigningKey {
    const entry: SigningKey = {
      key: deriveSigningKey(material.secretAccessKey, shortDate, region, service),
      sessionToken: material.sessionToken || undefined,
    };
    if (this.keys.size >= this.max) {
      const oldest = this.keys.keys().next().value;
      if (oldest !== undefined) this.keys.delete(oldest);
    }
    this.keys.set(cacheKey(owner, shortDate, region, service), entry);
    return entry;
  }

  /** Forgets every key of a credential (updated, disabled, deleted). */
  drop(credentialId: string): void {
    const prefix = `${credentialId}\0`;
    for (const k of this.keys.keys()) if (k.startsWith(prefix)) this.keys.delete(k);
  }

  /** Forgets every key (a master key retirement: nothing derived before it stays). */
  clear(): void {
    this.keys.clear();
  }

  get size(): number {
    return this.keys.size;
  }
}

function cacheKey(owner: KeyOwner, shortDate: string, region: string, service: string): string {
  // The region's length makes the split between region and service unambiguous, whatever they hold.
  return `${owner.id}\0${owner.etag}\0${shortDate}\0${region.length}:${region}\0${service}`;
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
