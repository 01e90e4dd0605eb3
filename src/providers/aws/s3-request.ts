import { percentDecode } from "../../core/raw-url.js";
import type { RequestHeaders } from "../../core/request-headers.js";
import type { S3Action } from "../../core/s3-actions.js";

/** An S3 request reduced to what policy decides on. */
export interface S3Operation {
  action: S3Action;
  bucket: string;
  /** The object key (decoded); "" for bucket-level actions. */
  key: string;
  /** list_bucket: the `prefix` query parameter ("" when absent). */
  listPrefix?: string;
  /** A copy's source (x-amz-copy-source): needs get_object there too. */
  copySource?: { bucket: string; key: string };
  /** Actions the request's headers need on the same key as well (x-amz-acl: put_object_acl, …). */
  alsoNeeds?: S3Action[];
}

export type S3Mapping = { ok: true; operation: S3Operation } | { ok: false; reason: string };

/** Query parameters that do not change what an object or list request does. */
const OBJECT_READ_PARAMS = new Set([
  "versionId",
  "partNumber",
  "response-cache-control",
  "response-content-disposition",
  "response-content-encoding",
  "response-content-language",
  "response-content-type",
  "response-expires",
]);
const LIST_PARAMS = new Set([
  "list-type",
  "prefix",
  "delimiter",
  "max-keys",
  "marker",
  "continuation-token",
  "start-after",
  "encoding-type",
  "fetch-owner",
]);

/** S3 sub-resources, named in reasons; any other parameter name is the caller's and is not quoted. */
const SUBRESOURCES = new Set([
  "accelerate",
  "acl",
  "analytics",
  "attributes",
  "cors",
  "delete",
  "encryption",
  "intelligent-tiering",
  "inventory",
  "legal-hold",
  "lifecycle",
  "location",
  "logging",
  "metrics",
  "notification",
  "object-lock",
  "ownershipControls",
  "policy",
  "policyStatus",
  "publicAccessBlock",
  "replication",
  "requestPayment",
  "restore",
  "retention",
  "select",
  "select-type",
  "tagging",
  "torrent",
  "uploadId",
  "uploads",
  "versioning",
  "versions",
  "website",
]);

function isS3Param(name: string): boolean {
  return SUBRESOURCES.has(name) || OBJECT_READ_PARAMS.has(name) || LIST_PARAMS.has(name);
}

function paramName(name: string): string {
  return isS3Param(name) ? name : "(other)";
}

export interface S3RequestParts {
  method: string;
  /** The bucket from a virtual-hosted host name, if any. */
  hostBucket: string | undefined;
  /** The path, percent-decoded. */
  path: string;
  query: readonly [string, string][];
  /** The headers as signed: the same view the signer reads. */
  headers: RequestHeaders;
}

/**
 * Headers that do more than write an object: IAM wants its own permission
 * for each, so a scope must name the matching action too.
 */
const EXTRA_PERMISSION: readonly [pattern: RegExp, action: S3Action][] = [
  [/^x-amz-(acl|grant-.*)$/, "put_object_acl"],
  [/^x-amz-object-lock-.*$/, "put_object_retention"],
  [/^x-amz-tagging$/, "put_object_tagging"],
];
/**
 * Needs s3:BypassGovernanceRetention, which no scope action grants: deleting
 * or overwriting an object under a governance lock is never signed for a scope.
 */
const BYPASS_GOVERNANCE = "x-amz-bypass-governance-retention";

/**
 * Maps an S3 request to the one action a scope can grant, or says why it
 * cannot be mapped (ListBuckets, ?acl, ?policy, ?delete, bucket creation, …):
 * while a credential has scopes, whatever cannot be mapped is denied.
 */
export function mapS3Request(r: S3RequestParts): S3Mapping {
  const method = r.method.toUpperCase();
  let bucket = r.hostBucket;
  let key = r.path.replace(/^\//, "");
  if (bucket === undefined) {
    const slash = key.indexOf("/");
    bucket = slash < 0 ? key : key.slice(0, slash);
    key = slash < 0 ? "" : key.slice(slash + 1);
  }
  if (bucket === "")
    return { ok: false, reason: `${method} / (ListBuckets) is not a scoped action` };
  if (key.split("/").some((s) => s === "." || s === "..")) {
    return { ok: false, reason: 'the object key has "." or ".." segments' };
  }
  // The AWS SDKs add ?x-id=<Operation> for their own routing; S3 ignores it.
  const query = r.query.filter(([k]) => k !== "x-id");
  const params = new Map(query);
  // Servers differ on which of two values they use (the first, or the last):
  // policy must decide on the one the server acts on, so it refuses both.
  if (params.size !== query.length) {
    const seen = new Set<string>();
    const repeated = query.find(([k]) => seen.size === seen.add(k).size)?.[0];
    const named = repeated !== undefined && isS3Param(repeated) ? ` ${repeated}` : "";
    return { ok: false, reason: `query parameter${named} is given more than once` };
  }
  const only = (allowed: ReadonlySet<string>) => [...params.keys()].every((k) => allowed.has(k));
  const unmapped = (): S3Mapping => ({
    ok: false,
    reason: `${method} ${key === "" ? "bucket" : "object"}${params.size ? ` with ?${[...params.keys()].map(paramName).join("&")}` : ""} is not a scoped action`,
  });
  const op = (action: S3Action, extra: Partial<S3Operation> = {}): S3Mapping => ({
    ok: true,
    operation: { action, bucket: bucket as string, key, ...extra },
  });

  if (key === "") {
    return method === "GET" && only(LIST_PARAMS)
      ? op("list_bucket", { listPrefix: params.get("prefix") ?? "" })
      : unmapped();
  }
  const has = (k: string) => params.has(k);
  if (r.headers.has(BYPASS_GOVERNANCE)) {
    return { ok: false, reason: `${BYPASS_GOVERNANCE} is not a scoped action` };
  }
  switch (method) {
    case "GET":
      return only(OBJECT_READ_PARAMS) ? op("get_object") : unmapped();
    case "HEAD":
      return only(OBJECT_READ_PARAMS) ? op("head_object") : unmapped();
    case "PUT": {
      if (has("partNumber") && has("uploadId") && params.size === 2) {
        return copyAware("upload_part");
      }
      return params.size === 0 ? copyAware("put_object") : unmapped();
    }
    case "POST":
      if (has("uploads") && params.size === 1)
        return op("create_multipart_upload", extraPermissions());
      if (has("uploadId") && params.size === 1) return op("complete_multipart_upload");
      return unmapped();
    case "DELETE":
      if (has("uploadId") && params.size === 1) return op("abort_multipart_upload");
      return only(new Set(["versionId"])) ? op("delete_object") : unmapped();
    default:
      return unmapped();
  }

  function copyAware(action: S3Action): S3Mapping {
    // Parts take no ACL, lock or tags; a PUT of a whole object (or a copy) does.
    const extra = action === "put_object" ? extraPermissions() : {};
    const source = r.headers.get("x-amz-copy-source");
    if (source === undefined) return op(action, extra);
    // SigV4 signs runs of whitespace as one space: the value sent could differ from the one checked.
    if (/[ \t]/.test(source))
      return { ok: false, reason: "x-amz-copy-source has whitespace: URL-encode it" };
    const parsed = parseCopySource(source);
    if (parsed === undefined)
      return { ok: false, reason: "x-amz-copy-source is not /bucket/key without dot segments" };
    return op(action, { copySource: parsed, ...extra });
  }

  function extraPermissions(): Partial<S3Operation> {
    const names = r.headers.names().filter((n) => r.headers.has(n));
    const needs = EXTRA_PERMISSION.filter(([p]) => names.some((n) => p.test(n))).map(([, a]) => a);
    return needs.length === 0 ? {} : { alsoNeeds: needs };
  }
}

/**
 * "/bucket/key?versionId=…" or "bucket/key", URL-encoded; decoded as the
 * request path is, so an encoded ".." is seen however the escapes around it
 * are written.
 */
function parseCopySource(value: string): { bucket: string; key: string } | undefined {
  const path = percentDecode(value.split("?")[0] ?? "").replace(/^\//, "");
  const slash = path.indexOf("/");
  if (slash <= 0 || slash === path.length - 1) return undefined;
  const key = path.slice(slash + 1);
  if (key.split("/").some((s) => s === "." || s === "..")) return undefined;
  return { bucket: path.slice(0, slash), key };
}
