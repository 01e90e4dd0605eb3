import { Provider } from "../../gen/credbroker/v1/credential_pb.js";
import { readHostPattern } from "./allowed-hosts.js";

/**
 * Per cloud, the domains under which policy knows where a request's bucket
 * is, so a `*.` wildcard there can carry scopes: AWS reads virtual-hosted
 * buckets from the host (providers/aws/endpoint.ts); on Google API hosts
 * Cloud Storage reads BUCKET.storage.googleapis.com from the host and
 * storage.googleapis.com from the path, and maps no other host into a scope
 * (providers/gcp/gcs-request.ts); Blob Storage names the container in the
 * path, the account being the first label of *.blob.core.windows.net. A new cloud with virtual hosting adds its domain
 * here and reads the bucket from the host in its provider.
 */
const SCOPABLE_WILDCARD_DOMAINS: Readonly<Record<number, readonly string[]>> = {
  [Provider.AWS]: [".amazonaws.com", ".amazonaws.com.cn"],
  [Provider.GENERIC]: [".amazonaws.com", ".amazonaws.com.cn"],
  [Provider.AZURE]: [".blob.core.windows.net"],
  [Provider.GCP]: [".googleapis.com"],
};

/** The wildcard domains `provider` reads buckets under, for messages. */
export function scopableWildcardDomains(provider: Provider): readonly string[] {
  return SCOPABLE_WILDCARD_DOMAINS[provider] ?? SCOPABLE_WILDCARD_DOMAINS[Provider.AWS] ?? [];
}

/**
 * An allowed_hosts wildcard outside those domains, such as
 * `*.minio.example.com`. A server there may read the bucket from the host
 * name (virtual-hosted), while credbroker reads such a URL path-style: the
 * bucket policy sees is not the one the server acts on, so scopes cannot be
 * enforced under such a wildcard.
 */
export function isUnscopableWildcard(entry: string, provider: Provider = Provider.AWS): boolean {
  const { pattern, wildcard } = readHostPattern(entry);
  const suffix = pattern.slice(1);
  return wildcard && !scopableWildcardDomains(provider).some((d) => suffix.endsWith(d));
}
