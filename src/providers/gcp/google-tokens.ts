import { DomainError } from "../../core/errors.js";
import { displayName } from "../../core/names.js";
import type { AccessToken, CredentialReads } from "../provider.js";
import { scopesWithin, TokenCache } from "../token-cache.js";
import { tokenCredential, tokenSecrets } from "../token-credential.js";
import { jwtBearerGrant } from "./jwt-bearer-grant.js";
import { keyIdentity, parseServiceAccountKey } from "./service-account-key.js";

/** The scope a service account token gets when the credential lists no token_scopes. */
export const DEFAULT_GOOGLE_SCOPE = "https://www.googleapis.com/auth/cloud-platform";

const SERVICE_ACCOUNT = { case: "serviceAccount", name: "service_account" } as const;

export interface GoogleTokensDeps {
  credentials: CredentialReads;
  now(): Date;
  /** Bound on one token request; default 10 s. */
  timeoutMs?: number;
}

/**
 * Service account access tokens by the JWT-bearer grant: cached until 5
 * minutes before they expire, one grant in flight per (credential id+etag,
 * scopes). The key is read for the grant only and kept nowhere.
 */
export class GoogleTokens {
  /** By credential id, then by etag and scope set. */
  private readonly tokens: TokenCache;

  /** Identities read from key files, by credential id. */
  private readonly identities = new Map<
    string,
    { etag: string; email: string; projectId: string }
  >();

  constructor(private readonly deps: GoogleTokensDeps) {
    this.tokens = new TokenCache(deps.now);
  }

  /** CloudProvider.accessToken for service_account credentials. */
  async accessToken(
    namespace: string,
    name: string,
    scopes: readonly string[],
    expectedId?: string,
  ): Promise<AccessToken> {
    const c = await tokenCredential(
      this.deps.credentials,
      namespace,
      name,
      SERVICE_ACCOUNT,
      this.deps.now(),
      expectedId,
    );
    const who = displayName(namespace, name);
    const granted = grantedScopes(c.tokenScopes, scopes, who);
    return this.tokens.get(c.id, `${c.etag}\n${granted.join(" ")}`, () =>
      this.grant(namespace, name, c.id, granted),
    );
  }

  /**
   * The account's public identity (client_email, project_id, the scopes its
   * tokens may carry), from the output-only fields, or from the key file when
   * a record has none (kept per etag: the email and project, never the key).
   */
  async account(
    namespace: string,
    name: string,
  ): Promise<{ email: string; projectId: string; scopes: string[] }> {
    const c = await this.deps.credentials.get(namespace, name);
    const who = displayName(namespace, name);
    if (c.kind.case !== "serviceAccount") {
      throw new DomainError("failed_precondition", `${who} is not a service_account credential`);
    }
    const scopes = grantedScopes(c.tokenScopes, [], who);
    const { clientEmail, projectId } = c.kind.value;
    if (clientEmail !== "") return { email: clientEmail, projectId, scopes };
    const known = this.identities.get(c.id);
    if (known?.etag === c.etag) return { ...known, scopes };
    const key = await tokenSecrets(this.deps.credentials, namespace, name, c.id, "serviceAccount");
    const identity = keyIdentity(key.keyJson, who);
    this.identities.set(c.id, { etag: c.etag, ...identity });
    return { ...identity, scopes };
  }

  /** Drops every token of the credential (a write, a delete, the store watch). */
  forget(credentialId: string): void {
    this.tokens.forget(credentialId);
    this.identities.delete(credentialId);
  }

  private async grant(
    namespace: string,
    name: string,
    id: string,
    scopes: readonly string[],
  ): Promise<AccessToken> {
    const who = displayName(namespace, name);
    const secrets = await tokenSecrets(
      this.deps.credentials,
      namespace,
      name,
      id,
      "serviceAccount",
    );
    const key = parseServiceAccountKey(secrets.keyJson, who);
    const started = this.deps.now();
    const granted = await jwtBearerGrant(key, scopes, started, this.deps.timeoutMs ?? 10_000);
    return {
      token: granted.accessToken,
      expiresAt: new Date(started.getTime() + granted.expiresInSeconds * 1000),
      scopes,
    };
  }
}

/**
 * The scopes to ask for: those requested (sorted, deduplicated), each one of
 * the credential's token_scopes (permission_denied otherwise); none requested
 * means all of them. No token_scopes means cloud-platform only.
 */
export function grantedScopes(
  tokenScopes: readonly string[],
  requested: readonly string[],
  who: string,
): string[] {
  return scopesWithin(
    tokenScopes.length > 0 ? tokenScopes : [DEFAULT_GOOGLE_SCOPE],
    requested,
    who,
  );
}
