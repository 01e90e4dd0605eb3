import { createHmac } from "node:crypto";
import { percentDecode, type RawUrl } from "../../core/raw-url.js";

/** The Blob service version the broker signs for (x-ms-version, SAS sv). */
export const BLOB_VERSION = "2024-11-04";

/** The standard headers of the Shared Key string-to-sign, in order (after the verb). */
const STANDARD_HEADERS = [
  "content-encoding",
  "content-language",
  "content-length",
  "content-md5",
  "content-type",
  "date",
  "if-modified-since",
  "if-match",
  "if-none-match",
  "if-unmodified-since",
  "range",
] as const;

/**
 * The Shared Key string-to-sign of the Blob service (version 2015-02-21 and
 * later), as "Authorize with Shared Key" documents it: the verb, the standard
 * headers (Content-Length "" when 0), the canonicalized x-ms-* headers and the
 * canonicalized resource `/account/<encoded path>` then each query
 * parameter, lower-case name and decoded value, sorted by name.
 * `headers` are lower-case names, one value each (x-ms-date and x-ms-version
 * included).
 */
export function sharedKeyStringToSign(
  method: string,
  url: RawUrl,
  account: string,
  headers: ReadonlyMap<string, string>,
): string {
  const standard = STANDARD_HEADERS.map((name) => {
    const value = headers.get(name) ?? "";
    return name === "content-length" && value === "0" ? "" : value;
  });
  const msHeaders = [...headers.keys()]
    .filter((n) => n.startsWith("x-ms-"))
    .sort()
    .map((n) => `${n}:${(headers.get(n) ?? "").trimStart()}\n`)
    .join("");
  return `${method.toUpperCase()}\n${standard.join("\n")}\n${msHeaders}${canonicalizedResource(url, account)}`;
}

function canonicalizedResource(url: RawUrl, account: string): string {
  let out = `/${account}${url.path}`;
  // Decoded as Azure does: '+' is a space in a query value.
  const params = url.query
    .split("&")
    .filter((part) => part !== "")
    .map((part) => {
      const eq = part.indexOf("=");
      const k = eq < 0 ? part : part.slice(0, eq);
      const v = eq < 0 ? "" : part.slice(eq + 1);
      return [percentDecode(k).toLowerCase(), percentDecode(v.replace(/\+/g, "%20"))];
    })
    .sort(([a], [b]) => ((a ?? "") < (b ?? "") ? -1 : 1));
  for (const [k, v] of params) out += `\n${k}:${v}`;
  return out;
}

/** HMAC-SHA256 of `text` under the base64 account key, base64. */
export function hmacBase64(accountKey: string, text: string): string {
  return createHmac("sha256", Buffer.from(accountKey, "base64"))
    .update(text, "utf8")
    .digest("base64");
}

/** What a service SAS grants. */
export interface ServiceSas {
  account: string;
  container: string;
  /** "" for a container SAS (sr=c). */
  blob: string;
  permissions: string;
  expiry: Date;
  /** spr: "https", or "https,http" when plain http is allowed. */
  protocol: "https" | "https,http";
}

/**
 * A service SAS query string (without "?"), signed with the account key:
 * the string-to-sign of version 2020-12-06 and later ("Create a service
 * SAS"), with no start time, stored policy, IP range or response headers.
 */
export function serviceSasQuery(sas: ServiceSas, accountKey: string): string {
  const resource = sas.blob === "" ? "c" : "b";
  const canonical =
    sas.blob === ""
      ? `/blob/${sas.account}/${sas.container}`
      : `/blob/${sas.account}/${sas.container}/${sas.blob}`;
  const se = sasTime(sas.expiry);
  const stringToSign = [
    sas.permissions,
    "", // st
    se,
    canonical,
    "", // si
    "", // sip
    sas.protocol,
    BLOB_VERSION,
    resource,
    "", // snapshot time
    "", // encryption scope
    "", // rscc
    "", // rscd
    "", // rsce
    "", // rscl
    "", // rsct
  ].join("\n");
  const sig = hmacBase64(accountKey, stringToSign);
  const params: [string, string][] = [
    ["sv", BLOB_VERSION],
    ["spr", sas.protocol],
    ["se", se],
    ["sr", resource],
    ["sp", sas.permissions],
    ["sig", sig],
  ];
  return params.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&");
}

/** ISO 8601 UTC to the second, as SAS times are written. */
export function sasTime(d: Date): string {
  return `${d.toISOString().slice(0, 19)}Z`;
}
