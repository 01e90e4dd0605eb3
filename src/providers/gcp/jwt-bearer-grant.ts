import { sign } from "node:crypto";
import { type GrantedToken, postTokenForm } from "../oauth-grant.js";
import type { ServiceAccountKey } from "./service-account-key.js";

export type { GrantedToken } from "../oauth-grant.js";

/** How long an assertion is valid for (Google's maximum). */
const ASSERTION_SECONDS = 3600;
const GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/**
 * The OAuth 2.0 JWT-bearer grant (RFC 7523) as Google's token endpoint takes
 * it: an RS256 assertion (iss = client_email, scope, aud = token_uri) posted
 * as a form to the key's token_uri. Errors name the endpoint's status and
 * OAuth error code, never the answer's text.
 */
export async function jwtBearerGrant(
  key: ServiceAccountKey,
  scopes: readonly string[],
  now: Date,
  timeoutMs: number,
): Promise<GrantedToken> {
  const assertion = signAssertion(key, scopes, now);
  return postTokenForm(
    key.tokenUri,
    { grant_type: GRANT_TYPE, assertion },
    timeoutMs,
    "Google token endpoint",
  );
}

/** header.claims.signature, base64url, RS256 with the key's private key. */
export function signAssertion(
  key: ServiceAccountKey,
  scopes: readonly string[],
  now: Date,
): string {
  const iat = Math.floor(now.getTime() / 1000);
  const header = {
    alg: "RS256",
    typ: "JWT",
    ...(key.privateKeyId ? { kid: key.privateKeyId } : {}),
  };
  const claims = {
    iss: key.clientEmail,
    scope: scopes.join(" "),
    aud: key.tokenUri.href,
    iat,
    exp: iat + ASSERTION_SECONDS,
  };
  const signed = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const signature = sign("sha256", Buffer.from(signed), key.privateKey).toString("base64url");
  return `${signed}.${signature}`;
}

function b64url(text: string): string {
  return Buffer.from(text).toString("base64url");
}
