/** What an AWS host name says about the request: service, region, and an S3 virtual-hosted bucket. */
export interface EndpointInfo {
  service: string;
  region: string | undefined;
  /** The bucket of a virtual-hosted S3 URL. */
  bucket?: string;
}

const GLOBAL = ".amazonaws.com";
const CHINA = ".amazonaws.com.cn";

/** True for AWS's own endpoints (*.amazonaws.com, *.amazonaws.com.cn). */
export function isAwsHost(host: string): boolean {
  return host.endsWith(GLOBAL) || host.endsWith(CHINA);
}

/**
 * An allowed_hosts wildcard outside AWS, such as `*.minio.example.com`. A
 * server there may read the bucket from the host name (virtual-hosted), while
 * credbroker reads a non-AWS URL path-style: the bucket policy sees is not the
 * one the server acts on, so scopes cannot be enforced under such a wildcard.
 */
export function isNonAwsWildcard(pattern: string): boolean {
  return pattern.startsWith("*.") && !isAwsHost(pattern.slice(1).toLowerCase());
}

/**
 * Infers service and region from an AWS host name: S3 path-style and
 * virtual-hosted (regional, legacy s3-REGION, dualstack, global), STS regional
 * and global, and `<service>.<region>.amazonaws.com`. Undefined for other hosts.
 */
export function inferEndpoint(host: string): EndpointInfo | undefined {
  const china = host.endsWith(CHINA);
  if (!china && !host.endsWith(GLOBAL)) return undefined;
  const labels = host.slice(0, host.length - (china ? CHINA : GLOBAL).length).split(".");
  const partitionDefault = china ? "cn-north-1" : "us-east-1";
  // The S3 label is the last one that looks like it: a bucket (left of it) may
  // itself be called "s3-logs" or "s3.backups", a region (right of it) never is.
  const s3 = labels.findLastIndex((l) => l === "s3" || l.startsWith("s3-"));
  if (s3 >= 0) {
    const label = labels[s3] ?? "s3";
    const rest = labels.slice(s3 + 1).filter((l) => l !== "dualstack");
    const inLabel = label.slice(3);
    const region =
      label === "s3" || S3_LABEL_VARIANTS.has(inLabel) ? (rest[0] ?? partitionDefault) : inLabel;
    const bucket = label === "s3-control" || s3 === 0 ? undefined : labels.slice(0, s3).join(".");
    return { service: "s3", region, ...(bucket ? { bucket } : {}) };
  }
  if (labels.length === 1) {
    // Global endpoints (sts.amazonaws.com, iam.amazonaws.com) sign in the partition's first region.
    return labels[0] ? { service: labels[0], region: partitionDefault } : undefined;
  }
  // <prefix…>.<service>.<region>: execute-api, runtime.sagemaker, …
  const service = labels.at(-2);
  return service ? { service, region: labels.at(-1) } : undefined;
}

/** s3-<variant> labels that are not s3-<region>: the region, if any, follows them. */
const S3_LABEL_VARIANTS = new Set(["fips", "control", "accesspoint", "external-1", "website"]);
