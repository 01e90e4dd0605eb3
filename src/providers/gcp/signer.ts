import { createPrivateKey } from "node:crypto";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Credential } from "../../../gen/credbroker/v1/credential_pb.js";
import { DomainError } from "../../core/errors.js";
import { readServiceAccountKey } from "../../core/kind-rules/gcp.js";
import type { Ambient } from "../../core/lifecycle.js";
import { displayName } from "../../core/names.js";
import type { CloudProvider, PreparedSign, SignContext, SignedRequest } from "../provider.js";
import {
  type Goog4Plan,
  type Goog4Result,
  type Goog4Signer,
  goog4,
  goog4Date,
  hmacSigner,
  rsaSigner,
} from "./goog4.js";
import { authorizeGcs } from "./policy.js";
import type { ValidGcsSign } from "./sign-request.js";

/** The scope a service account's bearer token asks for when the credential names none. */
export const DEFAULT_TOKEN_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"];
/** How long GCS accepts a header-signed request after its x-goog-date. */
export const HEADER_SIGNATURE_LIFETIME_SECONDS = 15 * 60;

export interface GcpSignerDeps {
  /** The signing clock, injected where the daemon is composed. */
  ambient: Pick<Ambient, "now">;
  /** OAuth tokens for service accounts (the JWT-bearer grant); without it header mode is refused. */
  accessToken?: CloudProvider["accessToken"];
}

export function prepareGcsSign(valid: ValidGcsSign, deps: GcpSignerDeps): PreparedSign {
  const target = {
    host: valid.url.host,
    action: valid.mapping.ok
      ? `storage:${valid.mapping.operation.action}`
      : `storage:${valid.method}`,
  };
  return {
    namespace: valid.namespace,
    credential: valid.credential,
    target,
    sign: async (c, ctx) => {
      const signed = await signGcs(valid, c, ctx, deps);
      // The audit line says an access token was lent (never its value).
      if (signed.lent) target.action = `${target.action}+google-session`;
      return signed.request;
    },
  };
}

/** The plan the GOOG4 signer reads; invalid_argument for a URL that would outlive the credential. */
export function goog4Plan(valid: ValidGcsSign, c: Credential, now: Date): Goog4Plan {
  const notAfter = c.expiresAt === undefined ? undefined : timestampDate(c.expiresAt);
  const seconds = valid.presignExpiresSeconds;
  if (
    seconds !== undefined &&
    notAfter !== undefined &&
    now.getTime() + seconds * 1000 > notAfter.getTime()
  ) {
    throw new DomainError(
      "invalid_argument",
      `presign_expires_seconds: the URL would outlive the credential, which expires at ${notAfter.toISOString()}`,
    );
  }
  const given = valid.headers["x-goog-date"];
  if (given !== undefined && given !== goog4Date(now).long) {
    throw new DomainError(
      "invalid_argument",
      "x-goog-date header: differs from the signer's clock; leave it out (the signer sets it)",
    );
  }
  return {
    method: valid.method,
    url: valid.url,
    headers: valid.headers,
    query: valid.query,
    payloadHash: valid.payloadHash,
    region: valid.region,
    presignExpiresSeconds: seconds,
    now,
  };
}

/** The signer of a service account key file (the key is loaded for this one signature). */
export function serviceAccountSigner(keyJson: string): Goog4Signer {
  const read = readServiceAccountKey(keyJson);
  if (!read.ok) throw new DomainError("failed_precondition", "the stored key file does not load");
  return rsaSigner(read.key.clientEmail, createPrivateKey(read.key.privateKey));
}

/**
 * Policy, then the signature: a presigned URL (GOOG4-RSA-SHA256 with a
 * service account, GOOG4-HMAC-SHA256 with an HMAC key), HMAC header
 * signing, or a service account's bearer token in header mode.
 */
async function signGcs(
  valid: ValidGcsSign,
  c: Credential,
  ctx: SignContext,
  deps: GcpSignerDeps,
): Promise<{ request: SignedRequest; lent: boolean }> {
  const now = deps.ambient.now();
  const presign = valid.presignExpiresSeconds !== undefined;
  const bearer = !presign && c.kind.case === "serviceAccount";
  // Forwarded, the token never reaches the caller: scopes then bound the one request sent.
  authorizeGcs(c, valid, bearer && !ctx.forwarded, now);
  const plan = goog4Plan(valid, c, now);
  const notAfter = c.expiresAt === undefined ? undefined : timestampDate(c.expiresAt);
  const cap = (end: Date) => (notAfter === undefined || end < notAfter ? end : notAfter);
  if (bearer) return { request: await bearerHeaders(valid, c, deps, cap), lent: true };
  const full = await ctx.withSecrets();
  // Written since it was read: decide again on the version whose secret signs.
  if (full.etag !== c.etag || full.kind.case !== c.kind.case) {
    return { request: await ctx.again(full), lent: false };
  }
  let signer: Goog4Signer;
  if (full.kind.case === "serviceAccount") signer = serviceAccountSigner(full.kind.value.keyJson);
  else if (full.kind.case === "accessKey") {
    signer = hmacSigner(full.kind.value.accessKeyId, full.kind.value.secretAccessKey);
  } else
    throw new DomainError("failed_precondition", `${displayName(c.namespace, c.name)} cannot sign`);
  const result = goog4(plan, signer);
  const seconds = valid.presignExpiresSeconds ?? HEADER_SIGNATURE_LIFETIME_SECONDS;
  return {
    request: {
      url: result.url,
      headers: headersToSend(valid, result),
      keyId: signer.keyId,
      expiresAt: cap(new Date(now.getTime() + seconds * 1000)),
    },
    lent: false,
  };
}

/** The caller's headers, then those the signer signed or set that the caller did not give. */
function headersToSend(valid: ValidGcsSign, result: Goog4Result): [string, string][] {
  const out: [string, string][] = [...valid.callerHeaders];
  const given = new Set(out.map(([n]) => n.toLowerCase()));
  for (const name of ["x-goog-date", "x-goog-content-sha256"]) {
    const value = result.signed[name];
    if (value !== undefined && !given.has(name)) out.push([name, value]);
  }
  if (result.authorization !== undefined) out.push(["authorization", result.authorization]);
  return out;
}

async function bearerHeaders(
  valid: ValidGcsSign,
  c: Credential,
  deps: GcpSignerDeps,
  cap: (end: Date) => Date,
): Promise<SignedRequest> {
  const who = displayName(c.namespace, c.name);
  if (deps.accessToken === undefined) {
    throw new DomainError(
      "failed_precondition",
      `${who} is a service account: this daemon mints no Google access tokens, so it signs only presigned URLs (presign_expires_seconds)`,
    );
  }
  const scopes = c.tokenScopes.length > 0 ? c.tokenScopes : DEFAULT_TOKEN_SCOPES;
  const token = await deps.accessToken(c.namespace, c.name, scopes, c.id);
  const headers: [string, string][] = [
    ...valid.callerHeaders,
    ["authorization", `Bearer ${token.token}`],
  ];
  return {
    url:
      valid.url.query === ""
        ? `${valid.url.scheme}://${valid.url.authority}${valid.url.path}`
        : `${valid.url.scheme}://${valid.url.authority}${valid.url.path}?${valid.url.query}`,
    headers,
    keyId: c.kind.case === "serviceAccount" ? c.kind.value.clientEmail : "",
    expiresAt: cap(token.expiresAt),
  };
}
