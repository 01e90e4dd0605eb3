import type { Credential } from "../../../gen/credbroker/v1/credential_pb.js";
import { matchHost } from "../../core/allowed-hosts.js";
import { DomainError } from "../../core/errors.js";
import { isUnscopableWildcard } from "../../core/host-wildcards.js";
import { displayName } from "../../core/names.js";
import { inScope } from "../../core/scope-match.js";
import { assertUsable } from "../../core/usable.js";
import { isAwsHost } from "./endpoint.js";
import { mapS3Request, type S3Mapping, type S3RequestParts } from "./s3-request.js";

/** What a signature is asked for, reduced to what policy decides on. */
export interface SignIntent {
  /** Lower-case host, without port. */
  host: string;
  service: string;
  /** Present for S3 requests. */
  s3?: S3RequestParts | undefined;
  /** `s3` mapped already (the sign plan maps it once for the audit line too). */
  s3Mapping?: S3Mapping | undefined;
}

/**
 * Whether `c` may sign `intent` at `now`. Pure: throws permission_denied
 * naming the rule (AccessDenied, ExpiredCredentials, HostNotAllowed,
 * WildcardHostWithScopes, OperationNotScoped, ActionNotInScope), or
 * failed_precondition for a kind that cannot sign, and returns nothing when
 * the signature may be made. Messages name the rule and the credential, never
 * the request's values (a URL or header may carry a secret).
 */
export function authorize(c: Credential, intent: SignIntent, now: Date): void {
  const who = displayName(c.namespace, c.name);
  if (c.kind.case === "token") {
    throw new DomainError(
      "failed_precondition",
      `${who} is a token credential: signing with it would reveal the token itself`,
    );
  }
  assertUsable(c, now);
  if (!hostAllowed(c.allowedHosts, intent.host)) {
    deny(
      "HostNotAllowed",
      c.allowedHosts.length === 0
        ? `${who} has no allowed_hosts, so it signs only for AWS endpoints (*.amazonaws.com, *.amazonaws.com.cn), which the URL's host is not`
        : `the URL's host is not in ${who}'s allowed_hosts`,
    );
  }
  // Records stored before create/update refused such wildcards on scoped credentials.
  if (
    c.allowedScopes.length > 0 &&
    c.allowedHosts.length > 0 &&
    !c.allowedHosts.some((p) => !isUnscopableWildcard(p) && hostAllowed([p], intent.host))
  ) {
    deny(
      "WildcardHostWithScopes",
      `the URL's host matches only a *. wildcard outside AWS in ${who}'s allowed_hosts; with allowed_scopes, hosts outside AWS must be listed exactly (the bucket may be in the host name)`,
    );
  }
  if (c.allowedScopes.length === 0) {
    // Declared credentials grant only what they list (as S3 proxies do): none listed, nothing granted.
    if (c.managedBy !== "") {
      deny(
        "AccessDenied",
        `${who} is declared in ${c.managedBy} with no allowed_scopes, so it grants nothing`,
      );
    }
    return;
  }
  if (intent.s3 === undefined) {
    deny(
      "OperationNotScoped",
      `${who} is scoped to S3 actions; a ${intent.service} request is in no scope`,
    );
  }
  const mapping = intent.s3Mapping ?? mapS3Request(intent.s3);
  if (!mapping.ok) deny("OperationNotScoped", `${mapping.reason}, and ${who} has scopes`);
  const op = mapping.operation;
  const listing = op.action === "list_bucket";
  const target = listing ? (op.listPrefix ?? "") : op.key;
  if (!inScope(c.allowedScopes, op.action, op.bucket, target, listing)) {
    deny(
      "ActionNotInScope",
      `${op.action} on the request's ${listing ? "bucket and prefix" : "bucket and key"} is outside ${who}'s allowed_scopes`,
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
      `the copy source (x-amz-copy-source) needs get_object, outside ${who}'s allowed_scopes`,
    );
  }
}

function deny(rule: string, detail: string): never {
  throw new DomainError("permission_denied", `${rule}: ${detail}`);
}

/**
 * `*.example.com` matches deeper subdomains only (not example.com itself);
 * matching is case-insensitive and the port is not part of the host
 * (core/allowed-hosts.ts). With no allowed_hosts, only AWS endpoints.
 */
export function hostAllowed(allowed: readonly string[], host: string): boolean {
  if (allowed.length === 0) return isAwsHost(host.toLowerCase());
  return matchHost(allowed, host) !== undefined;
}

// Scope matching is cloud-neutral (core/scope-match.ts); re-exported for existing imports.
export { listPrefixMatches, prefixMatches } from "../../core/scope-match.js";
