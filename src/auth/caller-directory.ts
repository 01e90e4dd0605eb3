import { createHash, timingSafeEqual } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { type Caller, CallerRole, CallerSchema } from "../../gen/credbroker/v1/caller_pb.js";
import type { CallerStore } from "../store/caller-store.js";

/** SHA-256 of a token, hex: what the store keeps instead of the token. */
export function tokenHash(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** The bootstrap admin, whose token is admin.token in the data dir. */
export const BOOTSTRAP_ADMIN = "admin";

/**
 * Who a bearer token (or a verified client certificate) is. The admin token
 * is compared as a fixed-length hash with timingSafeEqual; other callers are
 * found by their token's hash (a lookup that never compares token bytes).
 * Disabled or expired callers are nobody. Lookups are cached; `forget()`
 * after every caller write.
 */
export class CallerDirectory {
  private readonly adminHash: Buffer;
  private readonly cache = new Map<string, Caller | null>();
  private readonly bySubject = new Map<string, Caller | null>();
  /** Bumped by forget(): a lookup that started before a write does not cache its answer. */
  private generation = 0;
  /** Set by distrust(): lookups go to the store and nothing is cached. */
  private distrusted = false;
  private readonly admin = create(CallerSchema, {
    name: BOOTSTRAP_ADMIN,
    role: CallerRole.ADMIN,
    enabled: true,
  });

  constructor(
    private readonly store: CallerStore,
    adminToken: string,
    private readonly now: () => Date,
  ) {
    this.adminHash = Buffer.from(tokenHash(adminToken), "hex");
  }

  async resolve(token: string): Promise<Caller | undefined> {
    const hash = tokenHash(token);
    if (timingSafeEqual(Buffer.from(hash, "hex"), this.adminHash)) return this.admin;
    let caller = this.cache.get(hash);
    if (caller === undefined) {
      const generation = this.generation;
      caller = (await this.store.callerByTokenHash(hash)) ?? null;
      if (this.cache.size >= 4096) this.cache.clear();
      if (generation === this.generation && !this.distrusted) this.cache.set(hash, caller);
    }
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
    let caller = this.bySubject.get(subject);
    if (caller === undefined) {
      const generation = this.generation;
      const matches = (await this.store.listCallers()).filter(
        (c) => c.certificateSubject === subject,
      );
      caller = matches.length === 1 ? (matches[0] ?? null) : null;
      if (this.bySubject.size >= 4096) this.bySubject.clear();
      if (generation === this.generation && !this.distrusted) this.bySubject.set(subject, caller);
    }
    return this.usable(caller);
  }

  forget(): void {
    this.generation++;
    this.cache.clear();
    this.bySubject.clear();
  }

  /** Stops caching until `trust()`: caller changes made elsewhere cannot be seen meanwhile. */
  distrust(): void {
    this.distrusted = true;
    this.forget();
  }

  trust(): void {
    this.distrusted = false;
    this.forget();
  }

  /** Disabled or expired callers are nobody. */
  private usable(caller: Caller | null): Caller | undefined {
    if (caller === null || caller.enabled === false) return undefined;
    if (caller.expiresAt !== undefined && timestampDate(caller.expiresAt) <= this.now())
      return undefined;
    return caller;
  }
}
