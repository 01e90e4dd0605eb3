import { DomainError } from "../../core/errors.js";
import { displayName } from "../../core/names.js";
import type { AccessToken, CredentialReads } from "../provider.js";
import { scopesWithin, TokenCache } from "../token-cache.js";
import { tokenCredential, tokenSecrets } from "../token-credential.js";
import { clientCredentialsGrant, DEFAULT_AUTHORITY_HOST } from "./entra-grant.js";
import { STORAGE_SCOPE } from "./signer.js";

const SERVICE_PRINCIPAL = { case: "servicePrincipal", name: "service_principal" } as const;

export interface EntraTokensDeps {
  credentials: CredentialReads;
  now(): Date;
  /** Where the token endpoint is; default https://login.microsoftonline.com. */
  authorityHost?: string;
  /** Bound on one token request; default 10 s. */
  timeoutMs?: number;
}

/**
 * Service principal access tokens by Entra ID's client-credentials grant:
 * cached until 5 minutes before they expire, one grant in flight per
 * (credential id+etag, scopes). The client secret is read for the grant only
 * and kept nowhere.
 */
export class EntraTokens {
  /** By credential id, then by etag and scope set. */
  private readonly tokens: TokenCache;

  constructor(private readonly deps: EntraTokensDeps) {
    this.tokens = new TokenCache(deps.now);
  }

  /** CloudProvider.accessToken for service_principal credentials. */
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
      SERVICE_PRINCIPAL,
      this.deps.now(),
      expectedId,
    );
    const who = displayName(namespace, name);
    const granted = entraScopes(c.tokenScopes, scopes, who);
    return this.tokens.get(c.id, `${c.etag}\n${granted.join(" ")}`, () =>
      this.grant(namespace, name, c.id, granted),
    );
  }

  /** Drops every token of the credential (a write, a delete, the store watch). */
  forget(credentialId: string): void {
    this.tokens.forget(credentialId);
  }

  private async grant(
    namespace: string,
    name: string,
    id: string,
    scopes: readonly string[],
  ): Promise<AccessToken> {
    const who = displayName(namespace, name);
    const sp = await tokenSecrets(this.deps.credentials, namespace, name, id, "servicePrincipal");
    if (sp.tenantId === "" || sp.clientId === "" || sp.clientSecret === "") {
      throw new DomainError(
        "failed_precondition",
        `${who}: a service principal needs tenant_id, client_id and client_secret`,
      );
    }
    const started = this.deps.now();
    const granted = await clientCredentialsGrant(
      this.deps.authorityHost ?? DEFAULT_AUTHORITY_HOST,
      sp,
      scopes,
      this.deps.timeoutMs ?? 10_000,
    );
    return {
      token: granted.accessToken,
      expiresAt: new Date(started.getTime() + granted.expiresInSeconds * 1000),
      scopes,
    };
  }
}

/**
 * The scopes to ask for: those requested, each one of the credential's
 * token_scopes (permission_denied otherwise); no token_scopes means Azure
 * Storage's `.default` only. None requested means the first token_scope: a
 * client-credentials grant names one resource's `.default` at a time.
 */
export function entraScopes(
  tokenScopes: readonly string[],
  requested: readonly string[],
  who: string,
): string[] {
  const allowed = tokenScopes.length > 0 ? tokenScopes : [STORAGE_SCOPE];
  return scopesWithin(allowed, requested.length > 0 ? requested : allowed.slice(0, 1), who);
}
