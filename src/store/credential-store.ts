import type { Credential, Provider } from "../../gen/credbroker/v1/credential_pb.js";
import type { DomainError } from "../core/errors.js";

/** One page of a listing, in name order. */
export interface ListQuery {
  namespace: string;
  /** PROVIDER_UNSPECIFIED lists every provider. */
  provider: Provider;
  /** How many at most; the store may return fewer only on the last page. */
  limit: number;
  /** Start after this name ("" from the first). */
  after: string;
}

/** One credential of a createMany: what was stored, or why it was not. */
export type CreateOutcome =
  | { ok: true; credential: Credential }
  | { ok: false; error: DomainError };

export interface CreateManyResult {
  /** One per credential given, in the same order. */
  outcomes: CreateOutcome[];
  /** Ids of credentials already stored that stopped being a provider default. */
  demoted: string[];
}

export interface ListPage {
  credentials: Credential[];
  /** True when credentials after the last one returned may exist. */
  more: boolean;
}

/**
 * Where credentials live. Every implementation (LevelDB now, a distributed
 * store later) passes the same contract suite. Credentials go in and come out
 * whole, secrets included: redaction is the API's job, sealing the store's.
 *
 * Invariants every implementation keeps atomically:
 * - a name is unique in its namespace;
 * - at most one provider default per (namespace, provider): setting one clears the other;
 * - a role's source exists and is an access key, and cannot be renamed,
 *   turned into another kind or deleted while referred to (failed_precondition);
 * - etag changes on every write; a stale expected etag is `aborted`;
 * - an acknowledged write is durable (synced) and all its keys change together.
 */
export interface CredentialStore {
  /** Stores a prepared credential (id and timestamps set); assigns its etag. */
  create(credential: Credential): Promise<Credential>;
  /**
   * Stores prepared credentials as `create` would one after the other, in
   * one atomic durable write: a later one sees the earlier ones (a role may
   * name a source created before it in the same call; a later provider
   * default demotes an earlier one). One that `create` would refuse (its name
   * taken in the store or earlier in the call, its role source missing or not
   * an access key) is refused alone, with create's DomainError; the others
   * are stored. Other errors (I/O) fail the whole call and store nothing.
   */
  createMany(credentials: readonly Credential[]): Promise<CreateManyResult>;
  /** not_found when absent. */
  get(namespace: string, name: string): Promise<Credential>;
  /** The provider default of a namespace, if any. */
  getDefault(namespace: string, provider: Provider): Promise<Credential | undefined>;
  list(query: ListQuery): Promise<ListPage>;
  /**
   * Replaces the credential with `change(current)`, under the store's write
   * serialization so the check of `expectedEtag` ("" = any) and the write are one step.
   */
  update(
    namespace: string,
    name: string,
    change: (current: Credential) => Credential,
    expectedEtag: string,
  ): Promise<Credential>;
  /** not_found when absent; `expectedEtag` "" = any. */
  delete(namespace: string, name: string, expectedEtag: string): Promise<void>;
  close(): Promise<void>;
}
