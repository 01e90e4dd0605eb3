import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { type Credential, Provider } from "../../gen/credbroker/v1/credential_pb.js";
import type { SigningService } from "../../gen/credbroker/v1/signing_service_pb.js";
import { authorizeCredential, authorizeNamespace, isAdmin } from "../core/authz.js";
import { DomainError } from "../core/errors.js";
import type { Ambient } from "../core/lifecycle.js";
import { assertRef, displayName } from "../core/names.js";
import { describeTarget, planSignature, validateSignRequest } from "../core/sign-plan.js";
import {
  type BindingTable,
  CONTAINER_PATH,
  DEFAULT_BINDING_SECONDS,
  MAX_BINDING_SECONDS,
  MIN_BINDING_SECONDS,
} from "../imds/bindings.js";
import type { SigningKeyCache } from "../sign/signing-keys.js";
import { type SigningCredential, sigv4 } from "../sign/sigv4.js";
import type { CredentialStore } from "../store/credential-store.js";
import type { RoleSessions } from "../sts/role-sessions.js";
import { keyMaterial } from "../sts/sts-gateway.js";
import { AUDIT_DETAILS } from "./audit-interceptor.js";
import { callerOf } from "./caller-context.js";

/** The container-credentials listener, when one is configured. */
export interface ContainerBindings {
  table: BindingTable;
  /** http://127.0.0.1:PORT of the container listener. */
  baseUrl: string;
}

export interface SigningServiceDeps {
  /** Cached credential reads (a store read opens a sealed record). */
  reads: Pick<CredentialStore, "get">;
  containers?: ContainerBindings | undefined;
  /** STS sessions for role credentials. */
  roleSessions: RoleSessions;
  store: CredentialStore;
  /** Derived signing keys, one cache per daemon. */
  signingKeys: SigningKeyCache;
  /** The signing clock: injected where the server is composed, never a request field. */
  ambient: Ambient;
}

/** SigningService: form check, credential lookup, policy, then SigV4. */
export function signingService({
  store,
  signingKeys,
  roleSessions,
  ambient,
  containers,
  reads,
}: SigningServiceDeps): ServiceImpl<typeof SigningService> {
  /**
   * What signs for a credential: an access key itself, or a role's STS
   * session (its key id names the cached signing keys, so a new session
   * derives new ones).
   */
  async function signerFor(
    c: Credential,
  ): Promise<{ signer: SigningCredential; sessionEnd?: Date }> {
    if (c.kind.case === "accessKey") {
      return { signer: { id: c.id, etag: c.etag, ...keyMaterial(c.kind.value) } };
    }
    if (c.kind.case === "role") {
      const session = await roleSessions.session(c);
      return {
        signer: { id: c.id, etag: session.accessKeyId, ...session },
        sessionEnd: session.expiration,
      };
    }
    // policy already refused token credentials; nothing else can sign.
    throw new DomainError("failed_precondition", `${displayName(c.namespace, c.name)} cannot sign`);
  }

  return {
    async signRequest(req, ctx) {
      const valid = validateSignRequest(req);
      ctx.values.set(AUDIT_DETAILS, describeTarget(valid));
      const caller = callerOf(ctx);
      if (valid.credential === "") authorizeNamespace(caller, "sign", valid.namespace);
      const credential =
        valid.credential === ""
          ? await store.getDefault(valid.namespace, Provider.AWS)
          : await reads.get(valid.namespace, valid.credential);
      if (credential === undefined) {
        throw new DomainError(
          "not_found",
          `namespace "${valid.namespace}" has no AWS provider default: name a credential`,
        );
      }
      authorizeCredential(caller, "sign", credential);
      const plan = planSignature(valid, credential, ambient.now());
      const { signer, sessionEnd } = await signerFor(credential);
      // No signature outlives the credential, nor the session it was made with.
      const signed = sigv4(
        { ...plan, notAfter: earliest(plan.notAfter, sessionEnd) },
        signer,
        signingKeys,
      );
      return {
        url: signed.url,
        headers: signed.headers.map(([name, value]) => ({ name, value })),
        accessKeyId: signer.accessKeyId,
        expiresAt: timestampFromDate(signed.expiresAt),
      };
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
      const credential = await store.get(req.namespace, req.credential);
      authorizeCredential(caller, "sign", credential);
      if (!credential.allowedInTasks) {
        throw new DomainError(
          "permission_denied",
          `${displayName(req.namespace, req.credential)} is not allowed_in_tasks`,
        );
      }
      const binding = containers.table.create(req.namespace, req.credential, ttl, caller.name);
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
        !containers.table.delete(req.bindingId, isAdmin(caller) ? undefined : caller.name)
      ) {
        throw new DomainError("not_found", "no such container binding");
      }
      return {};
    },
  };
}

function earliest(a: Date | undefined, b: Date | undefined): Date | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a < b ? a : b;
}
