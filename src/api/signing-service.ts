import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type { Caller } from "../../gen/credbroker/v1/caller_pb.js";
import { type Credential, Provider } from "../../gen/credbroker/v1/credential_pb.js";
import type {
  SigningService,
  SignRequestResponse,
} from "../../gen/credbroker/v1/signing_service_pb.js";
import { authorizeCredential, authorizeNamespace, isAdmin } from "../core/authz.js";
import { DomainError } from "../core/errors.js";
import type { Ambient } from "../core/lifecycle.js";
import { assertRef, displayName, namespaceShown } from "../core/names.js";
import {
  checkSignTarget,
  describeTarget,
  planSignature,
  type ValidSignRequest,
  validateSignRequest,
} from "../core/sign-plan.js";
import { creatorOf } from "../imds/binding-use.js";
import {
  BINDING_ID,
  type BindingTable,
  CONTAINER_PATH,
  DEFAULT_BINDING_SECONDS,
  MAX_BINDING_SECONDS,
  MIN_BINDING_SECONDS,
} from "../imds/bindings.js";
import type { SigningKeyCache } from "../sign/signing-keys.js";
import { needsSecret, type SigningCredential, sigv4 } from "../sign/sigv4.js";
import type { CredentialStore } from "../store/credential-store.js";
import type { CredentialReads } from "../store/read-cache.js";
import type { RoleSessions } from "../sts/role-sessions.js";
import { keyMaterial } from "../sts/sts-gateway.js";
import { AUDIT_DETAILS } from "./audit-interceptor.js";
import { callerOf } from "./caller-context.js";

const DEFAULT_BINDING_PAGE = 100;
const MAX_BINDING_PAGE = 1000;

/** The container-credentials listener, when one is configured. */
export interface ContainerBindings {
  table: BindingTable;
  /** http://127.0.0.1:PORT of the container listener. */
  baseUrl: string;
}

export interface SigningServiceDeps {
  /** Credential reads: public fields cached (a store read opens a sealed record), secrets on demand. */
  reads: CredentialReads;
  containers?: ContainerBindings | undefined;
  /** STS sessions for role credentials. */
  roleSessions: RoleSessions;
  /** Provider defaults, read uncached (a created default demotes another without a `changed`). */
  store: CredentialStore;
  /** Derived signing keys, one cache per daemon. */
  signingKeys: SigningKeyCache;
  /** The signing clock: injected where the server is composed, never a request field. */
  ambient: Ambient;
}

/** SigningService: credential lookup and caller, form check, policy, then SigV4. */
export function signingService({
  store,
  signingKeys,
  roleSessions,
  ambient,
  containers,
  reads,
}: SigningServiceDeps): ServiceImpl<typeof SigningService> {
  /**
   * Policy, then SigV4. An access key signs with a cached derived key, so a
   * hit needs no secret; on a miss its secret is read from the store for the
   * one derivation and dropped. `withSecrets`: `c` came straight from the
   * store, secrets included. A role signs with its STS session.
   */
  async function sign(
    valid: ValidSignRequest,
    caller: Caller,
    c: Credential,
    withSecrets: boolean,
  ): Promise<SignRequestResponse> {
    authorizeCredential(caller, "sign", c);
    const plan = planSignature(valid, c, ambient.now());
    let signer: SigningCredential;
    if (c.kind.case === "accessKey") {
      signer = { id: c.id, etag: c.etag, accessKeyId: c.kind.value.accessKeyId };
      if (needsSecret(plan, signer, signingKeys)) {
        const full = withSecrets ? c : await reads.getWithSecrets(c.namespace, c.name);
        // Written since it was cached: decide again on the version whose secret signs.
        if (full.etag !== c.etag || full.kind.case !== "accessKey") {
          return sign(valid, caller, full, true);
        }
        signer = { ...signer, ...keyMaterial(full.kind.value) };
      }
    } else if (c.kind.case === "role") {
      // The session's key id names its cached keys, so a new session derives new ones.
      const session = await roleSessions.session(c);
      signer = { id: c.id, etag: session.accessKeyId, ...session };
      // No signature outlives the session it was made with (plan.notAfter: nor the credential).
      if (plan.notAfter === undefined || session.expiration < plan.notAfter) {
        plan.notAfter = session.expiration;
      }
    } else {
      // policy already refused token credentials; nothing else can sign.
      throw new DomainError(
        "failed_precondition",
        `${displayName(c.namespace, c.name)} cannot sign`,
      );
    }
    const signed = sigv4(plan, signer, signingKeys);
    // The messages themselves (protobuf-es messages are plain objects), not
    // init shapes: SignRequest is the hot RPC, and create() (here and where
    // the result is normalized) and timestampFromDate cost ~5% of its time.
    const expiresMs = signed.expiresAt.getTime();
    const seconds = Math.floor(expiresMs / 1000);
    return {
      $typeName: "credbroker.v1.SignRequestResponse",
      url: signed.url,
      headers: signed.headers.map(([name, value]) => ({
        $typeName: "credbroker.v1.HttpHeader",
        name,
        value,
      })),
      accessKeyId: signer.accessKeyId,
      expiresAt: {
        $typeName: "google.protobuf.Timestamp",
        seconds: BigInt(seconds),
        nanos: (expiresMs - seconds * 1000) * 1_000_000,
      },
    };
  }

  return {
    async signRequest(req, ctx) {
      // The caller and credential are checked before the request's form:
      // parsing a hostile URL or header list is the costly part, and only a
      // caller who may sign with the credential gets the daemon to do it.
      checkSignTarget(req);
      const caller = callerOf(ctx);
      let credential: Credential | undefined;
      if (req.credential !== "") {
        credential = await reads.get(req.namespace, req.credential);
        authorizeCredential(caller, "sign", credential);
      } else {
        authorizeNamespace(caller, "sign", req.namespace);
        credential = await store.getDefault(req.namespace, Provider.AWS);
        if (credential === undefined) {
          throw new DomainError(
            "not_found",
            `AWS provider default of ${namespaceShown(req.namespace)} not found: name a credential`,
          );
        }
      }
      const valid = validateSignRequest(req);
      ctx.values.set(AUDIT_DETAILS, describeTarget(valid));
      return sign(valid, caller, credential, req.credential === "");
    },

    async createContainerBinding(req, ctx) {
      if (containers === undefined) {
        throw new DomainError(
          "failed_precondition",
          "no container-credentials listener: start the daemon with --container-listen 127.0.0.1:PORT",
        );
      }
      assertRef(req.namespace, req.credential, "");
      const ttl = req.ttlSeconds || DEFAULT_BINDING_SECONDS;
      if (ttl < MIN_BINDING_SECONDS || ttl > MAX_BINDING_SECONDS) {
        throw new DomainError(
          "invalid_argument",
          `ttl_seconds: ${MIN_BINDING_SECONDS}-${MAX_BINDING_SECONDS} (0 means ${DEFAULT_BINDING_SECONDS})`,
        );
      }
      const caller = callerOf(ctx);
      const credential = await reads.get(req.namespace, req.credential);
      authorizeCredential(caller, "sign", credential);
      if (!credential.allowedInTasks) {
        throw new DomainError(
          "permission_denied",
          `${displayName(req.namespace, req.credential)} is not allowed_in_tasks`,
        );
      }
      const binding = containers.table.create(
        req.namespace,
        { name: req.credential, id: credential.id },
        ttl,
        creatorOf(caller),
      );
      return {
        bindingId: binding.id,
        fullUri: `${containers.baseUrl}${CONTAINER_PATH}${binding.id}`,
        authorizationToken: binding.token,
        expiresAt: timestampFromDate(binding.expiresAt),
      };
    },

    async deleteContainerBinding(req, ctx) {
      const caller = callerOf(ctx);
      // Only its creator (or an admin) may end a binding; to anyone else it does not exist.
      if (
        containers === undefined ||
        !containers.table.delete(req.bindingId, isAdmin(caller) ? undefined : creatorOf(caller))
      ) {
        throw new DomainError("not_found", "no such container binding");
      }
      return {};
    },

    async listContainerBindings(req, ctx) {
      const caller = callerOf(ctx);
      if (req.pageSize < 0)
        throw new DomainError("invalid_argument", "page_size: must not be negative");
      if (req.pageToken !== "" && !BINDING_ID.test(req.pageToken)) {
        throw new DomainError("invalid_argument", "page_token: not a token this RPC returned");
      }
      if (containers === undefined) return { bindings: [], nextPageToken: "" };
      const size = Math.min(req.pageSize || DEFAULT_BINDING_PAGE, MAX_BINDING_PAGE);
      // Admins see every binding; anyone else only its own (as only they may delete them).
      const page = containers.table.list(
        req.pageToken,
        size,
        isAdmin(caller) ? undefined : creatorOf(caller),
      );
      return {
        bindings: page.bindings.map((b) => ({
          bindingId: b.id,
          namespace: b.namespace,
          credential: b.credential,
          credentialId: b.credentialId,
          creator: b.creator.name,
          createdAt: timestampFromDate(b.createdAt),
          expiresAt: timestampFromDate(b.expiresAt),
          fullUri: `${containers.baseUrl}${CONTAINER_PATH}${b.id}`,
        })),
        nextPageToken: page.more ? (page.bindings.at(-1)?.id ?? "") : "",
      };
    },
  };
}
