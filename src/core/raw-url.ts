import { DomainError } from "./errors.js";

/** A URL split as written: nothing decoded, normalized or re-encoded. */
export interface RawUrl {
  scheme: "http" | "https";
  /** Lower-case host name; an IPv6 literal keeps its brackets. */
  host: string;
  /** The authority as written (host[:port]): the Host header to sign. */
  authority: string;
  port: number | undefined;
  /** The path exactly as the caller will send it; "/" when empty. */
  path: string;
  /** The query string without "?", as written; "" when none. */
  query: string;
}

/** The longest URL signed, in UTF-8 bytes: AWS's own limit is about 8 KB. */
export const MAX_URL_BYTES = 8192;

// The path group starts with "/" so the authority and path cannot trade
// characters: a failing match backtracks in linear time, not quadratic.
const URL_PARTS = /^(https?):\/\/([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?$/i;
const AUTHORITY = /^(\[[0-9a-f:.]+\]|[a-z0-9._~-]+)(?::(\d{1,5}))?$/i;

/**
 * Splits an http(s) URL without a URL parser, which would rewrite the path
 * (dot segments, spaces, UTF-8) and so sign something other than what is sent.
 */
export function parseRawUrl(url: string): RawUrl {
  if (url.length > MAX_URL_BYTES || Buffer.byteLength(url) > MAX_URL_BYTES) {
    throw new DomainError("invalid_argument", `url: at most ${MAX_URL_BYTES} bytes`);
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is rejected
  if (/[\u0000-\u001f\u007f]/.test(url)) {
    throw new DomainError("invalid_argument", "url: must not contain control characters");
  }
  if (/\p{Cs}/u.test(url)) {
    throw new DomainError("invalid_argument", "url: not well-formed Unicode (a lone surrogate)");
  }
  const m = URL_PARTS.exec(url);
  if (m === null) {
    throw new DomainError(
      "invalid_argument",
      "url: expected http(s)://host[:port]/path[?query], without a fragment",
    );
  }
  const [, scheme = "", authority = "", path = "", query = ""] = m;
  // Not quoted in any message: user info is where a URL carries a password.
  if (authority.includes("@")) {
    throw new DomainError("invalid_argument", "url: user info is not allowed");
  }
  const a = AUTHORITY.exec(authority);
  const port = a?.[2] === undefined ? undefined : Number(a[2]);
  if (a === null || (port !== undefined && (port < 1 || port > 65535))) {
    throw new DomainError(
      "invalid_argument",
      "url: bad host (a host name or [IPv6 literal], then an optional port 1-65535)",
    );
  }
  return {
    scheme: scheme.toLowerCase() as RawUrl["scheme"],
    host: (a[1] ?? "").toLowerCase(),
    authority,
    port,
    path: path === "" ? "/" : path,
    query,
  };
}

/**
 * Decodes %XX sequences; an escape that is not part of valid UTF-8 stays as
 * written, the valid ones around it are decoded. '+' stays '+'. One pass, no
 * exceptions: a megabyte of bad escapes costs what a megabyte of good ones does.
 */
export function percentDecode(text: string): string {
  let at = text.indexOf("%");
  if (at < 0) return text;
  let out = "";
  /** text[kept, at) is copied as written. */
  let kept = 0;
  while (at >= 0) {
    const point = codePointAt(text, at);
    if (point < 0) {
      at = text.indexOf("%", at + 1);
      continue;
    }
    out += text.slice(kept, at) + String.fromCodePoint(point);
    at += 3 * utf8Length(point);
    kept = at;
    at = text.indexOf("%", at);
  }
  return out + text.slice(kept);
}

/**
 * The code point of the escaped UTF-8 sequence at `at`, or -1 when it is not
 * well-formed (RFC 3629: no overlong forms, no surrogates, nothing above
 * U+10FFFF), as decodeURIComponent decides.
 */
function codePointAt(text: string, at: number): number {
  const b0 = byteAt(text, at);
  if (b0 < 0x80) return b0;
  let length: number;
  let point: number;
  // The second byte's range (RFC 3629 section 4); later ones are 80-BF.
  let low = 0x80;
  let high = 0xbf;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    length = 2;
    point = b0 & 0x1f;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    length = 3;
    point = b0 & 0x0f;
    if (b0 === 0xe0) low = 0xa0;
    if (b0 === 0xed) high = 0x9f;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    length = 4;
    point = b0 & 0x07;
    if (b0 === 0xf0) low = 0x90;
    if (b0 === 0xf4) high = 0x8f;
  } else {
    return -1;
  }
  for (let i = 1; i < length; i++) {
    const b = byteAt(text, at + 3 * i);
    if (b < low || b > high) return -1;
    point = (point << 6) | (b & 0x3f);
    low = 0x80;
    high = 0xbf;
  }
  return point;
}

function utf8Length(point: number): number {
  return point < 0x80 ? 1 : point < 0x800 ? 2 : point < 0x10000 ? 3 : 4;
}

/** The byte of a well-formed %XX escape at `at`, or -1. */
function byteAt(text: string, at: number): number {
  if (at + 2 >= text.length || text.charCodeAt(at) !== 0x25) return -1;
  const hi = hexValue(text.charCodeAt(at + 1));
  const lo = hexValue(text.charCodeAt(at + 2));
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  const lower = code | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x61 + 10 : -1;
}

/** RFC 3986 encoding as SigV4 wants it: everything but A-Z a-z 0-9 - . _ ~ */
export function uriEncode(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** The query's parameters, decoded, in order; a key without "=" has value "". */
export function queryParams(query: string): [string, string][] {
  if (query === "") return [];
  return query
    .split("&")
    .filter((part) => part !== "")
    .map((part) => {
      const eq = part.indexOf("=");
      return eq < 0
        ? [percentDecode(part), ""]
        : [percentDecode(part.slice(0, eq)), percentDecode(part.slice(eq + 1))];
    });
}

/**
 * A path's segments decoded and encoded once, joined as written: S3's
 * canonical path (no dot-segment removal, no double encoding).
 */
export function encodeOnce(path: string): string {
  // Already canonical (the common case): nothing to decode or encode.
  if (/^[A-Za-z0-9\-._~/]*$/.test(path)) return path;
  return path
    .split("/")
    .map((segment) => uriEncode(percentDecode(segment)))
    .join("/");
}
