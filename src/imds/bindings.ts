import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { DomainError } from "../core/errors.js";

export interface Binding {
  id: string;
  namespace: string;
  credential: string;
  expiresAt: Date;
}

interface Stored extends Binding {
  tokenHash: Buffer;
  /** The caller that made it. */
  owner: string;
}

/** The container listener's path: GET /v1/credentials/<binding id>. */
export const CONTAINER_PATH = "/v1/credentials/";
export const MIN_BINDING_SECONDS = 60;
export const MAX_BINDING_SECONDS = 43200;
export const DEFAULT_BINDING_SECONDS = 3600;

/**
 * Container-credentials bindings, in memory: an id in the URL and a random
 * token in the Authorization header, kept only as a hash and compared in
 * constant time. Bounded: creating past the bound fails (resource_exhausted)
 * rather than evicting someone's live binding.
 */
export class BindingTable {
  private readonly bindings = new Map<string, Stored>();

  constructor(
    private readonly now: () => Date,
    private readonly max = 10_000,
  ) {}

  create(
    namespace: string,
    credential: string,
    ttlSeconds: number,
    owner: string,
  ): Binding & { token: string } {
    this.sweep();
    if (this.bindings.size >= this.max) {
      throw new DomainError("resource_exhausted", `at most ${this.max} container bindings at once`);
    }
    const id = randomBytes(12).toString("hex");
    const token = randomBytes(32).toString("base64url");
    const binding: Stored = {
      id,
      namespace,
      credential,
      expiresAt: new Date(this.now().getTime() + ttlSeconds * 1000),
      tokenHash: hash(token),
      owner,
    };
    this.bindings.set(id, binding);
    return { id, namespace, credential, expiresAt: binding.expiresAt, token };
  }

  /** The live binding `id` when `token` is its token; undefined otherwise (which one failed is not said). */
  authorize(id: string, token: string): Binding | undefined {
    const b = this.bindings.get(id);
    const ok = b !== undefined && timingSafeEqual(hash(token), b.tokenHash);
    if (b === undefined || !ok || b.expiresAt <= this.now()) return undefined;
    return b;
  }

  /** Ends binding `id` (only when `owner`, if given, made it); false when there is no such binding. */
  delete(id: string, owner?: string): boolean {
    const b = this.bindings.get(id);
    if (b === undefined || (owner !== undefined && b.owner !== owner)) return false;
    return this.bindings.delete(id);
  }

  get size(): number {
    return this.bindings.size;
  }

  private sweep(): void {
    const now = this.now();
    for (const [id, b] of this.bindings) if (b.expiresAt <= now) this.bindings.delete(id);
  }
}

function hash(token: string): Buffer {
  return createHash("sha256").update(token).digest();
}
