import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { DomainError } from "../core/errors.js";

/** The protocol a binding is served with (what the child's SDK speaks). */
export type BindingProtocolName = "ecs-container" | "azure-app-service" | "gce-metadata";

export interface Binding {
  id: string;
  protocol: BindingProtocolName;
  namespace: string;
  credential: string;
  /** The bound credential's id: one re-created under the same name is not served. */
  credentialId: string;
  /** The caller that made it, by name and creation time (a caller re-created under its name is another). */
  creator: Creator;
  createdAt: Date;
  expiresAt: Date;
}

export interface Creator {
  name: string;
  /** Unset for the bootstrap admin, which no store record holds. */
  createdAtMs: number | undefined;
}

interface Stored extends Binding {
  tokenHash: Buffer;
}

/** The container listener's path: GET /v1/credentials/<binding id>. */
export const CONTAINER_PATH = "/v1/credentials/";
/** The App Service managed-identity path on the container listener: GET /v1/azure-identity/<binding id>?resource=R. */
export const AZURE_IDENTITY_PATH = "/v1/azure-identity/";
export const MIN_BINDING_SECONDS = 60;
export const MAX_BINDING_SECONDS = 43200;
export const DEFAULT_BINDING_SECONDS = 3600;
/** A binding id: 96 random bits in hex. */
export const BINDING_ID = /^[0-9a-f]{24}$/;

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
    credential: { name: string; id: string },
    ttlSeconds: number,
    creator: Creator,
    protocol: BindingProtocolName = "ecs-container",
  ): Binding & { token: string } {
    this.sweep();
    if (this.bindings.size >= this.max) {
      throw new DomainError("resource_exhausted", `at most ${this.max} container bindings at once`);
    }
    const id = randomBytes(12).toString("hex");
    const token = randomBytes(32).toString("base64url");
    const createdAt = this.now();
    const binding: Binding = {
      id,
      protocol,
      namespace,
      credential: credential.name,
      credentialId: credential.id,
      creator,
      createdAt,
      expiresAt: new Date(createdAt.getTime() + ttlSeconds * 1000),
    };
    this.bindings.set(id, { ...binding, tokenHash: hash(token) });
    return { ...binding, token };
  }

  /** The live binding `id` when `token` is its token; undefined otherwise (which one failed is not said). */
  authorize(id: string, token: string): Binding | undefined {
    const b = this.bindings.get(id);
    const ok = b !== undefined && timingSafeEqual(hash(token), b.tokenHash);
    if (b === undefined || !ok || b.expiresAt <= this.now()) return undefined;
    return publicPart(b);
  }

  /** The live (unexpired) binding `id`, without checking any token; undefined otherwise. */
  live(id: string): Binding | undefined {
    const b = this.bindings.get(id);
    if (b === undefined || b.expiresAt <= this.now()) return undefined;
    return publicPart(b);
  }

  /** Ends binding `id` (only when `creator`, if given, made it); false when there is no such binding. */
  delete(id: string, creator?: Creator): boolean {
    const b = this.bindings.get(id);
    if (b === undefined || (creator !== undefined && !sameCreator(b.creator, creator)))
      return false;
    return this.bindings.delete(id);
  }

  /**
   * Up to `limit` live bindings with ids after `after` ("" for the first), in
   * id order, only those `creator` made when given; and whether more follow.
   */
  list(after: string, limit: number, creator?: Creator): { bindings: Binding[]; more: boolean } {
    this.sweep();
    const matching = [...this.bindings.values()]
      .filter((b) => b.id > after && (creator === undefined || sameCreator(b.creator, creator)))
      .sort((a, b) => (a.id < b.id ? -1 : 1));
    return { bindings: matching.slice(0, limit).map(publicPart), more: matching.length > limit };
  }

  get size(): number {
    return this.bindings.size;
  }

  private sweep(): void {
    const now = this.now();
    for (const [id, b] of this.bindings) if (b.expiresAt <= now) this.bindings.delete(id);
  }
}

export function sameCreator(a: Creator, b: Creator): boolean {
  return a.name === b.name && a.createdAtMs === b.createdAtMs;
}

/** A binding without its token hash. */
function publicPart({ tokenHash: _, ...binding }: Stored): Binding {
  return binding;
}

function hash(token: string): Buffer {
  return createHash("sha256").update(token).digest();
}
