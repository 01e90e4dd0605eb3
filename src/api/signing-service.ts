import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type { Caller } from "../../gen/credbroker/v1/caller_pb.js";
import type { Credential } from "../../gen/credbroker/v1/credential_pb.js";
import {
  BindingProtocol,
  type SigningService,
  type SignRequestResponse,
} from "../../gen/credbroker/v1/signing_service_pb.js";
import { bindingProtocolFor } from "../bindings/binding-protocol.js";
import { creatorOf } from "../bindings/binding-use.js";
import {
  BINDING_ID,
  type Binding,
  type BindingProtocolName,
  type BindingTable,
  DEFAULT_BINDING_SECONDS,
  MAX_BINDING_SECONDS,
  MIN_BINDING_SECONDS,
} from "../bindings/bindings.js";
import { authorizeCredential, authorizeNamespace, isAdmin } from "../core/authz.js";
import { DomainError } from "../core/errors.js";
import { assertRef, displayName, namespaceShown } from "../core/names.js";
import { checkSignTarget } from "../core/sign-target.js";
import type { ProviderRegistry } from "../providers/index.js";
import type { CloudProvider, PreparedSign, SignedRequest } from "../providers/provider.js";
import type { CredentialStore } from "../store/credential-store.js";
import type { CredentialReads } from "../store/read-cache.js";
import { AUDIT_DETAILS } from "./audit-interceptor.js";
import { callerOf } from "./caller-context.js";
import { type ForwardDeps, forwardRequestHandler } from "./forward-request.js";

const DEFAULT_BINDING_PAGE = 100;
const MAX_BINDING_PAGE = 1000;

/** The container-credentials listener, when one is configured. */
export interface ContainerBindings {
  table: BindingTable;
  /**
   * Serves a new binding: the URI its child is given (a URL, or host:port for
   * GCE_METADATA_HOST). A protocol that needs a listener of its own starts it
   * here; unimplemented when this daemon cannot serve the protocol.
   */
  open(binding: Binding): Promise<string>;
  /** Where a live binding is served (as open returned it). */
  uri(binding: Binding): string;
  /** The binding ended (deleted): what open started for it stops. */
  ended(bindingId: string): void;
}

const PROTOCOLS: Record<BindingProtocolName, BindingProtocol> = {
  "ecs-container": BindingProtocol.ECS_CONTAINER,
  "azure-app-service": BindingProtocol.AZURE_APP_SERVICE,
  "gce-metadata": BindingProtocol.GCE_METADATA,
};

export interface SigningServiceDeps {
  /** Credential reads: public fields cached (a store read opens a sealed record), secrets on demand. */
  reads: CredentialReads;
  containers?: ContainerBindings | undefined;
  /** The clouds: each request is prepared and signed by its provider. */
  providers: ProviderRegistry;
  /** Provider defaults, read uncached (a created default demotes another without a `changed`). */
  store: CredentialStore;
  /** ForwardRequest's pool and rules; without them, ForwardRequest is unimplemented. */
  forwarding?: Pick<ForwardDeps, "pool" | "options" | "now"> | undefined;
}

/** A token is never signed with: the signature would be the token itself. */
function refuseTokens(c: Credential): void {
  if (c.kind.case === "token") {
    throw new DomainError(
      "failed_precondition",
      `${displayName(c.namespace, c.name)} is a token credential: signing with it would reveal the token itself; use ForwardRequest`,
    );
  }
}

/** SigningService: the request's names, the caller and credential, then the provider's form check, policy and signature. */
export function signingService({
  store,
  providers,
  containers,
  reads,
  forwarding,
}: SigningServiceDeps): ServiceImpl<typeof SigningService> {
  /**
   * The caller's authorization, then the provider's policy and signature.
   * `withSecrets`: `c` came straight from the store, secrets included; else
   * they are read only if the provider needs them.
   */
  function signWith(
    prepared: PreparedSign,
    caller: Caller,
    c: Credential,
    withSecrets: boolean,
    action: "sign" | "forward" = "sign",
  ): Promise<SignedRequest> {
    authorizeCredential(caller, action, c);
    return prepared.sign(c, {
      withSecrets: async () => (withSecrets ? c : reads.getWithSecrets(c.namespace, c.name)),
      again: (full) => signWith(prepared, caller, full, true, action),
      forwarded: action === "forward",
    });
  }

  const forwardRequest =
    forwarding === undefined
      ? undefined
      : forwardRequestHandler({
          ...forwarding,
          reads,
          providers,
          signWith: (prepared, caller, c, action) => signWith(prepared, caller, c, false, action),
        });

  return {
    async signRequest(req, ctx) {
      // The caller and credential are checked before the request's form:
      // parsing a hostile URL or header list is the costly part, and only a
      // caller who may sign with the credential gets the daemon to do it.
      checkSignTarget(req);
      const caller = callerOf(ctx);
      let credential: Credential | undefined;
      let provider: CloudProvider;
      if (req.credential !== "") {
        credential = await reads.get(req.namespace, req.credential);
        authorizeCredential(caller, "sign", credential);
        refuseTokens(credential);
        provider = providers.forCredential(credential);
      } else {
        authorizeNamespace(caller, "sign", req.namespace);
        const byDefault = providers.forDefault(req);
        provider = byDefault.provider;
        credential = await store.getDefault(req.namespace, byDefault.id);
        if (credential === undefined) {
          throw new DomainError(
            "not_found",
            `${provider.label} provider default of ${namespaceShown(req.namespace)} not found: name a credential`,
          );
        }
        refuseTokens(credential);
      }
      const prepared = provider.prepareSign(req);
      ctx.values.set(AUDIT_DETAILS, prepared.target);
      return response(await signWith(prepared, caller, credential, req.credential === ""));
    },

    async forwardRequest(req, ctx) {
      if (forwardRequest === undefined) {
        throw new DomainError("unimplemented", "this daemon does not forward requests");
      }
      return forwardRequest(req, ctx);
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
      const protocol = bindingProtocolFor(credential);
      const binding = containers.table.create(
        req.namespace,
        { name: req.credential, id: credential.id },
        ttl,
        creatorOf(caller),
        protocol,
      );
      let fullUri: string;
      try {
        fullUri = await containers.open(binding);
      } catch (err) {
        containers.table.delete(binding.id);
        throw err;
      }
      return {
        bindingId: binding.id,
        fullUri,
        // The GCE protocol carries no token: its listener serves one binding only.
        authorizationToken: protocol === "gce-metadata" ? "" : binding.token,
        expiresAt: timestampFromDate(binding.expiresAt),
        protocol: PROTOCOLS[protocol],
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
      containers.ended(req.bindingId);
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
          fullUri: containers.uri(b),
          protocol: PROTOCOLS[b.protocol],
        })),
        nextPageToken: page.more ? (page.bindings.at(-1)?.id ?? "") : "",
      };
    },
  };
}

/**
 * The messages themselves (protobuf-es messages are plain objects), not init
 * shapes: SignRequest is the hot RPC, and create() (here and where the result
 * is normalized) and timestampFromDate cost ~5% of its time.
 */
function response(signed: SignedRequest): SignRequestResponse {
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
    accessKeyId: signed.keyId,
    expiresAt: {
      $typeName: "google.protobuf.Timestamp",
      seconds: BigInt(seconds),
      nanos: (expiresMs - seconds * 1000) * 1_000_000,
    },
  };
}
