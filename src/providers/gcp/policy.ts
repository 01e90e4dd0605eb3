import type { AccessScope, Credential } from "../../../gen/credbroker/v1/credential_pb.js";
import { matchHost } from "../../core/allowed-hosts.js";
import { DomainError } from "../../core/errors.js";
import { displayName } from "../../core/names.js";
import type { S3Action } from "../../core/s3-actions.js";
import { assertUsable } from "../../core/usable.js";
import type { ValidGcsSign } from "./sign-request.js";

/** Google API hosts: what a credential without allowed_hosts signs for. */
export function isGoogleApiHost(host: string): boolean {
  const h = host.endsWith(".") ? host.slice(0, -1) : host;
  return h.endsWith(".googleapis.com");
}

function deny(rule: string, detail: string): never {
  throw new DomainError("permission_denied", `${rule}: ${detail}`);
}

/**
 * Whether `c` may sign `req` at `now` (pure): usable, host allowed, and with
 * allowed_scopes the XML API request mapped into one. `bearer`: header mode
 * with a service account, whose token is good for any request until it
 * expires, so a scoped credential never hands one out.
 */
export function authorizeGcs(c: Credential, req: ValidGcsSign, bearer: boolean, now: Date): void {
  const who = displayName(c.namespace, c.name);
  if (c.kind.case !== "accessKey" && c.kind.case !== "serviceAccount") {
    throw new DomainError(
      "failed_precondition",
      `${who}: Google Cloud signs with an HMAC key (access_key) or a service_account`,
    );
  }
  assertUsable(c, now);
  const host = req.url.host;
  const hostOk =
    c.allowedHosts.length === 0
      ? isGoogleApiHost(host)
      : matchHost(c.allowedHosts, host) !== undefined;
  if (!hostOk) {
    deny(
      "HostNotAllowed",
      c.allowedHosts.length === 0
        ? `${who} has no allowed_hosts, so it signs only for Google API hosts (*.googleapis.com), which the URL's host is not`
        : `the URL's host is not in ${who}'s allowed_hosts`,
    );
  }
  if (c.allowedScopes.length === 0) {
    if (c.managedBy !== "") {
      deny(
        "AccessDenied",
        `${who} is declared in ${c.managedBy} with no allowed_scopes, so it grants nothing`,
      );
    }
    return;
  }
  if (bearer) {
    deny(
      "BearerNotScoped",
      `${who} has allowed_scopes, and a bearer token is good for any request: ask for a presigned URL (presign_expires_seconds)`,
    );
  }
  const mapping = req.mapping;
  if (!mapping.ok) deny("OperationNotScoped", `${mapping.reason}, and ${who} has scopes`);
  const op = mapping.operation;
  const listing = op.action === "list_bucket";
  const target = listing ? (op.listPrefix ?? "") : op.key;
  if (!inScope(c.allowedScopes, op.action, op.bucket, target, listing)) {
    deny(
      "ActionNotInScope",
      `${op.action} on the request's ${listing ? "bucket and prefix" : "bucket and object"} is outside ${who}'s allowed_scopes`,
    );
  }
  for (const also of op.alsoNeeds ?? []) {
    if (!inScope(c.allowedScopes, also, op.bucket, target)) {
      deny("ActionNotInScope", `its headers need ${also} too, outside ${who}'s allowed_scopes`);
    }
  }
  if (
    op.copySource &&
    !inScope(c.allowedScopes, "get_object", op.copySource.bucket, op.copySource.key)
  ) {
    deny(
      "ActionNotInScope",
      `the copy source (x-goog-copy-source) needs get_object, outside ${who}'s allowed_scopes`,
    );
  }
}

// A copy of providers/aws/policy.ts's prefix rules until they move to core/ (azsign's branch).
function prefixMatches(prefix: string, key: string): boolean {
  if (prefix === "" || prefix.endsWith("/")) return key.startsWith(prefix);
  return key === prefix || key.startsWith(`${prefix}/`);
}

function listPrefixMatches(prefix: string, listPrefix: string): boolean {
  if (prefix === "" || prefix.endsWith("/")) return listPrefix.startsWith(prefix);
  return listPrefix.startsWith(`${prefix}/`);
}

function inScope(
  scopes: readonly AccessScope[],
  action: S3Action,
  bucket: string,
  key: string,
  listing = false,
): boolean {
  const matches = listing ? listPrefixMatches : prefixMatches;
  return scopes.some(
    (s) =>
      s.bucket === bucket &&
      s.actions.includes(action) &&
      (s.prefixes.length === 0 || s.prefixes.some((p) => matches(p, key))),
  );
}
