import { createCipheriv, createDecipheriv, createHash, hkdfSync } from "node:crypto";
import { DomainError } from "../core/errors.js";
import { RandomPool } from "./random-pool.js";

/**
 * AES-256-GCM sealing of stored records.
 *
 * Envelope: version (1 byte, 0x01) | key id (8 bytes) | nonce (12) | ciphertext | tag (16).
 * The record's storage key is the additional authenticated data, so a record
 * copied or moved under another key fails to open (threat: an attacker with
 * write access to the data dir swapping records between credentials).
 */
const VERSION = 0x01;
const KEY_ID_BYTES = 8;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + KEY_ID_BYTES + NONCE_BYTES;

export const MASTER_KEY_BYTES = 32;

/**
 * A record sealed under a key that is not loaded: data_loss, as the store
 * cannot tell it from a damaged one, unless it knows better (etcd-store.ts:
 * a fleet moved to a key this daemon does not hold).
 */
export class KeyNotLoaded extends DomainError {
  constructor(message: string) {
    super("data_loss", message);
  }
}

/** A data key derived from a master key, named by a fingerprint of the master key. */
export interface DataKey {
  /** Hex, 16 characters: safe to log, reveals nothing about the key. */
  readonly id: string;
  readonly key: Buffer;
}

/** Derives the record-sealing key and its id from a 32-byte master key. */
export function deriveDataKey(master: Uint8Array): DataKey {
  if (master.length !== MASTER_KEY_BYTES) {
    throw new DomainError("invalid_argument", `master key must be ${MASTER_KEY_BYTES} bytes`);
  }
  const key = Buffer.from(hkdfSync("sha256", master, Buffer.alloc(0), "credbroker/v1 records", 32));
  const id = createHash("sha256")
    .update("credbroker/v1 key id\0")
    .update(master)
    .digest()
    .subarray(0, KEY_ID_BYTES)
    .toString("hex");
  return { id, key };
}

/**
 * Seals under the current key (the first one given, unless `sealUnder` chose
 * another loaded key); opens with whichever loaded key the record names. The
 * others are previous keys, loaded during a master key rotation
 * (docs/ARCHITECTURE.md, "Master key rotation") to open what is not
 * re-sealed yet, and forgotten by `retirePrevious` once nothing needs them.
 */
export class Sealer {
  private readonly byId: Map<string, DataKey>;
  private current: DataKey;
  private readonly nonces = new RandomPool();

  constructor(keys: readonly [DataKey, ...DataKey[]]) {
    this.current = keys[0];
    this.byId = new Map(keys.map((k) => [k.id, k]));
  }

  get currentKeyId(): string {
    return this.current.id;
  }

  /** The ids of the loaded keys that only open records (not yet retired). */
  get previousKeyIds(): string[] {
    return [...this.byId.keys()].filter((id) => id !== this.currentKeyId);
  }

  /**
   * Seals under `keyId`, a loaded key, from now on. On etcd the fleet seals
   * under the key its keycheck is under, which a rotation started by another
   * daemon can change (etcd-keys.ts).
   */
  sealUnder(keyId: string): void {
    const key = this.byId.get(keyId);
    if (key === undefined) throw new Error(`key id ${keyId} is not loaded`);
    this.current = key;
  }

  /** Whether a key with this id is loaded. */
  has(keyId: string): boolean {
    return this.byId.has(keyId);
  }

  /** Whether `sealed` is an envelope under the current key (nothing to re-seal). */
  isCurrent(sealed: Uint8Array): boolean {
    return Sealer.keyIdOf(sealed) === this.currentKeyId;
  }

  /**
   * Opens a record with whichever key sealed it and seals the same plaintext
   * under the current key, with the same additional data (its storage key):
   * the record stays bound to where it lives. data_loss as `open`.
   */
  reseal(sealed: Uint8Array, aad: string): Buffer {
    return this.seal(this.open(sealed, aad), aad);
  }

  /**
   * Forgets every previous key: from now on only the current key opens
   * records. The caller has verified that no record needs them. Returns their ids.
   */
  retirePrevious(): string[] {
    const retired = this.previousKeyIds;
    for (const id of retired) {
      // A Buffer can be wiped, unlike a string: no copy of the key stays in the heap.
      this.byId.get(id)?.key.fill(0);
      this.byId.delete(id);
    }
    return retired;
  }

  /** Seals under the current key, or under `keyId` (a loaded key). */
  seal(plaintext: Uint8Array, aad: string, keyId?: string): Buffer {
    const key = keyId === undefined ? this.current : this.byId.get(keyId);
    if (key === undefined) throw new Error(`key id ${keyId} is not loaded`);
    const nonce = this.nonces.take(NONCE_BYTES);
    const cipher = createCipheriv("aes-256-gcm", key.key, nonce);
    cipher.setAAD(Buffer.from(aad, "utf8"));
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return Buffer.concat([
      Buffer.of(VERSION),
      Buffer.from(key.id, "hex"),
      nonce,
      body,
      cipher.getAuthTag(),
    ]);
  }

  /** The key id a sealed record names, or undefined when it is not an envelope. */
  static keyIdOf(sealed: Uint8Array): string | undefined {
    if (sealed.length < HEADER_BYTES + TAG_BYTES || sealed[0] !== VERSION) return undefined;
    return Buffer.from(sealed.subarray(1, 1 + KEY_ID_BYTES)).toString("hex");
  }

  /** Throws data_loss when the record is damaged, moved, or sealed under an unknown key. */
  open(sealed: Uint8Array, aad: string): Buffer {
    const keyId = Sealer.keyIdOf(sealed);
    if (keyId === undefined) {
      throw new DomainError("data_loss", `record ${aad} is damaged: not a sealed envelope`);
    }
    const key = this.byId.get(keyId);
    if (key === undefined) {
      throw new KeyNotLoaded(
        `record ${aad} is sealed under key ${keyId}, which is not loaded (loaded: ${[...this.byId.keys()].join(", ")})`,
      );
    }
    const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
    const nonce = buf.subarray(1 + KEY_ID_BYTES, HEADER_BYTES);
    const body = buf.subarray(HEADER_BYTES, buf.length - TAG_BYTES);
    const tag = buf.subarray(buf.length - TAG_BYTES);
    try {
      const decipher = createDecipheriv("aes-256-gcm", key.key, nonce);
      decipher.setAAD(Buffer.from(aad, "utf8"));
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(body), decipher.final()]);
    } catch (cause) {
      throw new DomainError(
        "data_loss",
        `record ${aad} failed authentication: damaged, or moved from another key`,
        { cause },
      );
    }
  }
}
