import type { Caller } from "../../gen/credbroker/v1/caller_pb.js";
import type { Credential } from "../../gen/credbroker/v1/credential_pb.js";
import type { Check } from "../../gen/credbroker/v1/credential_service_pb.js";
import type { SignRequestRequest } from "../../gen/credbroker/v1/signing_service_pb.js";

/** A credential kind, as the `kind` oneof of credential.proto names it. */
export type CredentialKind = NonNullable<Credential["kind"]["case"]>;

/** How a provider reads credentials (the daemon's read cache; a store read opens a sealed record). */
export interface CredentialReads {
  /** Public fields (not_found when absent). */
  get(namespace: string, name: string): Promise<Credential>;
  /** With its secrets, read from the store for the one use. */
  getWithSecrets(namespace: string, name: string): Promise<Credential>;
}

/** An emulated metadata protocol (src/metadata/) that can hand out a provider's sessions. */
export type MetadataProtocol =
  | "ec2-imds"
  | "ecs-container"
  | "azure-imds"
  | "azure-app-service"
  | "gce-metadata";

/** An OAuth access token minted from a credential (Entra ID, Google): a session, never the stored secret. */
export interface AccessToken {
  token: string;
  expiresAt: Date;
  /** What it was granted for: the scopes (Google) or the resource/scope (Azure). */
  scopes: readonly string[];
}

/** A request signed: headers to send, or a presigned URL (headers then hold only what must go with it). */
export interface SignedRequest {
  url: string;
  headers: [name: string, value: string][];
  /** The key id the signature names (a session's for a role). */
  keyId: string;
  expiresAt: Date;
}

/** What a provider needs from the API while signing with one credential. */
export interface SignContext {
  /** The credential with its secrets: the same one when it came from the store whole, else read again. */
  withSecrets(): Promise<Credential>;
  /** Starts over on a newer version of the credential (the caller's authorization included). */
  again(c: Credential): Promise<SignedRequest>;
  /**
   * The broker sends the signed request itself (ForwardRequest): its headers
   * never reach the caller, so a bearer token in them is not lent.
   */
  readonly forwarded: boolean;
}

/** A SignRequest checked for form: what is known before the credential is read. */
export interface PreparedSign {
  namespace: string;
  /** "" = the namespace's provider default. */
  credential: string;
  /** For the audit line: the host and the action the request maps to (computed before policy). */
  target: { host: string; action: string };
  /** Policy (the credential's hosts and scopes), then the signature. */
  sign(c: Credential, ctx: SignContext): Promise<SignedRequest>;
}

/** A short-lived session minted from a credential (a role's today). */
export interface MintedSession {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  expiration: Date;
}

/**
 * One cloud. The API, the metadata listeners and the daemon reach it only
 * through this interface and the registry (providers/index.ts).
 */
export interface CloudProvider {
  /** Shown in messages, e.g. "AWS". */
  readonly label: string;
  /** The credential kinds it signs or mints with. */
  readonly kinds: readonly CredentialKind[];
  /** The metadata protocols that can serve its sessions. */
  readonly metadata: readonly MetadataProtocol[];
  /** Form check of a SignRequest (invalid_argument); maps the request to an action for scope checks. */
  prepareSign(req: SignRequestRequest): PreparedSign;
  /**
   * A short-lived session from the credential `namespace/name`, for a task or
   * an instance (the metadata listeners); `expectedId` pins the version bound.
   */
  taskSession(namespace: string, name: string, expectedId?: string): Promise<MintedSession>;
  /**
   * An OAuth access token from the credential `namespace/name` for `scopes`
   * (each within its token_scopes, else permission_denied), cached until
   * shortly before it expires, one request in flight per key: for the
   * metadata listeners, exec bindings and Bearer signing. Absent for
   * providers without tokens (AWS lends STS sessions instead).
   */
  accessToken?(
    namespace: string,
    name: string,
    scopes: readonly string[],
    expectedId?: string,
  ): Promise<AccessToken>;
  /** Live verification (the cloud's own "who am I" or a fresh session); undefined when not configured. */
  readonly live?: LiveVerification | undefined;
}

export interface LiveVerification {
  /** Throws permission_denied unless `caller` may make the calls a live check makes with `c`. */
  authorize(
    caller: Caller,
    c: Credential,
    target: "stored" | "candidate",
    source: Credential | undefined,
  ): void;
  /** The live checks; a failure is a check with ok = false, never an error. */
  checks(c: Credential): Promise<Check[]>;
}
