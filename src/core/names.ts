import { DomainError } from "./errors.js";

const NAME = /^[A-Za-z0-9._-]{1,64}$/;

/** A credential name: 1–64 of letters, digits, '.', '_', '-'. */
export function isValidName(name: string): boolean {
  return NAME.test(name);
}

/** A namespace: "" (the workspace) or a valid name. */
export function isValidNamespace(namespace: string): boolean {
  return namespace === "" || NAME.test(namespace);
}

/** Throws invalid_argument unless `namespace` is a namespace. */
export function assertNamespace(namespace: string, prefix = ""): void {
  if (!isValidNamespace(namespace)) {
    throw new DomainError(
      "invalid_argument",
      `${prefix}namespace: must be empty or 1-64 of letters, digits, '.', '_', '-'`,
    );
  }
}

/** Throws invalid_argument unless `namespace`/`name` address a credential. */
export function assertRef(namespace: string, name: string, prefix = ""): void {
  assertNamespace(namespace, prefix);
  if (!isValidName(name)) {
    throw new DomainError(
      "invalid_argument",
      `${prefix}name: must be 1-64 of letters, digits, '.', '_', '-'`,
    );
  }
}

/** "team-a/s3-reader", or "s3-reader" in the workspace: how messages name a credential. */
export function displayName(namespace: string, name: string): string {
  return namespace === "" ? name : `${namespace}/${name}`;
}

/** A namespace for messages: "namespace team-a", or the workspace, which is otherwise invisible. */
export function namespaceShown(namespace: string): string {
  return namespace === "" ? 'the workspace (namespace "")' : `namespace ${namespace}`;
}

/**
 * The not_found message of a credential that is absent, or hidden from the
 * caller: one text for both, so that a refusal is no existence oracle.
 */
export function credentialNotFound(namespace: string, name: string): string {
  return namespace === ""
    ? `credential ${name} not found in ${namespaceShown(namespace)}`
    : `credential ${namespace}/${name} not found`;
}
