import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Credential } from "../../../gen/credbroker/v1/credential_pb.js";
import { ipLiteral, matchHost } from "../../core/allowed-hosts.js";
import { DomainError } from "../../core/errors.js";
import type { Ambient } from "../../core/lifecycle.js";
import { displayName } from "../../core/names.js";
import type { CloudProvider, PreparedSign, SignedRequest } from "../provider.js";
import type { BlobAction } from "./blob-request.js";
import { authorizeBlob } from "./policy.js";
import { BLOB_VERSION, hmacBase64, serviceSasQuery, sharedKeyStringToSign } from "./shared-key.js";
import { describeBlobTarget, type ValidBlobRequest } from "./sign-request.js";

export interface AzureSignerDeps {
  ambient: Pick<Ambient, "now">;
  /** Entra ID tokens for service principals (absent: they cannot sign). */
  accessToken?: CloudProvider["accessToken"];
}

/** Azure accepts a Shared Key request within 15 minutes of its x-ms-date. */
const HEADER_SIGNATURE_LIFETIME_MS = 15 * 60 * 1000;
/** The resource a Blob request's Entra token is for when the credential names no token_scopes. */
export const STORAGE_SCOPE = "https://storage.azure.com/.default";

/** The SAS permissions (sp) each action needs, and no more. */
const SAS_PERMISSIONS: Record<BlobAction, string> = {
  get_object: "r",
  put_object: "w",
  delete_object: "d",
  list_bucket: "l",
};

export function prepareAzureSign(valid: ValidBlobRequest, deps: AzureSignerDeps): PreparedSign {
  const target = describeBlobTarget(valid);
  return {
    namespace: valid.namespace,
    credential: valid.credential,
    target,
    sign: async (c, ctx) => {
      const now = deps.ambient.now();
      authorizeBlob(c, valid, now, c.kind.case === "servicePrincipal" && !ctx.forwarded);
      if (c.kind.case === "servicePrincipal") {
        const signed = await bearer(valid, c, now, deps);
        // The audit line says a session was lent (never its value).
        target.action = `${target.action}+entra-session`;
        return signed;
      }
      const full = await ctx.withSecrets();
      if (full.etag !== c.etag || full.kind.case !== "accessKey") return ctx.again(full);
      const { accessKeyId: account, secretAccessKey: key } = full.kind.value;
      return valid.presignExpiresSeconds === undefined
        ? sharedKey(valid, account, key, now, notAfter(c))
        : presign(valid, c, account, key, now);
    },
  };
}

function notAfter(c: Credential): Date | undefined {
  return c.expiresAt === undefined ? undefined : timestampDate(c.expiresAt);
}

function capped(at: Date, limit: Date | undefined): Date {
  return limit !== undefined && limit < at ? limit : at;
}

function sharedKey(
  v: ValidBlobRequest,
  account: string,
  key: string,
  now: Date,
  limit: Date | undefined,
): SignedRequest {
  const out: [string, string][] = v.headers.list.map(([n, val]) => [n, val]);
  const signed = new Map<string, string>();
  for (const [n, val] of out) signed.set(n.toLowerCase(), val.trim());
  if (!signed.has("content-length") && v.bodyLength !== undefined) {
    out.push(["content-length", String(v.bodyLength)]);
    signed.set("content-length", String(v.bodyLength));
  }
  const date = now.toUTCString();
  for (const [n, val] of [
    ["x-ms-date", date],
    ["x-ms-version", BLOB_VERSION],
  ] as const) {
    out.push([n, val]);
    signed.set(n, val);
  }
  const signature = hmacBase64(key, sharedKeyStringToSign(v.method, v.url, account, signed));
  out.push(["authorization", `SharedKey ${account}:${signature}`]);
  return {
    url: urlOf(v, v.url.query),
    headers: out,
    keyId: account,
    expiresAt: capped(new Date(now.getTime() + HEADER_SIGNATURE_LIFETIME_MS), limit),
  };
}

function presign(
  v: ValidBlobRequest,
  c: Credential,
  account: string,
  key: string,
  now: Date,
): SignedRequest {
  const m = v.mapping;
  if (!m.ok) {
    invalid(
      "presign_expires_seconds: a SAS URL is made for Get/Put/Delete Blob and List Blobs only",
    );
  }
  const expiry = new Date(now.getTime() + (v.presignExpiresSeconds ?? 0) * 1000);
  const limit = notAfter(c);
  if (limit !== undefined && expiry > limit) {
    invalid(
      `presign_expires_seconds: the URL would outlive the credential, which expires at ${limit.toISOString()}`,
    );
  }
  const ipAllowed =
    ipLiteral(v.url.host) !== undefined && matchHost(c.allowedHosts, v.url.host) !== undefined;
  const sas = serviceSasQuery(
    {
      account,
      container: v.target.container,
      blob: m.action === "list_bucket" ? "" : v.target.blob,
      permissions: SAS_PERMISSIONS[m.action],
      expiry,
      protocol: ipAllowed ? "https,http" : "https",
    },
    key,
  );
  return {
    url: urlOf(v, v.url.query === "" ? sas : `${v.url.query}&${sas}`),
    headers: v.headers.list.map(([n, val]) => [n, val]),
    keyId: account,
    // se is written to the second: the URL is good until then.
    expiresAt: new Date(Math.floor(expiry.getTime() / 1000) * 1000),
  };
}

async function bearer(
  v: ValidBlobRequest,
  c: Credential,
  now: Date,
  { accessToken }: AzureSignerDeps,
): Promise<SignedRequest> {
  const who = displayName(c.namespace, c.name);
  if (accessToken === undefined) {
    throw new DomainError(
      "failed_precondition",
      `${who} is a service principal; this daemon mints no Entra ID tokens`,
    );
  }
  if (v.presignExpiresSeconds !== undefined) {
    invalid("presign_expires_seconds: a service principal holds no account key to sign a SAS with");
  }
  const scope = c.tokenScopes[0] ?? STORAGE_SCOPE;
  const token = await accessToken(c.namespace, c.name, [scope], c.id);
  const headers: [string, string][] = v.headers.list.map(([n, val]) => [n, val]);
  if (!v.headers.names().includes("content-length") && v.bodyLength !== undefined) {
    headers.push(["content-length", String(v.bodyLength)]);
  }
  headers.push(["x-ms-date", now.toUTCString()]);
  headers.push(["x-ms-version", BLOB_VERSION]);
  headers.push(["authorization", `Bearer ${token.token}`]);
  return {
    url: urlOf(v, v.url.query),
    headers,
    keyId: c.kind.case === "servicePrincipal" ? c.kind.value.clientId : "",
    expiresAt: capped(token.expiresAt, notAfter(c)),
  };
}

function urlOf(v: ValidBlobRequest, query: string): string {
  const base = `${v.url.scheme}://${v.url.authority}${v.url.path}`;
  return query === "" ? base : `${base}?${query}`;
}

function invalid(message: string): never {
  throw new DomainError("invalid_argument", message);
}
