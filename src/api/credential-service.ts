import type { ServiceImpl } from "@connectrpc/connect";
import { type Credential, Provider } from "../../gen/credbroker/v1/credential_pb.js";
import type { CredentialService } from "../../gen/credbroker/v1/credential_service_pb.js";
import { authorizeCredential, authorizeNamespace } from "../core/authz.js";
import { DomainError, isDomainError } from "../core/errors.js";
import { type Ambient, applyUpdate, prepareNew } from "../core/lifecycle.js";
import { assertNamespace, assertRef, isValidName, isValidNamespace } from "../core/names.js";
import { redact } from "../core/redact.js";
import { referencedName } from "../core/references.js";
import { assertNotPast, validateCredential } from "../core/validate.js";
import { verdict, verifyStructure } from "../core/verify.js";
import type { ProviderRegistry } from "../providers/index.js";
import type { LiveVerification } from "../providers/provider.js";
import type { CredentialStore } from "../store/credential-store.js";
import { AUDIT_DETAILS, AUDIT_LINE } from "./audit-interceptor.js";
import { callerOf } from "./caller-context.js";
import { importCredentials } from "./credential-import.js";
import { decodePageToken, encodePageToken } from "./page-token.js";
import { expiryOf, prepareCreate } from "./prepare-create.js";

export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;

export interface CredentialServiceDeps {
  store: CredentialStore;
  ambient: Ambient;
  /** Told the id of every credential updated, deleted or imported, so caches drop it at once. */
  changed?: (credentialId: string) => void;
  /** The clouds, for live verification; without them (or a provider's), live = true is unimplemented. */
  providers?: ProviderRegistry;
  /** Redacted records kept in memory (GetCredential reads through it); without it, the store. */
  reads?: Pick<CredentialStore, "get">;
}

/** CredentialService over a store. Every credential it returns is redacted. */
export function credentialService({
  store,
  ambient,
  changed = () => {},
  providers,
  reads,
}: CredentialServiceDeps): ServiceImpl<typeof CredentialService> {
  return {
    async createCredential(req, ctx) {
      const created = await store.create(prepareCreate(callerOf(ctx), req.credential, ambient));
      // A new provider default demoted the previous one: cached copies of it are stale.
      if (created.providerDefault) changed(created.id);
      return { credential: redact(created) };
    },

    async importCredentials(requests, ctx) {
      return importCredentials(requests, {
        caller: callerOf(ctx),
        store,
        ambient,
        changed,
        progress: (counts) => ctx.values.set(AUDIT_DETAILS, counts),
        audit: ctx.values.get(AUDIT_LINE),
      });
    },

    async getCredential(req, ctx) {
      assertRef(req.namespace, req.name);
      // The read cache holds redacted records already.
      const credential = reads
        ? await reads.get(req.namespace, req.name)
        : redact(await store.get(req.namespace, req.name));
      authorizeCredential(callerOf(ctx), "read", credential);
      return { credential };
    },

    async listCredentials(req, ctx) {
      assertNamespace(req.namespace);
      authorizeNamespace(callerOf(ctx), "read", req.namespace);
      if (req.pageSize < 0) {
        throw new DomainError("invalid_argument", "page_size: must not be negative");
      }
      if (!Object.values(Provider).includes(req.provider)) {
        throw new DomainError("invalid_argument", `provider: unknown value ${req.provider}`);
      }
      const limit = Math.min(req.pageSize || DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
      const after = decodePageToken(req.pageToken, req.namespace, req.provider);
      const page = await store.list({
        namespace: req.namespace,
        provider: req.provider,
        limit,
        after,
      });
      const last = page.credentials.at(-1);
      return {
        credentials: page.credentials.map(redact),
        nextPageToken:
          page.more && last !== undefined
            ? encodePageToken({
                namespace: req.namespace,
                provider: req.provider,
                after: last.name,
              })
            : "",
      };
    },

    async updateCredential(req, ctx) {
      assertRef(req.namespace, req.name);
      const caller = callerOf(ctx);
      const patch = required(req.credential, "credential");
      const paths = req.updateMask?.paths ?? [];
      if (paths.includes("expires_at")) {
        assertNotPast("credential.expires_at", expiryOf(patch), ambient.now());
      }
      const updated = await store.update(
        req.namespace,
        req.name,
        (current) => {
          authorizeCredential(caller, "write", current);
          assertUnmanaged(current);
          const next = applyUpdate(current, patch, paths, ambient);
          validateCredential(next);
          return next;
        },
        patch.etag,
      );
      changed(updated.id);
      return { credential: redact(updated) };
    },

    async deleteCredential(req, ctx) {
      assertRef(req.namespace, req.name);
      const current = await store.get(req.namespace, req.name);
      authorizeCredential(callerOf(ctx), "write", current);
      assertUnmanaged(current);
      const { id } = current;
      await store.delete(req.namespace, req.name, req.etag);
      changed(id);
      return {};
    },

    async verifyCredential(req, ctx) {
      const caller = callerOf(ctx);
      if (req.live && providers === undefined) {
        throw new DomainError(
          "unimplemented",
          "live verification is not configured on this daemon",
        );
      }
      let credential: Credential;
      switch (req.target.case) {
        case "stored":
          assertRef(req.target.value.namespace, req.target.value.name, "stored.");
          credential = await store.get(req.target.value.namespace, req.target.value.name);
          authorizeCredential(caller, "read", credential);
          break;
        case "candidate":
          authorizeNamespace(caller, "read", req.target.value.namespace);
          credential = prepareNew(req.target.value, ambient);
          break;
        default:
          throw new DomainError("invalid_argument", "target: set stored or candidate");
      }
      const source = await findSource(store, credential);
      const live = req.live ? liveOf(providers, credential) : undefined;
      // Before any check runs: a refused live verify says nothing about the credential.
      live?.authorize(caller, credential, req.target.case, source);
      const structural = verifyStructure(credential, { now: ambient.now(), source });
      if (live === undefined) return structural;
      return verdict([...structural.checks, ...(await live.checks(credential))]);
    },
  };
}

/** The live verification of `c`'s provider; unimplemented where there is none. */
function liveOf(providers: ProviderRegistry | undefined, c: Credential): LiveVerification {
  const live = providers?.get(c.provider).live;
  if (live === undefined) {
    throw new DomainError("unimplemented", "live verification is not configured on this daemon");
  }
  return live;
}

/** A credential declared in a config file changes only with the file. */
function assertUnmanaged(c: Credential): void {
  if (c.managedBy !== "") {
    throw new DomainError(
      "failed_precondition",
      `${c.namespace ? `${c.namespace}/` : ""}${c.name} is declared in ${c.managedBy}: change it there (then SIGHUP the daemon)`,
    );
  }
}

function required<T>(value: T | undefined, field: string): T {
  if (value === undefined) throw new DomainError("invalid_argument", `${field}: is required`);
  return value;
}

async function findSource(store: CredentialStore, c: Credential): Promise<Credential | undefined> {
  const name = referencedName(c);
  if (name === undefined || !isValidNamespace(c.namespace) || !isValidName(name)) return undefined;
  try {
    return await store.get(c.namespace, name);
  } catch (err) {
    if (isDomainError(err, "not_found")) return undefined;
    throw err;
  }
}
