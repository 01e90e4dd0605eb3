import { readHostPattern } from "./allowed-hosts.js";

/**
 * Domains whose virtual-hosted bucket names policy reads from the host
 * itself (providers/aws/endpoint.ts for AWS's). A new cloud with virtual
 * hosting adds its domain here and reads the bucket from the host there.
 */
const VIRTUAL_HOST_DOMAINS = [".amazonaws.com", ".amazonaws.com.cn"];

/**
 * An allowed_hosts wildcard outside those domains, such as
 * `*.minio.example.com`. A server there may read the bucket from the host
 * name (virtual-hosted), while credbroker reads such a URL path-style: the
 * bucket policy sees is not the one the server acts on, so scopes cannot be
 * enforced under such a wildcard.
 */
export function isNonAwsWildcard(entry: string): boolean {
  const { pattern, wildcard } = readHostPattern(entry);
  const suffix = pattern.slice(1);
  return wildcard && !VIRTUAL_HOST_DOMAINS.some((d) => suffix.endsWith(d));
}
