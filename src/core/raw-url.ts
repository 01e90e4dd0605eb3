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

const URL_PARTS = /^(https?):\/\/([^/?#]*)([^?#]*)(?:\?([^#]*))?$/i;
const AUTHORITY = /^(\[[0-9a-f:.]+\]|[a-z0-9._~-]+)(?::(\d{1,5}))?$/i;

/**
 * Splits an http(s) URL without a URL parser, which would rewrite the path
 * (dot segments, spaces, UTF-8) and so sign something other than what is sent.
 */
export function parseRawUrl(url: string): RawUrl {
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
  const a = AUTHORITY.exec(authority);
  const port = a?.[2] === undefined ? undefined : Number(a[2]);
  if (a === null || (port !== undefined && (port < 1 || port > 65535))) {
    throw new DomainError(
      "invalid_argument",
      `url: bad host "${authority}" (no user info, a valid port)`,
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
 * written, the valid ones around it are decoded. '+' stays '+'.
 */
export function percentDecode(text: string): string {
  if (!text.includes("%")) return text;
  return text.replace(/(%[0-9a-f]{2})+/gi, (run) => {
    const escapes = run.match(/%[0-9a-f]{2}/gi) ?? [];
    let out = "";
    for (let i = 0; i < escapes.length; ) {
      let taken = 0;
      // A UTF-8 sequence is 1-4 bytes: take the longest that decodes.
      for (let n = Math.min(4, escapes.length - i); n > 0 && taken === 0; n--) {
        try {
          out += decodeURIComponent(escapes.slice(i, i + n).join(""));
          taken = n;
        } catch {
          // shorter, or not decodable at all
        }
      }
      if (taken === 0) {
        out += escapes[i];
        taken = 1;
      }
      i += taken;
    }
    return out;
  });
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
