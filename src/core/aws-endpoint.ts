/** What an AWS host name says about the request: service, region, and an S3 virtual-hosted bucket. */
export interface EndpointInfo {
  service: string;
  region: string | undefined;
  /** The bucket of a virtual-hosted S3 URL. */
  bucket?: string;
}

const AWS_SUFFIX = /\.amazonaws\.com(\.cn)?$/;

/** True for AWS's own endpoints (*.amazonaws.com, *.amazonaws.com.cn). */
export function isAwsHost(host: string): boolean {
  return AWS_SUFFIX.test(host);
}

/**
 * Infers service and region from an AWS host name: S3 path-style and
 * virtual-hosted (regional, legacy s3-REGION, dualstack, global), STS regional
 * and global, and `<service>.<region>.amazonaws.com`. Undefined for other hosts.
 */
export function inferEndpoint(host: string): EndpointInfo | undefined {
  const suffix = AWS_SUFFIX.exec(host);
  if (suffix === null) return undefined;
  const labels = host.slice(0, suffix.index).split(".");
  const china = suffix[1] !== undefined;
  const s3 = labels.findIndex((l) => l === "s3" || /^s3-/.test(l));
  if (s3 >= 0) {
    const bucket = s3 > 0 ? labels.slice(0, s3).join(".") : undefined;
    const label = labels[s3] ?? "s3";
    const rest = labels.slice(s3 + 1).filter((l) => l !== "dualstack" && l !== "s3-control");
    const region =
      label !== "s3" && label !== "s3-external-1"
        ? label.slice(3)
        : (rest[0] ?? (china ? "cn-north-1" : "us-east-1"));
    return { service: "s3", region, ...(bucket ? { bucket } : {}) };
  }
  const [service, region] = labels;
  if (service === undefined || service === "") return undefined;
  if (region === undefined) {
    // Global endpoints (sts.amazonaws.com, iam.amazonaws.com) sign in the partition's first region.
    return { service, region: china ? "cn-north-1" : "us-east-1" };
  }
  return { service, region };
}
