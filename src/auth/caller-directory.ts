import { hash, timingSafeEqual } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { type Caller, CallerRole, CallerSchema } from "../../gen/credbroker/v1/caller_pb.js";
import { isDomainError } from "../core/errors.js";
import type { CallerStore } from "../store/caller-store.js";
import { StoreTrust } from "../store/store-trust.js";

/** SHA-256 of a token, hex: what the store keeps instead of the token. */
export function tokenHash(token: string): string {
  return hash("sha256", token, "hex");
}

/** The bootstrap admin, whose token is admin.token in the data dir. */
export const BOOTSTRAP_ADMIN = "admin";

/**
 * Who a bearer token (or a verified client certificate) is. The admin token
 * is compared as a fixed-length hash with timingSafeEqual; other callers are
 * found by their token's hash (a lookup that never compares token bytes).
 * Disabled or expired callers are nobody. Lookups are cached; `forget()`
 * after every caller write (with etcd, other daemons' too, through the store
 * watch). While `trust` says changes may go unseen, lookups go to the store,
 * and a cached answer serves only when the store cannot be reached, within
 * the stale limit (store-trust.ts), as the read cache does.
 */
export class CallerDirectory {
  private readonly adminHash: Buffer;
  private readonly cache = new Map<string, Caller | null>();
  private readonly bySubject = new Map<string, Caller | null>();
  private readonly byName = new Map<string, Caller | null>();
  /** Bumped by forget(): a lookup that started before a write does not cache its answer. */
  private generation = 0;
  private readonly admin = create(CallerSchema, {
    name: BOOTSTRAP_ADMIN,
    role: CallerRole.ADMIN,
    enabled: true,
  });

  constructor(
    private readonly store: CallerStore,
    adminToken: string,
    private readonly now: () => Date,
    private readonly trust = StoreTrust.always(),
  ) {
    this.adminHash = Buffer.from(tokenHash(adminToken), "hex");
    trust.onRegain(() => this.forget());
  }

  async resolve(token: string): Promise<Caller | undefined> {
    const hash = tokenHash(token);
    if (timingSafeEqual(Buffer.from(hash, "hex"), this.adminHash)) return this.admin;
    const caller = await this.lookup(
      this.cache,
      hash,
      async () => (await this.store.callerByTokenHash(hash)) ?? null,
    );
    return this.usable(caller);
  }

  /**
   * The caller whose `certificate_subject` is `subject` (a client
   * certificate the listener verified; format: api/peer-certificate.ts).
   * An empty subject is nobody, and so is a subject two callers share: a
   * certificate must name one caller, never whichever the store lists first.
   */
  async callerByCertificateSubject(subject: string): Promise<Caller | undefined> {
    if (subject === "") return undefined;
    const caller = await this.lookup(this.bySubject, subject, async () => {
      const matches = (await this.store.listCallers()).filter(
        (c) => c.certificateSubject === subject,
      );
      return matches.length === 1 ? (matches[0] ?? null) : null;
    });
    return this.usable(caller);
  }

  /** The caller named `name`, if it exists and is usable (container bindings re-check their creator). */
  async callerNamed(name: string): Promise<Caller | undefined> {
    if (name === BOOTSTRAP_ADMIN) return this.admin;
    const caller = await this.lookup(this.byName, name, async () => {
      try {
        return await this.store.getCaller(name);
      } catch (err) {
        if (isDomainError(err, "not_found")) return null;
        throw err;
      }
    });
    return this.usable(caller);
  }

  forget(): void {
    this.generation++;
    this.cache.clear();
    this.bySubject.clear();
    this.byName.clear();
  }

  /** The cached answer while trusted, else the store's (the cached one if it cannot be reached). */
  private async lookup(
    cache: Map<string, Caller | null>,
    key: string,
    read: () => Promise<Caller | null>,
  ): Promise<Caller | null> {
    const cached = cache.get(key);
    if (cached !== undefined && this.trust.trusted) return cached;
    const instead = this.trust.instead(cached);
    if (instead !== undefined) return instead;
    const generation = this.generation;
    let caller: Caller | null;
    try {
      caller = await read();
    } catch (err) {
      return this.trust.stale(cached, err);
    }
    if (cache.size >= 4096) cache.clear();
    if (generation === this.generation) cache.set(key, caller);
    return caller;
  }

  /** Disabled or expired callers are nobody. */
  private usable(caller: Caller | null): Caller | undefined {
    if (caller === null || caller.enabled === false) return undefined;
    if (caller.expiresAt !== undefined && timestampDate(caller.expiresAt) <= this.now())
      return undefined;
    return caller;
  }
}
