import { domainToASCII } from "node:url";
import { matchHost, readHostPattern } from "../core/allowed-hosts.js";
import { DomainError } from "../core/errors.js";
import { parseRawUrl } from "../core/raw-url.js";

/** Where a forward goes, decided from the URL and the credential's allowed_hosts. */
export interface ForwardTarget {
  scheme: "http" | "https";
  /** Lower case, ASCII (IDNA), no trailing dot; an IPv6 literal keeps its brackets. */
  host: string;
  port: number;
  /** Path and query as written, but for characters HTTP cannot carry (space, non-ASCII), percent-encoded as fetch would. */
  path: string;
  query: string;
  /** The URL rebuilt from the above (default port left out): what a SigV4 signature covers. */
  url: string;
  /** The IP literals allowed_hosts lists: these may be reached even when private or loopback. */
  listedAddresses: ReadonlySet<string>;
}

const DEFAULT_PORT = { http: 80, https: 443 } as const;

/**
 * Reads a forward's URL against `allowedHosts`: invalid_argument for a
 * malformed URL (user info included), permission_denied naming the rule
 * (HostNotAllowed, SchemeNotAllowed) for a host or scheme the credential
 * does not allow. `who` names the credential in messages; the URL is never quoted.
 */
export function readForwardTarget(
  url: string,
  allowedHosts: readonly string[],
  who: string,
): ForwardTarget {
  const raw = parseRawUrl(asciiHost(url));
  const host = raw.host.endsWith(".") ? raw.host.slice(0, -1) : raw.host;
  const match = matchHost(allowedHosts, host);
  if (match === undefined) {
    deny("HostNotAllowed", `the URL's host is not in ${who}'s allowed_hosts`);
  }
  if (raw.scheme === "http" && !match.httpAllowed) {
    deny(
      "SchemeNotAllowed",
      `plain http only to a host ${who}'s allowed_hosts lists as http://HOST or as an IP literal; use https`,
    );
  }
  const port = raw.port ?? DEFAULT_PORT[raw.scheme];
  const authority = port === DEFAULT_PORT[raw.scheme] ? host : `${host}:${port}`;
  const listedAddresses = new Set(allowedHosts.flatMap((entry) => readHostPattern(entry).ip ?? []));
  const path = onTheWire(raw.path);
  const query = onTheWire(raw.query);
  return {
    scheme: raw.scheme,
    host,
    port,
    path,
    query,
    url: `${raw.scheme}://${authority}${path}${query === "" ? "" : `?${query}`}`,
    listedAddresses,
  };
}

/** Characters a request line cannot hold: percent-encoded (UTF-8); existing escapes stay. */
const NOT_ON_THE_WIRE = /[^\x21-\x7e]|["<>\\^`{|}]/gu;

function onTheWire(text: string): string {
  return text.replace(NOT_ON_THE_WIRE, (c) => encodeURIComponent(c));
}

/**
 * The URL with an internationalized host written in ASCII (punycode), so it
 * is matched as the name DNS resolves. Only the host changes.
 */
function asciiHost(url: string): string {
  const m = /^(https?:\/\/)([^/?#]*)(.*)$/is.exec(url);
  if (m === null) return url;
  const [, scheme = "", authority = "", rest = ""] = m;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: ASCII is what is kept
  if (/^[\x00-\x7f]*$/.test(authority) || authority.includes("@")) return url;
  const at = /^(.*?)(:\d{1,5})?$/s.exec(authority);
  const ascii = domainToASCII(at?.[1] ?? "");
  if (ascii === "") {
    throw new DomainError("invalid_argument", "url: the host is not a valid domain name");
  }
  return `${scheme}${ascii}${at?.[2] ?? ""}${rest}`;
}

function deny(rule: string, detail: string): never {
  throw new DomainError("permission_denied", `${rule}: ${detail}`);
}
