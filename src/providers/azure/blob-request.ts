import { percentDecode, type RawUrl } from "../../core/raw-url.js";
import type { RequestHeaders } from "../../core/request-headers.js";

/** The Blob service's host suffix: `account.blob.core.windows.net/container/blob`. */
export const BLOB_HOST_SUFFIX = ".blob.core.windows.net";

/** A Blob service URL read: whose account, which container and blob. */
export interface BlobTarget {
  account: string;
  /** "" for an account-level request. */
  container: string;
  /** "" for a container- or account-level request (decoded). */
  blob: string;
}

/** The scope actions Blob operations map to (docs/API.md "Azure"). */
export type BlobAction = "get_object" | "put_object" | "delete_object" | "list_bucket";

export type BlobMapping =
  | {
      ok: true;
      action: BlobAction;
      /** For list_bucket: the `prefix` parameter ("" when none). */
      listPrefix: string;
      /** A copy's source (x-ms-copy-source), which needs get_object there. */
      copySource?: BlobTarget | undefined;
    }
  | { ok: false; reason: string };

/**
 * The account, container and blob of `url`: from the host name on
 * `*.blob.core.windows.net`, else path-style (`/account/container/blob`, as
 * Azurite serves it). The blob name is the rest of the path, decoded.
 */
export function blobTarget(url: RawUrl): BlobTarget {
  const path = url.path.slice(1);
  let account: string;
  let rest: string;
  if (url.host.endsWith(BLOB_HOST_SUFFIX)) {
    account = url.host.slice(0, -BLOB_HOST_SUFFIX.length);
    rest = path;
  } else {
    const slash = path.indexOf("/");
    account = percentDecode(slash < 0 ? path : path.slice(0, slash));
    rest = slash < 0 ? "" : path.slice(slash + 1);
  }
  const slash = rest.indexOf("/");
  const container = percentDecode(slash < 0 ? rest : rest.slice(0, slash));
  const blob = slash < 0 ? "" : percentDecode(rest.slice(slash + 1));
  return { account, container, blob };
}

/**
 * Maps a Blob request to a scope action: get_object = Get Blob / Get Blob
 * Properties, put_object = Put Blob / Put Block / Put Block List,
 * delete_object = Delete Blob, list_bucket = List Blobs. Anything else
 * (container and account operations, ACLs, leases, metadata, tiers, ...) is
 * unmapped.
 */
export function mapBlobRequest(
  method: string,
  target: BlobTarget,
  /** Decoded (raw-url queryParams). */
  query: readonly [string, string][],
  headers: RequestHeaders,
): BlobMapping {
  const params = new Map(query.map(([k, v]) => [k.toLowerCase(), v]));
  const comp = params.get("comp");
  const restype = params.get("restype");
  const m = method.toUpperCase();
  if (target.container === "") return unmapped("an account-level request");
  if (target.blob === "") {
    if (m === "GET" && restype === "container" && comp === "list") {
      return { ok: true, action: "list_bucket", listPrefix: params.get("prefix") ?? "" };
    }
    return unmapped("a container operation other than List Blobs");
  }
  if (restype !== undefined) return unmapped("a blob request with restype");
  const copy = headers.joinedValue("x-ms-copy-source");
  if ((m === "GET" || m === "HEAD") && comp === undefined) {
    return { ok: true, action: "get_object", listPrefix: "" };
  }
  if (m === "PUT" && (comp === undefined || comp === "block" || comp === "blocklist")) {
    if (copy === undefined) return { ok: true, action: "put_object", listPrefix: "" };
    const source = copySource(copy);
    if (source === undefined) return unmapped("a copy whose x-ms-copy-source is not a blob URL");
    return { ok: true, action: "put_object", listPrefix: "", copySource: source };
  }
  if (m === "DELETE" && comp === undefined) {
    return { ok: true, action: "delete_object", listPrefix: "" };
  }
  return unmapped("a Blob operation outside Get Blob, Put Blob/Block/Block List, Delete Blob");
}

function copySource(value: string): BlobTarget | undefined {
  const m = /^(https?):\/\/([^/?#]+)(\/[^?#]*)(?:\?[^#]*)?$/i.exec(value.trim());
  if (m === null) return undefined;
  const host = (m[2] ?? "").toLowerCase().replace(/:\d+$/, "");
  const target = blobTarget({
    scheme: "https",
    host,
    authority: host,
    port: undefined,
    path: m[3] ?? "/",
    query: "",
  });
  return target.blob === "" ? undefined : target;
}

function unmapped(reason: string): BlobMapping {
  return { ok: false, reason: `the request is ${reason}, which maps to no scope action` };
}
