import type { S3Action } from "../../core/s3-actions.js";

/** How a URL names its bucket, read from the host. */
export type GcsHost =
  /** storage.googleapis.com (or storage.DOMAIN): the bucket is the path's first segment. */
  | { style: "path"; google: boolean }
  /** BUCKET.storage.googleapis.com (or BUCKET.storage.DOMAIN). */
  | { style: "virtual"; bucket: string; google: boolean }
  /** Anything else: a bucket-bound hostname, an emulator or a custom endpoint. */
  | { style: "other" };

const GOOGLE = "storage.googleapis.com";

export function readGcsHost(host: string): GcsHost {
  const h = host.endsWith(".") ? host.slice(0, -1) : host;
  if (h === GOOGLE) return { style: "path", google: true };
  if (h.endsWith(`.${GOOGLE}`)) {
    return { style: "virtual", bucket: h.slice(0, -GOOGLE.length - 1), google: true };
  }
  if (h.startsWith("storage.")) return { style: "path", google: false };
  const at = h.indexOf(".storage.");
  if (at > 0) return { style: "virtual", bucket: h.slice(0, at), google: false };
  return { style: "other" };
}

/** An XML API request reduced to what a scope decides on. */
export interface GcsOperation {
  action: S3Action;
  bucket: string;
  key: string;
  listPrefix?: string;
  copySource?: { bucket: string; key: string };
  alsoNeeds?: S3Action[];
}

export type GcsMapping = { ok: true; operation: GcsOperation } | { ok: false; reason: string };

const OBJECT_READ = new Set([
  "generation",
  "response-content-disposition",
  "response-content-type",
]);
const LIST = new Set([
  "prefix",
  "delimiter",
  "max-keys",
  "marker",
  "list-type",
  "continuation-token",
  "start-after",
  "encoding-type",
  "fetch-owner",
]);
const JSON_API = /^\/(storage|upload|download|batch)\/v1(\/|$)/;

export interface GcsRequestParts {
  method: string;
  host: GcsHost;
  /** The path, percent-decoded. */
  path: string;
  query: readonly [string, string][];
  /** Canonical header values by lower-case name. */
  headers: Readonly<Record<string, string>>;
}

/**
 * Maps a Cloud Storage XML API request (the API signed URLs and HMAC keys
 * speak) to the one action a scope can grant, or says why it cannot. The
 * bucket comes from the host for *.storage.googleapis.com (the path is then
 * all object key) and from the path on storage.googleapis.com; other hosts
 * (bucket-bound names, emulators) do not say which bucket they serve, and
 * the JSON API is signed only with a bearer token, so neither is in a scope.
 */
export function mapGcsRequest(r: GcsRequestParts): GcsMapping {
  const method = r.method.toUpperCase();
  if (r.host.style === "other" || !r.host.google) {
    return {
      ok: false,
      reason:
        "only storage.googleapis.com and BUCKET.storage.googleapis.com say which bucket a request is for",
    };
  }
  if (r.host.style === "path" && JSON_API.test(r.path)) {
    return { ok: false, reason: "the JSON API is not a scoped action (use the XML API)" };
  }
  let key = r.path.replace(/^\//, "");
  let bucket: string;
  if (r.host.style === "virtual") {
    bucket = r.host.bucket;
  } else {
    const slash = key.indexOf("/");
    bucket = slash < 0 ? key : key.slice(0, slash);
    key = slash < 0 ? "" : key.slice(slash + 1);
  }
  if (bucket === "")
    return { ok: false, reason: `${method} / (list buckets) is not a scoped action` };
  if (key.split("/").some((s) => s === "." || s === "..")) {
    return { ok: false, reason: 'the object name has "." or ".." segments' };
  }
  const params = new Map(r.query);
  if (params.size !== r.query.length) {
    return { ok: false, reason: "a query parameter is given more than once" };
  }
  const only = (allowed: ReadonlySet<string>) => [...params.keys()].every((k) => allowed.has(k));
  const unmapped = (): GcsMapping => ({
    ok: false,
    reason: `${method} ${key === "" ? "bucket" : "object"}${params.size ? " with these query parameters" : ""} is not a scoped action`,
  });
  const op = (action: S3Action, extra: Partial<GcsOperation> = {}): GcsMapping => ({
    ok: true,
    operation: { action, bucket, key, ...extra },
  });
  if (key === "") {
    return method === "GET" && only(LIST)
      ? op("list_bucket", { listPrefix: params.get("prefix") ?? "" })
      : unmapped();
  }
  const has = (k: string) => params.has(k);
  const acl = Object.keys(r.headers).some(
    (n) => n === "x-goog-acl" || n.startsWith("x-goog-grant-"),
  );
  const writeExtra = (): Partial<GcsOperation> => (acl ? { alsoNeeds: ["put_object_acl"] } : {});
  switch (method) {
    case "GET":
      return only(OBJECT_READ) ? op("get_object") : unmapped();
    case "HEAD":
      return only(OBJECT_READ) ? op("head_object") : unmapped();
    case "PUT": {
      if (has("partNumber") && has("uploadId") && params.size === 2) return op("upload_part");
      // A resumable upload's later requests go to its session URI.
      if (has("upload_id") && params.size === 1) return op("put_object");
      if (params.size !== 0) return unmapped();
      const source = r.headers["x-goog-copy-source"];
      if (source === undefined) return op("put_object", writeExtra());
      const parsed = parseCopySource(source);
      if (parsed === undefined) {
        return {
          ok: false,
          reason: "x-goog-copy-source is not /bucket/object without dot segments",
        };
      }
      return op("put_object", { copySource: parsed, ...writeExtra() });
    }
    case "POST":
      if (params.size === 0 && r.headers["x-goog-resumable"] === "start") {
        return op("put_object", writeExtra());
      }
      if (has("uploads") && params.size === 1) return op("create_multipart_upload", writeExtra());
      if (has("uploadId") && params.size === 1) return op("complete_multipart_upload");
      return unmapped();
    case "DELETE":
      if (has("uploadId") && params.size === 1) return op("abort_multipart_upload");
      if (has("upload_id") && params.size === 1) return op("put_object");
      return only(new Set(["generation"])) ? op("delete_object") : unmapped();
    default:
      return unmapped();
  }
}

function parseCopySource(value: string): { bucket: string; key: string } | undefined {
  let path: string;
  try {
    path = decodeURIComponent(value.split("?")[0] ?? "").replace(/^\//, "");
  } catch {
    return undefined;
  }
  const slash = path.indexOf("/");
  if (slash <= 0 || slash === path.length - 1) return undefined;
  const key = path.slice(slash + 1);
  if (key.split("/").some((s) => s === "." || s === "..")) return undefined;
  return { bucket: path.slice(0, slash), key };
}
