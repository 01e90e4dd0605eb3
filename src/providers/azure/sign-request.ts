import type { SignRequestRequest } from "../../../gen/credbroker/v1/signing_service_pb.js";
import { DomainError } from "../../core/errors.js";
import { parseRawUrl, queryParams, type RawUrl } from "../../core/raw-url.js";
import { RequestHeaders } from "../../core/request-headers.js";
import { checkSignTarget } from "../../core/sign-target.js";
import { type BlobMapping, type BlobTarget, blobTarget, mapBlobRequest } from "./blob-request.js";

export const MAX_PRESIGN_SECONDS = 604800;
const MAX_SIGN_HEADERS = 200;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is rejected
const BAD_HEADER_VALUE = /[\u0000\r\n]|\p{Cs}/u;
/** x-ms-* names signed in the canonical order: only characters whose order nobody disputes. */
const MS_HEADER = /^x-ms-[a-z0-9-]{1,59}$/;
/** Set by the broker: a caller-chosen date or version would change what is signed. */
const BROKER_HEADERS = new Set(["x-ms-date", "x-ms-version", "date", "authorization"]);
/** SAS parameters: the broker writes a presigned URL's; a second one would be read first by some servers. */
const SAS_PARAMS = new Set([
  "sv",
  "ss",
  "srt",
  "sp",
  "se",
  "st",
  "spr",
  "sip",
  "sr",
  "sig",
  "si",
  "sdd",
  "ses",
  "skoid",
  "sktid",
  "skt",
  "ske",
  "sks",
  "skv",
  "saoid",
  "suoid",
  "scid",
  "rscc",
  "rscd",
  "rsce",
  "rscl",
  "rsct",
]);

/** A SignRequest for the Blob service, checked for form. */
export interface ValidBlobRequest {
  namespace: string;
  credential: string;
  method: string;
  url: RawUrl;
  headers: RequestHeaders;
  /** The body's length when the caller sent the body (Content-Length is signed). */
  bodyLength: number | undefined;
  presignExpiresSeconds: number | undefined;
  target: BlobTarget;
  mapping: BlobMapping;
}

/** Checks a SignRequest's form for Azure Blob Storage; invalid_argument naming the field. */
export function validateBlobRequest(req: SignRequestRequest): ValidBlobRequest {
  checkSignTarget(req);
  if (!TOKEN.test(req.method)) invalid("method: an HTTP method such as GET or PUT");
  const url = parseRawUrl(req.url);
  if (req.headers.length > MAX_SIGN_HEADERS) invalid(`headers: at most ${MAX_SIGN_HEADERS}`);
  const seen = new Set<string>();
  const list: [string, string][] = [];
  req.headers.forEach((h, i) => {
    const name = h.name.toLowerCase();
    if (!TOKEN.test(h.name)) invalid(`headers[${i}].name: not a valid header name`);
    if (BAD_HEADER_VALUE.test(h.value))
      invalid(`headers[${i}].value (${name}): no CR, LF, NUL or lone surrogate`);
    if (BROKER_HEADERS.has(name))
      invalid(`headers[${i}]: ${name} is set by the broker, not the caller`);
    if (name.startsWith("x-ms-") && !MS_HEADER.test(name))
      invalid(`headers[${i}].name: x-ms-* names are lower-case letters, digits and '-'`);
    if (name === "host" && h.value.toLowerCase() !== url.authority.toLowerCase())
      invalid(`headers[${i}]: a host header must equal the URL's host[:port]`);
    if (seen.has(name)) invalid(`headers[${i}]: repeats an earlier header (any letter case)`);
    seen.add(name);
    list.push([h.name, h.value]);
  });
  const headers = new RequestHeaders(list);
  const query = queryParams(url.query);
  const names = new Set<string>();
  query.forEach(([k], i) => {
    const lower = k.toLowerCase();
    if (SAS_PARAMS.has(lower))
      invalid(`url: query parameter ${i + 1} is a SAS parameter the broker sets`);
    if (names.has(lower)) invalid(`url: query parameter ${i + 1} repeats an earlier one`);
    names.add(lower);
  });
  const presign = req.presignExpiresSeconds;
  if (presign !== 0 && (presign < 1 || presign > MAX_PRESIGN_SECONDS)) {
    invalid(`presign_expires_seconds: 1-${MAX_PRESIGN_SECONDS} (0 signs headers)`);
  }
  if (req.payload.case === "payloadSha256") {
    invalid("payload_sha256: Azure Shared Key signs no payload hash (send Content-Length)");
  }
  const target = blobTarget(url);
  return {
    namespace: req.namespace,
    credential: req.credential,
    method: req.method.toUpperCase(),
    url,
    headers,
    bodyLength: req.payload.case === "body" ? req.payload.value.length : undefined,
    presignExpiresSeconds: presign === 0 ? undefined : presign,
    target,
    mapping: mapBlobRequest(req.method, target, query, headers),
  };
}

/** The audit line's host and action (blob:<action> or blob:unmapped), known before policy. */
export function describeBlobTarget(v: ValidBlobRequest): { host: string; action: string } {
  return { host: v.url.host, action: v.mapping.ok ? `blob:${v.mapping.action}` : "blob:unmapped" };
}

function invalid(message: string): never {
  throw new DomainError("invalid_argument", message);
}
