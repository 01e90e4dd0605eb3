import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isUnscopableWildcard } from "../../src/core/host-wildcards.js";
import { type EndpointInfo, inferEndpoint, isAwsHost } from "../../src/providers/aws/endpoint.js";

type InferRow = [label: string, host: string, expected: EndpointInfo | undefined];

const s3 = (region: string, bucket?: string): EndpointInfo =>
  bucket === undefined ? { service: "s3", region } : { service: "s3", region, bucket };

const inferRows: InferRow[] = [
  // S3 path-style.
  ["s3 global", "s3.amazonaws.com", s3("us-east-1")],
  ["s3 regional", "s3.eu-west-1.amazonaws.com", s3("eu-west-1")],
  ["s3 legacy s3-REGION", "s3-eu-west-1.amazonaws.com", s3("eu-west-1")],
  ["s3 legacy s3-external-1", "s3-external-1.amazonaws.com", s3("us-east-1")],
  ["s3 dualstack", "s3.dualstack.eu-west-1.amazonaws.com", s3("eu-west-1")],
  ["s3 China regional", "s3.cn-north-1.amazonaws.com.cn", s3("cn-north-1")],
  [
    "s3 China without a region: the partition's first region",
    "s3.amazonaws.com.cn",
    s3("cn-north-1"),
  ],
  // S3 virtual-hosted.
  ["virtual-hosted global", "bucket.s3.amazonaws.com", s3("us-east-1", "bucket")],
  ["virtual-hosted regional", "bucket.s3.eu-west-1.amazonaws.com", s3("eu-west-1", "bucket")],
  [
    "virtual-hosted legacy s3-REGION",
    "bucket.s3-eu-west-1.amazonaws.com",
    s3("eu-west-1", "bucket"),
  ],
  [
    "virtual-hosted dualstack",
    "bucket.s3.dualstack.us-west-2.amazonaws.com",
    s3("us-west-2", "bucket"),
  ],
  [
    "virtual-hosted dotted bucket name",
    "my.dotted.bucket.s3.us-west-2.amazonaws.com",
    s3("us-west-2", "my.dotted.bucket"),
  ],
  [
    "virtual-hosted China",
    "bucket.s3.cn-northwest-1.amazonaws.com.cn",
    s3("cn-northwest-1", "bucket"),
  ],
  [
    "virtual-hosted bucket with digits and dashes",
    "logs-2024.s3.amazonaws.com",
    s3("us-east-1", "logs-2024"),
  ],
  // A bucket whose name is "s3-…" (a common, valid bucket name) is still the bucket.
  [
    "virtual-hosted bucket named s3-logs (global)",
    "s3-logs.s3.amazonaws.com",
    s3("us-east-1", "s3-logs"),
  ],
  [
    "virtual-hosted bucket named s3-logs (regional)",
    "s3-logs.s3.eu-west-1.amazonaws.com",
    s3("eu-west-1", "s3-logs"),
  ],
  [
    "virtual-hosted dotted bucket with an s3 label",
    "s3.backups.s3.eu-west-1.amazonaws.com",
    s3("eu-west-1", "s3.backups"),
  ],
  // S3 FIPS endpoints sign in the region that follows the s3-fips label.
  ["s3 FIPS regional", "s3-fips.us-east-1.amazonaws.com", s3("us-east-1")],
  // STS, IAM and the generic <service>.<region> form.
  ["sts global signs in us-east-1", "sts.amazonaws.com", { service: "sts", region: "us-east-1" }],
  ["sts regional", "sts.eu-west-1.amazonaws.com", { service: "sts", region: "eu-west-1" }],
  [
    "sts China regional",
    "sts.cn-north-1.amazonaws.com.cn",
    { service: "sts", region: "cn-north-1" },
  ],
  ["iam global signs in us-east-1", "iam.amazonaws.com", { service: "iam", region: "us-east-1" }],
  ["ec2 regional", "ec2.us-west-2.amazonaws.com", { service: "ec2", region: "us-west-2" }],
  [
    "dynamodb regional",
    "dynamodb.ap-southeast-2.amazonaws.com",
    { service: "dynamodb", region: "ap-southeast-2" },
  ],
  // Not AWS.
  ["a non-AWS host", "example.com", undefined],
  ["an S3-compatible host", "minio.example.com", undefined],
  ["an IPv4 address", "127.0.0.1", undefined],
  ["an IPv6 literal", "[::1]", undefined],
  ["evilamazonaws.com (no dot before amazonaws)", "evilamazonaws.com", undefined],
  ["s3.evilamazonaws.com", "s3.evilamazonaws.com", undefined],
  ["amazonaws.com itself", "amazonaws.com", undefined],
  ["an AWS name under another domain", "s3.amazonaws.com.evil.com", undefined],
  ["a Google Cloud Storage host", "storage.googleapis.com", undefined],
];

describe("inferEndpoint", () => {
  for (const [label, host, expected] of inferRows) {
    test(`${label}: ${host}`, () => {
      assert.deepEqual(inferEndpoint(host), expected);
    });
  }
});

const awsHostRows: [host: string, aws: boolean][] = [
  ["s3.amazonaws.com", true],
  ["bucket.s3.eu-west-1.amazonaws.com", true],
  ["sts.amazonaws.com", true],
  ["s3.cn-north-1.amazonaws.com.cn", true],
  ["bucket.s3.cn-northwest-1.amazonaws.com.cn", true],
  ["amazonaws.com", false],
  ["amazonaws.com.cn", false],
  ["evilamazonaws.com", false],
  ["evilamazonaws.com.cn", false],
  ["s3.amazonaws.com.evil.com", false],
  ["amazonaws.com.cn.example.com", false],
  ["s3.amazonaws.co", false],
  ["example.com", false],
  ["127.0.0.1", false],
];

describe("isAwsHost", () => {
  for (const [host, aws] of awsHostRows) {
    test(`${host} is ${aws ? "" : "not "}an AWS endpoint`, () => {
      assert.equal(isAwsHost(host), aws);
    });
  }
});

const wildcardRows: [pattern: string, nonAws: boolean][] = [
  ["*.minio.example.com", true],
  ["*.example.com", true],
  ["*.evilamazonaws.com", true],
  ["*.amazonaws.com.evil.com", true],
  ["*.amazonaws.com", false],
  ["*.AmazonAWS.com", false],
  ["*.s3.eu-west-1.amazonaws.com", false],
  ["*.amazonaws.com.cn", false],
  ["minio.example.com", false],
  ["s3.amazonaws.com", false],
];

describe("isUnscopableWildcard", () => {
  for (const [pattern, nonAws] of wildcardRows) {
    test(`${pattern} is ${nonAws ? "" : "not "}a wildcard outside AWS`, () => {
      assert.equal(isUnscopableWildcard(pattern), nonAws);
    });
  }
});
