import { createHash } from "node:crypto";
import type { SignRequestRequest } from "../../../gen/credbroker/v1/signing_service_pb.js";
import { DomainError } from "../../core/errors.js";
import { parseRawUrl, percentDecode, queryParams, type RawUrl } from "../../core/raw-url.js";
import { RequestHeaders, UNSIGNABLE } from "../../core/request-headers.js";
import { checkSignTarget } from "../../core/sign-target.js";
import { type GcsHost, type GcsMapping, mapGcsRequest, readGcsHost } from "./gcs-request.js";
import { UNSIGNED_PAYLOAD } from "./goog4.js";

export const MAX_PRESIGN_SECONDS = 604800;
const MAX_SIGN_HEADERS = 200;
const METHOD = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/;
/** HTTP token characters, and "/" (Google's conformance cases sign such a name). */
const HEADER_NAME = /^[!#$%&'*+./^_`|~0-9A-Za-z-]{1,128}$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is rejected
const BAD_HEADER_VALUE = /[\u0000\r\n]|\p{Cs}/u;
const LOCATION = /^[a-z0-9-]{1,64}$/;
/** A payload hash as GCS reads it: hex (Google's own cases sign 63 digits), or UNSIGNED-PAYLOAD. */
const PAYLOAD_HASH = /^([0-9A-Fa-f]{32,64}|UNSIGNED-PAYLOAD)$/;
/** Set by the signer: refused as headers and (any letter case) as query parameters. */
const SIGNER_NAMES = new Set([
  "x-goog-algorithm",
  "x-goog-credential",
  "x-goog-expires",
  "x-goog-signedheaders",
  "x-goog-signature",
]);
const SINGLE_HEADER = /^(x-goog-|content-|if-)|^(range|expires)$/;
const CONTENT_SHA256 = "x-goog-content-sha256";

/** A SignRequest for Cloud Storage, checked for form. */
export interface ValidGcsSign {
  namespace: string;
  credential: string;
  method: string;
  url: RawUrl;
  host: GcsHost;
  /** The caller's headers as given (no host, no authorization): what is sent. */
  callerHeaders: [string, string][];
  /** Canonical values by lower-case name, x-goog-content-sha256 added for a payload given by field. */
  headers: Record<string, string>;
  query: [string, string][];
  payloadHash: string;
  region: string;
  presignExpiresSeconds: number | undefined;
  mapping: GcsMapping;
}

function invalid(message: string): never {
  throw new DomainError("invalid_argument", message);
}

/** Checks a SignRequest's form for Cloud Storage; invalid_argument naming the field. */
export function validateGcsSign(req: SignRequestRequest): ValidGcsSign {
  checkSignTarget(req);
  if (!METHOD.test(req.method)) invalid("method: an HTTP method such as GET or PUT");
  const url = parseRawUrl(req.url);
  if (req.headers.length > MAX_SIGN_HEADERS) invalid(`headers: at most ${MAX_SIGN_HEADERS}`);
  if (req.service !== "" && req.service !== "storage") {
    invalid('service: "storage" (or unset): Google Cloud signs Cloud Storage requests');
  }
  if (req.region !== "" && !LOCATION.test(req.region)) {
    invalid('region: a location such as "auto" or "us-central1" (unset means auto)');
  }
  if (req.normalizePath !== undefined) {
    invalid("normalize_path: not used for Cloud Storage (paths are signed as sent)");
  }
  const list: [string, string][] = [];
  const firstAt = new Map<string, number>();
  req.headers.forEach((h, i) => {
    const name = h.name.toLowerCase();
    if (!HEADER_NAME.test(h.name)) invalid(`headers[${i}].name: not a valid header name`);
    if (BAD_HEADER_VALUE.test(h.value)) {
      invalid(`headers[${i}].value (${name}): no CR, LF, NUL or lone surrogate`);
    }
    if (SIGNER_NAMES.has(name))
      invalid(`headers[${i}]: ${name} is set by the signer, not the caller`);
    if (name === "host" && h.value.toLowerCase() !== url.authority.toLowerCase()) {
      invalid(`headers[${i}]: a host header must equal the URL's host[:port]`);
    }
    const first = firstAt.get(name);
    if (first !== undefined && SINGLE_HEADER.test(name)) {
      invalid(
        `headers[${i}]: repeats headers[${first}] (any letter case); x-goog-*, content-*, if-*, range and expires are given once`,
      );
    }
    if (first === undefined) firstAt.set(name, i);
    if (name !== "host" && name !== "authorization") list.push([h.name, h.value]);
  });
  const view = new RequestHeaders(list);
  const headers: Record<string, string> = Object.create(null);
  for (const name of view.names()) {
    if (UNSIGNABLE.has(name)) continue;
    headers[name] = (view.joinedValue(name) ?? "").trim().replace(/[ \t]+/g, " ");
  }
  const query = queryParams(url.query);
  query.forEach(([k], i) => {
    if (SIGNER_NAMES.has(k.toLowerCase()) || k.toLowerCase() === "x-goog-date") {
      invalid(`url: query parameter ${i + 1} is an X-Goog-* name the signer sets`);
    }
  });
  const presign = req.presignExpiresSeconds;
  if (presign !== 0 && (presign < 1 || presign > MAX_PRESIGN_SECONDS)) {
    invalid(`presign_expires_seconds: 1-${MAX_PRESIGN_SECONDS} (0 signs headers)`);
  }
  const payloadHash = payloadOf(req, headers);
  const host = readGcsHost(url.host);
  return {
    namespace: req.namespace,
    credential: req.credential,
    method: req.method,
    url,
    host,
    callerHeaders: list,
    headers,
    query,
    payloadHash,
    region: req.region || "auto",
    presignExpiresSeconds: presign === 0 ? undefined : presign,
    mapping: mapGcsRequest({
      method: req.method,
      host,
      path: percentDecode(url.path),
      query,
      headers,
    }),
  };
}

/** The payload hash signed; a hash given by field is signed as x-goog-content-sha256 too. */
function payloadOf(req: SignRequestRequest, headers: Record<string, string>): string {
  const fromHeader = headers[CONTENT_SHA256];
  if (fromHeader !== undefined && !PAYLOAD_HASH.test(fromHeader)) {
    invalid("x-goog-content-sha256 header: a hex SHA-256 or UNSIGNED-PAYLOAD");
  }
  let fromField: string | undefined;
  switch (req.payload.case) {
    case "body":
      fromField = createHash("sha256").update(req.payload.value).digest("hex");
      break;
    case "payloadSha256":
      if (!PAYLOAD_HASH.test(req.payload.value)) {
        invalid("payload_sha256: 64 hex digits or UNSIGNED-PAYLOAD");
      }
      fromField = req.payload.value;
      break;
    case "unsignedPayload":
      if (req.payload.value) fromField = UNSIGNED_PAYLOAD;
      break;
  }
  if (fromField === undefined) return fromHeader ?? UNSIGNED_PAYLOAD;
  if (fromHeader !== undefined && fromHeader.toLowerCase() !== fromField.toLowerCase()) {
    invalid(
      "x-goog-content-sha256 header: differs from the payload field's hash; send one of them",
    );
  }
  if (fromHeader === undefined && fromField !== UNSIGNED_PAYLOAD)
    headers[CONTENT_SHA256] = fromField;
  return fromHeader ?? fromField;
}
