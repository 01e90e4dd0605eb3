import { Code, ConnectError } from "@connectrpc/connect";
import { Provider } from "../../gen/credbroker/v1/credential_pb.js";
import type { BrokerClient } from "./broker-client.js";
import { BrokerSigningError } from "./broker-signer.js";

export interface BrokerGcsOptions {
  client: BrokerClient;
  namespace?: string;
  /** A service account or HMAC key credential; "" = the namespace's Google Cloud default. */
  credential?: string;
}

export interface GcsSignedUrlRequest {
  bucket: string;
  /** The object name, unencoded ("" for a bucket-level URL). */
  object?: string;
  /** Unset: GET. */
  method?: string;
  /** Seconds the URL works, 1-604800; unset: 900. The broker also caps it at the credential's expiry. */
  expiresIn?: number;
  /**
   * "path" (unset): https://storage.googleapis.com/BUCKET/OBJECT;
   * "virtual-hosted": https://BUCKET.storage.googleapis.com/OBJECT.
   */
  style?: "path" | "virtual-hosted";
  /** A bucket-bound hostname (e.g. "https://cdn.example.com"): the URL has no bucket in it. */
  bucketBoundHostname?: string;
  /** Another storage endpoint (e.g. a test server), used path style. */
  endpoint?: string;
  /** Headers the request will carry (signed), e.g. content-type for a PUT. */
  headers?: Record<string, string>;
  /** Query parameters the URL carries besides the signature's. */
  queryParams?: Record<string, string>;
}

/** RFC 3986 unreserved characters stay, everything else (but "/") is escaped, as Google does. */
function encodeObject(name: string): string {
  return name
    .split("/")
    .map((s) =>
      encodeURIComponent(s).replace(
        /[!'()*]/g,
        (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
      ),
    )
    .join("/");
}

/** The URL the signed URL is for, before the signature's query parameters. */
function unsignedUrl(req: GcsSignedUrlRequest): URL {
  const object = encodeObject(req.object ?? "");
  let url: URL;
  if (req.bucketBoundHostname !== undefined) {
    const base = req.bucketBoundHostname.includes("://")
      ? req.bucketBoundHostname
      : `https://${req.bucketBoundHostname}`;
    url = new URL(`/${object}`, base);
  } else if (req.style === "virtual-hosted") {
    url = new URL(`https://${req.bucket}.storage.googleapis.com/${object}`);
  } else {
    const base = req.endpoint ?? "https://storage.googleapis.com";
    url = new URL(`${base.replace(/\/+$/, "")}/${req.bucket}/${object}`);
  }
  for (const [k, v] of Object.entries(req.queryParams ?? {})) url.searchParams.append(k, v);
  return url;
}

/**
 * A V4 signed URL for Cloud Storage, signed by the broker with a service
 * account (GOOG4-RSA-SHA256) or an HMAC key (GOOG4-HMAC-SHA256): the twin of
 * `getSignedUrl` for S3. The key never leaves the broker; the URL works for
 * `expiresIn` seconds for anyone who holds it.
 */
export async function brokerGcsSignedUrl(
  options: BrokerGcsOptions,
  req: GcsSignedUrlRequest,
): Promise<string> {
  try {
    const res = await options.client.signing.signRequest({
      namespace: options.namespace ?? "",
      credential: options.credential ?? "",
      provider: Provider.GCP,
      method: req.method ?? "GET",
      url: unsignedUrl(req).toString(),
      headers: Object.entries(req.headers ?? {}).map(([name, value]) => ({ name, value })),
      payload: { case: "unsignedPayload", value: true },
      region: "auto",
      service: "storage",
      presignExpiresSeconds: req.expiresIn ?? 900,
    });
    return res.url;
  } catch (err) {
    const e = ConnectError.from(err);
    throw new BrokerSigningError(Code[e.code] ?? "Unknown", e.rawMessage, { cause: err });
  }
}
