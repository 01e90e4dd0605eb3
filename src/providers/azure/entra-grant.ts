import { type GrantedToken, postTokenForm } from "../oauth-grant.js";

/** Entra ID's public-cloud authority (sovereign clouds and tests name another). */
export const DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com";

export interface ClientSecret {
  tenantId: string;
  clientId: string;
  clientSecret: string;
}

/**
 * The OAuth 2.0 client-credentials grant (RFC 6749 section 4.4) as Entra ID's
 * v2.0 token endpoint takes it: client_id, client_secret and the scope (a
 * resource's `/.default`) posted as a form to
 * `<authorityHost>/<tenant>/oauth2/v2.0/token`. Errors name the endpoint's
 * status and OAuth error code (invalid_client for a wrong secret), never the
 * answer's text (Entra's error_description can echo the caller's values),
 * the tenant, the client id or the secret.
 */
export async function clientCredentialsGrant(
  authorityHost: string,
  sp: ClientSecret,
  scopes: readonly string[],
  timeoutMs: number,
): Promise<GrantedToken> {
  const base = authorityHost.replace(/\/+$/, "");
  const endpoint = `${base}/${encodeURIComponent(sp.tenantId)}/oauth2/v2.0/token`;
  return postTokenForm(
    endpoint,
    {
      grant_type: "client_credentials",
      client_id: sp.clientId,
      client_secret: sp.clientSecret,
      scope: scopes.join(" "),
    },
    timeoutMs,
    "Entra ID token endpoint",
  );
}
