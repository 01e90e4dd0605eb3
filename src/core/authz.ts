import { type Caller, CallerRole } from "../../gen/credbroker/v1/caller_pb.js";
import { type Credential, ReadAccess } from "../../gen/credbroker/v1/credential_pb.js";
import { ConcealedDenial, DomainError } from "./errors.js";
import { credentialNotFound, displayName } from "./names.js";

/** What a request does, as roles grant it. */
/** "forward": ForwardRequest, the broker making the call (a use, like "sign"). */
export type Action = "read" | "write" | "sign" | "forward" | "admin";

const GRANTS: Record<CallerRole, readonly Action[]> = {
  [CallerRole.UNSPECIFIED]: [],
  [CallerRole.ADMIN]: ["read", "write", "sign", "forward", "admin"],
  [CallerRole.WRITER]: ["read", "write"],
  [CallerRole.READER]: ["read"],
  [CallerRole.SIGNER]: ["sign", "forward"],
};

/** What sharing lends: use, never reading or changing. */
const USES: ReadonlySet<Action> = new Set(["sign", "forward"]);

export function isAdmin(caller: Caller): boolean {
  return caller.role === CallerRole.ADMIN;
}

/** The caller acts in `namespace` (admins act everywhere). */
export function inNamespace(caller: Caller, namespace: string): boolean {
  return isAdmin(caller) || caller.namespaces.includes(namespace);
}

/** A credential shared with one of the caller's namespaces (for signing only). */
export function sharedWith(caller: Caller, c: Credential): boolean {
  if (c.readAccess === ReadAccess.GLOBAL) return true;
  return (
    c.readAccess === ReadAccess.SPECIFIC_NAMESPACES &&
    c.sharedNamespaces.some((ns) => caller.namespaces.includes(ns))
  );
}

/**
 * Whether `caller` may do `action` on credential `c`. Throws not_found when
 * the credential is neither in the caller's namespaces nor shared with them
 * (existence does not leak; the audit line says deny, namespace_not_allowed),
 * permission_denied when it is visible and the action is not granted.
 * Sharing lends signing only. Pure.
 */
export function authorizeCredential(caller: Caller, action: Action, c: Credential): void {
  const own = inNamespace(caller, c.namespace);
  const shared = !own && sharedWith(caller, c);
  if (!own && !shared) {
    // Worded as the store's own not_found for an absent credential.
    throw new ConcealedDenial(
      "not_found",
      credentialNotFound(c.namespace, c.name),
      "namespace_not_allowed",
    );
  }
  const granted = GRANTS[caller.role].includes(action) && (own || USES.has(action));
  if (!granted) {
    throw new DomainError(
      "permission_denied",
      `caller ${caller.name} (${roleName(caller.role)}) may not ${action} ${displayName(c.namespace, c.name)}${shared ? " (shared credentials lend use only: sign, forward)" : ""}`,
    );
  }
}

/**
 * Whether `caller` may do `action` in `namespace` where no credential is at
 * stake yet (create, list, provider default): permission_denied otherwise,
 * which reveals nothing about what the namespace holds.
 */
export function authorizeNamespace(caller: Caller, action: Action, namespace: string): void {
  if (!(GRANTS[caller.role].includes(action) && inNamespace(caller, namespace))) {
    throw new DomainError(
      "permission_denied",
      `caller ${caller.name} (${roleName(caller.role)}) may not ${action} in namespace "${namespace}"`,
    );
  }
}

/** Admin-only actions (callers). */
export function authorizeAdmin(caller: Caller): void {
  if (!isAdmin(caller)) {
    throw new DomainError("permission_denied", `caller ${caller.name} is not an admin`);
  }
}

export function roleName(role: CallerRole): string {
  return (CallerRole[role] ?? "UNSPECIFIED").toLowerCase();
}
