import type { AccessScope } from "../../gen/credbroker/v1/credential_pb.js";

/**
 * An empty prefix, or one ending in "/", is a plain starts-with; otherwise the
 * key equals the prefix or starts with prefix + "/" (so "data" does not match
 * "data-private/x"). `prefixes = []` is the whole bucket (or container).
 */
export function prefixMatches(prefix: string, key: string): boolean {
  if (prefix === "" || prefix.endsWith("/")) return key.startsWith(prefix);
  return key === prefix || key.startsWith(`${prefix}/`);
}

/**
 * A listing prefix is inside a scope prefix only when every key it can list
 * is: under scope "data", listing "data" would also show "data-private/…",
 * so only "data/…" listings are allowed.
 */
export function listPrefixMatches(prefix: string, listPrefix: string): boolean {
  if (prefix === "" || prefix.endsWith("/")) return listPrefix.startsWith(prefix);
  return listPrefix.startsWith(`${prefix}/`);
}

/**
 * Whether some scope grants `action` on `bucket` and `key` (for a listing,
 * `key` is the list prefix). Cloud-neutral: S3 buckets and keys, Azure
 * containers and blob names.
 */
export function inScope(
  scopes: readonly AccessScope[],
  action: string,
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
