import { sign } from "node:crypto";
import { DomainError } from "../../core/errors.js";
import type { ServiceAccountKey } from "./service-account-key.js";

/** How long an assertion is valid for (Google's maximum). */
const ASSERTION_SECONDS = 3600;
/** A token answer is a few hundred bytes; more is refused unread. */
const MAX_ANSWER_BYTES = 64 * 1024;
const GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer";

export interface GrantedToken {
  accessToken: string;
  expiresInSeconds: number;
}

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
  let res: Response;
  try {
    res = await fetch(key.tokenUri, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
      body: new URLSearchParams({ grant_type: GRANT_TYPE, assertion }).toString(),
      redirect: "error",
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    throw new DomainError("unavailable", "Google token endpoint unreachable", { cause: err });
  }
  const body = await boundedJson(res);
  if (!res.ok) {
    const code = oauthError(body);
    const detail = `Google token endpoint answered ${res.status}${code ? ` (${code})` : ""}`;
    throw new DomainError(res.status >= 500 ? "unavailable" : "failed_precondition", detail);
  }
  const token = field(body, "access_token");
  const expiresIn = (body as Record<string, unknown> | undefined)?.expires_in;
  if (
    typeof token !== "string" ||
    token === "" ||
    typeof expiresIn !== "number" ||
    expiresIn <= 0
  ) {
    throw new DomainError("unavailable", "Google token endpoint answered without a token");
  }
  return { accessToken: token, expiresInSeconds: expiresIn };
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

async function boundedJson(res: Response): Promise<unknown> {
  const declared = Number(res.headers.get("content-length") ?? "0");
  if (declared > MAX_ANSWER_BYTES || res.body === null) {
    await res.body?.cancel();
    return undefined;
  }
  const chunks: Uint8Array[] = [];
  let seen = 0;
  try {
    for await (const chunk of res.body) {
      seen += chunk.length;
      if (seen > MAX_ANSWER_BYTES) return undefined;
      chunks.push(chunk);
    }
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    return undefined;
  }
}

function field(body: unknown, name: string): unknown {
  return typeof body === "object" && body !== null
    ? (body as Record<string, unknown>)[name]
    : undefined;
}

/** The OAuth `error` code when it has the shape of one (never free text). */
function oauthError(body: unknown): string | undefined {
  const code = field(body, "error");
  return typeof code === "string" && /^[a-z_]{1,64}$/.test(code) ? code : undefined;
}
