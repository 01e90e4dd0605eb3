import type { Credential } from "../../../gen/credbroker/v1/credential_pb.js";
import { matchHost } from "../../core/allowed-hosts.js";
import { DomainError } from "../../core/errors.js";
import { displayName } from "../../core/names.js";
import { inScope } from "../../core/scope-match.js";
import { assertUsable } from "../../core/usable.js";
import { BLOB_HOST_SUFFIX } from "./blob-request.js";
import type { ValidBlobRequest } from "./sign-request.js";

/**
 * Whether `c` may sign `req` at `now`; permission_denied naming the rule
 * (AccessDenied, ExpiredCredentials, HostNotAllowed, AccountMismatch,
 * BearerNotScoped, OperationNotScoped, ActionNotInScope). `lendsBearer`: a
 * service principal's token would go back to the caller, and a token is good
 * for any request until it expires, so a scoped credential lends none. With no allowed_hosts, only the
 * Blob endpoint of the credential's own account (or, for a service
 * principal, any *.blob.core.windows.net). Pure; messages never quote the
 * request's values.
 */
export function authorizeBlob(
  c: Credential,
  req: ValidBlobRequest,
  now: Date,
  lendsBearer = false,
): void {
  const who = displayName(c.namespace, c.name);
  if (c.kind.case !== "accessKey" && c.kind.case !== "servicePrincipal") {
    throw new DomainError("failed_precondition", `${who} cannot sign for Azure`);
  }
  assertUsable(c, now);
  const account = c.kind.case === "accessKey" ? c.kind.value.accessKeyId : undefined;
  if (!blobHostAllowed(c.allowedHosts, req.url.host, account)) {
    deny(
      "HostNotAllowed",
      c.allowedHosts.length === 0
        ? `${who} has no allowed_hosts, so it signs only for its account's Blob endpoint (ACCOUNT${BLOB_HOST_SUFFIX}), which the URL's host is not`
        : `the URL's host is not in ${who}'s allowed_hosts`,
    );
  }
  if (account !== undefined && req.target.account !== account) {
    deny("AccountMismatch", `the URL names another storage account than ${who}'s`);
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
  if (lendsBearer) {
    deny(
      "BearerNotScoped",
      `${who} has allowed_scopes, and its Entra token would be good for any request: use ForwardRequest, which sends the request without handing out the token`,
    );
  }
  const m = req.mapping;
  if (!m.ok) deny("OperationNotScoped", `${m.reason}, and ${who} has scopes`);
  const listing = m.action === "list_bucket";
  const key = listing ? m.listPrefix : req.target.blob;
  if (!inScope(c.allowedScopes, m.action, req.target.container, key, listing)) {
    deny(
      "ActionNotInScope",
      `${m.action} on the request's ${listing ? "container and prefix" : "container and blob"} is outside ${who}'s allowed_scopes`,
    );
  }
  const source = m.copySource;
  if (
    source !== undefined &&
    (source.account !== req.target.account ||
      !inScope(c.allowedScopes, "get_object", source.container, source.blob))
  ) {
    deny(
      "ActionNotInScope",
      `the copy source (x-ms-copy-source) needs get_object, outside ${who}'s allowed_scopes`,
    );
  }
}

/** allowed_hosts as everywhere (core/allowed-hosts.ts); none listed: the account's Blob endpoint. */
export function blobHostAllowed(
  allowed: readonly string[],
  host: string,
  account: string | undefined,
): boolean {
  if (allowed.length === 0) {
    const h = host.toLowerCase();
    return account === undefined
      ? h.endsWith(BLOB_HOST_SUFFIX) && h.length > BLOB_HOST_SUFFIX.length
      : h === `${account}${BLOB_HOST_SUFFIX}`;
  }
  return matchHost(allowed, host) !== undefined;
}

function deny(rule: string, detail: string): never {
  throw new DomainError("permission_denied", `${rule}: ${detail}`);
}
